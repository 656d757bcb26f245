//! Mounting conveyor-slowfs for a test: slow storage with request counters.

use crate::{root, TempDir};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

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

/// A mounted slow filesystem in a directory of its own, unmounted on drop.
pub struct SlowFs {
    // Declared first: dropped (unmounted) before the directory goes.
    mount: conveyor_slowfs::Mount,
    _dir: TempDir,
}

impl SlowFs {
    /// Mounts with `opts` (e.g. `["--latency-ms", "1"]`).
    pub fn mount(opts: &[&str]) -> SlowFs {
        let dir = TempDir::new("slowfs");
        let p = dir.path();
        let mount = conveyor_slowfs::Mount::start(
            binary(),
            opts,
            &p.join("backing"),
            &p.join("mnt"),
            &p.join("stats"),
            None,
        )
        .unwrap_or_else(|e| panic!("{e} (.ci/run installs fuse3)"));
        SlowFs { mount, _dir: dir }
    }

    /// The mount point.
    pub fn mnt(&self) -> PathBuf {
        self.mount.mnt().to_path_buf()
    }

    /// The directory behind it (to check results without the filesystem).
    pub fn backing(&self) -> PathBuf {
        self.mount.backing().to_path_buf()
    }

    /// The request counters now (`op.write`, `write_size.1048576`, ...).
    pub fn stats(&self) -> HashMap<String, u64> {
        self.mount
            .counters()
            .expect("conveyor-slowfs did not write its counters")
    }
}
