use leptos::prelude::*;

use crate::app::AppState;
use crate::format;
use crate::protocol::Replay;
use crate::store;

/// The replay speeds offered (`None`: as fast as possible).
const SPEEDS: [(&str, Option<f64>); 4] = [
    ("1×", Some(1.0)),
    ("10×", Some(10.0)),
    ("100×", Some(100.0)),
    ("max", None),
];

/// Speed buttons and a play/pause toggle for a replay (files or the generator); absent when the
/// input is live.
#[component]
fn ReplayControls() -> impl IntoView {
    let state = expect_context::<AppState>();
    move || {
        state.replay.get().map(|replay| {
            let buttons = SPEEDS
                .iter()
                .map(|&(label, speed)| {
                    let testid = format!("speed-{}", label.trim_end_matches('×'));
                    view! {
                        <button
                            class="speed"
                            class:active=replay.speed == speed
                            data-testid=testid
                            aria-pressed=(replay.speed == speed).to_string()
                            on:click=move |_| state.change_replay(Replay { speed, ..replay })
                        >
                            {label}
                        </button>
                    }
                })
                .collect_view();
            view! {
                <div class="replay" role="group" aria-label="replay speed" data-testid="replay">
                    <span class="replay-label">"replay"</span>
                    {buttons}
                    <button
                        class="speed"
                        class:active=replay.paused
                        data-testid="replay-pause"
                        aria-pressed=replay.paused.to_string()
                        on:click=move |_| {
                            state.change_replay(Replay { paused: !replay.paused, ..replay })
                        }
                    >
                        {if replay.paused { "▶ play" } else { "❚❚ hold" }}
                    </button>
                </div>
            }
        })
    }
}

/// Connection state, the server's KPIs, the replay's controls and the Pause/Resume toggle.
#[component]
pub fn Header() -> impl IntoView {
    let state = expect_context::<AppState>();
    let kpi = Memo::new(move |_| {
        state.version.track();
        store::with(|s| s.kpi)
    });
    let ticks_shown = Memo::new(move |_| {
        state.version.track();
        store::with(|s| s.ticks_received)
    });
    let conn = move || state.conn.get().label();

    view! {
        <header class="topbar">
            <div class="brand">"stockstream"</div>
            <span class=move || format!("conn {}", conn()) data-testid="conn">
                {conn}
            </span>
            <dl class="kpis">
                <div class="kpi">
                    <dt>"ticks/s"</dt>
                    <dd data-testid="kpi-ticks">{move || format!("{:.0}", kpi.get().ticks_per_s)}</dd>
                </div>
                <div class="kpi">
                    <dt>"anomalies/min"</dt>
                    <dd data-testid="kpi-anomalies">
                        {move || format!("{:.1}", kpi.get().anomalies_per_min)}
                    </dd>
                </div>
                <div class="kpi">
                    <dt>"late"</dt>
                    <dd data-testid="kpi-late">{move || format!("{:.0}", kpi.get().late)}</dd>
                </div>
                <div class="kpi">
                    <dt>"invalid"</dt>
                    <dd data-testid="kpi-invalid">{move || format!("{:.0}", kpi.get().invalid)}</dd>
                </div>
                <div class="kpi">
                    <dt>"event time"</dt>
                    <dd
                        data-testid="event-clock"
                        data-ts=move || kpi.get().clock.map(|c| c.to_string()).unwrap_or_default()
                    >
                        {move || kpi.get().clock.map_or_else(|| "—".to_string(), format::utc_hms)}
                    </dd>
                </div>
                <div class="kpi">
                    <dt>"ticks shown"</dt>
                    <dd data-testid="ticks-shown">{move || ticks_shown.get().to_string()}</dd>
                </div>
            </dl>
            <ReplayControls />
            <button
                class="pause"
                title="Freeze the page (the data keeps coming and shows on resume)"
                class:paused=move || state.paused.get()
                data-testid="pause"
                on:click=move |_| state.paused.update(|paused| *paused = !*paused)
            >
                {move || if state.paused.get() { "Resume" } else { "Pause" }}
            </button>
        </header>
    }
}
