//! Prometheus text metrics: request counts by route and status class, and latency sums.

use crate::AppState;
use axum::extract::State;
use axum::http::{header, Method};
use axum::response::IntoResponse;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// (method, route, status) → (count, seconds).
type Series = BTreeMap<(String, String, u16), (u64, f64)>;

#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Series>,
}

impl Metrics {
    pub fn observe(&self, method: &Method, route: &str, status: u16, elapsed: Duration) {
        if let Ok(mut m) = self.inner.lock() {
            let e = m.entry((method.to_string(), route.to_string(), status)).or_insert((0, 0.0));
            e.0 += 1;
            e.1 += elapsed.as_secs_f64();
        }
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

pub async fn render(State(st): State<AppState>) -> impl IntoResponse {
    let mut out = String::new();
    out.push_str(
        "# HELP corvid_http_requests_total HTTP requests by method, route and status.\n# TYPE corvid_http_requests_total counter\n",
    );
    let snapshot: Vec<_> = st.metrics.inner.lock().map(|m| m.iter().map(|(k, v)| (k.clone(), *v)).collect()).unwrap_or_default();
    for ((method, route, status), (count, _)) in &snapshot {
        out.push_str(&format!(
            "corvid_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{status}\"}} {count}\n",
            escape(method),
            escape(route)
        ));
    }
    out.push_str("# HELP corvid_http_request_seconds_sum Time spent serving requests.\n# TYPE corvid_http_request_seconds_sum counter\n");
    for ((method, route, status), (_, secs)) in &snapshot {
        out.push_str(&format!(
            "corvid_http_request_seconds_sum{{method=\"{}\",route=\"{}\",status=\"{status}\"}} {secs:.6}\n",
            escape(method),
            escape(route)
        ));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
