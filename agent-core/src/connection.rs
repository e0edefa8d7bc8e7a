//! The connection task: drives [`machine::link`](crate::machine::link) — feeds it what
//! the socket, the timer, the token and the host produce, and does what it decides (open,
//! send, close, report the state, hand commands to the executor).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use crate::backoff::Rng;
use crate::commands::Executor;
use crate::machine::link::{Action, Event, Heartbeats, Link};
use crate::machine::Time;
use crate::outbox::Outbox;
use crate::platform::{guard, ConnectionState, Platform};
use crate::token::{Credentials, Secret};
use crate::transport::{BoxFut, Socket, Transport, WsEvent};
use crate::{lock, stopped};

/// What the host asked to send since the task last looked. Latest-wins, so it is bounded
/// by construction.
#[derive(Default)]
struct Outgoing {
    status: Option<String>,
    background: bool,
    background_dirty: bool,
    refresh: Option<Secret>,
}

/// The connection's state as the host sees it, and its inputs from other threads.
pub(crate) struct Connection {
    platform: Arc<dyn Platform>,
    state: Mutex<ConnectionState>,
    /// The host said the network is back.
    network_hint: Notify,
    outgoing: Mutex<Outgoing>,
    outgoing_changed: Notify,
}

impl Connection {
    /// A connection in state `state`, reporting changes to `platform`.
    pub(crate) fn new(platform: Arc<dyn Platform>, state: ConnectionState) -> Self {
        Self {
            platform,
            state: Mutex::new(state),
            network_hint: Notify::new(),
            outgoing: Mutex::new(Outgoing::default()),
            outgoing_changed: Notify::new(),
        }
    }

    /// The current state.
    pub(crate) fn state(&self) -> ConnectionState {
        *lock(&self.state)
    }

    /// Sets the state and tells the host if it changed.
    pub(crate) fn set_state(&self, s: ConnectionState) {
        {
            let mut cur = lock(&self.state);
            if *cur == s {
                return;
            }
            *cur = s;
        }
        tracing::info!(state = s.as_str(), "connection state");
        guard("connection_state_changed", || {
            self.platform.connection_state_changed(s)
        });
    }

    /// Sends this `device:status` frame now if connected, and after every reconnect.
    pub(crate) fn report_status(&self, frame: String) {
        lock(&self.outgoing).status = Some(frame);
        self.outgoing_changed.notify_one();
    }

    /// The app went to the background or came back.
    pub(crate) fn set_background(&self, background: bool) {
        {
            let mut o = lock(&self.outgoing);
            if o.background == background {
                return;
            }
            o.background = background;
            o.background_dirty = true;
        }
        tracing::debug!(background, "app state hint");
        self.outgoing_changed.notify_one();
    }

    /// Announces a refreshed token on the open socket.
    pub(crate) fn refresh(&self, token: Secret) {
        lock(&self.outgoing).refresh = Some(token);
        self.outgoing_changed.notify_one();
    }

    /// The host said the network is back.
    pub(crate) fn network_available(&self) {
        self.network_hint.notify_one();
    }

    fn take_outgoing(&self) -> Vec<Event> {
        let mut o = lock(&self.outgoing);
        let mut events = Vec::new();
        if let Some(t) = o.refresh.take() {
            events.push(Event::TokenRefreshed(t));
        }
        if o.background_dirty {
            o.background_dirty = false;
            events.push(Event::Background(o.background));
        }
        if let Some(s) = o.status.take() {
            events.push(Event::Status(s));
        }
        events
    }
}

/// What the task needs besides its [`Connection`].
pub(crate) struct Deps {
    pub transport: Arc<dyn Transport>,
    pub socket_url: String,
    pub heartbeats: Heartbeats,
    pub credentials: Arc<Credentials>,
    pub executor: Arc<Executor>,
    pub outbox: Arc<Outbox>,
}

/// The socket, or the connect in progress.
enum Sock {
    None,
    Opening(BoxFut<'static, Result<Box<dyn Socket>, String>>),
    Open(Box<dyn Socket>),
}

impl Sock {
    /// The next thing the socket produced. Cancel-safe: the connect in progress is kept,
    /// and `recv` is cancel-safe.
    async fn next(&mut self) -> Event {
        match self {
            Sock::None => std::future::pending().await,
            Sock::Opening(connect) => match connect.as_mut().await {
                Ok(s) => {
                    *self = Sock::Open(s);
                    Event::Opened
                }
                Err(e) => {
                    *self = Sock::None;
                    Event::OpenFailed(e)
                }
            },
            Sock::Open(s) => match s.recv().await {
                Some(WsEvent::Text(t)) => Event::Frame(t),
                Some(WsEvent::Activity) => Event::Activity,
                Some(WsEvent::Close(code)) => Event::Closed(code),
                Some(WsEvent::Error(e)) => Event::SocketFailed(Some(e)),
                None => Event::SocketFailed(None),
            },
        }
    }
}

/// Runs the connection until `stop`.
pub(crate) async fn run(conn: Arc<Connection>, deps: Deps, mut stop: watch::Receiver<bool>) {
    let origin = Instant::now();
    let now = || Time(origin.elapsed());
    let mut tokens = deps.credentials.subscribe();
    let token = tokens.borrow_and_update().clone();
    let mut link = Link::new(deps.heartbeats, token, Rng::from_entropy());
    let mut sock = Sock::None;
    let mut events = VecDeque::from([if *stop.borrow() {
        Event::Stop
    } else {
        Event::Start
    }]);
    loop {
        while let Some(event) = events.pop_front() {
            let actions = link.handle(now(), event);
            let followup = if link.is_stopped() {
                // The last actions (close the socket cleanly, report `Stopped`).
                perform(&conn, &deps, &mut sock, actions).await
            } else {
                tokio::select! {
                    f = perform(&conn, &deps, &mut sock, actions) => f,
                    () = stopped(&mut stop) => vec![Event::Stop],
                }
            };
            events.extend(followup);
        }
        if link.is_stopped() {
            break;
        }
        let deadline = link.next_deadline().map(|t| origin + t.0);
        tokio::select! {
            ev = sock.next() => events.push_back(ev),
            () = sleep_until_opt(deadline) => events.push_back(Event::Timer),
            r = tokens.changed() => {
                if r.is_ok() {
                    events.push_back(Event::TokenChanged(tokens.borrow_and_update().clone()));
                } else {
                    // The credentials are gone: only `stop` matters now.
                    stopped(&mut stop).await;
                }
            }
            () = conn.network_hint.notified() => events.push_back(Event::NetworkAvailable),
            () = conn.outgoing_changed.notified() => events.extend(conn.take_outgoing()),
            () = stopped(&mut stop) => events.push_back(Event::Stop),
        }
    }
}

/// Does what the machine decided, in order; returns the events that follow from it. Stops
/// at a failed send (the rest of the actions were for that socket).
async fn perform(
    conn: &Connection,
    deps: &Deps,
    sock: &mut Sock,
    actions: Vec<Action>,
) -> Vec<Event> {
    let mut followup = Vec::new();
    for action in actions {
        match action {
            Action::Open => {
                let transport = deps.transport.clone();
                let url = deps.socket_url.clone();
                *sock = Sock::Opening(Box::pin(async move { transport.connect(&url).await }));
            }
            Action::Send(frame) => {
                if let Sock::Open(s) = sock {
                    if let Err(e) = s.send(frame.to_text()).await {
                        followup.push(Event::SendFailed(e));
                        return followup;
                    }
                }
            }
            Action::Close => {
                if let Sock::Open(s) = sock {
                    s.close().await;
                }
                *sock = Sock::None;
            }
            Action::Drop => *sock = Sock::None,
            Action::Report(state) => conn.set_state(state),
            Action::Command(data) => {
                deps.executor
                    .handle_commands(std::slice::from_ref(&data), "socket");
            }
            Action::RetryAcks => deps.outbox.retry_now(),
            Action::RelayTime(ms) => deps.executor.relay_time(ms),
            // Stored through the same token store as every token (durably: the host's
            // keystore) and read back before it is used; watchers are not told (no
            // reconnect: the machine announces it on the open socket). A store that does
            // not give it back keeps the old token (still valid; the relay re-sends).
            Action::StoreToken(token) => match deps.credentials.store_rotated(token.0) {
                Ok(stored) => followup.push(Event::TokenRefreshed(stored)),
                Err(e) => tracing::warn!(
                    error = %e,
                    "could not store the rotated token; keeping the current one"
                ),
            },
        }
    }
    followup
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
