//! The `conveyor-stats/1` document the shim writes at exit
//! (`CONVEYOR_STATS`), parsed strictly: every field must be there with the
//! right type, so a truncated or foreign file is named, not half-merged.

use serde::{Deserialize, Serialize};

/// Schema identifier the shim writes.
pub const SCHEMA: &str = "conveyor-stats/1";

/// Counters of one file, or of a whole process (field names as written by
/// the shim; see docs/reference.md).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[allow(missing_docs)]
pub struct Stats {
    pub app_write_bytes: u64,
    pub app_read_bytes: u64,
    pub storage_write_bytes: u64,
    pub storage_read_bytes: u64,
    pub storage_write_requests: u64,
    pub storage_read_requests: u64,
    pub avg_write_request_bytes: u64,
    pub avg_read_request_bytes: u64,
    pub app_write_calls: u64,
    pub app_read_calls: u64,
    pub app_wait_ns: u64,
    pub app_write_p50_ns: u64,
    pub app_write_p99_ns: u64,
    pub storage_write_p50_ns: u64,
    pub storage_write_p99_ns: u64,
    pub read_ahead_hits: u64,
    pub read_ahead_misses: u64,
    pub read_ahead_hit_rate: f64,
    pub snoop_hits: u64,
    pub buffer_full_waits: u64,
    /// Absent from reports of versions before the io_uring executor.
    #[serde(default)]
    pub ring_requests: u64,
    pub errors: u64,
    pub last_errno: u64,
    pub lost_bytes: u64,
}

/// One row of a report.
#[derive(Clone, Debug, Deserialize)]
pub struct FileRow {
    /// Path as the kernel named the file when it was opened.
    pub path: String,
    /// Whether the process still had it open when it wrote the report.
    pub open: bool,
    /// Its counters.
    #[serde(flatten)]
    pub stats: Stats,
}

/// One process's report.
#[derive(Clone, Debug, Deserialize)]
pub struct Report {
    /// Process id.
    pub pid: i64,
    /// Its command line.
    pub command: String,
    /// Process totals.
    pub totals: Stats,
    /// Per-file rows.
    pub files: Vec<FileRow>,
}

/// Parses a report, naming what is wrong with it.
pub fn parse(text: &str) -> Result<Report, String> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    if !v.is_object() {
        return Err("not a JSON object".into());
    }
    match v.get("schema") {
        Some(serde_json::Value::String(s)) if s == SCHEMA => {}
        Some(other) => return Err(format!("schema is {other}, expected \"{SCHEMA}\"")),
        None => return Err(format!("no \"schema\" field (expected \"{SCHEMA}\")")),
    }
    Report::deserialize(v).map_err(|e| format!("not a valid {SCHEMA} document: {e}"))
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

impl Stats {
    /// Adds `o` to these counters. Sums are exact; averages and the hit
    /// rate are recomputed from the sums; percentiles cannot be merged
    /// without the histograms, so the larger one is kept (an upper bound).
    pub fn add(&mut self, o: &Stats) {
        self.app_write_bytes += o.app_write_bytes;
        self.app_read_bytes += o.app_read_bytes;
        self.storage_write_bytes += o.storage_write_bytes;
        self.storage_read_bytes += o.storage_read_bytes;
        self.storage_write_requests += o.storage_write_requests;
        self.storage_read_requests += o.storage_read_requests;
        self.app_write_calls += o.app_write_calls;
        self.app_read_calls += o.app_read_calls;
        self.app_wait_ns += o.app_wait_ns;
        self.app_write_p50_ns = self.app_write_p50_ns.max(o.app_write_p50_ns);
        self.app_write_p99_ns = self.app_write_p99_ns.max(o.app_write_p99_ns);
        self.storage_write_p50_ns = self.storage_write_p50_ns.max(o.storage_write_p50_ns);
        self.storage_write_p99_ns = self.storage_write_p99_ns.max(o.storage_write_p99_ns);
        self.read_ahead_hits += o.read_ahead_hits;
        self.read_ahead_misses += o.read_ahead_misses;
        self.snoop_hits += o.snoop_hits;
        self.buffer_full_waits += o.buffer_full_waits;
        self.ring_requests += o.ring_requests;
        self.errors += o.errors;
        if o.last_errno != 0 {
            self.last_errno = o.last_errno;
        }
        self.lost_bytes += o.lost_bytes;
        self.avg_write_request_bytes = self
            .storage_write_bytes
            .checked_div(self.storage_write_requests)
            .unwrap_or(0);
        self.avg_read_request_bytes = self
            .storage_read_bytes
            .checked_div(self.storage_read_requests)
            .unwrap_or(0);
        self.read_ahead_hit_rate = ratio(
            self.read_ahead_hits,
            self.read_ahead_hits + self.read_ahead_misses,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_schema_and_missing_fields_are_named() {
        assert!(parse("[1]").unwrap_err().contains("not a JSON object"));
        assert!(parse("{\"schema\":\"x/9\"}")
            .unwrap_err()
            .contains("schema is \"x/9\""));
        let e = parse("{\"schema\":\"conveyor-stats/1\",\"pid\":1}").unwrap_err();
        assert!(e.contains("missing field"), "{e}");
    }

    #[test]
    fn sums_and_recomputes_averages() {
        let mut a = Stats {
            storage_write_bytes: 100,
            storage_write_requests: 1,
            app_write_p99_ns: 5,
            ..Stats::default()
        };
        let b = Stats {
            storage_write_bytes: 300,
            storage_write_requests: 1,
            app_write_p99_ns: 3,
            read_ahead_hits: 1,
            read_ahead_misses: 3,
            ..Stats::default()
        };
        a.add(&b);
        assert_eq!(a.storage_write_bytes, 400);
        assert_eq!(a.avg_write_request_bytes, 200);
        assert_eq!(a.app_write_p99_ns, 5);
        assert_eq!(a.read_ahead_hit_rate, 0.25);
    }
}
