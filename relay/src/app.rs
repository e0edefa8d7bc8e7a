//! The state every handler and socket shares, and the rate limiters.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::auth::Keys;
use crate::bus::Bus;
use crate::config::Config;
use crate::hub::Hub;
use crate::presence::Presence;
use crate::store::Store;

/// See [`App::client_ip`]. Entries are read right to left (proxies append), so a client's own
/// `X-Forwarded-For` entries are only ever to the left of the one its first proxy added.
pub fn client_ip(
    trusted: &[ipnet::IpNet],
    peer: IpAddr,
    headers: &axum::http::HeaderMap,
) -> IpAddr {
    let is_trusted = |ip: &IpAddr| {
        let ip = ip.to_canonical();
        trusted.iter().any(|n| n.contains(&ip))
    };
    let peer = peer.to_canonical();
    if !is_trusted(&peer) {
        return peer;
    }
    let mut client = peer;
    for value in headers.get_all("x-forwarded-for").iter().rev() {
        let Ok(v) = value.to_str() else { return client };
        for part in v.rsplit(',') {
            match part.trim().parse::<IpAddr>() {
                Ok(ip) if is_trusted(&ip) => client = ip,
                Ok(ip) => return ip.to_canonical(),
                Err(_) => return client,
            }
        }
    }
    client
}

/// Sockets of one node that catch up from the database at the same time, at most.
const CONCURRENT_CATCH_UPS: usize = 16;

/// Shared state of one relay process.
pub struct App {
    /// The configuration it started with.
    pub cfg: Config,
    /// Token verification.
    pub keys: Keys,
    /// Durable state.
    pub store: Arc<Store>,
    /// This node's sockets.
    pub hub: Arc<Hub>,
    /// Cross-node fan-out.
    pub bus: Arc<dyn Bus>,
    /// Where device presence is known: this node's hub alone, or entries shared by the
    /// nodes (Redis).
    pub presence: Arc<dyn Presence>,
    /// This node's id (presence entries, bus messages).
    pub node_id: String,
    /// Rate limiters.
    pub limits: Limits,
    /// One permit per open connection: an HTTP connection holds one until it ends or is
    /// upgraded, a WebSocket one of its own from the upgrade until it closes.
    pub http_conns: Arc<tokio::sync::Semaphore>,
    /// Sockets catching up from the database at once (after the bus lost messages, every
    /// socket of the node wants to): the rest wait their turn instead of piling on.
    pub catch_ups: tokio::sync::Semaphore,
    /// Socket.IO polling sessions of this node, and forwarding to other nodes.
    pub sio: crate::sio::Registry,
    shutting_down: AtomicBool,
    shutdown_tx: tokio::sync::watch::Sender<bool>,
}

impl App {
    /// Assembles the state.
    pub fn new(
        cfg: Config,
        keys: Keys,
        store: Arc<Store>,
        hub: Arc<Hub>,
        bus: Arc<dyn Bus>,
        presence: Arc<dyn Presence>,
        node_id: String,
    ) -> App {
        let limits = Limits::new(&cfg);
        let http_conns = Arc::new(tokio::sync::Semaphore::new(cfg.max_connections));
        let (shutdown_tx, _) = tokio::sync::watch::channel(false);
        App {
            cfg,
            keys,
            store,
            hub,
            bus,
            presence,
            node_id,
            limits,
            http_conns,
            catch_ups: tokio::sync::Semaphore::new(CONCURRENT_CATCH_UPS),
            sio: Default::default(),
            shutting_down: AtomicBool::new(false),
            shutdown_tx,
        }
    }

    /// The client's address: the peer, or behind a trusted proxy the rightmost
    /// `X-Forwarded-For` entry that is not itself a trusted proxy.
    pub fn client_ip(&self, peer: IpAddr, headers: &axum::http::HeaderMap) -> IpAddr {
        client_ip(&self.cfg.trusted_proxies, peer, headers)
    }

    /// Whether a graceful shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }

    /// Begins a graceful shutdown: wakes everything waiting on [`App::shutdown_signal`].
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
        self.shutdown_tx.send_replace(true);
    }

    /// A receiver that changes to `true` when shutdown begins.
    pub fn shutdown_signal(&self) -> tokio::sync::watch::Receiver<bool> {
        self.shutdown_tx.subscribe()
    }
}

/// Keyed rate limiters (token buckets).
pub struct Limits {
    /// WebSocket frames per user/device over all sockets.
    pub user_frames: DefaultKeyedRateLimiter<String>,
    /// REST requests per parent/device.
    pub requests: DefaultKeyedRateLimiter<String>,
    /// Pairing requests per source address.
    pub pairing_by_ip: DefaultKeyedRateLimiter<IpAddr>,
    /// Pairing codes entered per parent.
    pub pairing_claims: DefaultKeyedRateLimiter<String>,
}

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN)
}

/// A per-second quota with a burst of twice the rate.
pub fn per_second(rate: u32) -> Quota {
    Quota::per_second(nz(rate)).allow_burst(nz(rate.saturating_mul(2)))
}

impl Limits {
    fn new(cfg: &Config) -> Limits {
        Limits {
            user_frames: RateLimiter::keyed(per_second(cfg.user_frame_rate)),
            requests: RateLimiter::keyed(per_second(cfg.user_request_rate)),
            pairing_by_ip: RateLimiter::keyed(Quota::per_minute(nz(10))),
            pairing_claims: RateLimiter::keyed(
                Quota::with_period(Duration::from_secs(60))
                    .unwrap_or(Quota::per_minute(nz(1)))
                    .allow_burst(nz(10)),
            ),
        }
    }

    /// Forgets keys that are back to full capacity (keeps memory bounded).
    pub fn housekeeping(&self) {
        self.user_frames.retain_recent();
        self.requests.retain_recent();
        self.pairing_by_ip.retain_recent();
        self.pairing_claims.retain_recent();
        self.user_frames.shrink_to_fit();
        self.requests.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &[&str]) -> axum::http::HeaderMap {
        let mut h = axum::http::HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    #[test]
    fn client_address_behind_trusted_proxies_only() {
        let lb: IpAddr = "10.0.0.5".parse().unwrap();
        let trusted = vec![ipnet::IpNet::from(lb), "10.1.0.0/16".parse().unwrap()];
        // No proxies configured: the header is ignored.
        assert_eq!(client_ip(&[], lb, &headers(&["1.2.3.4"])), lb);
        // From the balancer: the rightmost untrusted entry, whatever the client prepended.
        let h = headers(&["6.6.6.6, 1.2.3.4, 10.1.2.3"]);
        assert_eq!(
            client_ip(&trusted, lb, &h),
            "1.2.3.4".parse::<IpAddr>().unwrap()
        );
        let h = headers(&["6.6.6.6", "1.2.3.4"]);
        assert_eq!(
            client_ip(&trusted, lb, &h),
            "1.2.3.4".parse::<IpAddr>().unwrap()
        );
        // Not from a trusted proxy: the header is not believed.
        let other: IpAddr = "8.8.8.8".parse().unwrap();
        assert_eq!(client_ip(&trusted, other, &h), other);
        // IPv4-mapped peers match IPv4 ranges; garbage stops the walk at the last proxy.
        let mapped: IpAddr = "::ffff:10.0.0.5".parse().unwrap();
        assert_eq!(
            client_ip(&trusted, mapped, &h),
            "1.2.3.4".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_ip(&trusted, lb, &headers(&["junk"])), lb);
    }
}
