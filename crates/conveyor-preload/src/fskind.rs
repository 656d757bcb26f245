//! What the shim knows of the filesystem a managed file lives on, learned
//! from `/proc/self/mountinfo` by device number once per device.
//!
//! Some FUSE filesystems make inode numbers up: on rclone a new
//! `HEAD.lock` and the `HEAD` git just renamed it over report the same
//! `(st_dev, st_ino)`, so keying file state by them serves one file's data
//! for the other. On such filesystems a file is identified by its device
//! and the path the kernel has for it instead.
//!
//! Some commit a file when a descriptor of it is closed and cannot take a
//! second handle on it: s3fs uploads the object at every close of a
//! modified file (moving the shim's reopened descriptor to a high number
//! closes its first copy, which uploaded each new file empty before its
//! data: twice the PUT requests of the plain program), and rclone without its write cache
//! refuses reads through a second read-write handle and uploads a file
//! written through two handles twice, then drops it as corrupted. There
//! the shim's private descriptor is a duplicate of the program's: the
//! filesystem sees the program's one handle and nothing else.
//!
//! rclone without its write cache (`--vfs-cache-mode off` or `minimal`)
//! cannot take even that: a second flush of a handle nothing was written
//! through yet ends it (a shell's `> file` already flushes once when the
//! redirection's descriptor is moved to 1), and reads and writes must be
//! sequential. Files there pass through. The mode is read from the
//! command line of the rclone process serving the mount point; when it
//! cannot be found, the shim assumes no cache.
//!
//! With its write cache, rclone serves reads of a file it is still
//! writing back unreliably once reads come concurrently (prefetches beside
//! the program's reads failed with ENOENT or EIO in an fsx-style exerciser
//! that passes without the shim). There only descriptions opened
//! write-only are managed (sequential writes gain the most); an open for
//! reading passes the file through, after its pending data is written.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// What a filesystem type implies for the shim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kind {
    /// Inode numbers do not identify files (two files can share one).
    pub unstable_ino: bool,
    /// Never open a second handle on a file: duplicate the program's.
    pub single_handle: bool,
    /// Manage nothing there.
    pub pass_through: bool,
    /// Manage only descriptions opened write-only; an open for reading
    /// passes the file through.
    pub readers_pass: bool,
}

const PLAIN: Kind = Kind {
    unstable_ino: false,
    single_handle: false,
    pass_through: false,
    readers_pass: false,
};

/// The kind of a filesystem type as `/proc/self/mountinfo` names it.
pub fn of_type(fstype: &str) -> Kind {
    Kind {
        unstable_ino: fstype == "fuse.rclone",
        single_handle: matches!(fstype, "fuse.rclone" | "fuse.s3fs"),
        pass_through: false,
        readers_pass: fstype == "fuse.rclone",
    }
}

/// The kind of a mount: its type, and for rclone the cache mode of the
/// process serving `mnt` (from the argument vectors `cmdlines`).
pub fn of_mount(fstype: &str, mnt: &str, cmdlines: &[Vec<String>]) -> Kind {
    let mut k = of_type(fstype);
    if fstype == "fuse.rclone" {
        let mode = cmdlines
            .iter()
            .find(|a| {
                a.iter().any(|x| x == "mount") && a.iter().any(|x| x.trim_end_matches('/') == mnt)
            })
            .and_then(|a| rclone_cache_mode(a));
        k.pass_through = !matches!(mode.as_deref(), Some("writes" | "full"));
    }
    k
}

/// The value of `--vfs-cache-mode` in an rclone command line (`off` if
/// not given: rclone's default).
fn rclone_cache_mode(args: &[String]) -> Option<String> {
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

/// The argument vectors of the processes that may serve a FUSE mount.
fn cmdlines() -> Vec<Vec<String>> {
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

// Devices seen by `learn`, with their kind: few, so a list.
static DEVICES: Mutex<Vec<(u64, Kind)>> = Mutex::new(Vec::new());

// Set once `learn` found a filesystem whose readers pass through: until
// then an unmanaged open costs no extra system call to check for one.
static ANY_READERS_PASS: AtomicBool = AtomicBool::new(false);

/// True once a filesystem whose readers pass through was seen.
pub fn any_readers_pass() -> bool {
    ANY_READERS_PASS.load(Ordering::Acquire)
}

/// The kind of device `dev` if `learn` saw it (a managed file lives there),
/// else the plain kind: no file of it is managed, so no key of it is looked up.
pub fn known(dev: u64) -> Kind {
    DEVICES
        .lock()
        .ok()
        .and_then(|v| v.iter().find(|(d, _)| *d == dev).map(|(_, k)| *k))
        .unwrap_or(PLAIN)
}

/// The kind of device `dev`, reading the mount table the first time.
/// Called inside the re-entry guard (the read goes to the kernel directly).
pub fn learn(dev: u64) -> Kind {
    if let Ok(v) = DEVICES.lock() {
        if let Some((_, k)) = v.iter().find(|(d, _)| *d == dev) {
            return *k;
        }
    }
    let kind = std::fs::read_to_string("/proc/self/mountinfo")
        .ok()
        .and_then(|info| mount_of(&info, dev))
        .map(|(t, mnt)| {
            let lines = if t == "fuse.rclone" {
                cmdlines()
            } else {
                Vec::new()
            };
            of_mount(&t, &mnt, &lines)
        })
        .unwrap_or(PLAIN);
    if kind.readers_pass {
        ANY_READERS_PASS.store(true, Ordering::Release);
    }
    if let Ok(mut v) = DEVICES.lock() {
        if !v.iter().any(|(d, _)| *d == dev) {
            v.push((dev, kind));
        }
    }
    kind
}

/// The filesystem type and mount point of device `dev` in a mount table.
pub fn mount_of(info: &str, dev: u64) -> Option<(String, String)> {
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let want = format!("{major}:{minor}");
    info.lines().find_map(|line| {
        let f: Vec<&str> = line.split(' ').collect();
        if f.get(2) != Some(&want.as_str()) {
            return None;
        }
        let sep = f.iter().position(|x| *x == "-")?;
        let mnt = f.get(4)?.replace("\\040", " ");
        f.get(sep + 1).map(|t| (t.to_string(), mnt))
    })
}

/// FNV-1a: a stable 64-bit name for a path.
pub fn path_id(path: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in path {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_type_of_a_device() {
        let info = "42 27 0:39 / /mnt/a rw,nosuid - fuse.sshfs host:/x rw\n\
                    43 27 0:40 / /mnt/b rw,nosuid - fuse.rclone loop:/y rw,user_id=0\n";
        let dev = libc::makedev(0, 40);
        assert_eq!(
            mount_of(info, dev),
            Some(("fuse.rclone".to_string(), "/mnt/b".to_string()))
        );
        assert!(of_type("fuse.rclone").unstable_ino);
        assert!(!of_type("fuse.sshfs").unstable_ino);
        assert!(of_type("fuse.s3fs").single_handle && !of_type("fuse.s3fs").unstable_ino);
        assert_eq!(of_type("ext4"), PLAIN);
        assert_eq!(mount_of(info, libc::makedev(0, 41)), None);
    }

    #[test]
    fn rclone_without_its_write_cache_passes_through() {
        let v = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        let procs = vec![
            v("rclone mount r:/a /mnt/a --vfs-cache-mode writes"),
            v("rclone mount r:/b /mnt/b"),
            v("rclone mount r:/c /mnt/c --vfs-cache-mode=full"),
        ];
        assert!(!of_mount("fuse.rclone", "/mnt/a", &procs).pass_through);
        assert!(of_mount("fuse.rclone", "/mnt/b", &procs).pass_through);
        assert!(!of_mount("fuse.rclone", "/mnt/c", &procs).pass_through);
        // Not found: assumed without a cache.
        assert!(of_mount("fuse.rclone", "/mnt/d", &procs).pass_through);
        assert!(!of_mount("fuse.sshfs", "/mnt/d", &procs).pass_through);
    }

    #[test]
    fn path_ids_differ() {
        assert_ne!(path_id(b"/m/.git/HEAD"), path_id(b"/m/.git/HEAD.lock"));
    }
}
