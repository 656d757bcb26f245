//! Real network and cloud filesystems for a test, served on 127.0.0.1 by
//! `scripts/netfs-mount.sh`: sshfs, rclone (sftp remote, with and without
//! its write cache) and s3fs on a local S3 server (moto).

use crate::{root, TempDir};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

/// The filesystems `netfs-mount.sh` can mount.
pub const KINDS: &[&str] = &["sshfs", "rclone-off", "rclone-writes", "s3fs"];

/// A mounted filesystem, unmounted (and its server-side data removed) on drop.
pub struct NetFs {
    kind: &'static str,
    dir: TempDir,
    info: HashMap<String, String>,
}

/// Where the scripts keep servers' state and logs.
pub fn state_dir() -> PathBuf {
    std::env::var_os("CONVEYOR_NETFS_STATE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/conveyor-netfs"))
}

impl NetFs {
    /// Mounts `kind`. `None` (with the reason printed) only when the tools
    /// cannot be installed on this machine and `CI` is not set; in CI that
    /// fails the test instead.
    pub fn mount(kind: &'static str) -> Option<NetFs> {
        let dir = TempDir::new(&format!("netfs-{kind}"));
        let mnt = dir.path().join("mnt");
        let out = Command::new("bash")
            .arg(root().join("scripts/netfs-mount.sh"))
            .arg(kind)
            .arg(&mnt)
            .output()
            .expect("run netfs-mount.sh");
        let err = String::from_utf8_lossy(&out.stderr);
        if out.status.code() == Some(77) && std::env::var_os("CI").is_none() {
            eprintln!("SKIPPED: {kind} cannot be mounted on this machine: {err}");
            return None;
        }
        assert!(out.status.success(), "mounting {kind} failed: {err}");
        let info = Command::new("bash")
            .arg(root().join("scripts/netfs-mount.sh"))
            .arg("info")
            .arg(&mnt)
            .output()
            .expect("run netfs-mount.sh info");
        let info = String::from_utf8_lossy(&info.stdout)
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Some(NetFs { kind, dir, info })
    }

    /// The kind it was mounted as.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// The mount point.
    pub fn mnt(&self) -> PathBuf {
        self.dir.path().join("mnt")
    }

    /// The sftp directory behind an sshfs or rclone mount, or the bucket
    /// behind an s3fs one.
    pub fn remote(&self) -> &str {
        self.info.get("remote").map_or("", String::as_str)
    }

    /// The S3 server's port (s3fs mounts).
    pub fn s3_port(&self) -> String {
        std::fs::read_to_string(state_dir().join("s3/port"))
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    /// The server's request log: the S3 server's (one line per HTTP
    /// request) for s3fs, the sftp server's (opens, closes, renames) else.
    pub fn server_log(&self) -> PathBuf {
        if self.kind == "s3fs" {
            state_dir().join("s3/server.log")
        } else {
            state_dir().join("sshd/sftp.log")
        }
    }

    /// The lines of the server's log from byte `mark` on (see `log_mark`)
    /// that mention `needle`.
    pub fn log_since(&self, mark: u64, needle: &str) -> Vec<String> {
        let text = std::fs::read(self.server_log()).unwrap_or_default();
        let from = (mark as usize).min(text.len());
        String::from_utf8_lossy(&text[from..])
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_string)
            .collect()
    }

    /// The current end of the server's log.
    pub fn log_mark(&self) -> u64 {
        std::fs::metadata(self.server_log()).map_or(0, |m| m.len())
    }
}

impl Drop for NetFs {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(root().join("scripts/netfs-umount.sh"))
            .arg(self.mnt())
            .output();
    }
}
