//! The app's reactive state, and the wiring from the socket through the store to the view.

use std::cell::RefCell;
use std::rc::Rc;

use leptos::logging::warn;
use leptos::prelude::*;

use crate::chart::{self, ChartModel, Viewport};
use crate::protocol::{self, ServerMessage};
use crate::socket::{self, SocketEvent};
use crate::store::{self, SymbolsChange};
use crate::ui::{ChartPanel, Feed, Header, Watchlist};
use crate::watchlist;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnState {
    Connecting,
    Live,
    Reconnecting,
}

impl ConnState {
    pub fn label(self) -> &'static str {
        match self {
            ConnState::Connecting => "connecting",
            ConnState::Live => "live",
            ConnState::Reconnecting => "reconnecting",
        }
    }
}

/// Small reactive state; the data itself stays in [`store`], read when `version` moves.
#[derive(Clone, Copy)]
pub struct AppState {
    /// Bumped at most once per animation frame when new data arrived and updates are live.
    pub version: RwSignal<u64>,
    pub paused: RwSignal<bool>,
    /// The replay's pace as last heard (or just asked for); `None` for a live input.
    pub replay: RwSignal<Option<protocol::Replay>>,
    pub conn: RwSignal<ConnState>,
    pub watchlist: RwSignal<Vec<String>>,
    /// The symbol the user picked; see `focus` for the one shown.
    pub picked: RwSignal<Option<String>>,
    /// The charted symbol: the one picked while it is watched, else the first watched.
    pub focus: Memo<Option<String>>,
    pub viewport: RwSignal<Viewport>,
    pub chart_width: RwSignal<f64>,
    pub chart: Memo<ChartModel>,
    /// No watchlist was stored when the page loaded.
    first_visit: bool,
}

impl AppState {
    fn new() -> Self {
        let version = RwSignal::new(0);
        let stored = watchlist::load();
        let first_visit = stored.is_none();
        let watchlist = RwSignal::new(stored.unwrap_or_default());
        let picked = RwSignal::new(None::<String>);
        let focus = Memo::new(move |_| {
            watchlist.with(|list| {
                picked
                    .get()
                    .filter(|symbol| list.contains(symbol))
                    .or_else(|| list.first().cloned())
            })
        });
        let viewport = RwSignal::new(Viewport::Live);
        let chart_width = RwSignal::new(900.0);
        let chart = Memo::new(move |_| {
            version.track();
            let (viewport, width) = (viewport.get(), chart_width.get());
            focus.with(|symbol| {
                store::with(|s| {
                    chart::build(
                        symbol.as_deref().and_then(|sym| s.series(sym)),
                        viewport,
                        width,
                    )
                })
            })
        });
        AppState {
            version,
            paused: RwSignal::new(false),
            replay: RwSignal::new(None),
            conn: RwSignal::new(ConnState::Connecting),
            watchlist,
            picked,
            focus,
            viewport,
            chart_width,
            chart,
            first_visit,
        }
    }

    /// Asks the server for another replay speed and/or pause, showing it at once.
    pub fn change_replay(&self, change: protocol::Replay) {
        let Some(current) = self.replay.get_untracked() else {
            return;
        };
        let mut body = serde_json::Map::new();
        if change.speed != current.speed {
            body.insert(
                "speed".into(),
                change.speed.map_or("max".into(), serde_json::Value::from),
            );
        }
        if change.paused != current.paused {
            body.insert("paused".into(), change.paused.into());
        }
        if body.is_empty() {
            return;
        }
        socket::post_json("/api/replay", &serde_json::Value::Object(body).to_string());
        self.replay.set(Some(change));
    }

    /// Charts `symbol`, following its newest data.
    pub fn focus_on(&self, symbol: &str) {
        self.picked.set(Some(symbol.to_string()));
        self.viewport.set(Viewport::Live);
    }

    /// Charts `symbol` with the current time span centred on `ts`.
    pub fn focus_on_time(&self, symbol: &str, ts: f64) {
        let span = self.chart.with_untracked(|m| {
            if m.has_data {
                m.scale.span()
            } else {
                10.0 * 60_000.0
            }
        });
        self.picked.set(Some(symbol.to_string()));
        self.viewport.set(Viewport::centred_on(ts, span));
    }
}

/// What this connection has subscribed to: the server hears of each watchlist once.
#[derive(Default)]
struct Subscription {
    /// The first snapshot of a connection came: the server takes subscriptions from now on.
    ready: bool,
    sent: Option<Vec<String>>,
}

impl Subscription {
    fn sync(&mut self, watchlist: &[String]) {
        if self.ready && self.sent.as_deref() != Some(watchlist) {
            self.sent =
                socket::send(&protocol::subscribe_message(watchlist)).then(|| watchlist.to_vec());
        }
    }
}

#[component]
pub fn App() -> impl IntoView {
    let state = AppState::new();
    provide_context(state);
    let subscription = Rc::new(RefCell::new(Subscription::default()));

    let on_watchlist_change = subscription.clone();
    Effect::new(move |_| {
        let list = state.watchlist.get();
        watchlist::save(&list);
        store::with_mut(|s| s.set_subscribed(&list));
        on_watchlist_change.borrow_mut().sync(&list);
    });

    socket::connect(
        socket::server_url(),
        Rc::new(move |event| handle_socket_event(state, &subscription, event)),
    );
    run_frame_loop(state);

    view! {
        <Header />
        <main class="layout">
            <div class="main-column">
                <Watchlist />
                <ChartPanel />
            </div>
            <Feed />
        </main>
    }
}

fn handle_socket_event(state: AppState, subscription: &RefCell<Subscription>, event: SocketEvent) {
    match event {
        SocketEvent::Open => {
            *subscription.borrow_mut() = Subscription::default();
            state.conn.set(ConnState::Live);
        }
        SocketEvent::Closed => state.conn.set(ConnState::Reconnecting),
        SocketEvent::Message(text) => {
            let message = match serde_json::from_str::<ServerMessage>(&text) {
                Ok(message) => message,
                Err(error) => {
                    warn!("stockstream: unreadable message from the server: {error}");
                    return;
                }
            };
            if let Some(kpi) = &message.kpi {
                if state.replay.get_untracked() != kpi.replay {
                    state.replay.set(kpi.replay);
                }
            }
            let applied = store::with_mut(|s| s.apply(message));
            if applied.symbols != SymbolsChange::None {
                let seen = store::with(|s| s.symbols.clone());
                let filled = state.watchlist.with_untracked(|list| {
                    watchlist::auto_fill(list, &seen, applied.symbols, state.first_visit)
                });
                if let Some(list) = filled {
                    // Subscribed to at once below (or by the watchlist effect): the store
                    // must take the snapshot that answers it.
                    store::with_mut(|s| s.set_subscribed(&list));
                    state.watchlist.set(list);
                }
            }
            if applied.snapshot {
                let mut subscription = subscription.borrow_mut();
                subscription.ready = true;
                state
                    .watchlist
                    .with_untracked(|list| subscription.sync(list));
            }
        }
    }
}

/// Re-renders at most once per frame, and only when something arrived while updates are live.
/// Paused, the data piles up in the store and shows at once on resume.
fn run_frame_loop(state: AppState) {
    request_animation_frame(move || {
        if !state.paused.get_untracked() && store::with_mut(|s| s.take_dirty()) {
            state.version.update(|v| *v += 1);
        }
        run_frame_loop(state);
    });
}
