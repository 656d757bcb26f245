//! Every `CONVEYOR_*` setting as the shim will read it: the value in
//! effect (or the default), and what the shim would say about a bad one.
//!
//! The shim reports a bad value once and then passes everything through,
//! so a typo in an exported variable quietly turns conveyor off for a whole
//! run; `conveyor run` refuses to start with one, and `conveyor doctor`
//! shows them. Values are parsed with the engine's parsers, which the shim
//! uses too, so the messages are the shim's own.

use crate::units;
use conveyor_engine::{parse_duration, parse_log_level, parse_size, Config, Executor};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where a value comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The environment conveyor was started with.
    Environment,
    /// A command-line option of `conveyor run` (its name).
    Option(&'static str),
}

/// One setting's verdict.
pub struct Verdict {
    /// The variable.
    pub name: &'static str,
    /// The value set, if any, and where it came from.
    pub value: Option<(String, Origin)>,
    /// What applies: the value's meaning, or the default when unset.
    pub meaning: String,
    /// What the shim would say about the value, if it is bad.
    pub problem: Option<String>,
    /// Something worth knowing that is not an error.
    pub notes: Vec<String>,
}

/// The variables the shim reads (`CONVEYOR_TEST_COUNTS` is for the tests).
pub const KNOWN: &[&str] = &[
    "CONVEYOR_PATHS",
    "CONVEYOR_DISABLE",
    "CONVEYOR_MODE",
    "CONVEYOR_CLOSE",
    "CONVEYOR_EXECUTOR",
    "CONVEYOR_CRASH_SAFE",
    "CONVEYOR_FLUSHER",
    "CONVEYOR_LATE_ERRORS",
    "CONVEYOR_STATS",
    "CONVEYOR_LOG",
    "CONVEYOR_LOG_FILE",
    "CONVEYOR_WRITE_BUFFER",
    "CONVEYOR_IO_SIZE",
    "CONVEYOR_READ_AHEAD",
    "CONVEYOR_MAX_MEMORY",
    "CONVEYOR_STDOUT_BUFFER",
    "CONVEYOR_MAX_AGE",
    "CONVEYOR_DEFER_LIMIT",
    "CONVEYOR_LIVE_DIR",
    "CONVEYOR_TEST_COUNTS",
];

/// A value as it will be seen: an option of the launcher, else the
/// environment.
pub type Lookup<'a> = dyn Fn(&str) -> Option<(OsString, Origin)> + 'a;

/// The environment alone.
pub fn from_env(name: &str) -> Option<(OsString, Origin)> {
    std::env::var_os(name).map(|v| (v, Origin::Environment))
}

fn label(name: &'static str, origin: Origin) -> &'static str {
    match origin {
        Origin::Environment => name,
        Origin::Option(o) => o,
    }
}

/// The directory a file named by `template` (`%p` = pid) would be created
/// in, if it is missing or not a directory: what is wrong with it.
fn missing_dir(template: &str) -> Option<String> {
    let path = PathBuf::from(template.replace("%p", "1"));
    let abs = if path.is_absolute() {
        path
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    if abs.is_dir() {
        return Some(format!("{template} is a directory"));
    }
    let dir = abs.parent().unwrap_or(Path::new("/"));
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => None,
        Ok(_) => Some(format!("{} is not a directory", dir.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(format!(
            "directory {} does not exist (create it first)",
            dir.display()
        )),
        Err(e) => Some(format!("{}: {e}", dir.display())),
    }
}

/// The verdict on a value parsed by `parse`: shown as `show` makes it, or
/// the parser's message; `default` shown when unset.
fn parsed<T, E: std::fmt::Display>(
    name: &'static str,
    default: T,
    v: Option<(String, Origin)>,
    parse: impl Fn(&str) -> Result<T, E>,
    show: impl Fn(T) -> String,
) -> Verdict {
    let (meaning, problem) = match &v {
        None => (format!("{} (default)", show(default)), None),
        Some((s, _)) => match parse(s) {
            Ok(n) => (show(n), None),
            Err(e) => (
                String::new(),
                Some(format!(
                    "{name}: {e}; the shim would pass everything through"
                )),
            ),
        },
    };
    Verdict {
        name,
        value: v,
        meaning,
        problem,
        notes: Vec::new(),
    }
}

fn size(name: &'static str, default: usize, v: Option<(String, Origin)>) -> Verdict {
    parsed(name, default, v, parse_size, |n| units::bytes(n as u64))
}

fn duration(name: &'static str, default: Duration, v: Option<(String, Origin)>) -> Verdict {
    parsed(name, default, v, parse_duration, |t| {
        format!("{} ms", t.as_millis())
    })
}

fn lossy(v: Option<(OsString, Origin)>) -> Option<(String, Origin)> {
    v.map(|(s, o)| (s.to_string_lossy().into_owned(), o))
}

/// Checks every setting the shim reads, as `lookup` gives them.
pub fn check(lookup: &Lookup<'_>) -> Vec<Verdict> {
    let get = |n: &str| lossy(lookup(n));
    let d = Config::default();
    let mut out = Vec::new();

    let paths = get("CONVEYOR_PATHS").filter(|(s, _)| !s.is_empty());
    let mut v = Verdict {
        name: "CONVEYOR_PATHS",
        meaning: "unset: nothing is accelerated (default)".into(),
        value: paths.clone(),
        problem: None,
        notes: Vec::new(),
    };
    if let Some((raw, _)) = &paths {
        let entries: Vec<&str> = raw.split(':').filter(|e| !e.is_empty()).collect();
        let relative: Vec<&&str> = entries.iter().filter(|e| !e.starts_with('/')).collect();
        if let Some(r) = relative.first() {
            let effect = if relative.len() == entries.len() {
                "; CONVEYOR_PATHS has no usable entry, so the shim would pass everything through"
            } else {
                ""
            };
            v.problem = Some(format!(
                "CONVEYOR_PATHS: {r:?} is not an absolute path; ignored (expected absolute directories separated by ':'){effect}"
            ));
        }
        for e in entries.iter().filter(|e| e.starts_with('/')) {
            if !Path::new(e).exists() {
                v.notes.push(format!(
                    "CONVEYOR_PATHS entry {e} does not exist (yet); files created under it later are accelerated"
                ));
            }
        }
        v.meaning = format!("regular files under {} are accelerated", entries.join(", "));
    }
    out.push(v);

    let disable = get("CONVEYOR_DISABLE");
    let off = disable
        .as_ref()
        .is_some_and(|(s, _)| !s.is_empty() && s != "0");
    out.push(Verdict {
        name: "CONVEYOR_DISABLE",
        meaning: if off {
            "set: the shim loads and manages nothing".into()
        } else {
            "unset: the shim is active (default)".into()
        },
        value: disable,
        problem: None,
        notes: Vec::new(),
    });

    let mode = get("CONVEYOR_MODE").filter(|(s, _)| !s.trim().is_empty());
    use conveyor_fskind::Mode;
    let (meaning, problem) = match mode.as_ref().map(|(s, _)| Mode::parse(s)) {
        None => (
            "auto (default): selected files are accelerated except on fast local storage \
(tmpfs, ext4, xfs, btrfs...), which the kernel's page cache already serves"
                .into(),
            None,
        ),
        Some(Ok(Mode::Auto)) => (
            "selected files are accelerated except on fast local storage".into(),
            None,
        ),
        Some(Ok(Mode::Always)) => (
            "every selected file is accelerated, local storage included".into(),
            None,
        ),
        Some(Ok(Mode::Off)) => ("the shim loads and manages nothing".into(), None),
        Some(Err(e)) => (
            String::new(),
            Some(format!("{e}; the shim would pass everything through")),
        ),
    };
    out.push(Verdict {
        name: "CONVEYOR_MODE",
        meaning,
        value: mode,
        problem,
        notes: Vec::new(),
    });

    let close = get("CONVEYOR_CLOSE").filter(|(s, _)| !s.trim().is_empty());
    use conveyor_fskind::Close;
    let (meaning, problem) = match close.as_ref().map(|(s, _)| Close::parse(s)) {
        None => (
            "wait (default): close returns once the file's data is on storage".into(),
            None,
        ),
        Some(Ok(Close::Wait)) => (
            "close returns once the file's data is on storage".into(),
            None,
        ),
        Some(Ok(Close::Relaxed)) => (
            "relaxed: close returns once the data is queued; other programs see it for sure \
after this process's next exit, exec, fsync or lock"
                .into(),
            None,
        ),
        Some(Err(e)) => (
            String::new(),
            Some(format!("{e}; the shim would pass everything through")),
        ),
    };
    out.push(Verdict {
        name: "CONVEYOR_CLOSE",
        meaning,
        value: close,
        problem,
        notes: Vec::new(),
    });

    let executor = get("CONVEYOR_EXECUTOR").filter(|(s, _)| !s.trim().is_empty());
    let (meaning, problem) = match executor.as_ref().map(|(s, _)| Executor::parse(s)) {
        None => (
            "pool: background requests on worker threads (default)".into(),
            None,
        ),
        Some(Ok(Executor::Pool)) => ("pool: background requests on worker threads".into(), None),
        Some(Ok(Executor::Uring)) => (
            "uring: background writes on io_uring (prefetches, and everything where the kernel refuses io_uring, on the worker pool)"
                .into(),
            None,
        ),
        Some(Err(e)) => (
            String::new(),
            Some(format!(
                "CONVEYOR_EXECUTOR: {e}; the shim would pass everything through"
            )),
        ),
    };
    out.push(Verdict {
        name: "CONVEYOR_EXECUTOR",
        meaning,
        value: executor,
        problem,
        notes: Vec::new(),
    });

    let crash = get("CONVEYOR_CRASH_SAFE").filter(|(s, _)| !s.trim().is_empty());
    let flusher = get("CONVEYOR_FLUSHER").filter(|(s, _)| !s.is_empty());
    let (meaning, problem) = match crash
        .as_ref()
        .map(|(s, _)| conveyor_fskind::parse_crash_safe(s))
    {
        Some(Ok(false)) => (
            "off: pending writes are kept in each process; a killed process loses them".into(),
            None,
        ),
        None => (
            "on (default): pending writes are kept in shared memory, and a flusher writes them if the process is killed"
                .into(),
            None,
        ),
        Some(Ok(true)) => (
            "on: pending writes are kept in shared memory, and a flusher writes them if the process is killed"
                .into(),
            None,
        ),
        Some(Err(e)) => (
            String::new(),
            Some(format!("{e}; the shim would pass everything through")),
        ),
    };
    out.push(Verdict {
        name: "CONVEYOR_CRASH_SAFE",
        meaning,
        value: crash,
        problem,
        notes: Vec::new(),
    });
    out.push(Verdict {
        name: "CONVEYOR_FLUSHER",
        meaning: match &flusher {
            None => "unset: `conveyor run` starts a flusher for the command and sets it; a bare LD_PRELOAD uses the user's own".into(),
            Some((s, _)) => format!("the flusher's socket: {s}"),
        },
        value: flusher,
        problem: None,
        notes: Vec::new(),
    });

    let stats = get("CONVEYOR_STATS").filter(|(s, _)| !s.is_empty());
    let mut v = Verdict {
        name: "CONVEYOR_STATS",
        meaning: "unset: no report (default)".into(),
        value: stats.clone(),
        problem: None,
        notes: Vec::new(),
    };
    if let Some((s, origin)) = &stats {
        if s == "stderr" || s == "-" {
            v.meaning = "a table on stderr at exit".into();
        } else {
            v.meaning = format!("a JSON report written to {s} at exit (%p = pid)");
            v.problem = missing_dir(s).map(|why| {
                format!(
                    "{}: cannot write {s}: {why}; the report would be lost at exit",
                    label("CONVEYOR_STATS", *origin)
                )
            });
        }
    }
    out.push(v);

    let log = get("CONVEYOR_LOG");
    let (meaning, problem) = match &log {
        None => ("warn (default)".to_string(), None),
        Some((s, _)) => match parse_log_level(s) {
            Ok(_) => (s.trim().to_ascii_lowercase(), None),
            Err(e) => (
                String::new(),
                Some(format!(
                    "CONVEYOR_LOG={e}; the shim would pass everything through"
                )),
            ),
        },
    };
    out.push(Verdict {
        name: "CONVEYOR_LOG",
        value: log,
        meaning,
        problem,
        notes: Vec::new(),
    });

    let log_file = get("CONVEYOR_LOG_FILE").filter(|(s, _)| !s.is_empty());
    let mut v = Verdict {
        name: "CONVEYOR_LOG_FILE",
        meaning: "unset: the log goes to stderr (default)".into(),
        value: log_file.clone(),
        problem: None,
        notes: Vec::new(),
    };
    if let Some((s, origin)) = &log_file {
        v.meaning = format!("the log is appended to {s} (%p = pid)");
        v.problem = missing_dir(s).map(|why| {
            format!(
                "{}: cannot open {s}: {why}; the shim would log to stderr",
                label("CONVEYOR_LOG_FILE", *origin)
            )
        });
    }
    out.push(v);

    out.push(size(
        "CONVEYOR_WRITE_BUFFER",
        d.write_buffer,
        get("CONVEYOR_WRITE_BUFFER"),
    ));
    out.push(size("CONVEYOR_IO_SIZE", d.io_size, get("CONVEYOR_IO_SIZE")));
    out.push(size(
        "CONVEYOR_READ_AHEAD",
        d.read_ahead,
        get("CONVEYOR_READ_AHEAD"),
    ));
    out.push(size(
        "CONVEYOR_MAX_MEMORY",
        d.max_memory,
        get("CONVEYOR_MAX_MEMORY"),
    ));

    let stdout = get("CONVEYOR_STDOUT_BUFFER").filter(|(s, _)| !s.is_empty());
    out.push(match stdout {
        None => Verdict {
            name: "CONVEYOR_STDOUT_BUFFER",
            value: None,
            meaning: "unset: stdout keeps glibc's buffer (default)".into(),
            problem: None,
            notes: Vec::new(),
        },
        v => parsed("CONVEYOR_STDOUT_BUFFER", 0, v, parse_size, |n| {
            format!(
                "{}: stdout's buffer when descriptor 1 is a selected file",
                units::bytes(n.max(4096) as u64)
            )
        }),
    });

    for (name, default) in [
        ("CONVEYOR_MAX_AGE", d.max_age),
        ("CONVEYOR_DEFER_LIMIT", d.defer_limit),
    ] {
        out.push(duration(name, default, get(name)));
    }

    let live = get("CONVEYOR_LIVE_DIR");
    let mut v = Verdict {
        name: "CONVEYOR_LIVE_DIR",
        meaning: format!(
            "unset: live files for `conveyor top` in {} (default)",
            crate::top::default_dir().display()
        ),
        value: live.clone(),
        problem: None,
        notes: Vec::new(),
    };
    match live.as_ref().map(|(s, _)| s.as_str()) {
        None | Some("") => {}
        Some("off") => v.meaning = "off: no live files".into(),
        Some(d) if d.starts_with('/') => v.meaning = format!("live files in {d}"),
        Some(d) => {
            v.problem = Some(format!(
                "CONVEYOR_LIVE_DIR={d:?} is not an absolute path; live stats would be off"
            ))
        }
    }
    out.push(v);

    if let Some(t) = get("CONVEYOR_TEST_COUNTS") {
        out.push(Verdict {
            name: "CONVEYOR_TEST_COUNTS",
            meaning: "hook call counts for conveyor's tests".into(),
            value: Some(t),
            problem: None,
            notes: Vec::new(),
        });
    }
    out
}

/// Edit distance, for suggesting the setting a misspelt name meant.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// `CONVEYOR_*` variables in the environment that the shim does not read
/// (it ignores them silently), each with the known name it most likely
/// meant.
pub fn unknown() -> Vec<String> {
    let mut out = Vec::new();
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if !k.starts_with("CONVEYOR_") || KNOWN.contains(&k.as_str()) {
            continue;
        }
        let best = KNOWN
            .iter()
            .map(|n| (distance(&k, n), *n))
            .min()
            .filter(|(d, _)| *d <= 4);
        out.push(match best {
            Some((_, n)) => {
                format!("{k} is not a conveyor setting (did you mean {n}?); the shim ignores it")
            }
            None => format!("{k} is not a conveyor setting; the shim ignores it"),
        });
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(vars: &'static [(&'static str, &'static str)]) -> Vec<Verdict> {
        check(&move |n: &str| {
            vars.iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| (OsString::from(v), Origin::Environment))
        })
    }

    fn problem<'a>(v: &'a [Verdict], name: &str) -> Option<&'a str> {
        v.iter()
            .find(|x| x.name == name)
            .and_then(|x| x.problem.as_deref())
    }

    #[test]
    fn bad_values_get_the_shims_words() {
        let v = with(&[
            ("CONVEYOR_LOG", "verbose"),
            ("CONVEYOR_WRITE_BUFFER", "10XB"),
            ("CONVEYOR_MAX_AGE", "soon"),
            ("CONVEYOR_LIVE_DIR", "rel"),
            ("CONVEYOR_PATHS", "rel:/abs"),
        ]);
        assert!(problem(&v, "CONVEYOR_LOG")
            .unwrap()
            .starts_with("CONVEYOR_LOG=\"verbose\" is not a log level"));
        assert!(problem(&v, "CONVEYOR_WRITE_BUFFER")
            .unwrap()
            .starts_with("CONVEYOR_WRITE_BUFFER: \"10XB\" is not a size"));
        assert!(problem(&v, "CONVEYOR_MAX_AGE").is_some());
        assert!(problem(&v, "CONVEYOR_LIVE_DIR").is_some());
        assert!(problem(&v, "CONVEYOR_PATHS")
            .unwrap()
            .contains("\"rel\" is not an absolute path"));
        assert!(problem(&v, "CONVEYOR_IO_SIZE").is_none());
    }

    #[test]
    fn defaults_are_shown() {
        let v = with(&[]);
        let ws = v
            .iter()
            .find(|x| x.name == "CONVEYOR_WRITE_BUFFER")
            .unwrap();
        assert_eq!(ws.meaning, "16.0 MiB (default)");
        assert!(v.iter().all(|x| x.problem.is_none()));
    }

    #[test]
    fn near_names_are_suggested() {
        assert_eq!(distance("CONVEYOR_WRITEBUFFER", "CONVEYOR_WRITE_BUFFER"), 1);
        assert_eq!(distance("abc", "abc"), 0);
    }
}
