//! The shim's settings, read from the environment once, in the library
//! constructor: the engine's sizes and durations (`CONVEYOR_WRITE_BUFFER`,
//! `CONVEYOR_IO_SIZE`, `CONVEYOR_READ_AHEAD`, `CONVEYOR_MAX_MEMORY`,
//! `CONVEYOR_MAX_AGE`, `CONVEYOR_DEFER_LIMIT`), the executor
//! (`CONVEYOR_EXECUTOR`), the selected paths (`CONVEYOR_PATHS`,
//! canonicalised and normalised), the mode (`CONVEYOR_MODE`) and the close
//! mode (`CONVEYOR_CLOSE`), crash safety (`CONVEYOR_CRASH_SAFE`,
//! `CONVEYOR_FLUSHER`). A bad value is reported by the caller,
//! naming the variable and the expected form.

use conveyor_engine::{parse_duration, parse_size, Config, Executor};

/// The variable `name`, if set (and valid Unicode).
pub fn var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Why the environment cannot be used: the variable and what was expected.
pub struct Bad(pub String);

fn size(name: &str, default: usize) -> Result<usize, Bad> {
    match var(name) {
        None => Ok(default),
        Some(v) => parse_size(&v).map_err(|e| Bad(format!("{name}: {e}"))),
    }
}

fn duration(name: &str, default: std::time::Duration) -> Result<std::time::Duration, Bad> {
    match var(name) {
        None => Ok(default),
        Some(v) => parse_duration(&v).map_err(|e| Bad(format!("{name}: {e}"))),
    }
}

pub use conveyor_fskind::{Close, Mode};

/// The mode from `CONVEYOR_MODE` (`auto` when unset or empty).
pub fn mode() -> Result<Mode, Bad> {
    Mode::parse(var("CONVEYOR_MODE").as_deref().unwrap_or("")).map_err(Bad)
}

/// The close mode from `CONVEYOR_CLOSE` (`wait` when unset or empty).
pub fn close() -> Result<Close, Bad> {
    Close::parse(var("CONVEYOR_CLOSE").as_deref().unwrap_or("")).map_err(Bad)
}

/// `CONVEYOR_CRASH_SAFE`: whether write-behind is crash-safe, and whether
/// that was asked for (set, rather than the default).
pub fn crash_safe() -> Result<(bool, bool), Bad> {
    let v = var("CONVEYOR_CRASH_SAFE").filter(|v| !v.trim().is_empty());
    let on = conveyor_fskind::parse_crash_safe(v.as_deref().unwrap_or("")).map_err(Bad)?;
    // Asked for only when set: the default is on too, but quietly.
    Ok((on, v.is_some() && on))
}

/// `CONVEYOR_FLUSHER`: the flusher's socket (`None` when unset or empty).
pub fn flusher() -> Option<std::path::PathBuf> {
    std::env::var_os("CONVEYOR_FLUSHER")
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
}

/// `CONVEYOR_STDOUT_BUFFER`: stdout's buffer size when descriptor 1 is a
/// selected file (`None` when unset or empty: glibc's own).
pub fn stdout_buffer() -> Result<Option<usize>, Bad> {
    match var("CONVEYOR_STDOUT_BUFFER").filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => parse_size(&v)
            .map(|n| Some(n.max(4096)))
            .map_err(|e| Bad(format!("CONVEYOR_STDOUT_BUFFER: {e}"))),
    }
}

/// The engine's configuration from the environment (defaults where unset).
pub fn config() -> Result<Config, Bad> {
    let d = Config::default();
    Ok(Config {
        write_buffer: size("CONVEYOR_WRITE_BUFFER", d.write_buffer)?,
        io_size: size("CONVEYOR_IO_SIZE", d.io_size)?,
        read_ahead: size("CONVEYOR_READ_AHEAD", d.read_ahead)?,
        max_memory: size("CONVEYOR_MAX_MEMORY", d.max_memory)?,
        max_age: duration("CONVEYOR_MAX_AGE", d.max_age)?,
        defer_limit: duration("CONVEYOR_DEFER_LIMIT", d.defer_limit)?,
        executor: match var("CONVEYOR_EXECUTOR").filter(|v| !v.is_empty()) {
            None => d.executor,
            Some(v) => Executor::parse(&v).map_err(|e| Bad(format!("CONVEYOR_EXECUTOR: {e}")))?,
        },
        ..d
    })
}

/// Lexically normalises an absolute path: no `.`, `..`, repeated or
/// trailing slashes.
pub fn normalize(p: &[u8]) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in p.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    let mut out = Vec::new();
    for c in parts {
        out.push(b'/');
        out.extend_from_slice(c);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

/// The `CONVEYOR_PATHS` entries, canonicalised where they exist;
/// relative entries are reported and left out.
pub fn paths(raw: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for entry in raw.split(':').filter(|e| !e.is_empty()) {
        if !entry.starts_with('/') {
            tracing::warn!(
                "CONVEYOR_PATHS: {entry:?} is not an absolute path; ignored (expected absolute directories separated by ':')"
            );
            continue;
        }
        match std::fs::canonicalize(entry) {
            Ok(p) => out.push(normalize(p.as_os_str().as_encoded_bytes())),
            Err(e) => {
                tracing::warn!(
                    "CONVEYOR_PATHS: {entry:?} cannot be resolved ({e}); files created under it later are still managed"
                );
                out.push(normalize(entry.as_bytes()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn paths_are_normalised_lexically() {
        for (raw, want) in [
            ("/", "/"),
            ("//", "/"),
            ("/a/b/", "/a/b"),
            ("/a//b/./c", "/a/b/c"),
            ("/a/b/../c", "/a/c"),
            ("/..", "/"),
            ("/a/../../b", "/b"),
        ] {
            assert_eq!(normalize(raw.as_bytes()), want.as_bytes(), "{raw}");
        }
    }
}
