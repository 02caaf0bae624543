//! The pinned metric families, rendered from one [`crate::region::Snapshot`].
//!
//! Names and labels are a contract (dashboards and alerts use them); the table is in the
//! README. Series are written for every registered model even at zero, so that a dashboard
//! has its lines from the first scrape; the request counter and the request duration have a
//! series per label set seen.

use crate::expo::{Format, Kind, Writer};
use crate::region::{
    DURATION_BUCKETS, HIST_WORDS, LOAD_BUCKETS, M_CALLS, M_CANCELLED, M_DURATION, M_IN_FLIGHT,
    M_INFERENCE, M_LOAD, M_QUEUE, M_QUEUE_DEPTH, M_ROWS, ModelId, OVERFLOW_KEY, Protocol,
    ROW_BUCKETS, Region, Snapshot, split_key,
};

/// What the scoreboard knows of the workers, and the region does not.
#[derive(Clone, Copy, Debug, Default)]
pub struct Workers<'a> {
    /// How many workers are in each state, by `state` label.
    pub by_state: &'a [(&'a str, u64)],
    /// Each live worker's open connections, by scoreboard slot.
    pub connections: &'a [(usize, u64)],
    /// The certificate served over TLS: its file and when it expires (seconds since the
    /// epoch), as the worker answering was given them.
    pub certificate: Option<(&'a str, i64)>,
}

/// The exposition of everything the region holds, with what the scoreboard knows.
pub fn render(region: &Region, format: Format, workers: Workers<'_>) -> String {
    let snap = region.snapshot();
    let mut w = Writer::new(format);
    requests(&mut w, &snap);
    durations(&mut w, &snap);
    model_histograms(&mut w, &snap);
    model_counters(&mut w, &snap);

    w.family("serve_workers", Kind::Gauge, "Worker processes by state.");
    for (state, n) in workers.by_state {
        w.sample("serve_workers", &[("state", state)], n);
    }
    connections(&mut w, &snap, workers.connections);
    w.family(
        "serve_worker_restarts_total",
        Kind::Counter,
        "Workers replaced, by cause.",
    );
    for (cause, n) in snap.restarts() {
        w.sample("serve_worker_restarts_total", &[("cause", cause)], n);
    }
    w.family(
        "serve_reloads_total",
        Kind::Counter,
        "Reloads (HUP), by result.",
    );
    w.sample("serve_reloads_total", &[("result", "ok")], snap.reloads[0]);
    w.sample(
        "serve_reloads_total",
        &[("result", "failed")],
        snap.reloads[1],
    );
    if let Some((file, expiry)) = workers.certificate {
        w.family(
            "serve_tls_certificate_expiry_timestamp_seconds",
            Kind::Gauge,
            "When the certificate served over TLS (--certfile) expires, in seconds since the epoch.",
        );
        w.sample(
            "serve_tls_certificate_expiry_timestamp_seconds",
            &[("file", file)],
            expiry,
        );
    }
    w.family(
        "serve_build_info",
        Kind::Gauge,
        "The serve version running.",
    );
    w.sample(
        "serve_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1,
    );
    w.finish()
}

fn connections(w: &mut Writer, snap: &Snapshot, by_slot: &[(usize, u64)]) {
    w.family(
        "serve_worker_connections",
        Kind::Gauge,
        "Open connections of each worker, by scoreboard slot (reused by the worker that \
         replaces it), on the listeners that share connections (all but --metrics-bind's).",
    );
    for (slot, n) in by_slot {
        let slot = slot.to_string();
        w.sample("serve_worker_connections", &[("slot", slot.as_str())], n);
    }
    w.family(
        "serve_connections_total",
        Kind::Counter,
        "Connections accepted, every listener.",
    );
    w.sample("serve_connections_total", &[], snap.connections[0]);
    w.family(
        "serve_connections_recycled_total",
        Kind::Counter,
        "Keep-alive connections told to close past --max-connection-age (Connection: close, \
         or GOAWAY on HTTP/2), so that their clients reconnect to the least loaded worker.",
    );
    w.sample("serve_connections_recycled_total", &[], snap.connections[1]);
    w.family(
        "serve_connections_dropped_total",
        Kind::Counter,
        "Connections dropped before they sent a request: a failed TLS handshake, a head or \
         handshake past --header-timeout or slower than --min-rate, or one that gave way when \
         its worker was full.",
    );
    for why in crate::region::Dropped::ALL {
        w.sample(
            "serve_connections_dropped_total",
            &[("reason", why.label())],
            snap.connections[2 + why as usize],
        );
    }
}

fn names(snap: &Snapshot) -> impl Iterator<Item = (ModelId, &str)> {
    snap.names.iter().map(|(id, n)| (*id, n.as_str()))
}

/// The named models, without `""` and without an unused `_overflow`.
fn models(snap: &Snapshot) -> impl Iterator<Item = (ModelId, &str)> {
    names(snap)
        .filter(|(id, _)| *id != ModelId::NONE && (*id != ModelId::OVERFLOW || used(snap, *id)))
}

fn used(snap: &Snapshot, id: ModelId) -> bool {
    snap.histogram(id, M_LOAD)[..HIST_WORDS - 1]
        .iter()
        .chain(&[snap.model(id, M_CALLS), snap.requests_of(id)])
        .any(|&v| v != 0)
}

fn name_of(snap: &Snapshot, id: ModelId) -> &str {
    names(snap)
        .find(|(i, _)| *i == id)
        .map_or("_overflow", |(_, n)| n)
}

fn requests(w: &mut Writer, snap: &Snapshot) {
    w.family(
        "serve_requests_total",
        Kind::Counter,
        "HTTP requests answered, by model, protocol and status code.",
    );
    for (&key, &count) in &snap.requests {
        if key == OVERFLOW_KEY {
            let o = "_overflow";
            let labels = [("model", o), ("protocol", o), ("code", o)];
            w.sample("serve_requests_total", &labels, count);
            continue;
        }
        let (model, protocol, code) = split_key(key);
        let code = code.to_string();
        let labels = [
            ("model", name_of(snap, model)),
            ("protocol", protocol.label()),
            ("code", code.as_str()),
        ];
        w.sample("serve_requests_total", &labels, count);
    }
}

fn seconds(bounds: &[u64]) -> Vec<f64> {
    bounds.iter().map(|&ns| ns as f64 / 1e9).collect()
}

fn durations(w: &mut Writer, snap: &Snapshot) {
    let name = "serve_request_duration_seconds";
    w.family(
        name,
        Kind::Histogram,
        "Time from a request's head to its answer, by model and protocol.",
    );
    let bounds = seconds(&DURATION_BUCKETS);
    for (id, model) in names(snap) {
        for protocol in Protocol::ALL {
            let h = snap.histogram(id, M_DURATION + protocol as usize * HIST_WORDS);
            let (counts, sum) = h.split_at(HIST_WORDS - 1);
            if counts.iter().all(|&c| c == 0) {
                continue;
            }
            let labels = [("model", model), ("protocol", protocol.label())];
            w.histogram(name, &labels, &bounds, counts, sum[0] as f64 / 1e9);
        }
    }
}

fn model_histograms(w: &mut Writer, snap: &Snapshot) {
    let families: [(&str, &str, usize, &[u64], f64); 4] = [
        (
            "serve_queue_duration_seconds",
            "Time a request waited in its model's queue before it ran.",
            M_QUEUE,
            &DURATION_BUCKETS,
            1e9,
        ),
        (
            "serve_inference_duration_seconds",
            "Time of one model call (tract), inputs stacked included.",
            M_INFERENCE,
            &DURATION_BUCKETS,
            1e9,
        ),
        (
            "serve_batch_rows",
            "Rows per model call, after merging requests.",
            M_ROWS,
            &ROW_BUCKETS,
            1.0,
        ),
        (
            "serve_model_load_seconds",
            "Time to build a model's plan, in a worker or in the master (--preload).",
            M_LOAD,
            &LOAD_BUCKETS,
            1e9,
        ),
    ];
    for (name, help, offset, bounds, unit) in families {
        w.family(name, Kind::Histogram, help);
        let bounds: Vec<f64> = bounds.iter().map(|&b| b as f64 / unit).collect();
        for (id, model) in models(snap) {
            let h = snap.histogram(id, offset);
            let (counts, sum) = h.split_at(HIST_WORDS - 1);
            w.histogram(
                name,
                &[("model", model)],
                &bounds,
                counts,
                sum[0] as f64 / unit,
            );
        }
    }
}

fn model_counters(w: &mut Writer, snap: &Snapshot) {
    w.family(
        "serve_model_calls_total",
        Kind::Counter,
        "Model calls (tract runs); fewer than requests when batching merges them.",
    );
    for (id, model) in models(snap) {
        w.sample(
            "serve_model_calls_total",
            &[("model", model)],
            snap.model(id, M_CALLS),
        );
    }
    w.family(
        "serve_requests_cancelled_total",
        Kind::Counter,
        "Queued requests dropped before they reached the model, by reason.",
    );
    for (id, model) in models(snap) {
        for (i, reason) in ["client_gone", "timeout"].into_iter().enumerate() {
            let n = snap.model(id, M_CANCELLED + i);
            w.sample(
                "serve_requests_cancelled_total",
                &[("model", model), ("reason", reason)],
                n,
            );
        }
    }
    for (name, help, offset) in [
        (
            "serve_requests_in_flight",
            "Requests in a model's hands: queued or running.",
            M_IN_FLIGHT,
        ),
        (
            "serve_queue_depth",
            "Requests waiting in a model's queue.",
            M_QUEUE_DEPTH,
        ),
    ] {
        w.family(name, Kind::Gauge, help);
        for (id, model) in models(snap) {
            let v = snap.model(id, offset) as i64;
            w.sample(name, &[("model", model)], v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expo::float;
    use crate::record::Recorder;
    use std::time::Duration;

    fn region_with_traffic() -> Region {
        let region = Region::private(2);
        let iris = region.register_model("iris");
        region.slot_claimed(0);
        let r = Recorder::for_slot(region, 0);
        r.request(iris, Protocol::V2, 200, Duration::from_millis(2));
        r.request(
            ModelId::NONE,
            Protocol::Health,
            200,
            Duration::from_micros(20),
        );
        r.queued(iris);
        r.started(iris, Duration::from_micros(30));
        r.call(iris, 1, 1, 1, Duration::from_micros(40));
        r.loaded(iris, Duration::from_millis(30));
        r.connection_accepted();
        region
    }

    #[test]
    fn every_pinned_family_is_there() {
        let workers = Workers {
            by_state: &[("serving", 2)],
            connections: &[(0, 3), (1, 2)],
            certificate: None,
        };
        let text = render(&region_with_traffic(), Format::Prometheus, workers);
        for family in [
            "serve_requests_total",
            "serve_request_duration_seconds",
            "serve_queue_duration_seconds",
            "serve_inference_duration_seconds",
            "serve_batch_rows",
            "serve_model_calls_total",
            "serve_requests_cancelled_total",
            "serve_requests_in_flight",
            "serve_queue_depth",
            "serve_workers",
            "serve_worker_restarts_total",
            "serve_reloads_total",
            "serve_model_load_seconds",
            "serve_build_info",
            "serve_worker_connections",
            "serve_connections_total",
            "serve_connections_recycled_total",
        ] {
            assert!(
                text.contains(&format!("# TYPE {family} ")),
                "{family}:\n{text}"
            );
        }
        assert!(
            text.contains("serve_requests_total{model=\"iris\",protocol=\"v2\",code=\"200\"} 1\n")
        );
        assert!(
            text.contains("serve_requests_total{model=\"\",protocol=\"health\",code=\"200\"} 1\n")
        );
        assert!(text.contains(
            "serve_request_duration_seconds_bucket{model=\"iris\",protocol=\"v2\",le=\"0.0025\"} 1\n"
        ));
        assert!(text.contains("serve_model_calls_total{model=\"iris\"} 1\n"));
        assert!(text.contains("serve_requests_in_flight{model=\"iris\"} 0\n"));
        assert!(text.contains("serve_batch_rows_bucket{model=\"iris\",le=\"1.0\"} 1\n"));
        assert!(text.contains("serve_worker_connections{slot=\"1\"} 2\n"));
        assert!(text.contains("serve_connections_total 1\n"), "{text}");
        assert!(text.contains("serve_connections_recycled_total 0\n"));
        assert!(!text.contains("_overflow"), "{text}");
    }

    #[test]
    fn openmetrics_ends_with_eof() {
        let text = render(
            &region_with_traffic(),
            Format::OpenMetrics,
            Workers::default(),
        );
        assert!(text.ends_with("# EOF\n"));
        assert!(text.contains("# TYPE serve_requests counter\n"));
        assert!(text.contains("serve_requests_total{"));
    }

    #[test]
    fn floats_keep_a_fraction() {
        assert_eq!(float(1.0), "1.0");
        assert_eq!(float(0.00005), "0.00005");
        assert_eq!(float(10.0), "10.0");
    }
}
