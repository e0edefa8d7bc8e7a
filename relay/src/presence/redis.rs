//! Device presence across nodes, in Redis.
//!
//! Each node knows its own sockets (`Hub` presence entries, which also count a device's
//! sockets for the per-device limit). With several nodes ([`RedisPresence`]), each node also
//! writes, for every device it holds, an entry with an expiry:
//!
//! - `<prefix>:presence:<device>`: a hash, field = node id, value = the presence JSON with
//!   its expiry (`e`, ms); the key itself expires too;
//! - `<prefix>:presence:due`: a sorted set of `<node>|<device>` by expiry.
//!
//! A node refreshes its entries every half heartbeat; entries live two heartbeats. A device
//! is online when any node has an unexpired entry for it. When a node dies its entries stop
//! being refreshed: the reaper (every node, every second) removes due entries in one Lua
//! script — so each is removed by exactly one node — and that node tells the guardians the
//! device went offline unless another node still holds it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{lookup, publish, Presence};
use crate::app::App;
use crate::hub::{self, Hub};
use crate::model::{now_ms, Millis};

/// Longest a presence call to Redis may take before it is given up (logged, not fatal).
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);
/// Due entries removed per reaper round at most.
const REAP_BATCH: usize = 500;

/// Removes due entries atomically; returns `[device, json, device, json, ...]`.
const REAP_LUA: &str = r#"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, m in ipairs(due) do
  redis.call('ZREM', KEYS[1], m)
  local sep = string.find(m, '|', 1, true)
  if sep then
    local node = string.sub(m, 1, sep - 1)
    local dev = string.sub(m, sep + 1)
    local h = ARGV[3] .. dev
    local v = redis.call('HGET', h, node)
    if v then
      redis.call('HDEL', h, node)
      table.insert(out, dev)
      table.insert(out, v)
    end
  end
end
return out
"#;

#[derive(Serialize, Deserialize)]
struct Entry {
    /// Child.
    c: String,
    /// Active viewing.
    a: bool,
    /// Current video.
    v: Value,
    /// Last seen (ms).
    l: Millis,
    /// Expires (ms).
    e: Millis,
}

impl Entry {
    fn presence(self) -> hub::Presence {
        hub::Presence {
            child_id: self.c,
            sockets: 1,
            active_viewing: self.a,
            current_video: self.v,
            last_seen: self.l,
        }
    }
}

/// Presence entries in Redis. See the module doc.
pub struct RedisPresence {
    hub: Arc<Hub>,
    conn: ConnectionManager,
    node: String,
    prefix: String,
    ttl_ms: i64,
    reap: redis::Script,
}

impl RedisPresence {
    /// Connects (Redis must answer at start). `hub` is this node's own view, asked first.
    pub async fn connect(
        url: &str,
        prefix: &str,
        node: &str,
        heartbeat_secs: u64,
        hub: Arc<Hub>,
    ) -> Result<RedisPresence, String> {
        let client = redis::Client::open(url).map_err(|e| format!("Redis URL: {e}"))?;
        let cfg = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(REDIS_TIMEOUT)
            .set_response_timeout(REDIS_TIMEOUT)
            .set_number_of_retries(2);
        let conn = tokio::time::timeout(
            Duration::from_secs(5),
            client.get_connection_manager_with_config(cfg),
        )
        .await
        .map_err(|_| "connecting to Redis timed out".to_string())?
        .map_err(|e| format!("connecting to Redis: {e}"))?;
        Ok(RedisPresence {
            hub,
            conn,
            node: node.to_string(),
            prefix: prefix.to_string(),
            ttl_ms: (heartbeat_secs * 2000) as i64,
            reap: redis::Script::new(REAP_LUA),
        })
    }

    fn key(&self, device_id: &str) -> String {
        format!("{}:presence:{device_id}", self.prefix)
    }

    fn due_key(&self) -> String {
        format!("{}:presence:due", self.prefix)
    }

    fn add_to(&self, pipe: &mut redis::Pipeline, device_id: &str, p: &hub::Presence, now: Millis) {
        let e = now + self.ttl_ms;
        let entry = Entry {
            c: p.child_id.clone(),
            a: p.active_viewing,
            v: p.current_video.clone(),
            l: p.last_seen,
            e,
        };
        let json = serde_json::to_string(&entry).unwrap_or_default();
        let key = self.key(device_id);
        pipe.cmd("HSET")
            .arg(&key)
            .arg(&self.node)
            .arg(json)
            .ignore()
            // The key outlives its entries (readers filter on `e`), so that the reaper
            // still finds a dead node's entry when it comes due.
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(self.ttl_ms * 3)
            .ignore()
            .cmd("ZADD")
            .arg(self.due_key())
            .arg(e)
            .arg(format!("{}|{device_id}", self.node))
            .ignore();
    }

    async fn run(&self, pipe: redis::Pipeline, what: &str) {
        let mut conn = self.conn.clone();
        let res: Result<redis::RedisResult<()>, _> =
            tokio::time::timeout(REDIS_TIMEOUT, pipe.query_async(&mut conn)).await;
        if !matches!(res, Ok(Ok(()))) {
            metrics::counter!("safestream_presence_errors_total").increment(1);
            tracing::warn!(
                what,
                "presence: a Redis write failed (entries catch up at the next refresh)"
            );
        }
    }

    /// This node holds the device (first socket, or a status change).
    pub async fn put(&self, device_id: &str, p: &hub::Presence) {
        // MULTI/EXEC: the reaper never sees the hash entry without its due-set member.
        let mut pipe = redis::pipe();
        pipe.atomic();
        self.add_to(&mut pipe, device_id, p, now_ms());
        self.run(pipe, "put").await;
    }

    /// This node no longer holds the device.
    pub async fn remove(&self, device_id: &str) {
        let mut pipe = redis::pipe();
        pipe.cmd("HDEL")
            .arg(self.key(device_id))
            .arg(&self.node)
            .ignore()
            .cmd("ZREM")
            .arg(self.due_key())
            .arg(format!("{}|{device_id}", self.node))
            .ignore();
        self.run(pipe, "remove").await;
    }

    /// Re-writes every entry this node holds with a fresh expiry.
    pub async fn refresh(&self, local: &[(String, hub::Presence)]) {
        let now = now_ms();
        for chunk in local.chunks(500) {
            let mut pipe = redis::pipe();
            pipe.atomic();
            for (id, p) in chunk {
                self.add_to(&mut pipe, id, p, now);
            }
            self.run(pipe, "refresh").await;
        }
    }

    /// The live presence of each device that any node holds (unexpired entries only).
    pub async fn get_many(&self, ids: &[String]) -> HashMap<String, hub::Presence> {
        let mut out = HashMap::new();
        if ids.is_empty() {
            return out;
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("HGETALL").arg(self.key(id));
        }
        let mut conn = self.conn.clone();
        let res: Result<redis::RedisResult<Vec<HashMap<String, String>>>, _> =
            tokio::time::timeout(REDIS_TIMEOUT, pipe.query_async(&mut conn)).await;
        let Ok(Ok(maps)) = res else {
            metrics::counter!("safestream_presence_errors_total").increment(1);
            tracing::warn!("presence: reading Redis failed; reporting this node's view only");
            return out;
        };
        let now = now_ms();
        for (id, fields) in ids.iter().zip(maps) {
            let best = fields
                .into_values()
                .filter_map(|v| serde_json::from_str::<Entry>(&v).ok())
                .filter(|e| e.e > now)
                .max_by_key(|e| e.l);
            if let Some(e) = best {
                out.insert(id.clone(), e.presence());
            }
        }
        out
    }

    /// Removes due entries (of dead nodes); returns the devices whose entry this call
    /// removed, with the last presence that entry held.
    async fn reap(&self) -> Vec<(String, hub::Presence)> {
        let mut conn = self.conn.clone();
        let mut inv = self.reap.key(self.due_key());
        inv.arg(now_ms())
            .arg(REAP_BATCH)
            .arg(format!("{}:presence:", self.prefix));
        let res: Result<redis::RedisResult<Vec<String>>, _> =
            tokio::time::timeout(REDIS_TIMEOUT, inv.invoke_async(&mut conn)).await;
        let Ok(Ok(flat)) = res else {
            return Vec::new();
        };
        flat.chunks(2)
            .filter_map(|pair| match pair {
                [dev, json] => serde_json::from_str::<Entry>(json)
                    .ok()
                    .map(|e| (dev.clone(), e.presence())),
                _ => None,
            })
            .collect()
    }
}

impl Presence for RedisPresence {
    fn advertise<'a>(&'a self, url: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let mut pipe = redis::pipe();
            pipe.cmd("SET")
                .arg(format!("{}:node:{}:url", self.prefix, self.node))
                .arg(url)
                .arg("EX")
                .arg(90)
                .ignore();
            self.run(pipe, "advertise").await;
        })
    }

    fn node_url<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Option<String>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let key = format!("{}:node:{node}:url", self.prefix);
            let mut cmd = redis::cmd("GET");
            cmd.arg(key);
            let get = cmd.query_async::<Option<String>>(&mut conn);
            tokio::time::timeout(REDIS_TIMEOUT, get).await.ok()?.ok()?
        })
    }

    fn lookup<'a>(&'a self, device_id: &'a str) -> BoxFuture<'a, Option<hub::Presence>> {
        Box::pin(async move {
            if let Some(p) = self.hub.presence(device_id) {
                return Some(p);
            }
            self.get_many(&[device_id.to_string()])
                .await
                .remove(device_id)
        })
    }

    fn lookup_many<'a>(
        &'a self,
        ids: &'a [String],
    ) -> BoxFuture<'a, HashMap<String, hub::Presence>> {
        Box::pin(async move {
            let mut out = HashMap::new();
            let mut rest = Vec::new();
            for id in ids {
                match self.hub.presence(id) {
                    Some(p) => {
                        out.insert(id.clone(), p);
                    }
                    None => rest.push(id.clone()),
                }
            }
            out.extend(self.get_many(&rest).await);
            out
        })
    }

    fn announce<'a>(&'a self, device_id: &'a str, p: &'a hub::Presence) -> BoxFuture<'a, ()> {
        Box::pin(self.put(device_id, p))
    }

    fn withdraw<'a>(&'a self, device_id: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(self.remove(device_id))
    }

    /// Refreshes this node's entries and reaps dead nodes' entries until shutdown.
    fn maintain(self: Arc<Self>, app: Arc<App>) -> BoxFuture<'static, ()> {
        Box::pin(maintain(self, app))
    }
}

/// Refreshes this node's entries and reaps dead nodes' entries until shutdown.
async fn maintain(cluster: Arc<RedisPresence>, app: Arc<App>) {
    // Refreshing runs on its own: a long reap (a big node died) must never delay it, or this
    // node's own live entries would come due and be reported offline.
    let refresher = {
        let (app, cluster) = (app.clone(), cluster.clone());
        tokio::spawn(async move {
            let every = Duration::from_millis((app.cfg.heartbeat_secs * 500).max(500));
            let mut refresh = tokio::time::interval(every);
            let mut stop = app.shutdown_signal();
            loop {
                tokio::select! {
                    _ = refresh.tick() => cluster.refresh(&app.hub.local_devices()).await,
                    _ = stop.changed() => return,
                }
            }
        })
    };
    let mut reap = tokio::time::interval(Duration::from_secs(1));
    let mut stop = app.shutdown_signal();
    loop {
        tokio::select! {
            _ = reap.tick() => {
                for (device_id, last) in cluster.reap().await {
                    metrics::counter!("safestream_presence_reaped_total").increment(1);
                    if lookup(&app, &device_id).await.is_none() {
                        publish(&app, &device_id, &last).await;
                        super::webhook(&app, &device_id, &last, false).await;
                    }
                }
            }
            _ = stop.changed() => {
                refresher.abort();
                return;
            }
        }
    }
}
