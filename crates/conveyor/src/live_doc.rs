//! The `conveyor-live/1` document the shim keeps in `DIR/<pid>.live` while
//! a process has managed files (see docs/reference.md), parsed strictly.

use serde::{Deserialize, Serialize};

/// Schema identifier the shim writes.
pub const SCHEMA: &str = "conveyor-live/1";

/// One process's live figures (field names as written by the shim).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[allow(missing_docs)]
pub struct Live {
    pub schema: String,
    pub pid: i64,
    pub start_ticks: u64,
    pub since_unix_ms: u64,
    pub refreshed_unix_ms: u64,
    pub command: String,
    pub open_files: u64,
    pub app_write_bytes: u64,
    pub app_read_bytes: u64,
    pub storage_write_bytes: u64,
    pub storage_read_bytes: u64,
    pub storage_write_requests: u64,
    pub storage_read_requests: u64,
    pub app_write_bytes_per_s: f64,
    pub app_read_bytes_per_s: f64,
    pub storage_write_bytes_per_s: f64,
    pub storage_read_bytes_per_s: f64,
    pub write_buffered_bytes: u64,
    pub write_limit_bytes: u64,
    pub memory_used_bytes: u64,
    pub memory_cap_bytes: u64,
    pub storage_write_recent_ns: u64,
    pub storage_read_recent_ns: u64,
    pub storage_write_p99_ns: u64,
    pub storage_read_p99_ns: u64,
    pub buffer_full_waits: u64,
    pub errors: u64,
    pub last_errno: u64,
    pub lost_bytes: u64,
}

/// Parses a live file, naming what is wrong with it.
pub fn parse(text: &str) -> Result<Live, String> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    match v.get("schema") {
        Some(serde_json::Value::String(s)) if s == SCHEMA => {}
        Some(other) => return Err(format!("schema is {other}, expected \"{SCHEMA}\"")),
        None => return Err(format!("no \"schema\" field (expected \"{SCHEMA}\")")),
    }
    Live::deserialize(v).map_err(|e| format!("not a valid {SCHEMA} document: {e}"))
}
