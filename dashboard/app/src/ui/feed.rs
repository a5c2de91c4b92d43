use leptos::prelude::*;

use crate::app::AppState;
use crate::format;
use crate::store::{self, AnomalyEvent};

/// The latest anomalies of the watched symbols, newest first.
#[component]
pub fn AnomalyFeed() -> impl IntoView {
    let state = expect_context::<AppState>();
    let revision = Memo::new(move |_| {
        state.version.track();
        store::with(|s| s.feed_revision)
    });
    let rows = Memo::new(move |_| {
        // `get`, not `track`: tracking alone would never run the revision memo.
        let _ = revision.get();
        store::with(|s| s.feed.iter().rev().cloned().collect::<Vec<_>>())
    });

    view! {
        <aside class="panel feed">
            <div class="panel-head">
                <h2>"Anomalies"</h2>
                <span class="muted">{move || rows.with(Vec::len)} " latest"</span>
            </div>
            <div class="feed-columns" aria-hidden="true">
                <span>"time (UTC)"</span>
                <span>"symbol"</span>
                <span>"price"</span>
                <span>"z"</span>
                <span>"SMA"</span>
            </div>
            <ol class="feed-list" data-testid="anomaly-feed">
                <For each=move || rows.get() key=|event| event.seq let:event>
                    <FeedRow event />
                </For>
            </ol>
        </aside>
    }
}

#[component]
fn FeedRow(event: AnomalyEvent) -> impl IntoView {
    let state = expect_context::<AppState>();
    let AnomalyEvent {
        symbol,
        ts,
        price,
        z,
        sma,
        ..
    } = event;
    let z_class = if z.is_some_and(|z| z < 0.0) {
        "z down"
    } else {
        "z up"
    };
    let focus = {
        let symbol = symbol.clone();
        move |_| state.focus_on_time(&symbol, ts)
    };

    view! {
        <li
            class="feed-item"
            data-testid="anomaly-item"
            data-symbol=symbol.clone()
            data-ts=format!("{}", ts.round() as i64)
            title="Show on the chart"
            on:click=focus
        >
            <span class="time">{format::utc_hms(ts)}</span>
            <span class="symbol">{symbol.clone()}</span>
            <span class="num">{format::price(price)}</span>
            <span class=z_class>{format::optional(z, 2)}</span>
            <span class="num">{format::optional(sma, 2)}</span>
        </li>
    }
}
