//! The storage a set of runs uses: conveyor-slowfs mounted at one latency
//! and mode, or a tmpfs directory; and the filesystem's request counters.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where a run of the cases happens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mode {
    /// conveyor-slowfs with the kernel's page cache (and its readahead).
    Page,
    /// conveyor-slowfs with `--direct-io`: no page cache, no readahead.
    Direct,
    /// A directory in /dev/shm: fast local storage, the shim's overhead.
    Tmpfs,
    /// A directory on the local disk (the work directory's filesystem).
    Disk,
    /// sshfs on a loopback sshd (`scripts/netfs-mount.sh sshfs`).
    Sshfs,
    /// rclone mount of an sftp remote on that sshd, `--vfs-cache-mode off`.
    RcloneOff,
    /// The same with `--vfs-cache-mode writes`.
    RcloneWrites,
    /// s3fs on a bucket of a local S3 server (moto).
    S3fs,
}

impl Mode {
    /// Name used on the command line and in results.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Page => "page",
            Mode::Direct => "direct",
            Mode::Tmpfs => "tmpfs",
            Mode::Disk => "disk",
            Mode::Sshfs => "sshfs",
            Mode::RcloneOff => "rclone-off",
            Mode::RcloneWrites => "rclone-writes",
            Mode::S3fs => "s3fs",
        }
    }

    /// True for the real network filesystems of `scripts/netfs-mount.sh`
    /// (no latency setting: their own).
    pub fn is_netfs(self) -> bool {
        matches!(
            self,
            Mode::Sshfs | Mode::RcloneOff | Mode::RcloneWrites | Mode::S3fs
        )
    }

    /// Every mode, in table order.
    pub const ALL: [Mode; 8] = [
        Mode::Page,
        Mode::Direct,
        Mode::Tmpfs,
        Mode::Disk,
        Mode::Sshfs,
        Mode::RcloneOff,
        Mode::RcloneWrites,
        Mode::S3fs,
    ];

    /// Human label for tables and the plot.
    pub fn label(self) -> &'static str {
        match self {
            Mode::Page => "slowfs, page cache",
            Mode::Direct => "slowfs, direct I/O",
            Mode::Tmpfs => "tmpfs",
            Mode::Disk => "local disk",
            Mode::Sshfs => "sshfs on loopback",
            Mode::RcloneOff => "rclone (sftp), --vfs-cache-mode off",
            Mode::RcloneWrites => "rclone (sftp), --vfs-cache-mode writes",
            Mode::S3fs => "s3fs on a local S3 server (moto)",
        }
    }

    pub fn parse(s: &str) -> Option<Mode> {
        Mode::ALL.into_iter().find(|m| m.name() == s)
    }
}

/// Mounted storage, unmounted on drop.
pub struct Target {
    /// Page, direct or tmpfs.
    pub mode: Mode,
    /// Milliseconds per request (0 for tmpfs).
    pub latency_ms: f64,
    /// Where the programs read and write (the mount point).
    pub data: PathBuf,
    /// The same files without the filesystem in between (the backing
    /// directory): inputs are made and outputs checked here, untimed.
    pub raw: PathBuf,
    // The counters file (slowfs) or the server's request log (network
    // filesystems).
    stats: PathBuf,
    slowfs: Option<conveyor_slowfs::Mount>,
    // A mount of scripts/netfs-mount.sh (unmounted by netfs-umount.sh).
    netfs: bool,
}

/// The repository's scripts directory.
fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("."))
        .join("scripts")
}

/// Where netfs-mount.sh keeps the servers' logs.
fn netfs_state() -> PathBuf {
    std::env::var_os("CONVEYOR_NETFS_STATE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/conveyor-netfs"))
}

/// Counts of what a server logged: the S3 server's HTTP requests by
/// method (`op.put`, `op.get`, `op.head`, ...; PUTs also as `op.write`),
/// or the sftp server's operations (`op.open`, `op.close`, `op.rename`,
/// `op.set`, ...) with the bytes its closes report.
fn server_counts(log: &Path, s3: bool) -> HashMap<String, u64> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut m: HashMap<String, u64> = HashMap::new();
    for l in text.lines() {
        if s3 {
            // 127.0.0.1 - - [date] "PUT /bucket/key HTTP/1.1" 200 -
            let Some(method) = l.split('"').nth(1).and_then(|r| r.split(' ').next()) else {
                continue;
            };
            let op = method.to_ascii_lowercase();
            if op == "put" {
                *m.entry("op.write".into()).or_default() += 1;
            } else if op == "get" {
                *m.entry("op.read".into()).or_default() += 1;
            } else {
                *m.entry(format!("op.{op}")).or_default() += 1;
            }
        } else {
            let Some(op) = l.split(' ').next().filter(|w| !w.is_empty()) else {
                continue;
            };
            *m.entry(format!("op.{op}")).or_default() += 1;
            // close "path" bytes read R written W
            if op == "close" {
                let w: Vec<&str> = l.rsplit(' ').take(4).collect();
                if let [written, _, read, _] = w[..] {
                    *m.entry("write_bytes".into()).or_default() += written.parse().unwrap_or(0);
                    *m.entry("read_bytes".into()).or_default() += read.parse().unwrap_or(0);
                }
            }
        }
    }
    m
}

impl Target {
    /// Mounts conveyor-slowfs (`bin`) under `dir` at `latency_ms`.
    pub fn slowfs(bin: &Path, dir: &Path, mode: Mode, latency_ms: f64) -> Result<Target, String> {
        let raw = dir.join("backing");
        let data = dir.join("mnt");
        let _ = std::fs::remove_dir_all(&raw);
        let stats = dir.join("stats");
        let latency = latency_ms.to_string();
        let mut opts = vec!["--latency-ms", &latency];
        if mode == Mode::Direct {
            opts.push("--direct-io");
        }
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let log = std::fs::File::create(dir.join("slowfs.log")).map_err(|e| e.to_string())?;
        let mount = conveyor_slowfs::Mount::start(bin, &opts, &raw, &data, &stats, Some(log))
            .map_err(|e| format!("{e}; see {}", dir.join("slowfs.log").display()))?;
        Ok(Target {
            mode,
            latency_ms,
            data,
            raw,
            stats,
            slowfs: Some(mount),
            netfs: false,
        })
    }

    /// A fresh directory on tmpfs (/dev/shm) or the local disk (`mode`):
    /// `data` and `raw` are the same.
    pub fn local(dir: &Path, mode: Mode) -> Result<Target, String> {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(Target {
            mode,
            latency_ms: 0.0,
            data: dir.to_path_buf(),
            raw: dir.to_path_buf(),
            stats: PathBuf::new(),
            slowfs: None,
            netfs: false,
        })
    }

    /// Mounts a real network filesystem (`mode.name()` is the kind
    /// `scripts/netfs-mount.sh` takes) at `dir/mnt`. Inputs are made and
    /// outputs checked through the mount (rclone uploads after a delay, so
    /// the server side would not have them yet).
    pub fn netfs(dir: &Path, mode: Mode) -> Result<Target, String> {
        let data = dir.join("mnt");
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let out = Command::new("bash")
            .arg(scripts().join("netfs-mount.sh"))
            .arg(mode.name())
            .arg(&data)
            .output()
            .map_err(|e| format!("netfs-mount.sh: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mounting {} failed: {}",
                mode.name(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let stats = if mode == Mode::S3fs {
            netfs_state().join("s3/server.log")
        } else {
            netfs_state().join("sshd/sftp.log")
        };
        Ok(Target {
            mode,
            latency_ms: 0.0,
            raw: data.clone(),
            data,
            stats,
            slowfs: None,
            netfs: true,
        })
    }

    /// Label such as "slowfs, page cache, 1 ms".
    pub fn label(&self) -> String {
        match self.mode {
            Mode::Tmpfs | Mode::Disk => self.mode.label().to_string(),
            m if m.is_netfs() => m.label().to_string(),
            _ => format!("{}, {} ms", self.mode.label(), self.latency_ms),
        }
    }

    /// The filesystem's counters now (`op.write`, `write_bytes`, ...);
    /// None on tmpfs. The server writes them on SIGUSR1.
    pub fn counters(&self) -> Option<HashMap<String, u64>> {
        if self.netfs {
            return Some(server_counts(&self.stats, self.mode == Mode::S3fs));
        }
        self.slowfs.as_ref()?.counters()
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if self.netfs {
            let _ = std::fs::remove_dir_all(self.data.join("conveyor-e2e-inputs"));
            let _ = Command::new("bash")
                .arg(scripts().join("netfs-umount.sh"))
                .arg(&self.data)
                .output();
            return;
        }
        // Unmounted before its backing directory goes.
        drop(self.slowfs.take());
        let _ = std::fs::remove_dir_all(&self.raw);
    }
}

/// Requests one run sent to the filesystem: the difference of two
/// counter snapshots.
#[derive(Clone, Debug, Default)]
pub struct Requests {
    /// All requests of any kind.
    pub total: u64,
    /// Write requests and their bytes.
    pub writes: u64,
    /// Bytes written.
    pub write_bytes: u64,
    /// Read requests.
    pub reads: u64,
    /// Bytes read.
    pub read_bytes: u64,
    /// fsync requests.
    pub fsyncs: u64,
}

impl Requests {
    /// `after - before`.
    pub fn between(before: &HashMap<String, u64>, after: &HashMap<String, u64>) -> Requests {
        let d = |k: &str| {
            after
                .get(k)
                .copied()
                .unwrap_or(0)
                .saturating_sub(before.get(k).copied().unwrap_or(0))
        };
        let total = after
            .keys()
            .filter(|k| k.starts_with("op."))
            .map(|k| d(k))
            .sum();
        Requests {
            total,
            writes: d("op.write"),
            write_bytes: d("write_bytes"),
            reads: d("op.read"),
            read_bytes: d("read_bytes"),
            fsyncs: d("op.fsync"),
        }
    }
}
