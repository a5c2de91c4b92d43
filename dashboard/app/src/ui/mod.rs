//! The dashboard's components.

mod chart_panel;
mod feed;
mod header;
mod tiles;

pub use chart_panel::ChartPanel;
pub use feed::Feed;
pub use header::Header;
pub use tiles::Watchlist;
