//! Mounting conveyor-slowfs for a test: slow storage with request counters.

use crate::{root, TempDir};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// Path of the filesystem's binary, built on first use.
pub fn binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--release", "-p", "conveyor-slowfs"])
            .current_dir(root())
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building conveyor-slowfs failed");
        root().join("target/release/conveyor-slowfs")
    })
}

/// A mounted slow filesystem, unmounted on drop.
pub struct SlowFs {
    dir: TempDir,
    child: Option<Child>,
}

fn mounted(mnt: &Path) -> bool {
    let m = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let want = format!(" {} fuse", mnt.display());
    m.lines().any(|l| l.contains(&want))
}

impl SlowFs {
    /// Mounts with `opts` (e.g. `["--latency-ms", "1"]`).
    pub fn mount(opts: &[&str]) -> SlowFs {
        assert!(
            Command::new("fusermount3").arg("-V").output().is_ok(),
            "fusermount3 is missing: install Debian's fuse3 package (.ci/run does)"
        );
        let dir = TempDir::new("slowfs");
        let backing = dir.path().join("backing");
        let mnt = dir.path().join("mnt");
        std::fs::create_dir_all(&backing).expect("backing dir");
        std::fs::create_dir_all(&mnt).expect("mount dir");
        let stats = dir.path().join("stats");
        let child = Command::new(binary())
            .args(opts)
            .arg("--stats")
            .arg(&stats)
            .arg(&backing)
            .arg(&mnt)
            .stderr(Stdio::null())
            .spawn()
            .expect("start conveyor-slowfs");
        let mut fs = SlowFs {
            dir,
            child: Some(child),
        };
        for _ in 0..200 {
            if mounted(&fs.mnt()) {
                return fs;
            }
            if let Some(c) = fs.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    panic!("conveyor-slowfs exited before mounting: {st}");
                }
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("conveyor-slowfs did not mount");
    }

    /// The mount point.
    pub fn mnt(&self) -> PathBuf {
        self.dir.path().join("mnt")
    }

    /// The directory behind it (to check results without the filesystem).
    pub fn backing(&self) -> PathBuf {
        self.dir.path().join("backing")
    }

    /// The request counters now (`op.write`, `write_size.1048576`, ...).
    pub fn stats(&self) -> HashMap<String, u64> {
        let file = self.dir.path().join("stats");
        let _ = std::fs::remove_file(&file);
        if let Some(c) = &self.child {
            // kill(1) keeps this test crate free of unsafe code.
            let _ = Command::new("kill")
                .args(["-USR1", &c.id().to_string()])
                .status();
        }
        for _ in 0..200 {
            if let Ok(text) = std::fs::read_to_string(&file) {
                if text.contains("errors ") {
                    return text
                        .lines()
                        .filter_map(|l| l.split_once(' '))
                        .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
                        .collect();
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("conveyor-slowfs did not write its counters");
    }
}

impl Drop for SlowFs {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            for _ in 0..100 {
                if matches!(c.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        let mnt = self.mnt();
        if mounted(&mnt) {
            let _ = Command::new("fusermount3").arg("-u").arg(&mnt).status();
        }
    }
}
