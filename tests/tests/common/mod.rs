//! Helpers shared by the program tests (each test file includes this module
//! and uses part of it).
#![allow(dead_code)]

use conveyor_tests::pattern;
use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The real python3 executable (not a pyenv wrapper script).
pub fn python() -> &'static Path {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        let out = std::process::Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .env_remove("LD_PRELOAD")
            .output()
            .expect("python3 is installed");
        assert!(out.status.success(), "python3 does not run");
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    })
}

/// Hooks counted even when no managed descriptor is involved: process
/// barriers and whole-system syncs.
pub const BARRIERS: &[&str] = &[
    "fork",
    "vfork",
    "execve",
    "execv",
    "execvp",
    "execvpe",
    "fexecve",
    "posix_spawn",
    "posix_spawnp",
    "system",
    "popen",
    "sync",
    "syncfs",
];

/// The counted calls that touched a managed descriptor or file.
pub fn managed_calls(counts: &HashMap<String, u64>) -> Vec<(&str, u64)> {
    let mut v: Vec<(&str, u64)> = counts
        .iter()
        .filter(|(k, _)| !BARRIERS.contains(&k.as_str()))
        .map(|(k, c)| (k.as_str(), *c))
        .collect();
    v.sort();
    v
}

/// The sum of the counts of `names`.
pub fn sum(counts: &HashMap<String, u64>, names: &[&str]) -> u64 {
    names
        .iter()
        .map(|n| counts.get(*n).copied().unwrap_or(0))
        .sum()
}

fn file(root: &Path, rel: &str, len: usize, seed: u64, mode: u32) {
    let p = root.join(rel);
    std::fs::write(&p, pattern(seed, len)).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A tree under `root` with nested and empty directories, empty files,
/// files of odd sizes up to a few MiB, and relative, absolute and dangling
/// symlinks. Modes survive a 022 umask.
pub fn gen_tree(root: &Path) {
    for d in [
        "a/b/c/d/e",
        "a/empty",
        "empty_top",
        "sp ace/inner",
        "x/y",
        "private",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::set_permissions(root.join("private"), std::fs::Permissions::from_mode(0o700)).unwrap();
    let files: &[(&str, usize, u32)] = &[
        ("top.bin", 3 * 1024 * 1024 + 12_345, 0o644),
        ("empty1", 0, 0o644),
        ("a/empty2", 0, 0o600),
        ("a/one", 1, 0o644),
        ("a/b/seven", 7, 0o755),
        ("a/b/c/page-1", 4095, 0o644),
        ("a/b/c/page", 4096, 0o644),
        ("a/b/c/page+1", 4097, 0o640),
        ("a/b/c/d/e/deep.dat", 65_537, 0o644),
        ("sp ace/odd name.txt", 131_071, 0o644),
        ("sp ace/inner/mib+3", 1024 * 1024 + 3, 0o644),
        ("x/y/small", 511, 0o644),
        ("x/y/2mib-1", 2 * 1024 * 1024 - 1, 0o755),
        ("private/secret", 12_289, 0o600),
    ];
    for (i, (rel, len, mode)) in files.iter().enumerate() {
        file(root, rel, *len, 100 + i as u64, *mode);
    }
    let links: &[(&str, &str)] = &[
        ("a/link_rel", "b/c/page"),
        ("a/b/c/d/up", "../../../../top.bin"),
        ("x/dir_link", "../a/b"),
        ("abs_link", "/usr/bin/env"),
        ("dangling_abs", "/nonexistent/conveyor/target"),
        ("dangling_rel", "no/such/file"),
    ];
    for (rel, target) in links {
        std::os::unix::fs::symlink(target, root.join(rel)).unwrap();
    }
}
