//! Running `conveyor-slowfs` from tests and benchmarks: [`Mount`] starts
//! the filesystem, waits until the kernel has it mounted, reads its request
//! counters (which it writes on `SIGUSR1`) and unmounts it when dropped.
//! The filesystem itself is the `conveyor-slowfs` binary of this crate.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running `conveyor-slowfs`, unmounted on drop.
pub struct Mount {
    child: Option<Child>,
    backing: PathBuf,
    mnt: PathBuf,
    stats: PathBuf,
}

/// True if a FUSE filesystem is mounted at `mnt`.
pub fn mounted(mnt: &Path) -> bool {
    let m = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let want = format!(" {} fuse", mnt.display());
    m.lines().any(|l| l.contains(&want))
}

fn signal(child: &Child, sig: &str) {
    // kill(1): no unsafe code for a signal to our own child.
    let _ = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

impl Mount {
    /// Starts `binary` with `opts` (e.g. `["--latency-ms", "1"]`) serving
    /// `backing` at `mnt` (both created if missing), its counters in
    /// `stats` and its messages in `log` (discarded when `None`), and waits
    /// until it is mounted. An error says why it did not mount.
    pub fn start(
        binary: &Path,
        opts: &[&str],
        backing: &Path,
        mnt: &Path,
        stats: &Path,
        log: Option<std::fs::File>,
    ) -> Result<Mount, String> {
        if Command::new("fusermount3").arg("-V").output().is_err() {
            return Err("fusermount3 is missing: install Debian's fuse3 package".into());
        }
        for d in [backing, mnt] {
            std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        let child = Command::new(binary)
            .args(opts)
            .arg("--stats")
            .arg(stats)
            .arg(backing)
            .arg(mnt)
            .stdout(Stdio::null())
            .stderr(log.map_or_else(Stdio::null, Stdio::from))
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let mut m = Mount {
            child: Some(child),
            backing: backing.to_path_buf(),
            mnt: mnt.to_path_buf(),
            stats: stats.to_path_buf(),
        };
        for _ in 0..400 {
            if mounted(mnt) {
                return Ok(m);
            }
            if let Some(Ok(Some(st))) = m.child.as_mut().map(Child::try_wait) {
                return Err(format!("conveyor-slowfs exited before mounting ({st})"));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        Err("conveyor-slowfs did not mount within 10 s".into())
    }

    /// The mount point.
    pub fn mnt(&self) -> &Path {
        &self.mnt
    }

    /// The directory behind it (to prepare inputs and check results
    /// without the filesystem in between).
    pub fn backing(&self) -> &Path {
        &self.backing
    }

    /// The request counters now (`op.write`, `write_size.1048576`, ...),
    /// or `None` if the filesystem did not write them in time.
    pub fn counters(&self) -> Option<HashMap<String, u64>> {
        let c = self.child.as_ref()?;
        let _ = std::fs::remove_file(&self.stats);
        signal(c, "-USR1");
        for _ in 0..500 {
            if let Ok(text) = std::fs::read_to_string(&self.stats) {
                if text.contains("errors ") {
                    return Some(
                        text.lines()
                            .filter_map(|l| l.split_once(' '))
                            .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
                            .collect(),
                    );
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal(&c, "-TERM");
            for _ in 0..200 {
                if matches!(c.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(25));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        if mounted(&self.mnt) {
            let _ = Command::new("fusermount3")
                .arg("-u")
                .arg(&self.mnt)
                .status();
        }
    }
}
