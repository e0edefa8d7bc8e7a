//! The Prometheus recorder behind `/metrics` (one per process, installed on first start).

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the global recorder once; later calls (several relays in one test process) reuse it.
pub fn install() {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("safestream_delivery_latency_seconds".into()),
                &[
                    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
                    300.0,
                ],
            )
            .ok()?;
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        metrics::set_global_recorder(recorder).ok()?;
        describe();
        Some(handle)
    });
}

fn describe() {
    metrics::describe_gauge!("safestream_connections", "open sockets by role");
    metrics::describe_gauge!(
        "safestream_rooms",
        "rooms with at least one socket on this node"
    );
    metrics::describe_counter!(
        "safestream_commands_total",
        "command transitions by new status"
    );
    metrics::describe_histogram!(
        "safestream_delivery_latency_seconds",
        "command created -> written to a device socket"
    );
    metrics::describe_counter!(
        "safestream_rejects_total",
        "refused requests, frames and sockets by reason"
    );
    metrics::describe_counter!("safestream_http_requests_total", "HTTP responses by status");
    metrics::describe_counter!(
        "safestream_store_commits_total",
        "SQLite write transactions (each commits a batch of jobs)"
    );
    metrics::describe_counter!(
        "safestream_store_jobs_total",
        "SQLite write jobs committed or rolled back in a batch"
    );
    metrics::describe_counter!(
        "safestream_webhooks_sent_total",
        "webhook attempts answered 2xx (events delivered)"
    );
    metrics::describe_counter!(
        "safestream_webhooks_failed_total",
        "webhook attempts that failed (error answer, timeout, connection error)"
    );
    metrics::describe_counter!(
        "safestream_webhooks_retried_total",
        "failed webhook attempts scheduled to be tried again"
    );
    metrics::describe_counter!(
        "safestream_webhooks_parked_total",
        "webhook events parked as failed (4xx, or retried past the retry window)"
    );
    metrics::describe_gauge!(
        "safestream_webhook_backlog_age_seconds",
        "age of the oldest webhook event not yet delivered nor parked (0: none)"
    );
    metrics::describe_gauge!(
        "safestream_webhook_backlog",
        "webhook events waiting to be delivered"
    );
    metrics::describe_gauge!(
        "safestream_webhook_parked",
        "webhook events parked as failed"
    );
}

/// The Prometheus text.
pub fn render() -> String {
    match HANDLE.get() {
        Some(Some(h)) => h.render(),
        _ => String::new(),
    }
}

/// Periodic upkeep the exporter needs.
pub fn upkeep() {
    if let Some(Some(h)) = HANDLE.get() {
        h.run_upkeep();
    }
}
