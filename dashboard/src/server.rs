//! The HTTP side: the router (front end, WebSocket, history, health, metrics), the Host
//! check, the token check and the Origin check. [`app`] builds the router apart from any
//! socket, so tests call it directly.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, Request, State};
use axum::http::uri::Authority;
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, MethodRouter};
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
    /// Origins a WebSocket may come from besides the served one (`http://host:port`); their
    /// hosts are also accepted in `Host` (a reverse proxy, an SSH tunnel on another port).
    pub allowed_origins: Arc<[String]>,
    /// The built front end (`dashboard/dist`).
    pub assets: PathBuf,
    /// The `Host` values (and origins) that name this server.
    pub hosts: ServedHosts,
}

/// The names under which the server is reached, against DNS rebinding: a page of
/// `evil.example` whose name is made to resolve to this machine sends `Host: evil.example`.
///
/// Always on the bound port: for a loopback listen address, any loopback IP and `localhost`;
/// for a specific address, that IP; for an unspecified one (`0.0.0.0`, `::`), any IP literal
/// and `localhost` (which of the machine's addresses a client used is unknown, and an IP
/// literal cannot be rebound). A DNS name is accepted only beyond loopback with a token,
/// the token then being the guard; otherwise it must come from `--allow-origin`.
#[derive(Debug, Clone)]
pub struct ServedHosts {
    ip: IpAddr,
    port: u16,
    any_name: bool,
}

impl ServedHosts {
    /// For a server bound to `addr` (the real port, after binding), with or without a token.
    pub fn new(addr: SocketAddr, token: bool) -> Self {
        let ip = addr.ip().to_canonical();
        Self {
            ip,
            port: addr.port(),
            any_name: token && !ip.is_loopback(),
        }
    }

    /// Whether `host` on `port` names this server.
    fn serves(&self, host: &str, port: u16) -> bool {
        if port != self.port {
            return false;
        }
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        match bare.parse::<IpAddr>().map(|ip| ip.to_canonical()) {
            Ok(_) if self.ip.is_unspecified() => true,
            Ok(ip) if self.ip.is_loopback() => ip.is_loopback(),
            Ok(ip) => ip == self.ip,
            Err(_) if host.trim_end_matches('.').eq_ignore_ascii_case("localhost") => {
                self.ip.is_loopback() || self.ip.is_unspecified()
            }
            Err(_) => self.any_name,
        }
    }
}

/// `host[:port]` split, the host lower-cased; `None` when it is not a plain authority (user
/// info, bad port).
fn host_and_port(authority: &str) -> Option<(String, Option<u16>)> {
    let parsed: Authority = authority.parse().ok()?;
    if parsed.as_str().contains('@') || parsed.host().is_empty() {
        return None;
    }
    Some((parsed.host().to_ascii_lowercase(), parsed.port_u16()))
}

/// The host and port of an `http://` or `https://` origin, and its scheme's default port.
fn origin_host(origin: &str) -> Option<(String, u16, u16)> {
    let (rest, default_port) = if let Some(rest) = strip_prefix_ignore_case(origin, "http://") {
        (rest, 80)
    } else {
        (strip_prefix_ignore_case(origin, "https://")?, 443)
    };
    let (host, port) = host_and_port(rest)?;
    Some((host, port.unwrap_or(default_port), default_port))
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// Whether a `Host` value names this server or an allowed origin's host. Without a port it
/// means port 80 here, or the default port of the allowed origin's scheme (behind a proxy).
fn host_allowed(host: &str, served: &ServedHosts, allowed: &[String]) -> bool {
    let Some((name, port)) = host_and_port(host) else {
        return false;
    };
    served.serves(&name, port.unwrap_or(80))
        || allowed
            .iter()
            .filter_map(|origin| origin_host(origin))
            .any(|(n, p, default)| n == name && port.unwrap_or(default) == p)
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
    let files =
        ServeDir::new(&state.assets).fallback(get(front_end_missing).with_state(state.clone()));
    Router::new()
        .merge(protected)
        .fallback(move |request: Request| static_file(files.clone(), request))
        .layer(middleware::from_fn_with_state(state.clone(), require_host))
        // After the Host check: orchestrators probe with whatever Host they like.
        .route("/healthz", get(|| async { "ok" }))
        .with_state(state)
}

/// A file of the front end. ServeDir answers 500 for errors it does not know as "not found",
/// such as a segment too long for a file name (ENAMETOOLONG): those are 404 too.
async fn static_file(mut files: ServeDir<MethodRouter>, request: Request) -> Response {
    match files.try_call(request).await {
        Ok(response) => response.map(axum::body::Body::new),
        Err(e) if e.kind() == io::ErrorKind::InvalidFilename => {
            StatusCode::NOT_FOUND.into_response()
        }
        Err(e) => {
            tracing::error!("dashboard: serving a file: {e}");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Refuses a request whose `Host` (or absolute URI) does not name this server: 403.
/// A request with neither (HTTP/1.0) passes.
async fn require_host(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .map(|v| v.to_str().unwrap_or("\u{fffd}"));
    let authority = request.uri().authority().map(Authority::as_str);
    let refused = [host, authority]
        .into_iter()
        .flatten()
        .find(|h| !host_allowed(h, &state.hosts, &state.allowed_origins));
    if let Some(host) = refused {
        state.hub.metrics.refused.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(host, "dashboard: request for a foreign Host refused");
        return (
            StatusCode::FORBIDDEN,
            "this Host is not one this dashboard serves (see --listen and --allow-origin)\n",
        )
            .into_response();
    }
    next.run(request).await
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

/// The token from `Authorization: Bearer T` (the scheme in any case, RFC 7235) or
/// `?token=T` (percent-decoded, `+` a space: as the page's `URLSearchParams` reads it).
fn presented_token<'a>(headers: &'a HeaderMap, query: Option<&'a str>) -> Option<Cow<'a, str>> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| Cow::Borrowed(token.trim_matches(' ')));
    bearer.or_else(|| {
        query?
            .split('&')
            .find_map(|pair| pair.strip_prefix("token="))
            .map(form_decode)
    })
}

/// A query value decoded (`%XX` and `+`); invalid UTF-8 is replaced, so never matches.
fn form_decode(text: &str) -> Cow<'_, str> {
    if !text.contains(['%', '+']) {
        return Cow::Borrowed(text);
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let digit = |at: usize| bytes.get(at).and_then(|b| hex(*b));
                match (digit(i + 1), digit(i + 2)) {
                    (Some(high), Some(low)) => {
                        out.push((high * 16 + low) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// Equal without revealing where they differ through timing.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn require_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if let Some(token) = &state.token {
        let presented = presented_token(request.headers(), request.uri().query());
        let refusal = match presented {
            None => Some((
                "Bearer",
                "a token is required: Authorization: Bearer TOKEN, or ?token=TOKEN\n",
            )),
            Some(p) if !same_secret(p.as_bytes(), token.as_bytes()) => {
                Some((r#"Bearer error="invalid_token""#, "the token is wrong\n"))
            }
            Some(_) => None,
        };
        if let Some((challenge, message)) = refusal {
            state.hub.metrics.refused.fetch_add(1, Ordering::Relaxed);
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, challenge)],
                message,
            )
                .into_response();
        }
    }
    next.run(request).await
}

/// Whether a browser page from `origin` may use this server: an origin naming the served
/// addresses (never merely the request's own `Host`, which a rebound name controls), or an
/// `--allow-origin` entry.
fn origin_allowed(origin: Option<&str>, served: &ServedHosts, allowed: &[String]) -> bool {
    let Some(origin) = origin else {
        // Not a browser (browsers always send Origin on a WebSocket and a POST): nothing to forge.
        return true;
    };
    allowed.iter().any(|a| a.eq_ignore_ascii_case(origin))
        || origin_host(origin).is_some_and(|(host, port, _)| served.serves(&host, port))
}

/// The `Origin` header; one that is not text counts as a foreign origin.
fn origin(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::ORIGIN)
        .map(|v| v.to_str().unwrap_or("\u{fffd}"))
}

async fn websocket(
    State(state): State<AppState>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let origin = origin(&headers);
    if !origin_allowed(origin, &state.hosts, &state.allowed_origins) {
        state.hub.metrics.refused.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            ?origin,
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
    if !origin_allowed(origin(&headers), &state.hosts, &state.allowed_origins) {
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

    fn served(listen: &str, token: bool) -> ServedHosts {
        ServedHosts::new(listen.parse().unwrap(), token)
    }

    #[test]
    fn origins_are_checked_against_the_served_addresses() {
        let allowed = vec!["https://ops.example".to_owned()];
        let loopback = served("127.0.0.1:8501", false);
        assert!(origin_allowed(None, &loopback, &allowed));
        for own in [
            "http://127.0.0.1:8501",
            "http://localhost:8501",
            "http://[::1]:8501",
            "https://ops.example",
        ] {
            assert!(origin_allowed(Some(own), &loopback, &allowed), "{own}");
        }
        for foreign in [
            "http://evil.example",
            "http://evil.example:8501",
            "http://127.0.0.1:8502",
            "http://127.0.0.1",
            "null",
            "http://user@127.0.0.1:8501",
        ] {
            assert!(
                !origin_allowed(Some(foreign), &loopback, &allowed),
                "{foreign}"
            );
        }
        // Beyond loopback with a token, any name on the port: the token guards it.
        let exposed = served("0.0.0.0:8501", true);
        assert!(origin_allowed(Some("http://dash.lan:8501"), &exposed, &[]));
        assert!(!origin_allowed(Some("http://dash.lan:8502"), &exposed, &[]));
        assert!(!origin_allowed(
            Some("http://dash.lan:8501"),
            &served("0.0.0.0:8501", false),
            &[]
        ));
    }

    #[test]
    fn hosts_name_the_served_addresses_or_an_allowed_origin() {
        let allowed = vec![
            "https://dash.example".to_owned(),
            "http://localhost:9000".to_owned(),
        ];
        let loopback = served("127.0.0.1:8501", true);
        for ok in [
            "127.0.0.1:8501",
            "localhost:8501",
            "LOCALHOST:8501",
            "[::1]:8501",
            "dash.example:443",
            "dash.example",
            "localhost:9000",
        ] {
            assert!(host_allowed(ok, &loopback, &allowed), "{ok}");
        }
        for refused in [
            "evil.example:8501",
            "evil.example",
            "127.0.0.1:8502",
            "127.0.0.1",
            "10.0.0.5:8501",
            "dash.example:8501",
            "user@127.0.0.1:8501",
            "",
        ] {
            assert!(!host_allowed(refused, &loopback, &allowed), "{refused}");
        }
        let one = served("10.0.0.5:8501", false);
        assert!(host_allowed("10.0.0.5:8501", &one, &[]));
        assert!(!host_allowed("10.0.0.6:8501", &one, &[]));
        assert!(!host_allowed("localhost:8501", &one, &[]));
        let any = served("[::]:8501", false);
        assert!(host_allowed("192.168.1.9:8501", &any, &[]));
        assert!(host_allowed("[fe80::1]:8501", &any, &[]));
        assert!(host_allowed("localhost:8501", &any, &[]));
        assert!(!host_allowed("rebound.example:8501", &any, &[]));
        assert!(host_allowed(
            "dash.lan:8501",
            &served("[::]:8501", true),
            &[]
        ));
    }

    #[test]
    fn tokens_from_header_or_query() {
        let mut headers = HeaderMap::new();
        assert_eq!(
            presented_token(&headers, Some("a=1&token=xyz")).as_deref(),
            Some("xyz")
        );
        assert_eq!(
            presented_token(&headers, Some("token=a%2Bb%2F%3D+c%")).as_deref(),
            Some("a+b/= c%")
        );
        headers.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(presented_token(&headers, None).as_deref(), Some("abc"));
        headers.insert(header::AUTHORIZATION, "bEARER  abc".parse().unwrap());
        assert_eq!(presented_token(&headers, None).as_deref(), Some("abc"));
        headers.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(
            presented_token(&headers, Some("token=q")).as_deref(),
            Some("q")
        );
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
    }
}
