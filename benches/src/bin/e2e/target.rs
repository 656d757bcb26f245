//! The storage a set of runs uses: conveyor-slowfs mounted at one latency
//! and mode, or a tmpfs directory; and the filesystem's request counters.

use crate::args::Mode;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

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
    stats: PathBuf,
    server: Option<Child>,
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

fn mounted(mnt: &Path) -> bool {
    let m = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let want = format!(" {} fuse", mnt.display());
    m.lines().any(|l| l.contains(&want))
}

impl Target {
    /// Mounts conveyor-slowfs (`bin`) under `dir` at `latency_ms`.
    pub fn slowfs(bin: &Path, dir: &Path, mode: Mode, latency_ms: f64) -> Result<Target, String> {
        let raw = dir.join("backing");
        let data = dir.join("mnt");
        let _ = std::fs::remove_dir_all(&raw);
        for d in [&raw, &data] {
            std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        let stats = dir.join("stats");
        let mut cmd = Command::new(bin);
        cmd.args(["--latency-ms", &latency_ms.to_string(), "--stats"])
            .arg(&stats);
        if mode == Mode::Direct {
            cmd.arg("--direct-io");
        }
        let log = std::fs::File::create(dir.join("slowfs.log")).map_err(|e| e.to_string())?;
        let child = cmd
            .arg(&raw)
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let mut t = Target {
            mode,
            latency_ms,
            data,
            raw,
            stats,
            server: Some(child),
            netfs: false,
        };
        for _ in 0..400 {
            if mounted(&t.data) {
                return Ok(t);
            }
            if let Some(Ok(Some(st))) = t.server.as_mut().map(|c| c.try_wait()) {
                return Err(format!(
                    "conveyor-slowfs exited before mounting ({st}); see {}",
                    dir.join("slowfs.log").display()
                ));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        Err("conveyor-slowfs did not mount within 10 s".into())
    }

    /// A fresh directory on tmpfs (/dev/shm): `data` and `raw` are the same.
    pub fn tmpfs(dir: &Path) -> Result<Target, String> {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(Target {
            mode: Mode::Tmpfs,
            latency_ms: 0.0,
            data: dir.to_path_buf(),
            raw: dir.to_path_buf(),
            stats: PathBuf::new(),
            server: None,
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
            server: None,
            netfs: true,
        })
    }

    /// Label such as "slowfs, page cache, 1 ms".
    pub fn label(&self) -> String {
        match self.mode {
            Mode::Tmpfs => self.mode.label().to_string(),
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
        let c = self.server.as_ref()?;
        let _ = std::fs::remove_file(&self.stats);
        // SAFETY: kill() with a pid of a child this process started and has
        // not yet reaped.
        unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGUSR1) };
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
        if let Some(mut c) = self.server.take() {
            // SAFETY: as in counters(); the child is reaped below.
            unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
            for _ in 0..200 {
                if matches!(c.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(25));
            }
            let _ = c.kill();
            let _ = c.wait();
            if mounted(&self.data) {
                let _ = Command::new("fusermount3")
                    .arg("-u")
                    .arg(&self.data)
                    .status();
            }
        }
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
