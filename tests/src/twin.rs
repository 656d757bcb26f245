//! Side-by-side runs: the same program run without the shim and with it, in
//! twin directories on the same filesystem (local disk or the slow test
//! filesystem), and everything it leaves behind compared byte for byte.

use crate::slowfs::SlowFs;
use crate::{tree, Run, TempDir};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Where the twins live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// A directory under the system temp dir.
    Local,
    /// The slow test filesystem at 1 ms per request.
    Slow,
}

/// Both places, for tests that must hold on each.
pub const PLACES: [Place; 2] = [Place::Local, Place::Slow];

/// Two empty directories on one filesystem: `plain` for the run without
/// the shim, `shim` for the run with it (which manages that directory).
pub struct Twins {
    _tmp: TempDir,
    _fs: Option<SlowFs>,
    /// For the run without the shim.
    pub plain: PathBuf,
    /// For the run with it.
    pub shim: PathBuf,
    runs: AtomicUsize,
}

impl Twins {
    /// Fresh twins at `place`.
    pub fn new(place: Place, tag: &str) -> Twins {
        let tmp = TempDir::new(tag);
        let (fs, base) = match place {
            Place::Local => (None, tmp.path().to_path_buf()),
            Place::Slow => {
                let fs = SlowFs::mount(&["--latency-ms", "1"]);
                let base = fs.mnt();
                (Some(fs), base)
            }
        };
        let plain = base.join("plain");
        let shim = base.join("shim");
        std::fs::create_dir_all(&plain).expect("plain dir");
        std::fs::create_dir_all(&shim).expect("shim dir");
        Twins {
            _tmp: tmp,
            _fs: fs,
            plain,
            shim,
            runs: AtomicUsize::new(0),
        }
    }

    /// Runs `prog args` in a fresh directory of each twin (its cwd),
    /// without and with the shim, after `setup` prepared each alike; `env`
    /// is set for both.
    pub fn run(
        &self,
        setup: impl Fn(&Path),
        prog: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> (Outcome, Outcome) {
        let n = self.runs.fetch_add(1, Ordering::Relaxed).to_string();
        let (plain_dir, shim_dir) = (self.plain.join(&n), self.shim.join(&n));
        for d in [&plain_dir, &shim_dir] {
            std::fs::create_dir(d).expect("case dir");
            setup(d);
        }
        let mk = |dir: &Path| {
            let mut r = Run::new(prog, args, dir).env("LC_ALL", "C");
            for (k, v) in env {
                r = r.env(k, v);
            }
            r
        };
        let plain = Outcome::of(mk(&plain_dir).plain(), &plain_dir);
        let (out, _) = mk(&shim_dir).shimmed(&shim_dir);
        let shim = Outcome::of(out, &shim_dir);
        (plain, shim)
    }
}

/// What a run left: its exit status, output, and the files in its twin.
#[derive(Debug)]
pub struct Outcome {
    /// Exit status and output.
    pub out: Output,
    /// Every entry of the twin, with contents and mode.
    pub tree: Vec<(String, String, Vec<u8>)>,
    /// Modification times of the regular files: (path, seconds, nanoseconds).
    pub mtimes: Vec<(String, i64, i64)>,
}

impl Outcome {
    fn of(out: Output, dir: &Path) -> Outcome {
        let tree = tree(dir);
        let mtimes = tree
            .iter()
            .filter(|(_, kind, _)| kind.starts_with("file"))
            .map(|(rel, _, _)| {
                let m = std::fs::metadata(dir.join(rel)).expect("metadata");
                (rel.clone(), m.mtime(), m.mtime_nsec())
            })
            .collect();
        Outcome { out, tree, mtimes }
    }
}

fn show(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    if s.len() > 400 {
        format!("{}... ({} bytes)", &s[..400], b.len())
    } else {
        s.into_owned()
    }
}

/// How two runs differ, if they do: exit status, stdout, every file
/// (contents and mode bits) and, with `times`, every regular file's
/// modification time to the nanosecond. `what` names the case.
pub fn differences(plain: &Outcome, shim: &Outcome, times: bool, what: &str) -> Option<String> {
    if plain.out.status != shim.out.status {
        return Some(format!(
            "{what}: exit status differs: {} vs {}\nplain stderr: {}\nshim stderr: {}",
            plain.out.status,
            shim.out.status,
            show(&plain.out.stderr),
            show(&shim.out.stderr)
        ));
    }
    if plain.out.stdout != shim.out.stdout {
        return Some(format!(
            "{what}: stdout differs\nplain: {}\nshim:  {}",
            show(&plain.out.stdout),
            show(&shim.out.stdout)
        ));
    }
    let names = |o: &Outcome| o.tree.iter().map(|e| e.0.clone()).collect::<Vec<_>>();
    if names(plain) != names(shim) {
        return Some(format!(
            "{what}: different files: {:?} vs {:?}",
            names(plain),
            names(shim)
        ));
    }
    for (p, s) in plain.tree.iter().zip(&shim.tree) {
        if p.1 != s.1 {
            return Some(format!("{what}: {} is {} vs {}", p.0, p.1, s.1));
        }
        if p.2 != s.2 {
            return Some(format!(
                "{what}: {} differs\nplain: {}\nshim:  {}",
                p.0,
                show(&p.2),
                show(&s.2)
            ));
        }
    }
    if times {
        for (p, s) in plain.mtimes.iter().zip(&shim.mtimes) {
            if p != s {
                return Some(format!(
                    "{what}: modification time of {} differs: {}.{:09} vs {}.{:09}",
                    p.0, p.1, p.2, s.1, s.2
                ));
            }
        }
    }
    None
}

/// Asserts two runs did the same (see [`differences`]).
pub fn assert_same(plain: &Outcome, shim: &Outcome, what: &str) {
    if let Some(d) = differences(plain, shim, false, what) {
        panic!("{d}");
    }
}

/// Asserts two runs did the same, modification times included.
pub fn assert_same_times(plain: &Outcome, shim: &Outcome, what: &str) {
    if let Some(d) = differences(plain, shim, true, what) {
        panic!("{d}");
    }
}

/// Fails with every message in `failures`, if there is any.
pub fn report(failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} case(s) differ from the plain run:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
