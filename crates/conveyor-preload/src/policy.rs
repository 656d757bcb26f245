//! Which opens are managed, as a pure decision: regular files whose
//! canonical path (as the kernel resolved it: symlinks, `..`, relative
//! paths and dirfds included) lies under `CONVEYOR_PATHS`, opened without
//! `O_PATH`, `O_DIRECT`, `O_SYNC` or `O_DSYNC`. What a process has passed
//! through (`passthrough`) and what a filesystem allows (`fskind`) are
//! decided beside it, by the open path (`ops::open`).

use libc::c_int;

/// Flags whose semantics buffering would break: left to the kernel.
pub const PASS_FLAGS: c_int = libc::O_PATH | libc::O_DIRECT | libc::O_DSYNC;

/// Descriptors at or below this are the standard streams: glibc's stdio
/// and shell builtins write and read them through internal calls that no
/// hook sees, so a description there is exposed (`Desc::exposed`).
pub const LAST_STD_FD: c_int = 2;

/// True if the canonical `path` lies under one of `prefixes` (absolute,
/// normalised, no trailing slash; `/` selects everything).
pub fn under(prefixes: &[Vec<u8>], path: &[u8]) -> bool {
    prefixes.iter().any(|p| {
        path.starts_with(p)
            && (path.len() == p.len() || path[p.len()] == b'/' || p.as_slice() == b"/")
    })
}

/// What the admission rules say of an open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// Managed.
    Manage,
    /// Opened with a flag buffering would break (`O_PATH`, `O_DIRECT`,
    /// `O_SYNC`, `O_DSYNC`): the kernel serves it.
    Flags,
    /// Not a regular file.
    NotRegular,
    /// Not under a selected path.
    NotSelected,
}

/// The admission decision for an open with `flags` of a file of type
/// `mode` whose canonical path is `path`, under the selected `prefixes`.
/// Pure: what a process has passed through, and what a filesystem allows,
/// are decided by the caller.
pub fn admit(flags: c_int, mode: u32, path: &[u8], prefixes: &[Vec<u8>]) -> Admit {
    if flags & PASS_FLAGS != 0 {
        Admit::Flags
    } else if !crate::identity::is_regular(mode) {
        Admit::NotRegular
    } else if !under(prefixes, path) {
        Admit::NotSelected
    } else {
        Admit::Manage
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefixes(v: &[&str]) -> Vec<Vec<u8>> {
        v.iter().map(|p| p.as_bytes().to_vec()).collect()
    }

    #[test]
    fn a_path_is_under_a_prefix_only_at_a_component_boundary() {
        let p = prefixes(&["/mnt/data", "/srv/x"]);
        assert!(under(&p, b"/mnt/data"));
        assert!(under(&p, b"/mnt/data/a/b"));
        assert!(under(&p, b"/srv/x/f"));
        assert!(!under(&p, b"/mnt/database"));
        assert!(!under(&p, b"/mnt"));
        assert!(!under(&p, b"/srv/xy/f"));
        assert!(under(&prefixes(&["/"]), b"/anything/at/all"));
        assert!(!under(&[], b"/mnt/data/f"));
    }

    #[test]
    fn admission_follows_flags_type_and_path() {
        let p = prefixes(&["/mnt/data"]);
        let file = libc::S_IFREG | 0o644;
        let f = b"/mnt/data/f";
        assert_eq!(admit(libc::O_RDWR, file, f, &p), Admit::Manage);
        assert_eq!(
            admit(libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT, file, f, &p),
            Admit::Manage
        );
        for flag in [libc::O_DIRECT, libc::O_DSYNC, libc::O_SYNC, libc::O_PATH] {
            assert_eq!(
                admit(libc::O_RDWR | flag, file, f, &p),
                Admit::Flags,
                "{flag:#x}"
            );
        }
        for kind in [
            libc::S_IFDIR,
            libc::S_IFIFO,
            libc::S_IFSOCK,
            libc::S_IFCHR,
            libc::S_IFLNK,
        ] {
            assert_eq!(
                admit(libc::O_RDONLY, kind | 0o644, f, &p),
                Admit::NotRegular
            );
        }
        assert_eq!(
            admit(libc::O_RDONLY, file, b"/etc/hosts", &p),
            Admit::NotSelected
        );
    }
}
