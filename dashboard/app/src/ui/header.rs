use leptos::prelude::*;

use crate::app::AppState;
use crate::format;
use crate::store;

/// Connection state, the server's KPIs and the Pause/Resume toggle.
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
                    <dd data-testid="event-clock">
                        {move || kpi.get().clock.map_or_else(|| "—".to_string(), format::utc_hms)}
                    </dd>
                </div>
                <div class="kpi">
                    <dt>"ticks shown"</dt>
                    <dd data-testid="ticks-shown">{move || ticks_shown.get().to_string()}</dd>
                </div>
            </dl>
            <button
                class="pause"
                class:paused=move || state.paused.get()
                data-testid="pause"
                on:click=move |_| state.paused.update(|paused| *paused = !*paused)
            >
                {move || if state.paused.get() { "Resume" } else { "Pause" }}
            </button>
        </header>
    }
}
