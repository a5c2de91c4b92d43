use leptos::prelude::*;

use crate::app::AppState;
use crate::format;
use crate::protocol::AlertRecord;
use crate::store::{self, AnomalyEvent};

/// The feed: alerts (all symbols; the default tab) or the anomaly ticks of the watched symbols.
#[component]
pub fn Feed() -> impl IntoView {
    let alerts_tab = RwSignal::new(true);
    view! {
        <aside class="panel feed">
            <div class="tabs" role="tablist">
                <button
                    role="tab"
                    class="tab"
                    class:active=move || alerts_tab.get()
                    aria-selected=move || alerts_tab.get().to_string()
                    data-testid="tab-alerts"
                    on:click=move |_| alerts_tab.set(true)
                >
                    "Alerts"
                </button>
                <button
                    role="tab"
                    class="tab"
                    class:active=move || !alerts_tab.get()
                    aria-selected=move || (!alerts_tab.get()).to_string()
                    data-testid="tab-anomalies"
                    on:click=move |_| alerts_tab.set(false)
                >
                    "Anomaly ticks"
                </button>
            </div>
            <Show when=move || alerts_tab.get() fallback=|| view! { <AnomalyFeed /> }>
                <AlertFeed />
            </Show>
        </aside>
    }
}

/// The latest alerts, newest first; an open one is redrawn in place as it grows.
#[component]
fn AlertFeed() -> impl IntoView {
    let state = expect_context::<AppState>();
    let revision = Memo::new(move |_| {
        state.version.track();
        store::with(|s| s.alerts_revision)
    });
    let rows = Memo::new(move |_| {
        let _ = revision.get();
        store::with(|s| s.alerts.iter().rev().cloned().collect::<Vec<_>>())
    });
    // Kept here, not in the rows: a row is rebuilt when its alert grows.
    let expanded = RwSignal::new(std::collections::HashSet::<String>::new());
    view! {
        <div class="panel-head">
            <span class="muted">{move || rows.with(Vec::len)} " latest, all symbols"</span>
        </div>
        <ol class="feed-list alerts" data-testid="alert-feed">
            <For
                each=move || rows.get()
                key=|alert| (alert.id.clone(), alert.count as u64, alert.status.clone())
                let:alert
            >
                <AlertItem alert expanded />
            </For>
        </ol>
    }
}

#[component]
fn AlertItem(
    alert: AlertRecord,
    expanded: RwSignal<std::collections::HashSet<String>>,
) -> impl IntoView {
    let open = alert.is_open();
    let id = alert.id.clone();
    let is_expanded = {
        let id = id.clone();
        Memo::new(move |_| expanded.with(|e| e.contains(&id)))
    };
    let toggle = {
        let id = id.clone();
        move |_| {
            expanded.update(|e| {
                if !e.remove(&id) {
                    e.insert(id.clone());
                }
            })
        }
    };
    let span = if alert.end_ts > alert.start_ts {
        format!(
            "{}–{}",
            format::utc_hms(alert.start_ts),
            format::utc_hms(alert.end_ts)
        )
    } else {
        format::utc_hms(alert.start_ts)
    };
    let ticks = alert.ticks.clone();
    let no_ticks = ticks.is_empty();
    view! {
        <li
            class=format!("alert-item {}", alert.severity)
            class:open=open
            data-testid="alert-item"
            data-id=id.clone()
            data-symbol=alert.symbol.clone()
            data-count=format!("{}", alert.count)
            data-status=alert.status.clone()
        >
            <button class="alert-summary" aria-expanded=move || is_expanded.get().to_string() on:click=toggle>
                <span class="symbol">{alert.symbol.clone()}</span>
                <span class=format!("severity {}", alert.severity)>{alert.severity.clone()}</span>
                <span class=format!("z {}", alert.direction)>
                    {if alert.direction == "down" { "▼ " } else { "▲ " }}
                    {format!("{:.2}", alert.peak_z)}
                </span>
                <span class="time">{span}</span>
                <span class="num">{format!("{} ticks", alert.count)}</span>
                <span class="live" class:hidden=!open>"open"</span>
            </button>
            <Show when=move || is_expanded.get()>
                <ol class="alert-ticks" data-testid="alert-ticks">
                    {ticks
                        .iter()
                        .map(|(ts, price, z)| {
                            view! {
                                <li class="alert-tick" data-testid="alert-tick">
                                    <span class="time">{format::utc_hms(*ts)}</span>
                                    <span class="num">{format::price(*price)}</span>
                                    <span class="num">{format!("{z:.2}")}</span>
                                </li>
                            }
                        })
                        .collect_view()}
                    <li class="muted" class:hidden=!no_ticks>
                        "ticks not kept (read back from outputs/alerts)"
                    </li>
                </ol>
            </Show>
        </li>
    }
}

/// The latest anomalies of the watched symbols, newest first.
#[component]
fn AnomalyFeed() -> impl IntoView {
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
        <div class="panel-head">
            <span class="muted">{move || rows.with(Vec::len)} " latest, watched symbols"</span>
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
