//! Counters and latency histograms, rendered in the Prometheus text format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

use crate::model::timings::{Stage, TOTAL, Timings};

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 14] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// The histograms' stage labels: each stage of a prediction, then the whole.
fn stage_labels() -> impl Iterator<Item = &'static str> {
    Stage::ALL.into_iter().map(Stage::name).chain([TOTAL])
}

#[derive(Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        if let Some(i) = BUCKETS.iter().position(|b| seconds <= *b) {
            self.counts[i] += 1;
        }
        self.sum += seconds;
        self.count += 1;
    }

    /// The median, estimated as Prometheus' `histogram_quantile` does:
    /// linear within the bucket that holds it. `None` with no samples, or
    /// when the median is past the last bucket.
    fn median(&self) -> Option<f64> {
        let rank = self.count as f64 / 2.0;
        let mut below = 0.0;
        let mut lower = 0.0;
        for (upper, n) in BUCKETS.iter().zip(self.counts) {
            let n = n as f64;
            if n > 0.0 && below + n >= rank {
                return Some(lower + (upper - lower) * (rank - below) / n);
            }
            below += n;
            lower = *upper;
        }
        None
    }
}

/// One stage's latency, for the page.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StageSummary {
    pub stage: &'static str,
    pub count: u64,
    /// Estimated from the histogram's buckets.
    pub p50_ms: Option<f64>,
    pub mean_ms: Option<f64>,
}

#[derive(Default)]
struct Inner {
    requests: BTreeMap<(&'static str, u16), u64>,
    errors: BTreeMap<&'static str, u64>,
    /// One per [`stage_labels`].
    stages: [Histogram; Stage::ALL.len() + 1],
}

/// Process-wide metrics; cheap to update from any thread.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    pub fn request(&self, route: &'static str, status: u16) {
        *self.lock().requests.entry((route, status)).or_default() += 1;
    }

    pub fn error(&self, kind: &'static str) {
        *self.lock().errors.entry(kind).or_default() += 1;
    }

    /// Records one prediction's stage durations and its total.
    pub fn stages(&self, timings: &Timings, total: Duration) {
        let mut inner = self.lock();
        let durations = timings.iter().map(|(_, d)| d).chain([total]);
        for (h, d) in inner.stages.iter_mut().zip(durations) {
            h.observe(d.as_secs_f64());
        }
    }

    /// Requests answered so far, all routes and statuses.
    pub fn requests_total(&self) -> u64 {
        self.lock().requests.values().sum()
    }

    /// Each stage's median and mean, then the whole prediction's.
    pub fn stage_summary(&self) -> Vec<StageSummary> {
        let inner = self.lock();
        stage_labels()
            .zip(&inner.stages)
            .map(|(stage, h)| StageSummary {
                stage,
                count: h.count,
                p50_ms: h.median().map(|s| s * 1e3),
                mean_ms: (h.count > 0).then(|| h.sum / h.count as f64 * 1e3),
            })
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The text exposition; `extra` are `(name, help, type, labels, value)`
    /// lines (gauges and counters kept elsewhere), grouped by name.
    pub fn render(&self, extra: &[(&str, &str, &str, String, f64)]) -> String {
        let inner = self.lock();
        let mut out = String::new();
        out.push_str(
            "# HELP yolod_requests_total HTTP requests by route and status.\n# TYPE yolod_requests_total counter\n",
        );
        for ((route, status), n) in &inner.requests {
            let _ = writeln!(out, "yolod_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}");
        }
        out.push_str("# HELP yolod_errors_total Failed requests by kind.\n# TYPE yolod_errors_total counter\n");
        for (kind, n) in &inner.errors {
            let _ = writeln!(out, "yolod_errors_total{{kind=\"{kind}\"}} {n}");
        }
        out.push_str("# HELP yolod_stage_seconds Time per prediction stage.\n# TYPE yolod_stage_seconds histogram\n");
        for (stage, h) in stage_labels().zip(&inner.stages) {
            let mut cumulative = 0;
            for (le, c) in BUCKETS.iter().zip(h.counts) {
                cumulative += c;
                let _ = writeln!(out, "yolod_stage_seconds_bucket{{stage=\"{stage}\",le=\"{le}\"}} {cumulative}");
            }
            let _ = writeln!(out, "yolod_stage_seconds_bucket{{stage=\"{stage}\",le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(out, "yolod_stage_seconds_sum{{stage=\"{stage}\"}} {}", h.sum);
            let _ = writeln!(out, "yolod_stage_seconds_count{{stage=\"{stage}\"}} {}", h.count);
        }
        let mut last = "";
        for (name, help, kind, labels, value) in extra {
            if *name != last {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
                last = name;
            }
            let _ = writeln!(out, "{name}{labels} {value}");
        }
        out
    }
}

/// The MQTT publisher's counters and its connection gauge, as `render`'s extra lines.
pub fn mqtt(status: &crate::publish::Status) -> Vec<(&'static str, &'static str, &'static str, String, f64)> {
    vec![
        (
            "yolod_mqtt_connected",
            "1 while connected to the MQTT broker.",
            "gauge",
            String::new(),
            status.connected as u8 as f64,
        ),
        (
            "yolod_mqtt_published_total",
            "MQTT messages handed to the broker connection.",
            "counter",
            String::new(),
            status.published as f64,
        ),
        (
            "yolod_mqtt_dropped_total",
            "MQTT messages replaced by a newer one for their topic before they could be sent.",
            "counter",
            String::new(),
            status.dropped as f64,
        ),
        (
            "yolod_mqtt_reconnects_total",
            "Times the MQTT broker connection was made again.",
            "counter",
            String::new(),
            status.reconnects as f64,
        ),
        (
            "yolod_mqtt_queued",
            "MQTT messages waiting (at most one per topic).",
            "gauge",
            String::new(),
            status.queued as f64,
        ),
    ]
}

/// Escapes a Prometheus label value.
pub fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::default();
        let ms = Duration::from_millis;
        m.stages(&Timings::from([ms(1), ms(2), ms(120), ms(1)]), ms(130));
        m.stages(&Timings::from([ms(1), ms(2), ms(300), ms(1)]), ms(310));
        let text = m.render(&[]);
        assert!(text.contains("yolod_stage_seconds_bucket{stage=\"inference\",le=\"0.25\"} 1\n"));
        assert!(text.contains("yolod_stage_seconds_bucket{stage=\"inference\",le=\"0.5\"} 2\n"));
        assert!(text.contains("yolod_stage_seconds_count{stage=\"total\"} 2\n"));
    }

    #[test]
    fn the_median_is_read_from_the_buckets() {
        let m = Metrics::default();
        let ms = Duration::from_millis;
        assert_eq!(m.stage_summary()[0].p50_ms, None);
        // Inference: 30, 40, 60, 70 ms. Two fall in (25, 50], two in (50, 100]:
        // the median is the top of the first of those buckets.
        for t in [30, 40, 60, 70] {
            m.stages(&Timings::from([ms(1), ms(1), ms(t), ms(1)]), ms(t + 3));
        }
        let summary = m.stage_summary();
        let inference = summary.iter().find(|s| s.stage == "inference").unwrap();
        assert_eq!(inference.count, 4);
        assert!((inference.p50_ms.unwrap() - 50.0).abs() < 1e-9, "{inference:?}");
        assert!((inference.mean_ms.unwrap() - 50.0).abs() < 1e-9);
        assert_eq!(summary.last().unwrap().stage, "total");
        m.request("/", 200);
        m.request("/v1/predict", 400);
        assert_eq!(m.requests_total(), 2);
    }

    #[test]
    fn requests_are_counted_by_route_and_status() {
        let m = Metrics::default();
        m.request("/v1/predict", 200);
        m.request("/v1/predict", 200);
        m.request("/v1/predict", 400);
        let text = m.render(&[("yolod_queue_depth", "Jobs waiting.", "gauge", String::new(), 3.0)]);
        assert!(text.contains("yolod_requests_total{route=\"/v1/predict\",status=\"200\"} 2\n"));
        assert!(text.contains("yolod_requests_total{route=\"/v1/predict\",status=\"400\"} 1\n"));
        assert!(text.contains("# TYPE yolod_queue_depth gauge\nyolod_queue_depth 3\n"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c"), "a\\\"b\\\\c");
    }
}
