//! `use_bridge`: opens the WebSocket to the bridge (the page's own host, path `/ws`), says hello
//! with the token, turns every message into an [`Action`], and reconnects with exponential
//! backoff when the bridge goes away. Commands get their reply back as a future (request ids
//! matched here); events are drawn at most once a frame, or one at a time in slow motion.
//! The data directory's commands (uploads, downloads) are in `files`.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};
use std::time::Duration;

use futures_channel::oneshot;
use shared::{
    Command, ErrorInfo, ErrorKind, Hello, Outcome, ReplyData, ServerMessage, PROTOCOL_VERSION,
};
use wasm_bindgen::prelude::*;
use web_sys::{CloseEvent, Event, MessageEvent, WebSocket};
use yew::prelude::*;

use crate::state::{Action, State};

/// First and longest wait between reconnection attempts.
const FIRST_RETRY_MS: u32 = 500;
const LONGEST_RETRY_MS: u32 = 8_000;

/// How often received events are drawn: about one animation frame.
const FRAME: Duration = Duration::from_millis(16);

/// How far apart slow motion shows events.
const SLOW_STEP: Duration = Duration::from_millis(700);

/// A handle on the connection to the bridge; cheap to clone.
#[derive(Clone)]
pub struct Bridge(Rc<Inner>);

impl PartialEq for Bridge {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }
}

struct Inner {
    dispatch: UseReducerDispatcher<State>,
    token: Option<String>,
    socket: RefCell<Option<WebSocket>>,
    /// The callbacks of the current socket: kept alive while it is.
    handlers: RefCell<Vec<Box<dyn std::any::Any>>>,
    pending: RefCell<crate::vec_map::VecMap<u64, oneshot::Sender<Outcome>>>,
    next_id: Cell<u64>,
    attempt: Cell<u32>,
    /// Set when the bridge refused this tab (no point in retrying) or the app unmounted.
    given_up: Cell<bool>,
    /// Events received since the last frame: the bridge sends each event as soon as it
    /// happens, and the page draws them together, at most once a frame.
    unshown: RefCell<Vec<shared::Event>>,
    frame_scheduled: Cell<bool>,
    /// Slow motion (lecture mode): events wait here and are shown one at a time.
    slow: Cell<bool>,
    /// A recording is on screen: no command reaches the bridge (a Stop pressed on a replayed
    /// server must not close a live one that has the same id).
    replaying: Cell<bool>,
    queue: RefCell<std::collections::VecDeque<shared::Event>>,
    /// Slow motion is paused: events wait until a step or until it goes on.
    paused: Cell<bool>,
}

impl Bridge {
    /// Where actions go (for the other parts of `Bridge`, such as `files`).
    pub(super) fn dispatcher(&self) -> &UseReducerDispatcher<State> {
        &self.0.dispatch
    }

    /// The session token, for requests outside the WebSocket.
    pub(super) fn token(&self) -> String {
        self.0.token.clone().unwrap_or_default()
    }

    /// Whether a recording is on screen (see `Inner::replaying`).
    pub fn set_replaying(&self, on: bool) {
        self.0.replaying.set(on);
    }

    /// Sends a command and waits for its reply; while a recording is on screen, refuses it
    /// without sending.
    pub async fn request(&self, command: Command) -> Outcome {
        if self.0.replaying.get() {
            return Outcome::Error(
                shared::ErrorInfo::new(
                    shared::ErrorKind::NotAllowed,
                    "A recording is on screen, not the live bridge: nothing is sent to the bridge while it is.",
                )
                .with_hint("Press \"Back to live\" to work with the bridge again."),
            );
        }
        let id = self.0.next_id.get();
        self.0.next_id.set(id + 1);
        // Written by hand (shared::json_out), not by serde: the page's size.
        let text = shared::json_out::request(id, &command).unwrap_or_default();
        let (done, answer) = oneshot::channel();
        let sent = match &*self.0.socket.borrow() {
            Some(socket) if socket.ready_state() == WebSocket::OPEN => {
                socket.send_with_str(&text).is_ok()
            }
            _ => false,
        };
        if !sent {
            return Outcome::Error(not_connected());
        }
        self.0.pending.borrow_mut().insert(id, done);
        answer
            .await
            .unwrap_or_else(|_| Outcome::Error(not_connected()))
    }

    /// Runs a command in the background: a failure becomes a notice titled `title`, a new client
    /// gets selected. Returns whether it worked, for steps that depend on it.
    pub async fn run(&self, title: &str, command: Command) -> bool {
        self.run_for(title, command).await.is_some()
    }

    /// Like [`Self::run`]; returns the reply's data (None if the command failed).
    pub async fn run_for(&self, title: &str, command: Command) -> Option<ReplyData> {
        // Changed trouble is not an event: the page keeps what it set, for the badge.
        let impaired = match &command {
            Command::Impair {
                endpoint,
                impairment,
            } => Some((*endpoint, impairment.clone())),
            _ => None,
        };
        match self.request(command).await {
            Outcome::Ok(ReplyData::Endpoint(info)) => {
                self.0.dispatch.dispatch(Action::Created(info.clone()));
                Some(ReplyData::Endpoint(info))
            }
            Outcome::Ok(data) => {
                if let Some((endpoint, impairment)) = impaired {
                    self.0
                        .dispatch
                        .dispatch(Action::Impaired(endpoint, impairment));
                }
                Some(data)
            }
            Outcome::Error(error) => {
                self.0.dispatch.dispatch(Action::Failed {
                    title: title.to_string(),
                    error,
                });
                None
            }
        }
    }

    /// Shows a new endpoint as if a form had created it (a new client gets selected).
    pub fn created(&self, info: shared::EndpointInfo) {
        self.0.dispatch.dispatch(Action::Created(info));
    }

    /// Slow motion: from now on events are shown one at a time, [`SLOW_STEP`] apart, so that a
    /// lecturer can point at each; turning it off shows the waiting ones at once.
    pub fn set_slow_motion(&self, on: bool) {
        let was = self.0.slow.replace(on);
        if !on {
            self.0.paused.set(false);
            let waiting: Vec<_> = self.0.queue.borrow_mut().drain(..).collect();
            if !waiting.is_empty() {
                self.0.dispatch.dispatch(Action::Events(waiting));
            }
            self.0.dispatch.dispatch(Action::Queued(0));
            return;
        }
        if was {
            return;
        }
        let weak = Rc::downgrade(&self.0);
        yew::platform::spawn_local(async move {
            loop {
                yew::platform::time::sleep(SLOW_STEP).await;
                let Some(inner) = weak.upgrade() else { return };
                if !inner.slow.get() {
                    return;
                }
                if !inner.paused.get() {
                    show_one(&inner);
                }
            }
        });
    }

    /// Slow motion: holds the events (`true`) or goes on showing them.
    pub fn set_slow_paused(&self, paused: bool) {
        self.0.paused.set(paused);
    }

    /// Slow motion: shows the next waiting event now.
    pub fn slow_step(&self) {
        show_one(&self.0);
    }

    /// Asks the bridge for the Python mirror of an endpoint.
    pub async fn python(&self, endpoint: shared::EndpointId, spec: shared::EndpointSpec) {
        if let Outcome::Ok(ReplyData::Program { file, code }) =
            self.request(Command::PythonProgram { spec }).await
        {
            self.0.dispatch.dispatch(Action::Program {
                endpoint,
                file,
                code,
            });
        }
    }

    /// Runs a comparison and puts the report in the state.
    pub async fn compare(&self, command: Command) {
        match self.request(command).await {
            Outcome::Ok(ReplyData::Compare(report)) => {
                self.0.dispatch.dispatch(Action::Compared(report))
            }
            Outcome::Error(error) => self.0.dispatch.dispatch(Action::Failed {
                title: "TCP vs UDP comparison".into(),
                error,
            }),
            Outcome::Ok(_) => {}
        }
    }

    /// Saves the captured packets (of the session, or of one conversation) as a pcapng file
    /// of the data directory, then downloads it.
    pub async fn capture_save(&self, of: Option<crate::state::ConvKey>) {
        let command = Command::CaptureSave {
            endpoint: of.map(|key| key.endpoint),
            conn: of.and_then(|key| key.conn),
        };
        match self.request(command).await {
            Outcome::Ok(ReplyData::Capture { file, .. }) => {
                self.download(&file).await;
                self.refresh_files().await;
            }
            Outcome::Error(error) => self.0.dispatch.dispatch(Action::Failed {
                title: "Save the packets".into(),
                error,
            }),
            Outcome::Ok(_) => {}
        }
    }

    /// Lists the bridge's checks into the state.
    pub async fn check_list(&self) {
        match self.request(Command::CheckList).await {
            Outcome::Ok(ReplyData::Checks { checks }) => {
                self.0.dispatch.dispatch(Action::Checks(checks))
            }
            Outcome::Error(error) => self.0.dispatch.dispatch(Action::Failed {
                title: "List the checks".into(),
                error,
            }),
            Outcome::Ok(_) => {}
        }
    }

    /// Runs a check; its steps arrive as events, a failure to run it as a notice.
    pub async fn check(&self, command: Command) {
        self.0.dispatch.dispatch(Action::Checking(true));
        let outcome = self.request(command).await;
        self.0.dispatch.dispatch(Action::Checking(false));
        if let Outcome::Error(error) = outcome {
            self.0.dispatch.dispatch(Action::Failed {
                title: "Check".into(),
                error,
            });
        }
    }

    /// A callback that runs `(title, command)` pairs.
    pub fn runner(&self) -> Callback<(String, Command)> {
        let bridge = self.clone();
        Callback::from(move |(title, command): (String, Command)| {
            let bridge = bridge.clone();
            yew::platform::spawn_local(async move {
                bridge.run(&title, command).await;
            });
        })
    }
}

fn not_connected() -> ErrorInfo {
    ErrorInfo::new(
        ErrorKind::Other,
        "The page is not connected to the bridge right now.",
    )
    .with_hint("Wait for the status to say connected, or start the bridge: cargo xtask run")
}

/// The connection to the bridge for the whole app: connects on mount, closes on unmount.
#[hook]
pub fn use_bridge(dispatch: UseReducerDispatcher<State>) -> Bridge {
    let bridge = use_memo((), move |_| {
        Bridge(Rc::new(Inner {
            dispatch,
            token: crate::token::load(),
            socket: RefCell::new(None),
            handlers: RefCell::new(Vec::new()),
            pending: RefCell::new(crate::vec_map::VecMap::new()),
            next_id: Cell::new(1),
            attempt: Cell::new(0),
            given_up: Cell::new(false),
            unshown: RefCell::new(Vec::new()),
            frame_scheduled: Cell::new(false),
            slow: Cell::new(false),
            queue: RefCell::new(std::collections::VecDeque::new()),
            replaying: Cell::new(false),
            paused: Cell::new(false),
        }))
    });
    {
        let bridge = (*bridge).clone();
        use_effect_with((), move |_| {
            connect(&bridge.0);
            move || {
                bridge.0.given_up.set(true);
                if let Some(socket) = bridge.0.socket.borrow_mut().take() {
                    let _ = socket.close();
                }
            }
        });
    }
    (*bridge).clone()
}

/// `ws://host/ws` on the page's own host: the bridge, or `trunk serve`'s proxy to it.
fn ws_url() -> Option<String> {
    let location = web_sys::window()?.location();
    let scheme = if location.protocol().ok()? == "https:" {
        "wss"
    } else {
        "ws"
    };
    Some(format!(
        "{scheme}://{}{}",
        location.host().ok()?,
        shared::WS_PATH
    ))
}

fn connect(inner: &Rc<Inner>) {
    if inner.given_up.get() {
        return;
    }
    let Some(token) = inner.token.clone() else {
        inner.dispatch.dispatch(Action::NoToken);
        return;
    };
    inner.dispatch.dispatch(Action::Connecting);
    let Some(socket) = ws_url().and_then(|url| WebSocket::new(&url).ok()) else {
        retry_later(inner);
        return;
    };

    let on_open = {
        let socket = socket.clone();
        Closure::<dyn FnMut(Event)>::new(move |_| {
            let hello = Hello {
                protocol: PROTOCOL_VERSION,
                token: token.clone(),
                client: Some("socket playground page".into()),
                watch: true,
            };
            let _ = socket.send_with_str(&shared::json_out::hello(&hello));
        })
    };
    let weak = Rc::downgrade(inner);
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
        if let (Some(inner), Some(text)) = (weak.upgrade(), event.data().as_string()) {
            receive(&inner, &text);
        }
    });
    let weak = Rc::downgrade(inner);
    let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |_event: CloseEvent| {
        if let Some(inner) = weak.upgrade() {
            closed(&inner);
        }
    });
    socket.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    socket.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    socket.set_onclose(Some(on_close.as_ref().unchecked_ref()));
    *inner.handlers.borrow_mut() =
        vec![Box::new(on_open), Box::new(on_message), Box::new(on_close)];
    *inner.socket.borrow_mut() = Some(socket);
}

fn receive(inner: &Rc<Inner>, text: &str) {
    let Ok(message) = shared::json::from_str::<ServerMessage>(text) else {
        return;
    };
    match message {
        ServerMessage::Welcome(welcome) => {
            inner.attempt.set(0);
            inner.unshown.borrow_mut().clear();
            inner.dispatch.dispatch(Action::Welcome(welcome));
        }
        ServerMessage::Events { events } if inner.slow.get() => {
            let waiting = {
                let mut queue = inner.queue.borrow_mut();
                queue.extend(events);
                queue.len()
            };
            inner.dispatch.dispatch(Action::Queued(waiting));
        }
        ServerMessage::Events { events } => {
            inner.unshown.borrow_mut().extend(events);
            if !inner.frame_scheduled.replace(true) {
                let weak = Rc::downgrade(inner);
                yew::platform::spawn_local(async move {
                    yew::platform::time::sleep(FRAME).await;
                    if let Some(inner) = weak.upgrade() {
                        inner.frame_scheduled.set(false);
                        let events = std::mem::take(&mut *inner.unshown.borrow_mut());
                        if !events.is_empty() {
                            inner.dispatch.dispatch(Action::Events(events));
                        }
                    }
                });
            }
        }
        ServerMessage::Missed { count } => inner.dispatch.dispatch(Action::Missed(count)),
        ServerMessage::Reply(reply) => {
            let waiting = reply
                .id
                .and_then(|id| inner.pending.borrow_mut().remove(&id));
            match waiting {
                Some(done) => {
                    let _ = done.send(reply.outcome);
                }
                None => {
                    if let Outcome::Error(error) = reply.outcome {
                        inner.dispatch.dispatch(Action::Failed {
                            title: "The bridge could not read a message".into(),
                            error,
                        });
                    }
                }
            }
        }
        ServerMessage::Fatal { error } => {
            if matches!(
                error.kind,
                ErrorKind::Unauthorized | ErrorKind::VersionMismatch
            ) {
                inner.given_up.set(true);
                inner.dispatch.dispatch(Action::Refused(error));
            }
        }
    }
}

fn closed(inner: &Rc<Inner>) {
    // Replies that will never come: their futures end with "not connected".
    inner.pending.borrow_mut().clear();
    inner.socket.borrow_mut().take();
    if !inner.given_up.get() {
        retry_later(inner);
    }
}

fn retry_later(inner: &Rc<Inner>) {
    let attempt = inner.attempt.get() + 1;
    inner.attempt.set(attempt);
    let wait = FIRST_RETRY_MS
        .saturating_mul(1 << (attempt - 1).min(10))
        .min(LONGEST_RETRY_MS);
    inner.dispatch.dispatch(Action::Retrying {
        attempt,
        in_ms: wait,
    });
    let weak: Weak<Inner> = Rc::downgrade(inner);
    yew::platform::spawn_local(async move {
        yew::platform::time::sleep(Duration::from_millis(u64::from(wait))).await;
        if let Some(inner) = weak.upgrade() {
            connect(&inner);
        }
    });
}

/// Slow motion shows the next waiting event, marked in the timeline, and says how many wait.
fn show_one(inner: &Inner) {
    let (next, left) = {
        let mut queue = inner.queue.borrow_mut();
        let next = queue.pop_front();
        (next, queue.len())
    };
    if let Some(event) = next {
        let seq = event.seq;
        inner.dispatch.dispatch(Action::Events(vec![event]));
        inner.dispatch.dispatch(Action::Mark(seq));
        inner.dispatch.dispatch(Action::Queued(left));
    }
}
