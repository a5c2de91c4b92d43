//! Where ticks come from: JSON lines and CSV files (with their layouts and timestamp forms).
//! No engine, no network: the runner, the producer and the pipeline all read ticks through here.

pub mod input;

pub use input::{CsvOptions, InputFormat, InputItem, TickReader};
