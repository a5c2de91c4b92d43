//! The stockstream dashboard in the browser: a Leptos (client-side rendered) app that shows the
//! server's live streams. See dashboard/PROTOCOL.md for what it receives.

mod app;
mod chart;
mod format;
mod protocol;
mod socket;
mod store;
mod ui;
mod watchlist;

use wasm_bindgen::prelude::wasm_bindgen;

#[wasm_bindgen(start)]
pub fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(app::App);
}
