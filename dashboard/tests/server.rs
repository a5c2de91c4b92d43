//! The dashboard server: routes without a socket (`app` called directly), and the WebSocket
//! on a real port 0: snapshot then live, token and Origin rules, a slow client gets a fresh
//! snapshot and never stalls the feed (issue 5).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use futures_util::{SinkExt, StreamExt};
use http_body_util::BodyExt;
use stockstream_dashboard::hub::{Hub, Retention};
use stockstream_dashboard::server::{app, AppState, ServedHosts};
use stockstream_dashboard::{Dashboard, DashboardConfig};
use stockstream_pipeline::dashboard::DerivedBatch;
use stockstream_pipeline::source::{ReplayControl, Speed};
use stockstream_pipeline::Stream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tower::ServiceExt;

fn enriched(symbol: &str, ts: i64, price: f64) -> Vec<u8> {
    format!(
        r#"{{"symbol":"{symbol}","ts":{ts},"price":{price},"volume":1,"sma":{price},"count":1,"vwap":{price},"prev_mean":null,"prev_std":null,"prev_count":0,"z":null,"anomaly":false,"late":false}}"#
    )
    .into_bytes()
}

fn batch(stream: Stream, records: Vec<Vec<u8>>) -> Arc<DerivedBatch> {
    Arc::new(DerivedBatch {
        stream,
        first_offset: 0,
        records,
    })
}

fn state(token: Option<&str>, assets: &std::path::Path) -> AppState {
    AppState {
        hub: Hub::new(Retention::default()),
        token: token.map(Arc::from),
        allowed_origins: Arc::from(Vec::new()),
        assets: assets.to_owned(),
        hosts: ServedHosts::new("127.0.0.1:8787".parse().unwrap(), token.is_some()),
    }
}

async fn get(router: &axum::Router, uri: &str, bearer: Option<&str>) -> (StatusCode, String) {
    let mut request = Request::get(uri);
    if let Some(token) = bearer {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    send(router, request.body(Body::empty()).unwrap()).await
}

/// The status and body of `request` through the router.
async fn send(router: &axum::Router, request: Request<Body>) -> (StatusCode, String) {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn routes_history_metrics_and_the_token() {
    let assets = tempfile::tempdir().unwrap();
    let state = state(Some("s3cret"), assets.path());
    let hub = state.hub.clone();
    let router = app(state);
    hub.ingest(&batch(
        Stream::Enriched,
        vec![enriched("AAPL", 1_000, 10.0), enriched("MSFT", 2_000, 20.0)],
    ));
    hub.ingest(&batch(
        Stream::Bars,
        vec![br#"{"symbol":"AAPL","window_start":0,"window_end":300000,"open":1.0,"high":2.0,"low":0.5,"close":1.5,"volume":3,"vwap":1.2,"mean":1.25,"std":null,"count":2}"#.to_vec()],
    ));

    assert_eq!(
        get(&router, "/healthz", None).await,
        (StatusCode::OK, "ok".into())
    );
    let (status, body) = get(&router, "/api/symbols", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(
        get(&router, "/api/symbols", Some("wrong")).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, body) = get(&router, "/api/symbols", Some("s3cret")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, r#"["AAPL","MSFT"]"#);
    let (status, body) = get(&router, "/api/history/bars?symbol=AAPL&token=s3cret", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let bars: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(bars[0]["close"], 1.5);
    assert_eq!(bars[0]["window_end"], 300000);
    let (status, _) = get(&router, "/api/history/bars?token=s3cret", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = get(&router, "/api/history/anomalies?limit=x&token=s3cret", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, metrics) = get(&router, "/metrics", Some("s3cret")).await;
    assert_eq!(status, StatusCode::OK);
    for line in [
        "stockstream_ticks_total 2",
        "# TYPE stockstream_dashboard_clients gauge",
        "stockstream_dashboard_clients 0",
        "stockstream_dashboard_refused_total 2",
        "stockstream_dashboard_push_latency_seconds_count 0",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} missing:\n{metrics}"
        );
    }
    // No front end built yet: a page that says how to build it.
    let (status, page) = get(&router, "/", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(page.contains("dashboard/build.sh"), "{page}");
    // Built: served as files, with no token needed.
    std::fs::write(assets.path().join("index.html"), "<!doctype html><p>hello").unwrap();
    let (status, page) = get(&router, "/", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("hello"));
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn post(
    router: &axum::Router,
    uri: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (StatusCode, String) {
    let mut request = Request::post(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    send(router, request.body(Body::from(body.to_owned())).unwrap()).await
}

#[tokio::test]
async fn the_replay_is_paced_and_paused_through_the_api_with_its_guards() {
    let assets = tempfile::tempdir().unwrap();
    let state = state(Some("s3cret"), assets.path());
    let hub = state.hub.clone();
    let router = app(state);
    let json = ("content-type", "application/json");
    let bearer = ("authorization", "Bearer s3cret");
    let host = ("host", "127.0.0.1:8787");

    // A live input: nothing to pace.
    let (status, body) = get(&router, "/api/replay", Some("s3cret")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body.contains("live stream"), "{body}");
    let (status, _) = post(
        &router,
        "/api/replay",
        &[json, bearer],
        r#"{"paused":true}"#,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(hub.kpi().replay, None);

    let control = Arc::new(ReplayControl::new(Speed::Factor(1.0)));
    hub.attach_replay(control.clone());
    let (status, body) = get(&router, "/api/replay", Some("s3cret")).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, r#"{"speed":1.0,"paused":false}"#)
    );

    // The token, a JSON body, and the served origin are all required.
    let (status, _) = post(&router, "/api/replay", &[json], r#"{"speed":10}"#).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let form = ("content-type", "application/x-www-form-urlencoded");
    let (status, _) = post(&router, "/api/replay", &[form, bearer], "speed=10").await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let evil = ("origin", "http://evil.example");
    let (status, _) = post(
        &router,
        "/api/replay",
        &[json, bearer, host, evil],
        r#"{"speed":10}"#,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    for bad in [
        r#"{"speed":0}"#,
        r#"{"speed":"fast"}"#,
        r#"{"speed":1e9}"#,
        "{}",
        r#"{"sped":2}"#,
        "{",
    ] {
        let (status, body) = post(&router, "/api/replay", &[json, bearer], bad).await;
        assert!(status.is_client_error(), "{bad}: {status} {body}");
        assert_eq!(control.speed(), Speed::Factor(1.0), "{bad}");
    }
    assert!(!control.paused());

    let own = ("origin", "http://127.0.0.1:8787");
    let (status, body) = post(
        &router,
        "/api/replay",
        &[json, bearer, host, own],
        r#"{"speed":100}"#,
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, r#"{"speed":100.0,"paused":false}"#)
    );
    assert_eq!(control.speed(), Speed::Factor(100.0));
    let (status, body) = post(
        &router,
        "/api/replay",
        &[json, bearer],
        r#"{"speed":"max","paused":true}"#,
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, r#"{"speed":null,"paused":true}"#)
    );
    assert_eq!(control.speed(), Speed::Max);
    assert!(control.paused());
    // The KPI message every page gets carries it.
    assert!(
        hub.kpi_message()
            .contains(r#""replay":{"speed":null,"paused":true}"#),
        "{}",
        hub.kpi_message()
    );
}

async fn connect(
    dashboard: &Dashboard,
    query: &str,
    origin: Option<&str>,
) -> Result<Socket, String> {
    let mut request = format!("ws://{}/ws{query}", dashboard.addr())
        .into_client_request()
        .unwrap();
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", origin.parse().unwrap());
    }
    tokio_tungstenite::connect_async(request)
        .await
        .map(|(socket, _)| socket)
        .map_err(|e| e.to_string())
}

/// The next message that is not a KPI, as JSON.
async fn next_data(socket: &mut Socket) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = tokio::time::timeout(left, socket.next())
            .await
            .expect("a message within 10 s")
            .expect("the socket is open")
            .expect("a frame");
        if let Message::Text(text) = message {
            let json: serde_json::Value = serde_json::from_str(&text).unwrap();
            if json["type"] != "kpi" {
                return json;
            }
        }
    }
}

fn start(token: Option<&str>, retention: Retention) -> Dashboard {
    let assets = std::env::temp_dir();
    let mut config = DashboardConfig::new(assets);
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.token = token.map(String::from);
    config.allowed_origins = vec!["https://ops.example".into()];
    config.retention = retention;
    Dashboard::start(config).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_snapshot_then_live_with_token_and_origin_rules() {
    let dashboard = start(Some("tok"), Retention::default());
    let feed = dashboard.feed();
    feed.send(batch(
        Stream::Enriched,
        vec![enriched("AAPL", 1, 10.0), enriched("IBM", 1, 5.0)],
    ))
    .unwrap();

    // Token and Origin.
    let refused = connect(&dashboard, "", None).await.unwrap_err();
    assert!(refused.contains("401"), "{refused}");
    let foreign = connect(&dashboard, "?token=tok", Some("http://evil.example"))
        .await
        .unwrap_err();
    assert!(foreign.contains("403"), "{foreign}");
    let own = format!("http://{}", dashboard.addr());
    connect(&dashboard, "?token=tok", Some(&own)).await.unwrap();
    connect(&dashboard, "?token=tok", Some("https://ops.example"))
        .await
        .unwrap();

    // Wait until the batch is in (the feed is applied on a thread of its own), so the first
    // snapshot holds it rather than an update coming after it.
    let deadline = Instant::now() + Duration::from_secs(5);
    while dashboard.hub().symbols().len() < 2 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut socket = connect(&dashboard, "?token=tok", Some(&own)).await.unwrap();
    let first = next_data(&mut socket).await;
    assert_eq!(first["type"], "snapshot");
    socket
        .send(Message::Text(
            r#"{"type":"subscribe","symbols":["AAPL"]}"#.into(),
        ))
        .await
        .unwrap();
    let snapshot = next_data(&mut socket).await;
    assert_eq!(snapshot["type"], "snapshot", "{snapshot}");
    assert_eq!(snapshot["symbols"], serde_json::json!(["AAPL", "IBM"]));
    assert_eq!(snapshot["ticks"]["AAPL"][0][1], 10.0);
    assert!(snapshot["ticks"].get("IBM").is_none());

    feed.send(batch(Stream::Enriched, vec![enriched("IBM", 2, 6.0)]))
        .unwrap();
    feed.send(batch(
        Stream::Enriched,
        vec![enriched("AAPL", 2, 11.0), enriched("NVDA", 2, 7.0)],
    ))
    .unwrap();
    let update = next_data(&mut socket).await;
    assert_eq!(update["type"], "update", "{update}");
    assert_eq!(
        update["ticks"]["AAPL"],
        serde_json::json!([[2, 11.0, 11.0, 11.0, null, false]])
    );
    assert_eq!(
        update["symbols"],
        serde_json::json!(["AAPL", "IBM", "NVDA"])
    );
    // The server records the latency once its write returns, which may be after the client
    // has the message.
    let deadline = Instant::now() + Duration::from_secs(5);
    while dashboard.hub().metrics.push_latency.count() < 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(dashboard.hub().metrics.push_latency.count() >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_gets_a_fresh_snapshot_and_never_stalls_the_feed() {
    let dashboard = start(
        None,
        Retention {
            client_backlog: 4,
            ..Retention::default()
        },
    );
    let feed = dashboard.feed();
    let mut slow = connect(&dashboard, "", None).await.unwrap();
    assert_eq!(next_data(&mut slow).await["type"], "snapshot");
    slow.send(Message::Text(
        r#"{"type":"subscribe","symbols":["AAPL"]}"#.into(),
    ))
    .await
    .unwrap();
    assert_eq!(next_data(&mut slow).await["type"], "snapshot");
    // The client reads nothing while 60 large batches go by: far more than the socket buffers
    // hold, so its sender blocks and it falls behind the broadcast.
    let fed = Instant::now();
    for b in 0..60i64 {
        let records = (0..4000i64)
            .map(|i| enriched("AAPL", b * 4000 + i + 10, 100.0 + i as f64 / 7.0))
            .collect();
        feed.send(batch(Stream::Enriched, records)).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while dashboard.hub().kpi().ticks < 240_000 {
        assert!(Instant::now() < deadline, "the feed stalled");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!(
        "240,000 ticks taken in {:?} with a stalled client",
        fed.elapsed()
    );
    // Now it reads: a fresh snapshot comes among the updates, ending with the newest tick.
    let mut got_snapshot = false;
    let mut newest = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while newest < 60 * 4000 + 9 {
        assert!(Instant::now() < deadline, "newest {newest}");
        let message = next_data(&mut slow).await;
        if message["type"] == "snapshot" {
            got_snapshot = true;
        }
        if let Some(rows) = message["ticks"]["AAPL"].as_array() {
            if let Some(last) = rows.last() {
                newest = last[0].as_i64().unwrap();
            }
        }
    }
    assert!(got_snapshot, "a lagging client must get a snapshot");
    assert!(
        dashboard
            .hub()
            .metrics
            .lagged_snapshots
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
}

#[test]
fn history_left_in_outputs_is_in_the_first_snapshot() {
    use stockstream_pipeline::outputs::{parse_rows, Rows};
    use stockstream_pipeline::parquet_io::write_rows;
    let outputs = tempfile::tempdir().unwrap();
    let write = |stream: Stream, name: &str, records: Vec<Vec<u8>>| {
        let dir = outputs.path().join(stream.dir()).join("date=2023-11-14");
        std::fs::create_dir_all(&dir).unwrap();
        let rows: Rows = parse_rows(stream, records.iter().map(Vec::as_slice)).unwrap();
        write_rows(std::fs::File::create(dir.join(name)).unwrap(), &rows).unwrap();
    };
    write(
        Stream::Enriched,
        "part-00000000000000000000-00000000000000000002.parquet",
        vec![
            enriched("AAPL", 1_700_000_000_000, 10.0),
            enriched("AAPL", 1_700_000_001_000, 10.5),
        ],
    );
    write(
        Stream::Enriched,
        "part-00000000000000000002-00000000000000000003.parquet",
        vec![enriched("AAPL", 1_700_000_002_000, 11.0)],
    );
    write(
        Stream::Bars,
        "part-00000000000000000000-00000000000000000003.parquet",
        vec![br#"{"symbol":"AAPL","window_start":1699999800000,"window_end":1700000100000,"open":10.0,"high":11.0,"low":10.0,"close":11.0,"volume":3,"vwap":10.5,"mean":10.5,"std":0.5,"count":3}"#.to_vec()],
    );
    write(
        Stream::Alerts,
        "part-00000000000000000000-00000000000000000003.parquet",
        vec![br#"{"id":"AAPL@1700000001000","symbol":"AAPL","status":"closed","start_ts":1700000001000,"end_ts":1700000002000,"count":2,"peak_z":5.5,"peak_ts":1700000002000,"peak_price":11.0,"direction":"up","severity":"major","ticks":[]}"#.to_vec()],
    );
    let anomaly = |ts: i64, price: f64, z: f64| {
        String::from_utf8(enriched("AAPL", ts, price))
            .unwrap()
            .replace(
                r#""z":null,"anomaly":false"#,
                &format!(r#""z":{z},"anomaly":true"#),
            )
            .into_bytes()
    };
    write(
        Stream::Anomalies,
        "part-00000000000000000000-00000000000000000003.parquet",
        vec![
            anomaly(1_699_999_000_000, 9.0, -3.5),
            anomaly(1_700_000_001_000, 10.5, 3.1),
            anomaly(1_700_000_002_000, 11.0, 5.5),
        ],
    );
    let mut config = DashboardConfig::new(std::env::temp_dir());
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.history = Some(outputs.path().into());
    let dashboard = Dashboard::start(config).unwrap();
    let hub = dashboard.hub();
    let alerts = hub.alerts(None, 10);
    assert_eq!(alerts.len(), 1, "alerts from outputs/alerts");
    assert_eq!((&*alerts[0].id, alerts[0].count), ("AAPL@1700000001000", 2));
    // Parquet keeps no ticks of an alert: they come from the anomalies in its span.
    assert_eq!(
        alerts[0].ticks,
        vec![
            (1_700_000_001_000, 10.5, 3.1),
            (1_700_000_002_000, 11.0, 5.5)
        ]
    );
    let (_, snapshot) = hub.snapshot(&[Arc::from("AAPL")].into());
    let json: serde_json::Value = serde_json::from_str(&snapshot).unwrap();
    let prices: Vec<f64> = json["ticks"]["AAPL"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row[1].as_f64().unwrap())
        .collect();
    assert_eq!(prices, vec![10.0, 10.5, 11.0], "in input order");
    assert_eq!(json["bars"]["AAPL"][0][4], 11.0);
    assert_eq!(hub.bars("AAPL", 10)[0].vwap, Some(10.5));
    // History is not live traffic.
    assert_eq!(hub.kpi().ticks, 0);
}

async fn request(
    router: &axum::Router,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, String) {
    let mut request = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    send(router, request.body(Body::empty()).unwrap()).await
}

/// Issue 13, item 10: a page of evil.example whose name is rebound to 127.0.0.1 reaches the
/// server with `Host: evil.example`; every route but /healthz refuses it.
#[tokio::test]
async fn dns_rebinding_a_foreign_host_is_refused_on_every_route() {
    let assets = tempfile::tempdir().unwrap();
    std::fs::write(assets.path().join("index.html"), "<!doctype html><p>hello").unwrap();
    let mut state = state(None, assets.path());
    state.allowed_origins = Arc::from(vec!["https://dash.example".to_owned()]);
    let hub = state.hub.clone();
    hub.attach_replay(Arc::new(ReplayControl::new(Speed::Factor(1.0))));
    let router = app(state);
    let ws = [
        ("connection", "upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];
    for host in [
        "evil.example",
        "evil.example:8787",
        "127.0.0.1:9999",
        "dash.example:8787",
    ] {
        for (method, uri) in [
            ("GET", "/"),
            ("GET", "/index.html"),
            ("GET", "/no-such-file"),
            ("GET", "/api/symbols"),
            ("GET", "/api/replay"),
            ("POST", "/api/replay"),
            ("GET", "/metrics"),
            ("GET", "/ws"),
        ] {
            let mut headers = vec![("host", host), ("origin", "http://evil.example")];
            headers.extend(ws);
            let (status, body) = request(&router, method, uri, &headers).await;
            assert_eq!(
                status,
                StatusCode::FORBIDDEN,
                "{method} {uri} Host {host}: {body}"
            );
            assert!(body.contains("Host"), "{body}");
        }
    }
    let refused = hub
        .metrics
        .refused
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(refused, 4 * 8, "each refusal counted");
    // An absolute URI names the host too.
    let (status, _) = request(&router, "GET", "http://evil.example:8787/api/symbols", &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Probes send whatever Host they like.
    let (status, _) = request(&router, "GET", "/healthz", &[("host", "evil.example")]).await;
    assert_eq!(status, StatusCode::OK);

    // The served addresses, an allowed origin's host, and no Host at all (HTTP/1.0).
    for host in [
        Some("127.0.0.1:8787"),
        Some("localhost:8787"),
        Some("[::1]:8787"),
        Some("dash.example"),
        None,
    ] {
        let headers: Vec<_> = host.map(|h| ("host", h)).into_iter().collect();
        for uri in ["/", "/api/symbols", "/metrics"] {
            let (status, body) = request(&router, "GET", uri, &headers).await;
            assert_eq!(status, StatusCode::OK, "{uri} Host {host:?}: {body}");
        }
    }

    // An accepted Host is not enough for the replay: the Origin must name the server too,
    // not merely match the Host.
    let json = ("content-type", "application/json");
    let (status, _) = post(
        &router,
        "/api/replay",
        &[
            json,
            ("host", "dash.example"),
            ("origin", "http://dash.example"),
        ],
        r#"{"paused":true}"#,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = post(
        &router,
        "/api/replay",
        &[
            json,
            ("host", "127.0.0.1:8787"),
            ("origin", "http://localhost:8787"),
        ],
        r#"{"paused":true}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = post(
        &router,
        "/api/replay",
        &[
            json,
            ("host", "dash.example"),
            ("origin", "https://dash.example"),
        ],
        r#"{"paused":false}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// Issue 13, item 11: the scheme in any case, a percent-encoded `?token=`, and a wrong token
/// told apart from a missing one.
#[tokio::test]
async fn token_scheme_in_any_case_percent_decoded_query_and_wrong_token_message() {
    let assets = tempfile::tempdir().unwrap();
    let token = "a+b/c=d%e f";
    let router = app(state(Some(token), assets.path()));
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let auth = format!("{scheme} {token}");
        let (status, body) =
            request(&router, "GET", "/api/symbols", &[("authorization", &auth)]).await;
        assert_eq!(status, StatusCode::OK, "{scheme}: {body}");
    }
    // As encodeURIComponent writes it, and with `+` for the space as forms do.
    for query in [
        "a%2Bb%2Fc%3Dd%25e%20f",
        "a%2Bb%2Fc%3Dd%25e+f",
        "a%2bb/c=d%25e%20f",
    ] {
        let (status, body) = get(&router, &format!("/api/symbols?token={query}"), None).await;
        assert_eq!(status, StatusCode::OK, "{query}: {body}");
    }
    let (status, body) = get(&router, "/api/symbols", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("a token is required"), "{body}");
    for wrong in [
        "/api/symbols?token=a%2Bb",
        "/api/symbols?token=a+b/c=d%25e%20f",
    ] {
        let (status, body) = get(&router, wrong, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{wrong}");
        assert!(body.contains("the token is wrong"), "{wrong}: {body}");
    }
    let (status, body) = get(&router, "/metrics", Some("nope")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("the token is wrong"), "{body}");
}

/// Issue 13, item 12: a path segment too long for a file name is not found, not a 500.
#[tokio::test]
async fn a_static_path_segment_too_long_for_a_file_name_is_404() {
    let assets = tempfile::tempdir().unwrap();
    let router = app(state(None, assets.path()));
    let long = "a".repeat(256);
    let cases = [
        format!("/{long}"),
        format!("/pkg/{long}"),
        format!("/{long}/index.html"),
        format!("/{}", "%61".repeat(300)),
        format!("/{}", "b".repeat(5000)),
    ];
    // Not built yet: a missing file may be the page saying how to build it, never a 500.
    for uri in &cases {
        let (status, body) = get(&router, uri, None).await;
        assert!(
            [StatusCode::NOT_FOUND, StatusCode::SERVICE_UNAVAILABLE].contains(&status),
            "{} chars: {status} {body}",
            uri.len()
        );
    }
    std::fs::write(assets.path().join("index.html"), "<!doctype html>").unwrap();
    for uri in &cases {
        let (status, body) = get(&router, uri, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{} chars: {body}", uri.len());
    }
    assert_eq!(get(&router, "/", None).await.0, StatusCode::OK);
}

/// Issue 13, item 9: every API served to the network with no token is refused at start-up,
/// unless asked for with --insecure-no-token.
#[test]
fn serving_beyond_loopback_without_a_token_is_refused_unless_insecure() {
    let mut config = DashboardConfig::new(std::env::temp_dir());
    config.listen = "0.0.0.0:0".parse().unwrap();
    let refused = Dashboard::start(config.clone()).err().expect("refused");
    let message = format!("{refused:#}");
    for part in [
        "0.0.0.0:0",
        "--token",
        "STOCKSTREAM_DASHBOARD_TOKEN",
        "--insecure-no-token",
    ] {
        assert!(message.contains(part), "{part}: {message}");
    }
    config.listen = "[::]:0".parse().unwrap();
    assert!(Dashboard::start(config.clone()).is_err());

    config.token = Some("t".into());
    Dashboard::start(config.clone()).unwrap().stop();
    config.token = None;
    config.insecure_no_token = true;
    Dashboard::start(config.clone()).unwrap().stop();
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.insecure_no_token = false;
    Dashboard::start(config).unwrap().stop();
}

/// Issue 13, item 10, on a real socket: with no token, `Host: evil.example` and a matching
/// `Origin` used to get 101.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_rebinding_a_websocket_with_a_foreign_host_and_origin_is_403() {
    let dashboard = start(None, Retention::default());
    let port = dashboard.addr().port();
    let evil = format!("evil.example:{port}");
    let mut request = format!("ws://{}/ws", dashboard.addr())
        .into_client_request()
        .unwrap();
    request.headers_mut().insert("host", evil.parse().unwrap());
    request
        .headers_mut()
        .insert("origin", format!("http://{evil}").parse().unwrap());
    let refused = tokio_tungstenite::connect_async(request).await.unwrap_err();
    assert!(refused.to_string().contains("403"), "{refused}");
    let local = format!("http://localhost:{port}");
    connect(&dashboard, "", Some(&local)).await.unwrap();
}
