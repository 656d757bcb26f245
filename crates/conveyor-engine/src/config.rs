//! Engine settings and the syntax of the `CONVEYOR_*` values: sizes
//! (`4096`, `64K`, `8M`, `1G`, `1GiB`), durations (`500ms`, `5s`, `2m`) and
//! log levels. The shim and the `conveyor` launcher both parse with these,
//! so a value the launcher accepts is one the shim accepts, and both name a
//! bad one in the same words.

use std::fmt;
use std::time::Duration;

/// Tunables of one [`crate::Engine`]. Defaults come from the benchmark in
/// `benches/` (see docs/performance.md).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Per-file cap of write-behind memory (`CONVEYOR_WRITE_BUFFER`).
    pub write_buffer: usize,
    /// Per-file write-behind memory a file starts with; it doubles each time
    /// a writer has to wait, up to `write_buffer`.
    pub initial_write_buffer: usize,
    /// Largest single storage request (`CONVEYOR_IO_SIZE`).
    pub io_size: usize,
    /// Largest read-ahead window per reader (`CONVEYOR_READ_AHEAD`).
    pub read_ahead: usize,
    /// Read-ahead window a sequential reader starts with.
    pub initial_read_ahead: usize,
    /// Process-wide cap on buffered and prefetched bytes (`CONVEYOR_MAX_MEMORY`).
    pub max_memory: usize,
    /// Most write requests one file keeps in flight (the AIMD ceiling).
    /// One by default: a request that fails then leaves on storage exactly
    /// the data before it, as the program's own sequential writes would,
    /// never later data beyond a hole; and the kernel runs the writes to
    /// one FUSE file one at a time anyway.
    pub max_inflight: usize,
    /// Worker threads shared by all files, started on demand.
    pub workers: usize,
    /// Where background requests run (`CONVEYOR_EXECUTOR`).
    pub executor: Executor,
    /// Most background requests (write batches and prefetches of all its
    /// files) one filesystem keeps in flight: the ceiling of its AIMD
    /// depth, which both executors follow. A file always has one.
    pub fs_inflight: usize,
    /// Oldest a pending write may get while the program goes on writing
    /// (`CONVEYOR_MAX_AGE`): a write waits until older data is on storage;
    /// and oldest read-ahead data may get before it is read again.
    pub max_age: Duration,
    /// Longest that pending data smaller than one request waits for the
    /// program's own next flush or close where background I/O would cost a
    /// request more (`Backend::defers_background`); then it is written in
    /// the background, as any other file's.
    pub defer_limit: Duration,
    /// A reader that comes back to a file after a pause this long finds
    /// its read-ahead data dropped and reads storage again: another
    /// program may have changed the file meanwhile.
    pub revalidate_after: Duration,
}

/// Where the engine's background requests run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Executor {
    /// Worker threads: each request is a blocking call on a worker.
    Pool,
    /// io_uring: write requests are submitted from the thread that starts
    /// them and completed by one reaper thread; the pool takes prefetches,
    /// what the ring cannot take (see `ring.rs`), and all of it where
    /// io_uring is refused.
    Uring,
}

impl Executor {
    /// Parses `pool` or `uring` (`CONVEYOR_EXECUTOR`).
    pub fn parse(input: &str) -> Result<Executor, ExecutorError> {
        match input.trim().to_ascii_lowercase().as_str() {
            "pool" => Ok(Executor::Pool),
            "uring" | "io_uring" | "io-uring" => Ok(Executor::Uring),
            _ => Err(ExecutorError {
                input: input.to_string(),
            }),
        }
    }

    /// The name `parse` takes.
    pub fn name(self) -> &'static str {
        match self {
            Executor::Pool => "pool",
            Executor::Uring => "uring",
        }
    }
}

/// Why an executor name was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecutorError {
    /// The text that was given.
    pub input: String,
}

impl fmt::Display for ExecutorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not an executor (expected pool or uring)",
            self.input
        )
    }
}

impl std::error::Error for ExecutorError {}

/// Bytes in one write-behind segment: the unit of buffer memory.
pub(crate) const SEGMENT: usize = conveyor_journal::SEGMENT;

impl Default for Config {
    fn default() -> Config {
        Config {
            write_buffer: 16 << 20,
            initial_write_buffer: 256 << 10,
            io_size: 1 << 20,
            read_ahead: 8 << 20,
            initial_read_ahead: 128 << 10,
            max_memory: 256 << 20,
            max_inflight: 1,
            workers: 16,
            executor: Executor::Pool,
            fs_inflight: 32,
            max_age: Duration::from_secs(5),
            defer_limit: Duration::from_millis(50),
            revalidate_after: Duration::from_millis(100),
        }
    }
}

impl Config {
    /// Brings related values into a consistent order, so that no setting can
    /// make a writer wait for memory that can never be granted.
    pub fn normalized(mut self) -> Config {
        self.io_size = self.io_size.max(4096);
        // One segment in flight must leave another to write into.
        self.write_buffer = self.write_buffer.max(2 * SEGMENT);
        self.initial_write_buffer = self.initial_write_buffer.clamp(SEGMENT, self.write_buffer);
        self.read_ahead = self.read_ahead.max(4096);
        self.initial_read_ahead = self.initial_read_ahead.clamp(4096, self.read_ahead);
        self.max_memory = self.max_memory.max(self.write_buffer);
        self.max_inflight = self.max_inflight.max(1);
        self.workers = self.workers.max(1);
        self.fs_inflight = self.fs_inflight.max(1);
        self.max_age = self.max_age.max(Duration::from_millis(1));
        self.revalidate_after = self.revalidate_after.min(self.max_age);
        self.defer_limit = self.defer_limit.min(self.max_age);
        self
    }
}

/// Why a size string was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SizeError {
    /// The text that was given.
    pub input: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl fmt::Display for SizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not a size ({}); expected a byte count such as 4096, 64K, 8M, 1G or 1GiB",
            self.input, self.reason
        )
    }
}

impl std::error::Error for SizeError {}

/// Parses `4096`, `64K`, `64k`, `64KB`, `64KiB`, `8M`, `1G`, `1T` (binary
/// multiples: K = 1024). Rejects empty, negative, fractional and overflowing
/// values rather than guessing.
pub fn parse_size(input: &str) -> Result<usize, SizeError> {
    let err = |reason| SizeError {
        input: input.to_string(),
        reason,
    };
    let s = input.trim();
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(err(if s.is_empty() {
            "empty"
        } else {
            "it does not start with a digit"
        }));
    }
    let (num, unit) = s.split_at(digits);
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(err("unknown unit; use K, M, G or T")),
    };
    let n: usize = num.parse().map_err(|_| err("too large"))?;
    n.checked_mul(1usize << shift)
        .ok_or_else(|| err("too large"))
}

/// Why a duration string was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DurationError {
    /// The text that was given.
    pub input: String,
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not a duration; expected a whole number of milliseconds, \
seconds or minutes of at least 1 ms, such as 500ms, 5s or 2m",
            self.input
        )
    }
}

impl std::error::Error for DurationError {}

/// Parses `500ms`, `5s`, `5` (seconds) or `2m`: a whole number and a unit,
/// at least one millisecond.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let err = || DurationError {
        input: input.to_string(),
    };
    let s = input.trim();
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let (num, unit) = s.split_at(digits);
    let n: u64 = num.parse().map_err(|_| err())?;
    let ms = match unit.trim().to_ascii_lowercase().as_str() {
        "ms" => Some(n),
        "" | "s" => n.checked_mul(1000),
        "m" | "min" => n.checked_mul(60_000),
        _ => None,
    };
    match ms {
        Some(ms) if ms > 0 => Ok(Duration::from_millis(ms)),
        _ => Err(err()),
    }
}

/// Why a log level string was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LevelError {
    /// The text that was given.
    pub input: String,
}

impl fmt::Display for LevelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not a log level (expected error, warn, info, debug, trace or off)",
            self.input
        )
    }
}

impl std::error::Error for LevelError {}

/// Parses a `CONVEYOR_LOG` value: `off` (or `none`) 0, `error` 1, `warn`
/// (or `warning`) 2, `info` 3, `debug` 4, `trace` 5; any case, surrounding
/// blanks ignored.
pub fn parse_log_level(input: &str) -> Result<u8, LevelError> {
    match input.trim().to_ascii_lowercase().as_str() {
        "off" | "none" => Ok(0),
        "error" => Ok(1),
        "warn" | "warning" => Ok(2),
        "info" => Ok(3),
        "debug" => Ok(4),
        "trace" => Ok(5),
        _ => Err(LevelError {
            input: input.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64K"), Ok(65536));
        assert_eq!(parse_size("64k"), Ok(65536));
        assert_eq!(parse_size("8M"), Ok(8 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size(" 2 MB "), Ok(2 << 20));
    }

    #[test]
    fn bad_sizes_are_rejected_with_a_reason() {
        for bad in [
            "",
            "K",
            "-1",
            "1.5M",
            "12Q",
            "99999999999999999999",
            "16777216T",
        ] {
            let e = parse_size(bad).expect_err(bad);
            assert!(e.to_string().contains("expected a byte count"), "{e}");
        }
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration(" 2m "), Ok(Duration::from_secs(120)));
        for bad in [
            "",
            "0",
            "0ms",
            "1.5s",
            "-1s",
            "5h",
            "ms",
            "99999999999999999999",
        ] {
            let e = parse_duration(bad).expect_err(bad);
            assert!(e.to_string().contains("expected a whole number"), "{e}");
        }
    }

    #[test]
    fn log_levels_parse() {
        assert_eq!(parse_log_level("off"), Ok(0));
        assert_eq!(parse_log_level(" Warning "), Ok(2));
        assert_eq!(parse_log_level("TRACE"), Ok(5));
        let e = parse_log_level("verbose").unwrap_err().to_string();
        assert!(e.starts_with("\"verbose\" is not a log level"), "{e}");
    }

    #[test]
    fn normalized_config_never_starves() {
        let c = Config {
            write_buffer: 1,
            max_memory: 0,
            initial_write_buffer: 1 << 40,
            ..Config::default()
        }
        .normalized();
        assert!(c.max_memory >= c.write_buffer && c.write_buffer >= SEGMENT);
        assert!(c.initial_write_buffer <= c.write_buffer);
    }
}
