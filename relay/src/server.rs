//! Start, serve, sweep, stop.
//!
//! [`start`] opens the store, builds the shared [`App`], binds the port and spawns the accept
//! loop and the background sweepers; it returns a [`Running`] handle (tests use it with
//! port 0). [`Running::shutdown`] stops accepting, closes every socket with 1001, lets
//! in-flight requests finish (up to 10 s) and closes the store.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::app::App;
use crate::auth::Keys;
use crate::bus::redis::RedisBus;
use crate::bus::{Bus, LocalBus};
use crate::config::Config;
use crate::hub::{Hub, CLOSE_GOING_AWAY};
use crate::model::now_ms;
use crate::presence::redis::RedisPresence;
use crate::presence::{LocalPresence, Presence};
use crate::store::{Store, StoreOptions};

/// A running relay.
pub struct Running {
    /// The bound address (useful with port 0).
    pub addr: SocketAddr,
    /// The shared state (tests inspect it).
    pub app: Arc<App>,
    tasks: JoinSet<()>,
    /// The webhook sender, awaited (not aborted) at shutdown.
    webhooks: Option<tokio::task::JoinHandle<()>>,
    /// The push sender, awaited (not aborted) at shutdown.
    push: Option<tokio::task::JoinHandle<()>>,
    /// What dev mode generated, to print.
    pub dev: Option<crate::dev::DevInfo>,
    /// Dev mode's simulated device, stopped first at shutdown.
    demo: Option<crate::dev_device::DemoDevice>,
}

/// Opens everything and starts serving. Errors are one-line explanations for a person.
pub async fn start(mut cfg: Config) -> Result<Running, String> {
    cfg.validate()?;
    cfg.max_connections = fit_to_open_files(cfg.max_connections);
    crate::metrics_setup::install();
    let hub = Arc::new(Hub::new(cfg.send_queue, cfg.heartbeat_secs * 1000));
    // Several nodes: the Redis bus and presence; one node: the in-process bus.
    let node_id = cfg
        .node_id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()[..12].to_string());
    type Seams = (
        Arc<dyn Bus>,
        Option<Arc<RedisBus>>,
        Arc<dyn Presence>,
        String,
    );
    let (bus, redis_bus, presence, node_id): Seams = match &cfg.redis {
        Some(url) => {
            let rb = Arc::new(RedisBus::new(
                url,
                &cfg.redis_prefix,
                &node_id,
                hub.clone(),
            )?);
            rb.check().await?;
            let presence = RedisPresence::connect(
                url,
                &cfg.redis_prefix,
                &node_id,
                cfg.heartbeat_secs,
                hub.clone(),
            )
            .await?;
            (rb.clone(), Some(rb), Arc::new(presence), node_id)
        }
        None => (
            Arc::new(LocalBus::new(hub.clone())),
            None,
            Arc::new(LocalPresence::new(hub.clone())),
            "local".to_string(),
        ),
    };
    let cluster = redis_bus.is_some();
    let hooks = crate::webhooks::Settings::from_config(&cfg)?.map(Arc::new);
    let push = crate::push::Settings::from_config(&cfg)?.map(Arc::new);
    let opts = StoreOptions {
        sqlite_sync: cfg.sqlite_sync.clone(),
        push: push.is_some(),
        webhook_endpoints: hooks
            .iter()
            .flat_map(|h| h.endpoints.iter().map(|e| e.raw.clone()))
            .collect(),
        ..StoreOptions::default()
    };
    let store = Arc::new(Store::open(&cfg.db, &opts, bus.clone()).await?);
    if let Some(rb) = &redis_bus {
        rb.start(store.clone());
    }
    let generated = if cfg.dev {
        crate::dev::fill_secrets(&mut cfg, &store).await?
    } else {
        false
    };
    let device_key = store
        .device_key()
        .await
        .map_err(|e| format!("reading the device key: {e}"))?;
    let keys = Keys::new(
        &cfg,
        cfg.jwt_secret.as_deref().unwrap_or(""),
        cfg.server_key.as_deref().unwrap_or(""),
        &device_key,
    )?;
    let tls = match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(c), Some(k)) => Some(crate::tls::acceptor(c, k)?),
        _ => None,
    };
    let listener = TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| format!("binding {}: {e}", cfg.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let app = Arc::new(App::new(cfg, keys, store, hub, bus, presence, node_id));
    let dev = if app.cfg.dev {
        Some(crate::dev::prepare(&app, addr, generated, tls.is_some()).await?)
    } else {
        None
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut tasks = JoinSet::new();
    tasks.spawn(accept_loop(app.clone(), listener, tls));
    tasks.spawn(heartbeat_sweeper(app.clone()));
    tasks.spawn(expiry_sweeper(app.clone()));
    tasks.spawn(housekeeping(app.clone()));
    tasks.spawn(app.presence.clone().maintain(app.clone()));
    if cluster {
        tasks.spawn(in_flight_sweeper(app.clone()));
        let advertised = app
            .cfg
            .advertise_url
            .clone()
            .or_else(|| (!addr.ip().is_unspecified()).then(|| format!("{scheme}://{addr}")));
        match advertised {
            Some(url) => {
                tasks.spawn(crate::sio::advertise(app.clone(), url));
            }
            None => tracing::warn!(
                "no --advertise-url and a wildcard listen address: Socket.IO long-polling \
                 needs sticky sessions on this node (its sessions cannot be forwarded to)"
            ),
        }
    }
    let webhooks = hooks.map(|h| tokio::spawn(crate::webhooks::run(app.clone(), h)));
    if push.is_none() {
        tracing::info!(
            "push wake-ups are off (no --fcm-service-account or --apns-key): sleeping phones \
             get their commands when they next connect or sync"
        );
    }
    let push = push.map(|p| tokio::spawn(crate::push::run(app.clone(), p)));
    tracing::info!(%addr, db = %redact_db(&app.cfg.db), "relay listening");
    let demo = match &dev {
        Some(d) if scheme == "http" && !app.cfg.no_demo_device => Some(
            crate::dev_device::DemoDevice::start(addr, &d.device_token, &d.device_id)?,
        ),
        _ => None,
    };
    Ok(Running {
        demo,
        addr,
        app,
        tasks,
        webhooks,
        push,
        dev,
    })
}

fn redact_db(db: &str) -> String {
    // A PostgreSQL URL may carry a password: log only the scheme and host part.
    match db.split_once('@') {
        Some((_, host)) if db.contains("://") => {
            format!("{}://…@{host}", db.split("://").next().unwrap_or(""))
        }
        _ => db.to_string(),
    }
}

impl Running {
    /// Graceful shutdown: stop accepting, close sockets with 1001, drain, close the store.
    pub async fn shutdown(mut self) {
        if let Some(d) = self.demo.take() {
            d.stop().await;
        }
        self.app.begin_shutdown();
        self.app
            .hub
            .close_all(CLOSE_GOING_AWAY, "relay shutting down");
        // Wait (up to 10 s) for sockets to close and for every HTTP connection to finish its
        // in-flight request: each holds a permit until hyper's graceful shutdown ends it.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let all = self.app.cfg.max_connections;
        while (!self.app.hub.is_empty() || self.app.http_conns.available_permits() < all)
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The webhook sender stopped claiming at the signal; it waits for its deliveries in
        // flight (up to its own limit, past the request timeout) so their outcomes are recorded.
        if let Some(h) = self.webhooks.take() {
            let limit = Duration::from_secs(self.app.cfg.webhook_timeout_secs + 10);
            if tokio::time::timeout(limit, h).await.is_err() {
                tracing::warn!("the webhook sender did not stop in time");
            }
        }
        if let Some(h) = self.push.take() {
            let limit = crate::push::REQUEST_TIMEOUT + Duration::from_secs(10);
            if tokio::time::timeout(limit, h).await.is_err() {
                tracing::warn!("the push sender did not stop in time");
            }
        }
        self.tasks.shutdown().await;
        self.app.store.close().await;
        tracing::info!("relay stopped");
    }
}

/// Runs until SIGTERM or Ctrl-C, then shuts down gracefully.
pub async fn run(cfg: Config) -> Result<(), String> {
    let running = start(cfg).await?;
    let scheme = if running.app.cfg.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    println!("safestream-relay listening on {scheme}://{}", running.addr);
    if let Some(dev) = &running.dev {
        println!("{}", dev.banner);
    }
    wait_for_signal().await;
    tracing::info!("shutting down");
    running.shutdown().await;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn accept_loop(app: Arc<App>, listener: TcpListener, tls: Option<tokio_rustls::TlsAcceptor>) {
    let router = crate::http::router(app.clone());
    let mut shutdown = app.shutdown_signal();
    let handshake = app.cfg.handshake_timeout();
    let in_flight = app.http_conns.clone();
    let mut accept_failures: u64 = 0;
    let mut last_accept_warning = std::time::Instant::now() - Duration::from_secs(60);
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.changed() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends (the process hit its open-file limit): back off
                    // briefly instead of spinning, and log at most every 10 s.
                    metrics::counter!("safestream_rejects_total", "reason" => "accept_failed").increment(1);
                    accept_failures += 1;
                    if last_accept_warning.elapsed() >= Duration::from_secs(10) {
                        tracing::warn!(error = %e, failures = accept_failures, "accept failed");
                        last_accept_warning = std::time::Instant::now();
                        accept_failures = 0;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            }
        };
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            metrics::counter!("safestream_rejects_total", "reason" => "max_connections")
                .increment(1);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let svc = tower::ServiceExt::map_request(
            router.clone(),
            move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                req
            },
        );
        let tls = tls.clone();
        let mut shutdown = app.shutdown_signal();
        tokio::spawn(async move {
            let _permit = permit;
            let svc = TowerToHyperService::new(svc);
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(handshake)
                .keep_alive(true);
            macro_rules! serve {
                ($io:expr) => {{
                    let conn = builder
                        .serve_connection(TokioIo::new($io), svc)
                        .with_upgrades();
                    tokio::pin!(conn);
                    tokio::select! {
                        _ = conn.as_mut() => {}
                        _ = shutdown.changed() => {
                            conn.as_mut().graceful_shutdown();
                            let _ = tokio::time::timeout(Duration::from_secs(10), conn).await;
                        }
                    }
                }};
            }
            match tls {
                Some(acceptor) => match tokio::time::timeout(handshake, acceptor.accept(stream))
                    .await
                {
                    Ok(Ok(s)) => serve!(s),
                    _ => metrics::counter!("safestream_rejects_total", "reason" => "tls_handshake")
                        .increment(1),
                },
                None => serve!(stream),
            }
        });
    }
}

/// Open files kept for everything but client connections: the database, its WAL and
/// read connections, PostgreSQL and Redis sockets, the listener, logs.
const FD_RESERVE: u64 = 256;

/// Raises the soft open-file limit to the hard one and lowers `max` (connections) to fit
/// under it with [`FD_RESERVE`] to spare. Without this, a flood of connections ends with
/// `accept` failing (EMFILE) and, worse, with the relay unable to open a database or Redis
/// connection; with it, connections past the cap are accepted and closed at once.
fn fit_to_open_files(max: usize) -> usize {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(files) => {
            let fitted = connections_within(max, files);
            if fitted < max {
                // Expected with the default cap on most machines: information, not a fault.
                tracing::info!(
                    open_files = files,
                    max_connections = fitted,
                    "max connections lowered to fit the open-file limit"
                );
            }
            fitted
        }
        Err(e) => {
            // Could not raise it (a sandbox, a hard limit above `fs.nr_open`): fit the
            // current soft limit instead.
            match rlimit::getrlimit(rlimit::Resource::NOFILE) {
                Ok((soft, _)) => {
                    let fitted = connections_within(max, soft);
                    if fitted < max {
                        tracing::info!(
                            open_files = soft,
                            max_connections = fitted,
                            error = %e,
                            "max connections lowered to fit the open-file limit"
                        );
                    }
                    fitted
                }
                Err(_) => {
                    tracing::warn!(error = %e, "could not read the open-file limit");
                    max
                }
            }
        }
    }
}

/// At most `max` connections, and no more than `files` open files allow.
fn connections_within(max: usize, files: u64) -> usize {
    let budget = files.saturating_sub(FD_RESERVE).max(files / 2).max(1);
    max.min(usize::try_from(budget).unwrap_or(usize::MAX))
}

/// The pause between two steps of pings (at least). Shorter steps spread the pings thinner
/// but wake the runtime more often and let fewer pongs share a wake-up: with 19,000 idle
/// sockets, 10 ms steps cost 2.6 % of a core instead of ~1.4 %, 100 ms steps ~0.2 % more,
/// 250 ms steps no more than one burst per sweep within the noise (BENCHMARKS.md, fix 9).
const PING_STEP_EVERY: Duration = Duration::from_millis(250);

/// Every eighth of the heartbeat interval: closes silent and expired sockets, then sends the
/// pings that came due, spread evenly over most of the time until the next sweep.
///
/// Sending them all at once put a burst of work in front of live traffic: at 10,000 sockets
/// and a quarter-interval sweep, 2,500 pings and as many pongs at once every 6 s, which
/// showed up as 40–200 ms stalls in the command round trip's tail (p99 at 2,000 commands/s
/// 130–200 ms before, 18–27 ms after). Spread out, a ping leaves at most ~1.2 intervals
/// after the previous one (sweep granularity plus the spreading), well inside the agent's
/// 2.5-interval liveness deadline and the relay's 1.75-interval silence limit.
async fn heartbeat_sweeper(app: Arc<App>) {
    let period = (app.cfg.heartbeat() / 8).max(Duration::from_millis(50));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let due = app.hub.sweep(now_ms() / 1000);
        if due.is_empty() {
            continue;
        }
        // Equal steps at least PING_STEP_EVERY apart, within 80 % of the period.
        let spread = period * 4 / 5;
        let steps = (spread.as_millis() / PING_STEP_EVERY.as_millis()).max(1) as usize;
        let per = due.len().div_ceil(steps).max(1);
        let pause = spread / steps as u32;
        let mut chunks = due.chunks(per).peekable();
        while let Some(chunk) = chunks.next() {
            for c in chunk {
                c.ping();
            }
            if chunks.peek().is_some() {
                tokio::time::sleep(pause).await;
            }
        }
    }
}

async fn expiry_sweeper(app: Arc<App>) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        loop {
            match app.store.expire_due(now_ms(), 500).await {
                Ok(500) => continue,
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "expiry sweep failed");
                    break;
                }
            }
        }
    }
}

/// How often the in-flight sweep runs (several nodes only).
const IN_FLIGHT_EVERY: Duration = Duration::from_secs(2);
/// It looks at what was committed between this long ago...
const IN_FLIGHT_FROM_MS: i64 = 30_000;
/// ...and this long ago (younger changes are normally still on their way).
const IN_FLIGHT_TO_MS: i64 = 1_000;

/// Several nodes: a node may die between committing a change and publishing it, and then
/// no message ever announces it. Every node therefore looks, every 2 s, at changes
/// committed 1-30 s ago that still look unannounced to its own sockets — commands still
/// PENDING (sent to the devices it holds; the agent ignores ids it already has), devices
/// revoked (dropped from its cache, their sockets closed), and parent events beyond what
/// each of its parent sockets was sent (that socket catches up from the database).
/// Normally every list is empty or nearly so.
async fn in_flight_sweeper(app: Arc<App>) {
    let mut tick = tokio::time::interval(IN_FLIGHT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stop = app.shutdown_signal();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let now = now_ms();
        let (from, to) = (now - IN_FLIGHT_FROM_MS, now - IN_FLIGHT_TO_MS);
        match app.store.recent_pending(from, to, now, 2000).await {
            Ok(cmds) => {
                for c in cmds {
                    let target = match &c.device_id {
                        Some(d) => crate::bus::room::device(d),
                        None => crate::bus::room::child(&c.child_id),
                    };
                    app.hub.apply(crate::bus::BusMessage::deliver(
                        target,
                        crate::message::OutFrame::command_new(&c),
                    ));
                }
            }
            Err(e) => tracing::warn!(error = %e, "in-flight sweep (commands) failed"),
        }
        match app.store.recently_revoked(from, to).await {
            Ok(ids) => {
                for device_id in ids {
                    app.store.forget_device(&device_id);
                    app.hub
                        .apply(crate::bus::BusMessage::RevokeDevice { device_id });
                }
            }
            Err(e) => tracing::warn!(error = %e, "in-flight sweep (revocations) failed"),
        }
        match app.store.recently_promoted(from, to).await {
            Ok(list) => {
                for (device_id, gen) in list {
                    app.store.forget_device(&device_id);
                    app.hub
                        .apply(crate::bus::BusMessage::TokenPromoted { device_id, gen });
                }
            }
            Err(e) => tracing::warn!(error = %e, "in-flight sweep (token rotations) failed"),
        }
        match app.store.recent_event_heads(from, to, 50_000).await {
            Ok(heads) => {
                for (user, seq) in heads {
                    app.hub.catch_up_behind(&crate::bus::room::user(&user), seq);
                }
            }
            Err(e) => tracing::warn!(error = %e, "in-flight sweep (events) failed"),
        }
    }
}

async fn housekeeping(app: Arc<App>) {
    let mut tick = tokio::time::interval(Duration::from_secs(30));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = now_ms();
        let retention = app.cfg.event_retention_hours as i64 * 3_600_000;
        if let Err(e) = app.store.prune_events(now - retention).await {
            tracing::warn!(error = %e, "pruning events failed");
        }
        if let Err(e) = app.store.prune_pairings(now - 3_600_000).await {
            tracing::warn!(error = %e, "pruning pairings failed");
        }
        let day = 24 * 3_600_000;
        let keep = app.cfg.command_retention_days as i64 * day;
        if let Err(e) = app.store.prune_commands(now - keep).await {
            tracing::warn!(error = %e, "pruning commands failed");
        }
        let keep = app.cfg.notification_retention_days as i64 * day;
        if let Err(e) = app.store.prune_notifications(now - keep).await {
            tracing::warn!(error = %e, "pruning notifications failed");
        }
        app.limits.housekeeping();
        crate::metrics_setup::upkeep();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_fit_under_the_open_file_limit() {
        assert_eq!(connections_within(200_000, 20_000), 19_744);
        assert_eq!(connections_within(1_000, 20_000), 1_000);
        // A small limit keeps half for connections rather than none.
        assert_eq!(connections_within(200_000, 400), 200);
        assert_eq!(connections_within(200_000, 1), 1);
        assert_eq!(connections_within(5, 0), 1);
    }
}
