//! Where ticks come from: JSON lines and CSV files (with their layouts and timestamp forms), the
//! synthetic generator, and pacing by event time. No engine, no network: the runner, the
//! producer and the pipeline all read ticks through here.

pub mod input;
pub mod pace;
pub mod synthetic;

pub use input::{
    input_files, open_files, write_tick_record, BarLength, ColumnNames, CsvOptions, CsvSettings,
    FilesError, InputFormat, InputItem, InputSettings, MergedTicks, TickReader, TimestampFormat,
    Timestamps, Tz, DEFAULT_MAX_RECORD_BYTES,
};
pub use pace::{Pacer, ReplayControl, Speed, Waited};
pub use synthetic::{Anomaly, Synthetic, SyntheticConfig, SyntheticTick};
