//! What conveyor knows of filesystem types, shared by the shim (which acts
//! on it per device) and `conveyor doctor` (which tells the user): pure
//! functions of a mount table line, a filesystem type and the command lines
//! of the processes serving FUSE mounts, plus the two readers of `/proc`
//! they need.
//!
//! # Local filesystems
//!
//! On a filesystem the kernel serves from its own page cache at memory
//! speed (tmpfs, ext4, xfs, btrfs and the other local types of
//! [`LOCAL_TYPES`]), a `write()` is a copy into the page cache and the
//! kernel already writes behind and reads ahead: the shim could only add
//! its own cost (the hand-off to a worker, a second copy). In the default
//! mode (`CONVEYOR_MODE=auto`) files there pass through, unless their
//! storage is measured to be slow ([`passes_in_auto`]).
//!
//! # FUSE filesystems with rules of their own
//!
//! Some make inode numbers up: on rclone a new `HEAD.lock` and the `HEAD`
//! git just renamed it over report the same `(st_dev, st_ino)`, so file
//! state keyed by them would serve one file's data for the other. On such
//! filesystems a file is identified by its device and path instead.
//!
//! Some commit a file when a descriptor of it is closed and cannot take a
//! second handle on it: s3fs uploads the object at every close of a
//! modified file, and rclone without its write cache refuses reads through
//! a second read-write handle and uploads a file written through two
//! handles twice, then drops it as corrupted. There the shim works through
//! a duplicate of the program's descriptor: the filesystem sees the
//! program's one handle and nothing else.
//!
//! rclone without its write cache (`--vfs-cache-mode off` or `minimal`)
//! cannot take even that: a second flush of a handle nothing was written
//! through yet ends it, and reads and writes must be sequential. Files
//! there pass through. The mode is read from the command line of the
//! rclone process serving the mount point; when it cannot be found, the
//! shim assumes no cache.
//!
//! With its write cache, rclone serves reads of a file it is still writing
//! back unreliably once reads come concurrently. There only descriptions
//! opened write-only are managed; an open for reading passes the file
//! through, after its pending data is written. s3fs reads through a cache
//! of its own with parallel range requests: the shim's read-ahead only
//! added range requests of its own (an 8 MiB sequential read cost 5 GETs
//! instead of 3, 0.79x), so there too only write-only descriptions are
//! managed.

use std::time::Duration;

/// What a filesystem type implies for the shim.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Kind {
    /// Inode numbers do not identify files (two files can share one).
    pub unstable_ino: bool,
    /// Never open a second handle on a file: duplicate the program's.
    pub single_handle: bool,
    /// Manage nothing there, whatever the mode.
    pub pass_through: bool,
    /// Manage only descriptions opened write-only; an open for reading
    /// passes the file through.
    pub readers_pass: bool,
    /// Served by the kernel's page cache at memory speed: passed through
    /// in the default mode (see [`passes_in_auto`]).
    pub local: bool,
}

/// Filesystem types the kernel serves from its page cache on local memory
/// or block devices: a write is a memory copy and the kernel writes behind
/// and reads ahead by itself.
pub const LOCAL_TYPES: &[&str] = &[
    "tmpfs",
    "ramfs",
    "ext2",
    "ext3",
    "ext4",
    "xfs",
    "btrfs",
    "f2fs",
    "jfs",
    "reiserfs",
    "nilfs2",
    "vfat",
    "msdos",
    "exfat",
    "ntfs",
    "ntfs3",
    "hfs",
    "hfsplus",
    "zfs",
    "bcachefs",
    "overlay",
    "squashfs",
    "iso9660",
    "udf",
    "erofs",
    "hugetlbfs",
];

/// Which selected files are managed (`CONVEYOR_MODE`), read by the shim
/// and checked by the launcher with this one parser.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `auto`, the default (also when unset or empty): every selected file
    /// except those on fast local storage ([`passes_in_auto`]).
    Auto,
    /// `always`: every selected file, whatever its storage.
    Always,
    /// `off`: none (the shim is loaded doing nothing).
    Off,
}

impl Mode {
    /// The mode a `CONVEYOR_MODE` value names (case and surrounding blanks
    /// ignored), or the message naming the bad value and the good ones.
    pub fn parse(v: &str) -> Result<Mode, String> {
        match v.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Ok(Mode::Auto),
            "always" => Ok(Mode::Always),
            "off" => Ok(Mode::Off),
            _ => Err(format!(
                "CONVEYOR_MODE: {v:?} is not a mode (expected auto, always or off)"
            )),
        }
    }
}

/// When `close` of a managed file returns (`CONVEYOR_CLOSE`), read by the
/// shim and checked by the launcher with this one parser.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Close {
    /// `wait`, the default (also when unset or empty): close-to-open, as
    /// NFS: `close` returns once the file's data and the metadata set
    /// through the descriptor are on storage.
    Wait,
    /// `relaxed`, as NFS's `nocto`: `close` returns once the data is
    /// queued; it reaches storage in the background, and other programs
    /// are sure to see it only after the process's next barrier.
    Relaxed,
}

impl Close {
    /// The close mode a `CONVEYOR_CLOSE` value names (case and surrounding
    /// blanks ignored), or the message naming the bad value and the good ones.
    pub fn parse(v: &str) -> Result<Close, String> {
        match v.trim().to_ascii_lowercase().as_str() {
            "" | "wait" => Ok(Close::Wait),
            "relaxed" => Ok(Close::Relaxed),
            _ => Err(format!(
                "CONVEYOR_CLOSE: {v:?} is not a close mode (expected wait or relaxed)"
            )),
        }
    }
}

/// Whether write-behind is crash-safe (`CONVEYOR_CRASH_SAFE`): `on` (the
/// default, also when unset or empty) keeps pending writes in a
/// shared-memory journal a flusher process writes should the program die;
/// `off` keeps them in the process. Read by the shim, checked by the
/// launcher.
pub fn parse_crash_safe(v: &str) -> Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "off" | "0" | "no" => Ok(false),
        "" | "on" | "1" | "yes" => Ok(true),
        _ => Err(format!(
            "CONVEYOR_CRASH_SAFE: {v:?} is not a setting (expected on or off)"
        )),
    }
}

/// A local filesystem whose first opens timed by the shim took at least
/// this long ([`SLOW_LOCAL_OPENS`] of them in a row) is treated as slow
/// storage: its requests reach a slow device, not the page cache.
pub const SLOW_LOCAL_OPEN: Duration = Duration::from_millis(1);

/// How many slow opens in a row make a local filesystem slow storage. One
/// is not enough: on a busy machine an open of tmpfs can wait a whole
/// time slice for a core, which says nothing about the storage.
pub const SLOW_LOCAL_OPENS: u32 = 3;

/// The kind of a filesystem type as `/proc/self/mountinfo` names it.
pub fn of_type(fstype: &str) -> Kind {
    Kind {
        unstable_ino: fstype == "fuse.rclone",
        single_handle: matches!(fstype, "fuse.rclone" | "fuse.s3fs"),
        pass_through: false,
        readers_pass: matches!(fstype, "fuse.rclone" | "fuse.s3fs"),
        local: LOCAL_TYPES.contains(&fstype),
    }
}

/// The kind of a mount: its type, and for rclone the cache mode of the
/// process serving `mnt` (from the argument vectors `cmdlines`).
pub fn of_mount(fstype: &str, mnt: &str, cmdlines: &[Vec<String>]) -> Kind {
    let mut k = of_type(fstype);
    if fstype == "fuse.rclone" {
        let mode = rclone_mode_for(mnt, cmdlines);
        k.pass_through = !matches!(mode.as_deref(), Some("writes" | "full"));
    }
    k
}

/// Whether a file on a filesystem of `kind` passes through in the default
/// mode, given how long a timed open there took (`None`: not timed). A
/// local filesystem passes through unless that open took
/// [`SLOW_LOCAL_OPEN`]; every other filesystem is managed: each of
/// its requests costs at least a round trip to a server or a daemon, which
/// is what the shim saves.
pub fn passes_in_auto(kind: Kind, opened_in: Option<Duration>) -> bool {
    kind.local && opened_in.is_none_or(|t| t < SLOW_LOCAL_OPEN)
}

/// The `--vfs-cache-mode` of the rclone process serving `mnt` among
/// `cmdlines` (`off` when the process gives none: rclone's default), or
/// `None` when no rclone process serves it.
pub fn rclone_mode_for(mnt: &str, cmdlines: &[Vec<String>]) -> Option<String> {
    let args = cmdlines.iter().find(|a| {
        a.first().is_some_and(|p| p.ends_with("rclone"))
            && a.iter().any(|x| x == "mount")
            && a.iter().any(|x| x.trim_end_matches('/') == mnt)
    })?;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--vfs-cache-mode" {
            return it.next().cloned();
        }
        if let Some(v) = a.strip_prefix("--vfs-cache-mode=") {
            return Some(v.to_string());
        }
    }
    Some("off".into())
}

/// The argument vectors of the rclone processes running now (the ones
/// that may serve a FUSE mount).
pub fn rclone_cmdlines() -> Vec<Vec<String>> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .filter(|c| c.windows(6).any(|w| w == b"rclone"))
        .map(|c| {
            c.split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .collect()
}

/// One mount of a mount table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// The filesystem type (`ext4`, `fuse.sshfs`).
    pub fstype: String,
    /// Where it is mounted.
    pub point: String,
    /// What is mounted (`/dev/vda`, `host:/dir`).
    pub source: String,
}

fn parse(line: &str) -> Option<(&str, Mount)> {
    let f: Vec<&str> = line.split(' ').collect();
    let sep = f.iter().position(|x| *x == "-")?;
    Some((
        f.get(2)?,
        Mount {
            fstype: f.get(sep + 1)?.to_string(),
            point: f.get(4)?.replace("\\040", " "),
            source: f.get(sep + 2).unwrap_or(&"").replace("\\040", " "),
        },
    ))
}

/// The mount of device `dev` in a mount table (`/proc/self/mountinfo`).
pub fn mount_of(info: &str, dev: u64) -> Option<Mount> {
    let want = format!("{}:{}", libc::major(dev), libc::minor(dev));
    info.lines()
        .filter_map(parse)
        .find(|(d, _)| *d == want)
        .map(|(_, m)| m)
}

/// The mount holding the absolute, canonical `path` in a mount table: the
/// longest mount point above it (the last one mounted, where several are).
pub fn mount_at(info: &str, path: &std::path::Path) -> Option<Mount> {
    let mut best: Option<Mount> = None;
    for (_, m) in info.lines().filter_map(parse) {
        if path.starts_with(&m.point)
            && best.as_ref().is_none_or(|b| m.point.len() >= b.point.len())
        {
            best = Some(m);
        }
    }
    best
}

/// The kind of `mount`, reading the rclone command lines only for rclone.
pub fn learn(mount: &Mount) -> Kind {
    let lines = if mount.fstype == "fuse.rclone" {
        rclone_cmdlines()
    } else {
        Vec::new()
    };
    of_mount(&mount.fstype, &mount.point, &lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "42 27 0:39 / /mnt/a rw,nosuid - fuse.sshfs host:/x rw\n\
                        43 27 0:40 / /mnt/b rw,nosuid - fuse.rclone loop:/y rw,user_id=0\n\
                        44 27 0:41 / /mnt/a/t\\040mp rw - tmpfs tmpfs rw\n";

    #[test]
    fn finds_the_mount_of_a_device_and_of_a_path() {
        let m = mount_of(INFO, libc::makedev(0, 40)).unwrap();
        assert_eq!(
            (m.fstype.as_str(), m.point.as_str()),
            ("fuse.rclone", "/mnt/b")
        );
        assert_eq!(mount_of(INFO, libc::makedev(0, 45)), None);
        let p = |s: &str| mount_at(INFO, std::path::Path::new(s)).map(|m| m.fstype);
        assert_eq!(p("/mnt/a/t mp/f").as_deref(), Some("tmpfs"));
        assert_eq!(p("/mnt/a/x").as_deref(), Some("fuse.sshfs"));
        // A prefix of a name is not a parent directory.
        assert_eq!(p("/mnt/ab"), None);
    }

    #[test]
    fn kinds_of_types() {
        assert!(of_type("fuse.rclone").unstable_ino);
        assert!(!of_type("fuse.sshfs").unstable_ino);
        assert!(of_type("fuse.s3fs").single_handle && !of_type("fuse.s3fs").unstable_ino);
        assert!(of_type("fuse.s3fs").readers_pass && of_type("fuse.rclone").readers_pass);
        assert!(!of_type("fuse.sshfs").readers_pass);
        assert_eq!(
            of_type("ext4"),
            Kind {
                local: true,
                ..Kind::default()
            }
        );
        for t in [
            "fuse.sshfs",
            "fuse",
            "nfs4",
            "cifs",
            "9p",
            "ceph",
            "fuse.conveyor-slowfs",
        ] {
            assert!(!of_type(t).local, "{t}");
        }
    }

    #[test]
    fn modes_parse_and_a_bad_one_is_named() {
        assert_eq!(Mode::parse(""), Ok(Mode::Auto));
        assert_eq!(Mode::parse("auto"), Ok(Mode::Auto));
        assert_eq!(Mode::parse(" Always"), Ok(Mode::Always));
        assert_eq!(Mode::parse("off"), Ok(Mode::Off));
        assert_eq!(Close::parse(""), Ok(Close::Wait));
        assert_eq!(Close::parse(" Relaxed "), Ok(Close::Relaxed));
        assert!(Close::parse("lazy")
            .unwrap_err()
            .contains("expected wait or relaxed"));
        let Err(e) = Mode::parse("fast") else {
            panic!("accepted a bad mode")
        };
        assert!(
            e.contains("CONVEYOR_MODE")
                && e.contains("\"fast\"")
                && e.contains("auto, always or off")
        );
    }

    #[test]
    fn local_filesystems_pass_through_unless_measured_slow() {
        let ms = Duration::from_millis;
        assert!(passes_in_auto(of_type("tmpfs"), None));
        assert!(passes_in_auto(
            of_type("ext4"),
            Some(Duration::from_micros(5))
        ));
        assert!(!passes_in_auto(of_type("ext4"), Some(ms(3))));
        assert!(!passes_in_auto(
            of_type("fuse.sshfs"),
            Some(Duration::from_micros(5))
        ));
        assert!(!passes_in_auto(of_type("nfs4"), None));
    }

    #[test]
    fn rclone_without_its_write_cache_passes_through() {
        let v = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        let procs = vec![
            v("rclone mount r:/a /mnt/a --vfs-cache-mode writes"),
            v("rclone mount r:/b /mnt/b"),
            v("/usr/bin/rclone mount r:/c /mnt/c/ --vfs-cache-mode=full"),
            v("grep rclone /mnt/e"),
        ];
        assert!(!of_mount("fuse.rclone", "/mnt/a", &procs).pass_through);
        assert!(of_mount("fuse.rclone", "/mnt/b", &procs).pass_through);
        assert!(!of_mount("fuse.rclone", "/mnt/c", &procs).pass_through);
        // Not found (a process that only names the mount does not count):
        // assumed without a cache.
        assert!(of_mount("fuse.rclone", "/mnt/d", &procs).pass_through);
        assert!(of_mount("fuse.rclone", "/mnt/e", &procs).pass_through);
        assert_eq!(rclone_mode_for("/mnt/e", &procs), None);
        assert!(!of_mount("fuse.sshfs", "/mnt/d", &procs).pass_through);
    }
}
