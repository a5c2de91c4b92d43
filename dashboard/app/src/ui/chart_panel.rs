use leptos::ev::{self, MouseEvent, WheelEvent};
use leptos::html;
use leptos::prelude::*;

use crate::app::AppState;
use crate::chart::{self, Scale, Viewport, HEIGHT, HOVER_BOX_WIDTH, HOVER_LINE_HEIGHT};
use crate::store;

/// A drag in progress: where it started, and the view it started from.
#[derive(Clone, Copy)]
struct Drag {
    client_x: i32,
    svg_px_per_client_px: f64,
    scale: Scale,
    moved: bool,
}

/// Pixels the pointer must move before a press counts as a pan rather than a click.
const DRAG_THRESHOLD_PX: f64 = 3.0;

/// SVG coordinates are rounded to a tenth of a pixel: shorter attributes, same picture.
fn px(value: f64) -> String {
    format!("{value:.1}")
}

/// The focused symbol's chart: candles, price, SMA and VWAP lines, anomaly markers, axes and
/// a hover crosshair; drag to pan, wheel to zoom, "Back to live" to follow the newest data.
#[component]
pub fn ChartPanel() -> impl IntoView {
    let state = expect_context::<AppState>();
    let model = state.chart;
    let frame = NodeRef::<html::Div>::new();
    let hover_x = RwSignal::new(None::<f64>);
    let drag = StoredValue::new(None::<Drag>);

    // The SVG is drawn in CSS pixels of its container, so text and markers keep their size.
    let measure = move || {
        if let Some(element) = frame.get_untracked() {
            let width = f64::from(element.client_width());
            if width > 0.0 && width != state.chart_width.get_untracked() {
                state.chart_width.set(width);
            }
        }
    };
    Effect::new(move |_| {
        if frame.get().is_some() {
            measure();
        }
    });
    let on_resize = window_event_listener(ev::resize, move |_| measure());

    // The chart's left edge on the page, and SVG pixels per CSS pixel (1 except mid-resize).
    let placement = move || -> Option<(f64, f64)> {
        let rect = frame.get_untracked()?.get_bounding_client_rect();
        (rect.width() > 0.0).then(|| {
            (
                rect.left(),
                state.chart_width.get_untracked() / rect.width(),
            )
        })
    };
    let svg_x =
        move |client_x: i32| placement().map(|(left, ratio)| (f64::from(client_x) - left) * ratio);

    let on_mousedown = move |event: MouseEvent| {
        if event.button() != 0 || !model.with_untracked(|m| m.has_data) {
            return;
        }
        // Keeps the drag from selecting text.
        event.prevent_default();
        let Some((_, ratio)) = placement() else {
            return;
        };
        drag.set_value(Some(Drag {
            client_x: event.client_x(),
            svg_px_per_client_px: ratio,
            scale: model.with_untracked(|m| m.scale),
            moved: false,
        }));
    };
    let on_drag = window_event_listener(ev::mousemove, move |event| {
        let Some(mut current) = drag.get_value() else {
            return;
        };
        let dx = f64::from(event.client_x() - current.client_x) * current.svg_px_per_client_px;
        if current.moved || dx.abs() >= DRAG_THRESHOLD_PX {
            current.moved = true;
            drag.set_value(Some(current));
            hover_x.set(None);
            state.viewport.set(Viewport::panned(&current.scale, dx));
        }
    });
    let on_drop = window_event_listener(ev::mouseup, move |_| drag.set_value(None));
    on_cleanup(move || {
        on_resize.remove();
        on_drag.remove();
        on_drop.remove();
    });

    let on_mousemove = move |event: MouseEvent| {
        if drag.with_value(|d| d.is_none_or(|d| !d.moved)) {
            hover_x.set(svg_x(event.client_x()));
        }
    };
    let on_wheel = move |event: WheelEvent| {
        if !model.with_untracked(|m| m.has_data) {
            return;
        }
        // The page must not scroll while the chart zooms.
        event.prevent_default();
        let Some(x) = svg_x(event.client_x()) else {
            return;
        };
        let pixels = match event.delta_mode() {
            WheelEvent::DOM_DELTA_LINE => event.delta_y() * 16.0,
            WheelEvent::DOM_DELTA_PAGE => event.delta_y() * 400.0,
            _ => event.delta_y(),
        };
        let factor = (pixels * 0.0015).exp();
        let scale = model.with_untracked(|m| m.scale);
        state.viewport.set(Viewport::zoomed(&scale, x, factor));
    };

    let hover = Memo::new(move |_| {
        let x = hover_x.get()?;
        let symbol = state.focus.get()?;
        model.with(|m| {
            let inside = m.has_data && x >= m.scale.left() && x <= m.scale.right();
            inside
                .then(|| store::with(|s| chart::hover(s.series(&symbol)?, &m.scale, x)))
                .flatten()
        })
    });
    let is_live = move || state.viewport.get() == Viewport::Live;
    let scale = move || model.with(|m| m.scale);

    view! {
        <section class="panel chart-panel">
            <div class="panel-head">
                <h2>{move || state.focus.get().unwrap_or_else(|| "No symbol".to_string())}</h2>
                <div class="legend" aria-label="Legend">
                    <span class="key price">"price"</span>
                    <span class="key sma">"SMA 5m"</span>
                    <span class="key vwap">"VWAP"</span>
                    <span class="key anomaly">"anomaly"</span>
                    <span class="key candle">"5m bars"</span>
                </div>
                <button
                    class="live-button"
                    class:live=is_live
                    disabled=is_live
                    on:click=move |_| state.viewport.set(Viewport::Live)
                >
                    {move || if is_live() { "● Live" } else { "Back to live" }}
                </button>
            </div>
            <div
                class="chart"
                data-testid="chart"
                data-symbol=move || state.focus.get().unwrap_or_default()
                node_ref=frame
            >
                <svg
                    viewBox=move || format!("0 0 {:.0} {HEIGHT:.0}", state.chart_width.get())
                    height=px(HEIGHT)
                    preserveAspectRatio="none"
                    role="img"
                    aria-label="Price chart"
                    on:mousedown=on_mousedown
                    on:mousemove=on_mousemove
                    on:mouseleave=move |_| hover_x.set(None)
                    on:wheel=on_wheel
                >
                    <defs>
                        <clipPath id="plot-clip">
                            <rect
                                x=move || px(scale().left())
                                y=move || px(scale().top())
                                width=move || px(scale().right() - scale().left())
                                height=move || px(scale().bottom() - scale().top())
                            />
                        </clipPath>
                    </defs>
                    <Axes />
                    <g clip-path="url(#plot-clip)">
                        <g class="candles">
                            <For
                                each=move || 0..model.with(|m| m.candles.len())
                                key=|slot| *slot
                                let:slot
                            >
                                <CandleSlot index=slot />
                            </For>
                        </g>
                        <path class="line sma" d=move || model.with(|m| m.sma_path.clone()) />
                        <path class="line vwap" d=move || model.with(|m| m.vwap_path.clone()) />
                        <path
                            class="line price"
                            data-testid="price-line"
                            d=move || model.with(|m| m.price_path.clone())
                        />
                        <g class="markers">
                            <For
                                each=move || 0..model.with(|m| m.markers.len())
                                key=|slot| *slot
                                let:slot
                            >
                                <MarkerSlot index=slot />
                            </For>
                        </g>
                    </g>
                    <g
                        class="crosshair"
                        visibility=move || if hover.with(Option::is_some) { "visible" } else { "hidden" }
                    >
                        <line
                            x1=move || hover.with(|h| px(h.as_ref().map_or(0.0, |h| h.at.x)))
                            x2=move || hover.with(|h| px(h.as_ref().map_or(0.0, |h| h.at.x)))
                            y1=move || px(scale().top())
                            y2=move || px(scale().bottom())
                        />
                        <circle
                            r="3.5"
                            cx=move || hover.with(|h| px(h.as_ref().map_or(0.0, |h| h.at.x)))
                            cy=move || hover.with(|h| px(h.as_ref().map_or(0.0, |h| h.at.y)))
                        />
                        <rect
                            class="hover-box"
                            rx="4"
                            x=move || hover.with(|h| px(h.as_ref().map_or(0.0, |h| h.box_x)))
                            y=move || px(scale().top() + 4.0)
                            width=px(HOVER_BOX_WIDTH)
                            height=px(5.0 * HOVER_LINE_HEIGHT + 10.0)
                        />
                        <For each=move || 0..5usize key=|line| *line let:line>
                            <text
                                class="hover-text"
                                x=move || hover.with(|h| px(h.as_ref().map_or(0.0, |h| h.box_x + 8.0)))
                                y=move || px(scale().top() + 20.0 + line as f64 * HOVER_LINE_HEIGHT)
                            >
                                {move || {
                                    hover.with(|h| {
                                        h.as_ref().and_then(|h| h.lines.get(line).cloned()).unwrap_or_default()
                                    })
                                }}
                            </text>
                        </For>
                    </g>
                    <text
                        class="empty-note"
                        x=move || px(state.chart_width.get() / 2.0)
                        y=px(HEIGHT / 2.0)
                        visibility=move || if model.with(|m| m.has_data) { "hidden" } else { "visible" }
                    >
                        "Waiting for data…"
                    </text>
                </svg>
            </div>
        </section>
    }
}

/// Grid lines with their time and price labels.
#[component]
fn Axes() -> impl IntoView {
    let model = expect_context::<AppState>().chart;
    let scale = move || model.with(|m| m.scale);
    view! {
        <g class="axes">
            <For each=move || 0..model.with(|m| m.price_labels.len()) key=|slot| *slot let:slot>
                {
                    let label = Memo::new(move |_| model.with(|m| m.price_labels.get(slot).cloned().unwrap_or_default()));
                    view! {
                        <line
                            class="grid"
                            x1=move || px(scale().left())
                            x2=move || px(scale().right())
                            y1=move || px(label.get().at)
                            y2=move || px(label.get().at)
                        />
                        <text class="price-label" x=move || px(scale().right() + 6.0) y=move || px(label.get().at + 4.0)>
                            {move || label.get().text}
                        </text>
                    }
                }
            </For>
            <For each=move || 0..model.with(|m| m.time_labels.len()) key=|slot| *slot let:slot>
                {
                    let label = Memo::new(move |_| model.with(|m| m.time_labels.get(slot).cloned().unwrap_or_default()));
                    view! {
                        <line
                            class="grid"
                            x1=move || px(label.get().at)
                            x2=move || px(label.get().at)
                            y1=move || px(scale().top())
                            y2=move || px(scale().bottom())
                        />
                        <text class="time-label" x=move || px(label.get().at) y=move || px(scale().bottom() + 17.0)>
                            {move || label.get().text}
                        </text>
                    }
                }
            </For>
        </g>
    }
}

/// The candle at `index` in the model: elements are kept and only their attributes change.
#[component]
fn CandleSlot(index: usize) -> impl IntoView {
    let model = expect_context::<AppState>().chart;
    let candle =
        Memo::new(move |_| model.with(|m| m.candles.get(index).copied().unwrap_or_default()));
    view! {
        <g
            data-testid="candle"
            data-partial=move || candle.get().partial.to_string()
            class=move || {
                let c = candle.get();
                match (c.up, c.partial) {
                    (true, false) => "candle up",
                    (false, false) => "candle down",
                    (true, true) => "candle up partial",
                    (false, true) => "candle down partial",
                }
            }
        >
            <line
                class="wick"
                x1=move || px(candle.get().x)
                x2=move || px(candle.get().x)
                y1=move || px(candle.get().wick_top)
                y2=move || px(candle.get().wick_bottom)
            />
            <rect
                class="body"
                x=move || px(candle.get().body_left)
                y=move || px(candle.get().body_top)
                width=move || px(candle.get().body_width)
                height=move || px(candle.get().body_height)
            />
        </g>
    }
}

#[component]
fn MarkerSlot(index: usize) -> impl IntoView {
    let model = expect_context::<AppState>().chart;
    let marker =
        Memo::new(move |_| model.with(|m| m.markers.get(index).copied().unwrap_or_default()));
    view! {
        <circle
            class="marker"
            data-testid="anomaly-marker"
            r="4.5"
            cx=move || px(marker.get().x)
            cy=move || px(marker.get().y)
        />
    }
}
