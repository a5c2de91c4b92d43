//! The HTTP side: the router (front end, WebSocket, history, health, metrics), the token
//! check and the WebSocket's Origin check. [`app`] builds the router apart from any socket,
//! so tests call it directly.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use tower_http::services::ServeDir;

use crate::hub::{Hub, ReplayState, Subscription};
use crate::metrics;
use stockstream_pipeline::source::Speed;

/// Most rows one history request returns.
const MAX_HISTORY: usize = 10_000;

/// What the router needs.
#[derive(Clone)]
pub struct AppState {
    pub hub: Arc<Hub>,
    /// Bearer token required for the API, metrics and WebSocket, when set.
    pub token: Option<Arc<str>>,
    /// Origins a WebSocket may come from besides the served one (`http://host:port`).
    pub allowed_origins: Arc<[String]>,
    /// The built front end (`dashboard/dist`).
    pub assets: PathBuf,
}

/// The dashboard's routes.
pub fn app(state: AppState) -> Router {
    let protected = Router::new()
        .route("/ws", get(websocket))
        .route("/api/symbols", get(symbols))
        .route("/api/history/bars", get(history_bars))
        .route("/api/history/anomalies", get(history_anomalies))
        .route("/api/alerts", get(alerts))
        .route("/api/replay", get(replay_state).post(set_replay))
        .route("/metrics", get(metrics_page))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    let front_end =
        ServeDir::new(&state.assets).fallback(get(front_end_missing).with_state(state.clone()));
    Router::new()
        .merge(protected)
        .route("/healthz", get(|| async { "ok" }))
        .fallback_service(front_end)
        .with_state(state)
}

async fn front_end_missing(State(state): State<AppState>) -> Response {
    if state.assets.join("index.html").is_file() {
        return StatusCode::NOT_FOUND.into_response();
    }
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Html(format!(
            "<!doctype html><title>stockstream</title><p>The dashboard's front end is not built \
             ({} has no index.html): run <code>make build</code>, or <code>bash dashboard/build.sh</code>. \
             The API and the WebSocket work meanwhile.</p>",
            state.assets.display()
        )),
    )
        .into_response()
}

/// The token from `Authorization: Bearer T` or `?token=T`.
fn presented_token<'a>(headers: &'a HeaderMap, query: Option<&'a str>) -> Option<&'a str> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    bearer.or_else(|| {
        query?
            .split('&')
            .find_map(|pair| pair.strip_prefix("token="))
    })
}

/// Equal without revealing where they differ through timing.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn require_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if let Some(token) = &state.token {
        let presented = presented_token(request.headers(), request.uri().query());
        if !presented.is_some_and(|p| same_secret(p.as_bytes(), token.as_bytes())) {
            state.hub.metrics.refused.fetch_add(1, Ordering::Relaxed);
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "a token is required: Authorization: Bearer TOKEN, or ?token=TOKEN\n",
            )
                .into_response();
        }
    }
    next.run(request).await
}

/// Whether a WebSocket from `origin` may connect to a server reached as `host`.
fn origin_allowed(origin: Option<&str>, host: Option<&str>, allowed: &[String]) -> bool {
    let Some(origin) = origin else {
        // Not a browser (browsers always send Origin on a WebSocket): nothing to forge.
        return true;
    };
    let served = host.is_some_and(|host| {
        origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .is_some_and(|rest| rest.eq_ignore_ascii_case(host))
    });
    served || allowed.iter().any(|a| a.eq_ignore_ascii_case(origin))
}

async fn websocket(
    State(state): State<AppState>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    if !origin_allowed(origin, host, &state.allowed_origins) {
        state.hub.metrics.refused.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            ?origin,
            ?host,
            "dashboard: WebSocket from a foreign origin refused"
        );
        return (
            StatusCode::FORBIDDEN,
            "this origin may not open the dashboard's WebSocket (see --allow-origin)\n",
        )
            .into_response();
    }
    let hub = state.hub.clone();
    upgrade.on_upgrade(move |socket| client(socket, hub))
}

#[derive(Deserialize)]
struct ClientMessage {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    symbols: Vec<String>,
}

/// One browser: a snapshot, then the updates for its symbols, a KPI message every second,
/// and a fresh snapshot whenever it falls behind.
async fn client(socket: WebSocket, hub: Arc<Hub>) {
    let _guard = hub.client_connected();
    let (mut sink, mut stream) = socket.split();
    let mut updates = hub.subscribe();
    let mut subscription = Subscription::new();
    let (mut seen, snapshot) = hub.snapshot(&subscription);
    hub.metrics.snapshots.fetch_add(1, Ordering::Relaxed);
    if sink.send(Message::Text(snapshot.into())).await.is_err() {
        return;
    }
    let mut kpi = tokio::time::interval(Duration::from_secs(1));
    kpi.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            incoming = stream.next() => {
                let text = match incoming {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue,
                };
                match serde_json::from_str::<ClientMessage>(&text) {
                    Ok(message) if message.kind == "subscribe" => {
                        subscription = message.symbols.iter().map(|s| Arc::from(s.as_str())).collect();
                        // Receive before the snapshot is taken: nothing falls in between.
                        updates = hub.subscribe();
                        let (seq, snapshot) = hub.snapshot(&subscription);
                        seen = seq;
                        hub.metrics.snapshots.fetch_add(1, Ordering::Relaxed);
                        if sink.send(Message::Text(snapshot.into())).await.is_err() {
                            break;
                        }
                    }
                    _ => tracing::debug!("dashboard: ignoring a client message: {text}"),
                }
            }
            update = updates.recv() => match update {
                Ok(update) => {
                    if update.seq <= seen {
                        continue;
                    }
                    seen = update.seq;
                    if let Some(text) = update.render_shared(&subscription) {
                        if sink.send(Message::Text(text)).await.is_err() {
                            break;
                        }
                        hub.metrics.messages.fetch_add(1, Ordering::Relaxed);
                        hub.metrics.push_latency.observe(update.received.elapsed());
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    tracing::debug!(missed, "dashboard: a client fell behind; sending a snapshot");
                    updates = hub.subscribe();
                    let (seq, snapshot) = hub.snapshot(&subscription);
                    seen = seq;
                    hub.metrics.lagged_snapshots.fetch_add(1, Ordering::Relaxed);
                    if sink.send(Message::Text(snapshot.into())).await.is_err() {
                        break;
                    }
                }
                Err(RecvError::Closed) => break,
            },
            _ = kpi.tick() => {
                if sink.send(Message::Text(hub.kpi_message().into())).await.is_err() {
                    break;
                }
            }
        }
    }
}

/// Why there is no replay to control.
const LIVE_INPUT: &str = "the input is a live stream: its pace is its sender's, not the run's\n";

/// `GET /api/replay`: the replay's speed and pause.
async fn replay_state(State(state): State<AppState>) -> Response {
    match state.hub.replay() {
        Some(control) => Json(ReplayState::of(control)).into_response(),
        None => (StatusCode::CONFLICT, LIVE_INPUT).into_response(),
    }
}

/// `POST /api/replay` body: what to change.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayRequest {
    /// A factor of real event time (`10`, `"10"`) or `"max"`.
    #[serde(default)]
    speed: Option<serde_json::Value>,
    #[serde(default)]
    paused: Option<bool>,
}

/// Fastest factor the page may ask for (beyond it, `max`).
const MAX_FACTOR: f64 = 1e6;

/// `POST /api/replay`: sets the speed and/or pause. A JSON body only (a cross-site form
/// cannot send one without the browser asking first), from the served origin or an allowed
/// one; 409 when the input is live.
async fn set_replay(
    State(state): State<AppState>,
    headers: HeaderMap,
    request: Result<Json<ReplayRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    if !origin_allowed(origin, host, &state.allowed_origins) {
        state.hub.metrics.refused.fetch_add(1, Ordering::Relaxed);
        return (
            StatusCode::FORBIDDEN,
            "this origin may not control the replay\n",
        )
            .into_response();
    }
    let Json(request) = match request {
        Ok(request) => request,
        Err(rejection) => return rejection.into_response(),
    };
    let Some(control) = state.hub.replay() else {
        return (StatusCode::CONFLICT, LIVE_INPUT).into_response();
    };
    let speed = match &request.speed {
        None => None,
        Some(value) => {
            let text = match value {
                serde_json::Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            match text.parse::<Speed>() {
                Ok(Speed::Factor(factor)) if factor > MAX_FACTOR => {
                    return (
                        StatusCode::BAD_REQUEST,
                        format!("speed {factor} is over {MAX_FACTOR}: ask for \"max\"\n"),
                    )
                        .into_response()
                }
                Ok(speed) => Some(speed),
                Err(message) => {
                    return (StatusCode::BAD_REQUEST, format!("{message}\n")).into_response()
                }
            }
        }
    };
    if speed.is_none() && request.paused.is_none() {
        return (
            StatusCode::BAD_REQUEST,
            "give \"speed\" and/or \"paused\"\n",
        )
            .into_response();
    }
    if let Some(speed) = speed {
        control.set_speed(speed);
    }
    if let Some(paused) = request.paused {
        control.set_paused(paused);
    }
    tracing::info!(speed = %control.speed(), paused = control.paused(), "dashboard: replay changed");
    Json(ReplayState::of(control)).into_response()
}

async fn symbols(State(state): State<AppState>) -> Json<Vec<Arc<str>>> {
    Json(state.hub.symbols())
}

/// `?limit=N` (default 500, at most [`MAX_HISTORY`]), or the message for a bad one.
/// `?symbol=&limit=` applied to one of the hub's lists, as JSON; 400 for a bad limit.
fn latest_json<T: serde::Serialize>(
    params: &HashMap<String, String>,
    rows: impl FnOnce(Option<&str>, usize) -> Vec<T>,
) -> Response {
    match limit(params) {
        Ok(limit) => Json(rows(params.get("symbol").map(String::as_str), limit)).into_response(),
        Err(message) => (StatusCode::BAD_REQUEST, message).into_response(),
    }
}

fn limit(params: &HashMap<String, String>) -> Result<usize, String> {
    match params.get("limit") {
        None => Ok(500),
        Some(text) => text
            .parse::<usize>()
            .map(|n| n.min(MAX_HISTORY))
            .map_err(|_| format!("limit must be a whole number, not {text:?}\n")),
    }
}

async fn history_bars(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let Some(symbol) = params.get("symbol") else {
        return (StatusCode::BAD_REQUEST, "give ?symbol=SYMBOL\n").into_response();
    };
    match limit(&params) {
        Ok(limit) => Json(state.hub.bars(symbol, limit)).into_response(),
        Err(message) => (StatusCode::BAD_REQUEST, message).into_response(),
    }
}

async fn history_anomalies(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    latest_json(&params, |symbol, limit| state.hub.anomalies(symbol, limit))
}

async fn alerts(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    latest_json(&params, |symbol, limit| state.hub.alerts(symbol, limit))
}

async fn metrics_page(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics::render(&state.hub.kpi(), &state.hub.metrics),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        let allowed = vec!["https://ops.example".to_owned()];
        assert!(origin_allowed(None, Some("127.0.0.1:8501"), &allowed));
        assert!(origin_allowed(
            Some("http://127.0.0.1:8501"),
            Some("127.0.0.1:8501"),
            &allowed
        ));
        assert!(!origin_allowed(
            Some("http://evil.example"),
            Some("127.0.0.1:8501"),
            &allowed
        ));
        assert!(!origin_allowed(
            Some("http://127.0.0.1:8502"),
            Some("127.0.0.1:8501"),
            &allowed
        ));
        assert!(origin_allowed(
            Some("https://ops.example"),
            Some("127.0.0.1:8501"),
            &allowed
        ));
    }

    #[test]
    fn tokens_from_header_or_query() {
        let mut headers = HeaderMap::new();
        assert_eq!(
            presented_token(&headers, Some("a=1&token=xyz")),
            Some("xyz")
        );
        headers.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(presented_token(&headers, None), Some("abc"));
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
    }
}
