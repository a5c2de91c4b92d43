//! The one WebSocket to the server, reconnected with exponential backoff whenever it closes.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use leptos::prelude::set_timeout;
use wasm_bindgen::prelude::*;
use web_sys::{CloseEvent, Event, MessageEvent, WebSocket};

const FIRST_RETRY_MS: u64 = 500;
const MAX_RETRY_MS: u64 = 10_000;

pub enum SocketEvent {
    Open,
    Message(String),
    Closed,
}

pub type EventHandler = Rc<dyn Fn(SocketEvent)>;

/// The socket with its callbacks, which must live as long as it can call them.
struct Connection {
    socket: WebSocket,
    _on_open: Closure<dyn FnMut(Event)>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        // The browser must not call into callbacks that are about to be freed.
        self.socket.set_onopen(None);
        self.socket.set_onmessage(None);
        self.socket.set_onclose(None);
    }
}

thread_local! {
    static CONNECTION: RefCell<Option<Connection>> = const { RefCell::new(None) };
    static NEXT_RETRY_MS: Cell<u64> = const { Cell::new(FIRST_RETRY_MS) };
}

/// Connects to `url` and keeps reconnecting for the life of the page.
pub fn connect(url: String, on_event: EventHandler) {
    open(Rc::from(url), on_event);
}

/// Sends a text frame if the socket is open; false otherwise (the caller re-sends on open).
pub fn send(text: &str) -> bool {
    CONNECTION.with(|connection| {
        connection.borrow().as_ref().is_some_and(|c| {
            c.socket.ready_state() == WebSocket::OPEN && c.socket.send_with_str(text).is_ok()
        })
    })
}

fn open(url: Rc<str>, on_event: EventHandler) {
    let Ok(socket) = WebSocket::new(&url) else {
        retry_later(url, on_event);
        return;
    };

    let handler = on_event.clone();
    let on_open = Closure::<dyn FnMut(Event)>::new(move |_: Event| {
        NEXT_RETRY_MS.set(FIRST_RETRY_MS);
        handler(SocketEvent::Open);
    });
    let handler = on_event.clone();
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
        if let Some(text) = event.data().as_string() {
            handler(SocketEvent::Message(text));
        }
    });
    // An error is always followed by a close, so the close alone drives the retry; nothing is
    // logged, since a server restart is part of normal operation.
    let reconnect_url = url.clone();
    let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |_: CloseEvent| {
        on_event(SocketEvent::Closed);
        retry_later(reconnect_url.clone(), on_event.clone());
    });
    socket.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    socket.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    socket.set_onclose(Some(on_close.as_ref().unchecked_ref()));

    let connection = Connection {
        socket,
        _on_open: on_open,
        _on_message: on_message,
        _on_close: on_close,
    };
    CONNECTION.with(|slot| slot.replace(Some(connection)));
}

fn retry_later(url: Rc<str>, on_event: EventHandler) {
    let delay = NEXT_RETRY_MS.get();
    NEXT_RETRY_MS.set((delay * 2).min(MAX_RETRY_MS));
    set_timeout(move || open(url, on_event), Duration::from_millis(delay));
}

/// The page's own `?token=`, if any.
fn page_token() -> Option<String> {
    web_sys::window()?
        .location()
        .search()
        .ok()
        .and_then(|search| web_sys::UrlSearchParams::new_with_str(&search).ok())
        .and_then(|params| params.get("token"))
        .filter(|token| !token.is_empty())
}

/// `path` with the page's `?token=` passed on.
fn with_token(path: String) -> String {
    match page_token() {
        Some(token) => format!(
            "{path}?token={}",
            String::from(js_sys::encode_uri_component(&token))
        ),
        None => path,
    }
}

/// `ws[s]://<host>/ws`, passing on the page's own `?token=`.
pub fn server_url() -> String {
    let location = web_sys::window().expect("a browser window").location();
    let secure = location.protocol().is_ok_and(|p| p == "https:");
    let host = location.host().unwrap_or_default();
    let scheme = if secure { "wss" } else { "ws" };
    with_token(format!("{scheme}://{host}/ws"))
}

/// POSTs a JSON body to the server's `path` (same origin, with the page's token). Fire and
/// forget: the next KPI message says what the server made of it.
pub fn post_json(path: &str, body: &str) {
    let Some(window) = web_sys::window() else {
        return;
    };
    let init = web_sys::RequestInit::new();
    init.set_method("POST");
    init.set_body(&wasm_bindgen::JsValue::from_str(body));
    if let Ok(headers) = web_sys::Headers::new() {
        let _ = headers.set("Content-Type", "application/json");
        init.set_headers(&headers);
    }
    let _ = window.fetch_with_str_and_init(&with_token(path.to_string()), &init);
}
