//! Chart geometry: which part of a symbol's data is in view and where it goes on the SVG.
//! Pure functions of the data, the viewport and the width, so the view only sets attributes.

use std::collections::VecDeque;
use std::fmt::Write;

use crate::format;
use crate::store::{Series, Tick, BAR_MS};

pub const HEIGHT: f64 = 400.0;
const MARGIN_LEFT: f64 = 8.0;
/// Room for the price labels.
const MARGIN_RIGHT: f64 = 64.0;
const MARGIN_TOP: f64 = 12.0;
/// Room for the time labels.
const MARGIN_BOTTOM: f64 = 26.0;
const MIN_WIDTH: f64 = 240.0;

/// Live mode shows every tick held, and at least this much time.
const MIN_LIVE_SPAN_MS: f64 = 2.0 * 60_000.0;
/// With bars but no ticks yet, live mode shows this many of the latest bars.
const LIVE_BARS_WITHOUT_TICKS: f64 = 24.0;
const MIN_SPAN_MS: f64 = 1_000.0;
const MAX_SPAN_MS: f64 = 30.0 * 86_400_000.0;
/// Lines keep the lowest and the highest point of each bucket of this many pixels: about one
/// point per pixel, and spikes survive.
const BUCKET_PX: f64 = 2.0;
const MAX_MARKERS_DRAWN: usize = 400;
const TIME_LABEL_HALF_WIDTH: f64 = 26.0;

pub const HOVER_BOX_WIDTH: f64 = 156.0;
pub const HOVER_LINE_HEIGHT: f64 = 15.0;

/// Which time range is shown.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub enum Viewport {
    /// Follows the newest data.
    #[default]
    Live,
    /// Where the user panned or zoomed to.
    Fixed { start: f64, end: f64 },
}

impl Viewport {
    pub fn centred_on(ts: f64, span: f64) -> Self {
        let span = span.clamp(MIN_SPAN_MS, MAX_SPAN_MS);
        Viewport::Fixed {
            start: ts - span / 2.0,
            end: ts + span / 2.0,
        }
    }

    /// The range of `scale` dragged right by `dx` pixels (so showing earlier times).
    pub fn panned(scale: &Scale, dx: f64) -> Self {
        let shift = dx * scale.ms_per_px();
        Viewport::Fixed {
            start: scale.t0 - shift,
            end: scale.t1 - shift,
        }
    }

    /// The range of `scale` zoomed by `factor` (above 1 shows more time) around pixel `x`.
    pub fn zoomed(scale: &Scale, x: f64, factor: f64) -> Self {
        let anchor = scale.t_at(x);
        let span = (scale.span() * factor).clamp(MIN_SPAN_MS, MAX_SPAN_MS);
        let start = anchor - (anchor - scale.t0) / scale.span() * span;
        Viewport::Fixed {
            start,
            end: start + span,
        }
    }
}

/// Maps time to x and price to y on an SVG `width` × [`HEIGHT`] pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scale {
    pub t0: f64,
    pub t1: f64,
    pub p0: f64,
    pub p1: f64,
    pub width: f64,
}

impl Scale {
    pub fn left(&self) -> f64 {
        MARGIN_LEFT
    }
    pub fn right(&self) -> f64 {
        self.width - MARGIN_RIGHT
    }
    pub fn top(&self) -> f64 {
        MARGIN_TOP
    }
    pub fn bottom(&self) -> f64 {
        HEIGHT - MARGIN_BOTTOM
    }
    pub fn span(&self) -> f64 {
        self.t1 - self.t0
    }
    pub fn ms_per_px(&self) -> f64 {
        self.span() / (self.right() - self.left())
    }
    pub fn x(&self, t: f64) -> f64 {
        self.left() + (t - self.t0) / self.ms_per_px()
    }
    pub fn t_at(&self, x: f64) -> f64 {
        self.t0 + (x - self.left()) * self.ms_per_px()
    }
    pub fn y(&self, price: f64) -> f64 {
        self.bottom() - (price - self.p0) / (self.p1 - self.p0) * (self.bottom() - self.top())
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Point {
    pub x: f64,
    pub y: f64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Candle {
    pub x: f64,
    pub body_left: f64,
    pub body_top: f64,
    pub body_width: f64,
    pub body_height: f64,
    pub wick_top: f64,
    pub wick_bottom: f64,
    pub up: bool,
    /// Drawn faded and dashed over only the span its data covers: the window is still open,
    /// or began before the first tick this page saw.
    pub partial: bool,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct AxisLabel {
    /// x for a time label, y for a price label.
    pub at: f64,
    pub text: String,
}

/// Everything drawn for one frame of the chart.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartModel {
    pub scale: Scale,
    pub has_data: bool,
    pub price_path: String,
    pub sma_path: String,
    pub vwap_path: String,
    pub candles: Vec<Candle>,
    pub markers: Vec<Point>,
    pub time_labels: Vec<AxisLabel>,
    pub price_labels: Vec<AxisLabel>,
}

/// The crosshair and its label at the tick nearest the pointer.
#[derive(Debug, Clone, PartialEq)]
pub struct Hover {
    pub at: Point,
    pub box_x: f64,
    pub lines: Vec<String>,
}

/// An SVG path that draws nothing: an empty `d` can make browsers complain.
const EMPTY_PATH: &str = "M0 0";

impl ChartModel {
    pub fn empty(width: f64) -> Self {
        ChartModel {
            scale: Scale {
                t0: 0.0,
                t1: 1.0,
                p0: 0.0,
                p1: 1.0,
                width: width.max(MIN_WIDTH),
            },
            has_data: false,
            price_path: EMPTY_PATH.into(),
            sma_path: EMPTY_PATH.into(),
            vwap_path: EMPTY_PATH.into(),
            candles: Vec::new(),
            markers: Vec::new(),
            time_labels: Vec::new(),
            price_labels: Vec::new(),
        }
    }
}

pub fn build(series: Option<&Series>, viewport: Viewport, width: f64) -> ChartModel {
    let width = width.max(MIN_WIDTH);
    let Some(series) = series else {
        return ChartModel::empty(width);
    };
    let Some((t0, t1)) = time_range(series, viewport) else {
        return ChartModel::empty(width);
    };

    let ticks = ticks_in_view(&series.ticks, t0, t1);
    // The 5-minute bars slide by a minute: drawing every one would stack five overlapping
    // candles per slot, so only the windows on the 5-minute grid are candles.
    let bars: Vec<_> = series
        .bars
        .iter()
        .filter(|bar| bar.start.rem_euclid(BAR_MS) == 0.0)
        .filter(|bar| bar.start + BAR_MS >= t0 && bar.start <= t1)
        .collect();
    // Only where the price line is drawn: markers outlive the ticks kept (and a snapshot's
    // anomalies may predate them), and a marker off the line reads as a wrong price.
    let (line_start, line_end) = match (series.ticks.front(), series.ticks.back()) {
        (Some(first), Some(last)) => (first.ts.max(t0), last.ts.min(t1)),
        _ => (f64::INFINITY, f64::NEG_INFINITY),
    };
    let in_view: Vec<_> = series
        .markers
        .iter()
        .filter(|m| m.ts >= line_start && m.ts <= line_end)
        .collect();
    let markers = &in_view[in_view.len().saturating_sub(MAX_MARKERS_DRAWN)..];

    let prices = ticks
        .clone()
        .flat_map(|t| [Some(t.price), t.sma, t.vwap])
        .flatten()
        .chain(bars.iter().flat_map(|b| [b.low, b.high]))
        .chain(markers.iter().map(|m| m.price));
    let (p0, p1) = padded_range(prices);
    let scale = Scale {
        t0,
        t1,
        p0,
        p1,
        width,
    };
    let at = |t: f64, price: f64| Some((scale.x(t), scale.y(price)));

    let slot_px = BAR_MS / scale.ms_per_px();
    let last_tick = series.ticks.back().map(|t| t.ts);
    let candles = bars
        .iter()
        .map(|bar| {
            let end = bar.start + BAR_MS;
            // What part of the window has data: all of it for a closed window the page saw
            // begin, else from the first tick seen to the newest.
            let from = series
                .first_tick
                .map_or(bar.start, |first| first.max(bar.start));
            let to = last_tick.map_or(end, |last| last.min(end));
            let partial = from > bar.start || to < end;
            let (left, width) = if partial && to > from {
                let span_px = (to - from) / scale.ms_per_px();
                (scale.x(from), span_px.max(1.0))
            } else {
                let width = (slot_px * 0.7).max(1.0);
                (scale.x(bar.start + BAR_MS / 2.0) - width / 2.0, width)
            };
            let x = left + width / 2.0;
            let (open, close) = (scale.y(bar.open), scale.y(bar.close));
            Candle {
                x,
                body_left: left,
                body_top: open.min(close),
                body_width: width,
                body_height: (open - close).abs().max(1.0),
                wick_top: scale.y(bar.high),
                wick_bottom: scale.y(bar.low),
                up: bar.close >= bar.open,
                partial,
            }
        })
        .collect();

    ChartModel {
        scale,
        has_data: true,
        price_path: line_path(ticks.clone().map(|t| at(t.ts, t.price))),
        sma_path: line_path(ticks.clone().map(|t| t.sma.and_then(|v| at(t.ts, v)))),
        vwap_path: line_path(ticks.map(|t| t.vwap.and_then(|v| at(t.ts, v)))),
        candles,
        markers: markers
            .iter()
            .map(|m| Point {
                x: scale.x(m.ts),
                y: scale.y(m.price),
            })
            .collect(),
        time_labels: time_labels(&scale),
        price_labels: price_labels(&scale),
    }
}

/// The tick nearest to pixel `x`, if one is in view.
pub fn hover(series: &Series, scale: &Scale, x: f64) -> Option<Hover> {
    let ticks = &series.ticks;
    let t = scale.t_at(x);
    let after = ticks.partition_point(|tick| tick.ts < t);
    let nearest = [after.checked_sub(1), Some(after)]
        .into_iter()
        .flatten()
        .filter_map(|i| ticks.get(i))
        .filter(|tick| tick.ts >= scale.t0 && tick.ts <= scale.t1)
        .min_by(|a, b| (a.ts - t).abs().total_cmp(&(b.ts - t).abs()))?;
    let at = Point {
        x: scale.x(nearest.ts),
        y: scale.y(nearest.price),
    };
    let box_x = if at.x + 12.0 + HOVER_BOX_WIDTH > scale.right() {
        at.x - 12.0 - HOVER_BOX_WIDTH
    } else {
        at.x + 12.0
    };
    Some(Hover {
        at,
        box_x,
        lines: vec![
            format!(
                "{} {}",
                format::utc_date(nearest.ts),
                format::utc_hms(nearest.ts)
            ),
            format!("price {}", format::price(nearest.price)),
            format!("SMA {}", format::optional(nearest.sma, 2)),
            format!("VWAP {}", format::optional(nearest.vwap, 2)),
            format!(
                "z {}{}",
                format::optional(nearest.z, 2),
                if nearest.anomaly { " anomaly" } else { "" }
            ),
        ],
    })
}

fn time_range(series: &Series, viewport: Viewport) -> Option<(f64, f64)> {
    if let Viewport::Fixed { start, end } = viewport {
        return Some((start, end));
    }
    if let (Some(first), Some(last)) = (series.ticks.front(), series.ticks.back()) {
        let start = first.ts.min(last.ts - MIN_LIVE_SPAN_MS);
        // A little room on the right so the newest tick is not on the edge.
        return Some((start, last.ts + (last.ts - start) * 0.03));
    }
    let end = series.bars.back()?.start + BAR_MS;
    Some((end - LIVE_BARS_WITHOUT_TICKS * BAR_MS, end + BAR_MS / 2.0))
}

/// The ticks in `t0..=t1`, plus one on each side so the line runs to the edges.
fn ticks_in_view(
    ticks: &VecDeque<Tick>,
    t0: f64,
    t1: f64,
) -> std::collections::vec_deque::Iter<'_, Tick> {
    let first = ticks.partition_point(|t| t.ts < t0).saturating_sub(1);
    let end = (ticks.partition_point(|t| t.ts <= t1) + 1).min(ticks.len());
    ticks.range(first..end.max(first))
}

fn padded_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (low, high) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if low > high {
        return (0.0, 1.0);
    }
    let pad = if high > low {
        (high - low) * 0.06
    } else {
        (low.abs() * 0.01).max(0.01)
    };
    (low - pad, high + pad)
}

/// An SVG path through the points, broken at `None`, keeping per bucket of pixels only the
/// lowest and highest point (in their order).
fn line_path(points: impl Iterator<Item = Option<(f64, f64)>>) -> String {
    let mut path = String::new();
    let mut pen_down = false;
    let mut bucket: Option<Bucket> = None;
    for point in points {
        match point {
            Some((x, y)) if x.is_finite() && y.is_finite() => {
                let id = (x / BUCKET_PX).floor() as i64;
                match bucket.as_mut() {
                    Some(b) if b.id == id => b.add(x, y),
                    _ => {
                        if let Some(full) = bucket.take() {
                            full.draw(&mut path, &mut pen_down);
                        }
                        bucket = Some(Bucket::new(id, x, y));
                    }
                }
            }
            _ => {
                if let Some(full) = bucket.take() {
                    full.draw(&mut path, &mut pen_down);
                }
                pen_down = false;
            }
        }
    }
    if let Some(full) = bucket {
        full.draw(&mut path, &mut pen_down);
    }
    if path.is_empty() {
        path.push_str(EMPTY_PATH);
    }
    path
}

struct Bucket {
    id: i64,
    /// The points with the smallest and the largest y; the first point is both at the start.
    low: (f64, f64),
    high: (f64, f64),
}

impl Bucket {
    fn new(id: i64, x: f64, y: f64) -> Self {
        Bucket {
            id,
            low: (x, y),
            high: (x, y),
        }
    }

    fn add(&mut self, x: f64, y: f64) {
        if y < self.low.1 {
            self.low = (x, y);
        }
        if y > self.high.1 {
            self.high = (x, y);
        }
    }

    fn draw(&self, path: &mut String, pen_down: &mut bool) {
        let (first, second) = if self.low.0 <= self.high.0 {
            (self.low, self.high)
        } else {
            (self.high, self.low)
        };
        let points = if first == second {
            &[first][..]
        } else {
            &[first, second][..]
        };
        for (x, y) in points {
            let command = if *pen_down { 'L' } else { 'M' };
            let _ = write!(path, "{command}{x:.1} {y:.1}");
            *pen_down = true;
        }
    }
}

const SECOND: f64 = 1_000.0;
const MINUTE: f64 = 60.0 * SECOND;
const HOUR: f64 = 60.0 * MINUTE;
const DAY: f64 = 24.0 * HOUR;
const TIME_STEPS: [f64; 18] = [
    SECOND,
    2.0 * SECOND,
    5.0 * SECOND,
    10.0 * SECOND,
    15.0 * SECOND,
    30.0 * SECOND,
    MINUTE,
    2.0 * MINUTE,
    5.0 * MINUTE,
    10.0 * MINUTE,
    15.0 * MINUTE,
    30.0 * MINUTE,
    HOUR,
    2.0 * HOUR,
    3.0 * HOUR,
    6.0 * HOUR,
    12.0 * HOUR,
    DAY,
];

fn time_labels(scale: &Scale) -> Vec<AxisLabel> {
    let room = ((scale.right() - scale.left()) / 90.0).floor().max(2.0);
    let step = TIME_STEPS
        .into_iter()
        .find(|step| scale.span() / step <= room)
        .unwrap_or_else(|| (scale.span() / room / DAY).ceil() * DAY);
    let text = |t: f64| {
        if step >= DAY {
            format::utc_date(t)
        } else if step < MINUTE {
            format::utc_hms(t)
        } else {
            format::utc_hm(t)
        }
    };
    let first = (scale.t0 / step).ceil() * step;
    (0..)
        .map(|i| first + i as f64 * step)
        .take_while(|t| *t <= scale.t1)
        .map(|t| AxisLabel {
            at: scale.x(t),
            text: text(t),
        })
        // A label centred on the left edge would be cut off.
        .filter(|label| label.at >= scale.left() + TIME_LABEL_HALF_WIDTH)
        .collect()
}

fn price_labels(scale: &Scale) -> Vec<AxisLabel> {
    let room = ((scale.bottom() - scale.top()) / 50.0).floor().max(2.0);
    let step = nice_step((scale.p1 - scale.p0) / room);
    let decimals = (-step.log10().floor()).clamp(0.0, 8.0) as usize;
    let first = (scale.p0 / step).ceil() * step;
    (0..)
        .map(|i| first + i as f64 * step)
        .take_while(|p| *p <= scale.p1)
        .map(|p| AxisLabel {
            at: scale.y(p),
            text: format!("{p:.decimals$}"),
        })
        .collect()
}

/// 1, 2 or 5 times a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    let magnitude = 10f64.powf(raw.log10().floor());
    let leading = raw / magnitude;
    let nice = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .find(|n| *n >= leading)
        .unwrap_or(10.0);
    nice * magnitude
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Bar, Marker};

    fn series(ticks: impl IntoIterator<Item = (f64, f64)>) -> Series {
        let mut series = Series::default();
        for (ts, price) in ticks {
            series.ticks.push_back(Tick {
                ts,
                price,
                sma: Some(price),
                vwap: None,
                z: Some(1.0),
                anomaly: false,
            });
        }
        series
    }

    fn points_in(path: &str) -> usize {
        path.matches(['M', 'L']).count()
    }

    #[test]
    fn live_view_holds_every_tick_and_the_newest_on_the_right() {
        let series = series((0..600).map(|i| (i as f64 * 1000.0, 100.0 + i as f64)));
        let model = build(Some(&series), Viewport::Live, 1000.0);
        let s = model.scale;
        assert!(s.t0 <= 0.0 && s.t1 > 599_000.0);
        assert!(s.p0 < 100.0 && s.p1 > 699.0);
        assert!(s.x(599_000.0) < s.right());
        assert!(!model.price_path.is_empty() && model.price_path.starts_with('M'));
    }

    #[test]
    fn dense_lines_are_decimated_to_about_a_point_per_pixel() {
        let series = series((0..5000).map(|i| (i as f64 * 100.0, (i % 7) as f64)));
        let model = build(Some(&series), Viewport::Live, 1000.0);
        let width = model.scale.right() - model.scale.left();
        assert!(points_in(&model.price_path) as f64 <= width * 1.1);
        assert!(points_in(&model.price_path) as f64 >= width * 0.5);
    }

    #[test]
    fn gaps_break_the_line() {
        let path =
            line_path([Some((0.0, 1.0)), Some((10.0, 2.0)), None, Some((20.0, 3.0))].into_iter());
        assert_eq!(path, "M0.0 1.0L10.0 2.0M20.0 3.0");
        assert_eq!(line_path([None].into_iter()), EMPTY_PATH);
    }

    #[test]
    fn fixed_view_keeps_only_what_is_in_it() {
        let mut series = series((0..100).map(|i| (i as f64 * 60_000.0, 10.0)));
        series.bars.push_back(Bar {
            start: 0.0,
            open: 1.0,
            high: 2.0,
            low: 0.5,
            close: 1.5,
        });
        series.bars.push_back(Bar {
            start: 3_000_000.0,
            open: 1.0,
            high: 2.0,
            low: 0.5,
            close: 0.8,
        });
        series.markers.push_back(Marker {
            ts: 3_100_000.0,
            price: 12.0,
        });
        series.markers.push_back(Marker {
            ts: 60_000.0,
            price: 12.0,
        });
        let viewport = Viewport::Fixed {
            start: 2_900_000.0,
            end: 3_500_000.0,
        };
        let model = build(Some(&series), viewport, 800.0);
        assert_eq!(model.candles.len(), 1);
        assert!(!model.candles[0].up);
        assert_eq!(model.markers.len(), 1);
        assert!(model.scale.p1 > 12.0 && model.scale.p0 < 0.5);
    }

    #[test]
    fn candles_only_on_the_five_minute_grid_and_partial_ones_cover_their_data() {
        // Ticks from 30 s to 90 s: the window [0, 5 min) is open and began before them.
        let mut series = series((1..=7).map(|i| (15_000.0 * (i + 1) as f64, 10.0)));
        series.first_tick = Some(30_000.0);
        for start in [-240_000.0, -180_000.0, -120_000.0, -60_000.0, 0.0] {
            series.bars.push_back(Bar {
                start,
                open: 10.0,
                high: 11.0,
                low: 9.0,
                close: 10.5,
            });
        }
        let model = build(Some(&series), Viewport::Live, 800.0);
        assert_eq!(model.candles.len(), 1, "{:?}", model.candles);
        let candle = model.candles[0];
        assert!(candle.partial);
        let (from, to) = (model.scale.x(30_000.0), model.scale.x(120_000.0));
        assert!((candle.body_left - from).abs() < 1e-6, "{candle:?}");
        assert!(
            (candle.body_left + candle.body_width - to).abs() < 1e-6,
            "{candle:?}"
        );

        // Once the window has closed with ticks seen from its start, it is a full candle.
        let mut series = series_of_window();
        series.first_tick = Some(0.0);
        let model = build(Some(&series), Viewport::Live, 800.0);
        assert_eq!(model.candles.len(), 1);
        assert!(!model.candles[0].partial);
    }

    fn series_of_window() -> Series {
        let mut series = series((0..=20).map(|i| (i as f64 * 20_000.0, 10.0)));
        series.bars.push_back(Bar {
            start: 0.0,
            open: 10.0,
            high: 11.0,
            low: 9.0,
            close: 10.5,
        });
        series
    }

    #[test]
    fn markers_only_where_the_price_line_is_drawn() {
        // Ticks from 40 s on; an anomaly kept from before them has no line to sit on.
        let mut series = series((40..100).map(|i| (i as f64 * 1000.0, 10.0)));
        for ts in [10_000.0, 50_000.0] {
            series.markers.push_back(Marker { ts, price: 10.0 });
        }
        let viewport = Viewport::Fixed {
            start: 0.0,
            end: 100_000.0,
        };
        let model = build(Some(&series), viewport, 800.0);
        assert_eq!(model.markers.len(), 1);
        assert_eq!(model.markers[0].x, model.scale.x(50_000.0));
    }

    #[test]
    fn zoom_keeps_the_time_under_the_pointer() {
        let scale = Scale {
            t0: 0.0,
            t1: 100_000.0,
            p0: 0.0,
            p1: 1.0,
            width: 1000.0,
        };
        let x = scale.x(25_000.0);
        let Viewport::Fixed { start, end } = Viewport::zoomed(&scale, x, 0.5) else {
            panic!("zooming leaves live mode");
        };
        let zoomed = Scale {
            t0: start,
            t1: end,
            ..scale
        };
        assert!((end - start - 50_000.0).abs() < 1e-6);
        assert!((zoomed.t_at(x) - 25_000.0).abs() < 1e-6);
        let Viewport::Fixed { start, .. } = Viewport::panned(&scale, scale.right() - scale.left())
        else {
            panic!("panning leaves live mode");
        };
        assert!((start + 100_000.0).abs() < 1e-6);
    }

    #[test]
    fn hover_finds_the_nearest_tick() {
        let series = series([(0.0, 1.0), (10_000.0, 2.0), (20_000.0, 3.0)]);
        let scale = Scale {
            t0: 0.0,
            t1: 20_000.0,
            p0: 0.0,
            p1: 4.0,
            width: 500.0,
        };
        let hover = hover(&series, &scale, scale.x(12_000.0)).unwrap();
        assert_eq!(hover.lines[1], "price 2.00");
        assert_eq!(hover.at.x, scale.x(10_000.0));
    }

    #[test]
    fn axis_labels_use_round_steps() {
        let scale = Scale {
            t0: 0.0,
            t1: 10.0 * MINUTE,
            p0: 99.3,
            p1: 101.7,
            width: 1000.0,
        };
        let times: Vec<_> = time_labels(&scale).into_iter().map(|l| l.text).collect();
        assert_eq!(
            times.first().map(String::as_str),
            Some("00:01"),
            "00:00 is on the edge"
        );
        assert!(times.len() >= 5 && times.len() <= 11);
        let prices: Vec<_> = price_labels(&scale).into_iter().map(|l| l.text).collect();
        assert_eq!(prices, vec!["99.5", "100.0", "100.5", "101.0", "101.5"]);
        assert_eq!(nice_step(0.3), 0.5);
        assert_eq!(nice_step(7.0), 10.0);
    }
}
