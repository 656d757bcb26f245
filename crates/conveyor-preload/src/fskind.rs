//! What the shim knows of the filesystem a managed file lives on, learned
//! from `/proc/self/mountinfo` by device number once per device: the rules
//! of `conveyor_fskind` (which FUSE filesystems take no second handle,
//! make inode numbers up, or cannot take buffering at all), and whether
//! the filesystem is fast local storage that the default mode passes
//! through, decided at the first selected open there from its type and
//! how long that open took. The decision holds for the process: a file
//! that moved between the kernel and the shim while it is open would lose
//! read-after-write between its descriptors. Each new process decides
//! again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

pub use conveyor_fskind::Kind;

/// A device as the shim saw it at its first selected open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Device {
    /// The filesystem's rules.
    pub kind: Kind,
    /// Fast local storage: passed through in the default mode.
    pub fast: bool,
    /// Local storage not decided yet: its opens were slow, but fewer than
    /// `SLOW_LOCAL_OPENS` in a row. The file passes through for good (it
    /// must not move to the shim should the device turn out slow).
    pub undecided: bool,
}

// Devices seen by `learn`, with what was learned: few, so a list.
static DEVICES: Mutex<Vec<(u64, Device)>> = Mutex::new(Vec::new());

// Local devices whose opens were slow so far, with how many in a row.
static SLOW_OPENS: Mutex<Vec<(u64, u32)>> = Mutex::new(Vec::new());

/// Counts a slow open of local device `dev`; true once it is the
/// `SLOW_LOCAL_OPENS`th in a row.
fn slow_again(dev: u64) -> bool {
    let Ok(mut v) = SLOW_OPENS.lock() else {
        return false;
    };
    let n = match v.iter_mut().find(|(d, _)| *d == dev) {
        Some((_, n)) => {
            *n += 1;
            *n
        }
        None => {
            v.push((dev, 1));
            1
        }
    };
    n >= conveyor_fskind::SLOW_LOCAL_OPENS
}

// Set once `learn` found a filesystem whose readers pass through: until
// then an unmanaged open costs no extra system call to check for one.
static ANY_READERS_PASS: AtomicBool = AtomicBool::new(false);

/// True once a filesystem whose readers pass through was seen.
pub fn any_readers_pass() -> bool {
    ANY_READERS_PASS.load(Ordering::Acquire)
}

// Device `dev` if `learn` saw it.
fn seen(dev: u64) -> Option<Device> {
    DEVICES
        .lock()
        .ok()
        .and_then(|v| v.iter().find(|(d, _)| *d == dev).map(|(_, k)| *k))
}

/// The kind of device `dev` if `learn` saw it (a managed file lives there),
/// else the plain kind: no file of it is managed, so no key of it is looked up.
pub fn known(dev: u64) -> Kind {
    seen(dev).map(|d| d.kind).unwrap_or_default()
}

/// True if device `dev` was seen and found fast local storage (no mount
/// table read when it was not seen yet).
pub fn known_fast(dev: u64) -> bool {
    seen(dev).is_some_and(|d| d.fast)
}

/// Device `dev` as first seen, reading the mount table the first time;
/// `opened_in` is how long the open that brought it here took (the
/// measured half of the fast-storage decision). Called inside the
/// re-entry guard (the reads go to the kernel directly).
pub fn learn(dev: u64, opened_in: Option<Duration>) -> Device {
    if let Some(d) = seen(dev) {
        return d;
    }
    let mount = std::fs::read_to_string("/proc/self/mountinfo")
        .ok()
        .and_then(|info| conveyor_fskind::mount_of(&info, dev));
    let kind = mount
        .as_ref()
        .map(conveyor_fskind::learn)
        .unwrap_or_default();
    let fast = conveyor_fskind::passes_in_auto(kind, opened_in);
    let took = opened_in.map_or(0, |t| t.as_micros());
    if kind.local && !fast && opened_in.is_some() && !slow_again(dev) {
        // Maybe the machine, not the storage: decided at a later open.
        if let Some(m) = &mount {
            tracing::info!(
                "{} is {} (fast local storage; an open took {took} us, slow, but it takes {} in a row to say so: this file stays with the kernel)",
                m.point,
                m.fstype,
                conveyor_fskind::SLOW_LOCAL_OPENS
            );
        }
        return Device {
            kind,
            fast: true,
            undecided: true,
        };
    }
    if let Some(m) = &mount {
        let what = if fast {
            "fast local storage"
        } else if kind.local {
            "local storage measured slow"
        } else {
            "slow storage"
        };
        tracing::info!(
            "{} is {} ({what}; first open took {took} us)",
            m.point,
            m.fstype
        );
    }
    if kind.readers_pass {
        ANY_READERS_PASS.store(true, Ordering::Release);
    }
    let seen = Device {
        kind,
        fast,
        undecided: false,
    };
    if let Ok(mut v) = DEVICES.lock() {
        if !v.iter().any(|(d, _)| *d == dev) {
            v.push((dev, seen));
        }
    }
    seen
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
    fn path_ids_differ() {
        assert_ne!(path_id(b"/m/.git/HEAD"), path_id(b"/m/.git/HEAD.lock"));
    }
}
