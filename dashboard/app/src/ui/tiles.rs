use leptos::ev::{KeyboardEvent, MouseEvent};
use leptos::html;
use leptos::prelude::*;

use crate::app::AppState;
use crate::format::{self, DASH};
use crate::store;
use crate::watchlist;

/// The watched symbols as tiles, and the control to watch another.
#[component]
pub fn Watchlist() -> impl IntoView {
    let state = expect_context::<AppState>();
    let select = NodeRef::<html::Select>::new();
    let addable = Memo::new(move |_| {
        state.version.track();
        state.watchlist.with(|list| {
            store::with(|s| {
                s.symbols
                    .iter()
                    .filter(|symbol| !list.contains(symbol))
                    .cloned()
                    .collect::<Vec<_>>()
            })
        })
    });
    let add = move |_| {
        let Some(symbol) = select.get_untracked().map(|s| s.value()) else {
            return;
        };
        if !symbol.is_empty() {
            state
                .watchlist
                .update(|list| *list = watchlist::with_added(list, &symbol));
        }
    };

    view! {
        <section class="panel watch">
            <div class="panel-head">
                <h2>"Watchlist"</h2>
                <div class="add">
                    <select data-testid="add-symbol" node_ref=select aria-label="Symbol to watch">
                        <For each=move || addable.get() key=|symbol| symbol.clone() let:symbol>
                            <option value=symbol.clone()>{symbol.clone()}</option>
                        </For>
                    </select>
                    <button
                        data-testid="add-button"
                        on:click=add
                        disabled=move || addable.with(Vec::is_empty)
                    >
                        "Add"
                    </button>
                </div>
            </div>
            <div class="tiles" data-testid="watchlist">
                <For each=move || state.watchlist.get() key=|symbol| symbol.clone() let:symbol>
                    <Tile symbol />
                </For>
                <p class="hint" class:hidden=move || state.watchlist.with(|l| !l.is_empty())>
                    "Nothing watched: add a symbol above."
                </p>
            </div>
        </section>
    }
}

#[component]
fn Tile(symbol: String) -> impl IntoView {
    let state = expect_context::<AppState>();
    let stats = {
        let symbol = symbol.clone();
        Memo::new(move |_| {
            state.version.track();
            store::with(|s| s.tile_stats(&symbol))
        })
    };
    let stale = {
        let symbol = symbol.clone();
        Memo::new(move |_| {
            state.version.track();
            store::with(|s| s.is_stale(&symbol))
        })
    };
    let focused = {
        let symbol = symbol.clone();
        move || state.focus.with(|f| f.as_deref() == Some(symbol.as_str()))
    };
    let focus = {
        let symbol = symbol.clone();
        move || state.focus_on(&symbol)
    };
    let remove = {
        let symbol = symbol.clone();
        move |event: MouseEvent| {
            // The tile itself would take the click as "focus".
            event.stop_propagation();
            state
                .watchlist
                .update(|list| *list = watchlist::with_removed(list, &symbol));
        }
    };
    let change = move || {
        stats.with(|s| match (s.first, s.last) {
            (Some(first), Some(last)) => format::change(first, last),
            _ => DASH.to_string(),
        })
    };
    let direction = move || {
        stats.with(|s| match (s.first, s.last) {
            (Some(first), Some(last)) if last > first => "change up",
            (Some(first), Some(last)) if last < first => "change down",
            _ => "change",
        })
    };
    let on_click = {
        let focus = focus.clone();
        move |_: MouseEvent| focus()
    };

    view! {
        <article
            class="tile"
            class:focused=focused
            class:stale=move || stale.get()
            data-stale=move || stale.get().to_string()
            data-testid="tile"
            data-symbol=symbol.clone()
            role="button"
            tabindex="0"
            on:click=on_click
            on:keydown=move |event: KeyboardEvent| {
                if event.key() == "Enter" {
                    focus()
                }
            }
        >
            <div class="tile-head">
                <span class="symbol">{symbol.clone()}</span>
                <span
                    class="stale-badge"
                    class:hidden=move || !stale.get()
                    title="No tick for longer than --stale-after of event time"
                >
                    "stale"
                </span>
                <button
                    class="remove"
                    data-testid="remove"
                    data-symbol=symbol.clone()
                    title="Stop watching"
                    on:click=remove
                >
                    "×"
                </button>
            </div>
            <div class="last-price" data-testid="last-price">
                {move || stats.with(|s| s.last.map_or_else(|| DASH.to_string(), format::price))}
            </div>
            <div class=direction>{change}</div>
            <div class="tile-meta">
                <span>"z " {move || stats.with(|s| format::optional(s.z, 2))}</span>
                <span>{move || stats.with(|s| s.anomalies)} " anomalies"</span>
            </div>
        </article>
    }
}
