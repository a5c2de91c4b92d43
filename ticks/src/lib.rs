//! Where ticks come from: JSON lines and CSV files (with their layouts and timestamp forms), the
//! synthetic generator, and pacing by event time. No engine, no network: the runner, the
//! producer and the pipeline all read ticks through here.

pub mod input;
pub mod pace;
pub mod synthetic;

pub use input::{
    write_tick_record, ColumnNames, CsvOptions, CsvSettings, InputFormat, InputItem, TickReader,
    TimestampFormat, Timestamps, Tz,
};
pub use pace::{Pacer, Speed};
pub use synthetic::{Anomaly, Synthetic, SyntheticConfig, SyntheticTick};
