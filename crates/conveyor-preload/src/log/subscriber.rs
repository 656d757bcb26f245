//! A minimal global `tracing` subscriber: each event becomes one line,
//! formatted into a fixed buffer (no allocation, no thread-locals) and
//! written at once with the real `write`. Spans are not used by the shim
//! and are accepted and ignored.

use super::limit::{self, Verdict};
use std::fmt::{self, Write};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// Longest line; longer messages are cut and end with `...`.
const MAX_LINE: usize = 1024;

/// One log line being built.
pub struct Line {
    buf: [u8; MAX_LINE],
    len: usize,
    cut: bool,
}

impl Line {
    /// An empty line.
    pub fn new() -> Line {
        Line {
            buf: [0; MAX_LINE],
            len: 0,
            cut: false,
        }
    }

    /// The line, ending in a newline.
    pub fn bytes(&mut self) -> &[u8] {
        // Room for "...\n" is kept by `write_str`.
        if self.cut {
            self.push(b"...");
        }
        if self.buf[..self.len].last() != Some(&b'\n') {
            self.push(b"\n");
        }
        &self.buf[..self.len]
    }

    fn push(&mut self, b: &[u8]) {
        let n = b.len().min(MAX_LINE - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&b[..n]);
        self.len += n;
    }
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = (MAX_LINE - 4).saturating_sub(self.len);
        let mut n = s.len().min(room);
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        if n < s.len() {
            self.cut = true;
        }
        // A message's own newlines would break "one line per event".
        for b in s[..n].bytes() {
            self.buf[self.len] = if b == b'\n' { b' ' } else { b };
            self.len += 1;
        }
        Ok(())
    }
}

impl Visit for Line {
    fn record_str(&mut self, f: &Field, v: &str) {
        if f.name() == "message" {
            let _ = self.write_str(v);
        } else {
            let _ = write!(self, " {}={v}", f.name());
        }
    }

    fn record_debug(&mut self, f: &Field, v: &dyn fmt::Debug) {
        if f.name() == "message" {
            let _ = write!(self, "{v:?}");
        } else {
            let _ = write!(self, " {}={v:?}", f.name());
        }
    }
}

fn level_rank(l: &Level) -> u8 {
    match *l {
        Level::ERROR => 1,
        Level::WARN => 2,
        Level::INFO => 3,
        Level::DEBUG => 4,
        Level::TRACE => 5,
    }
}

fn level_name(l: &Level) -> &'static str {
    match *l {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

/// The start of a line: on stderr `conveyor: LEVEL: `; in a log file also
/// the time and the pid, since several processes may share the file.
fn prefix(line: &mut Line, to_file: bool, level: &Level) {
    if to_file {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is writable; clock_gettime is not hooked.
        unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
        let _ = write!(
            line,
            "{}.{:03} conveyor[{}]: {}: ",
            ts.tv_sec,
            ts.tv_nsec / 1_000_000,
            super::pid(),
            level_name(level)
        );
    } else {
        let _ = write!(line, "conveyor: {}: ", level_name(level));
    }
}

/// Writes the line saying `n` messages from `meta`'s call site were held
/// back.
pub fn suppressed_line(meta: &'static Metadata<'static>, n: u64) {
    let (fd, to_file) = super::destination();
    let mut line = Line::new();
    prefix(&mut line, to_file, meta.level());
    let _ = write!(
        line,
        "suppressed {n} similar message{} ({}:{})",
        if n == 1 { "" } else { "s" },
        meta.module_path().unwrap_or("conveyor"),
        meta.line().unwrap_or(0)
    );
    super::write_fd(fd, line.bytes());
}

/// The shim's subscriber.
pub struct Shim;

impl Subscriber for Shim {
    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        level_rank(meta.level()) <= super::level()
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        use tracing::level_filters::LevelFilter;
        Some(match super::level() {
            0 => LevelFilter::OFF,
            1 => LevelFilter::ERROR,
            2 => LevelFilter::WARN,
            3 => LevelFilter::INFO,
            4 => LevelFilter::DEBUG,
            _ => LevelFilter::TRACE,
        })
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let meta = event.metadata();
        let held = match limit::check(meta) {
            Verdict::Drop => return,
            Verdict::Emit { held } => held,
        };
        if held > 0 {
            suppressed_line(meta, held);
        }
        let (fd, to_file) = super::destination();
        let mut line = Line::new();
        prefix(&mut line, to_file, meta.level());
        event.record(&mut line);
        super::write_fd(fd, line.bytes());
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}
