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

/// `ws[s]://<host>/ws`, passing on the page's own `?token=`.
pub fn server_url() -> String {
    let location = web_sys::window().expect("a browser window").location();
    let secure = location.protocol().is_ok_and(|p| p == "https:");
    let host = location.host().unwrap_or_default();
    let scheme = if secure { "wss" } else { "ws" };
    let token = location
        .search()
        .ok()
        .and_then(|search| web_sys::UrlSearchParams::new_with_str(&search).ok())
        .and_then(|params| params.get("token"))
        .filter(|token| !token.is_empty());
    match token {
        Some(token) => format!(
            "{scheme}://{host}/ws?token={}",
            String::from(js_sys::encode_uri_component(&token))
        ),
        None => format!("{scheme}://{host}/ws"),
    }
}
