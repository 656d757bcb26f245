//! `git gc` on a repository under the shim: the top-level git reads a
//! pack, maps it (the description goes to the kernel), closes it and opens
//! the next file under the same descriptor number. Read-ahead it queued
//! before the mapping must not reach for that number afterwards: before
//! that was ordered, most runs printed "descriptor 3 was closed without the
//! shim seeing it" and counted an error on the pack (stderr differed from
//! the plain run's). The repository is checked with `git fsck` too.

use conveyor_tests::{ok, pattern, Run, TempDir};
use std::path::Path;

const ENV: [(&str, &str); 7] = [
    ("GIT_AUTHOR_NAME", "a"),
    ("GIT_AUTHOR_EMAIL", "a@b"),
    ("GIT_COMMITTER_NAME", "a"),
    ("GIT_COMMITTER_EMAIL", "a@b"),
    ("GIT_AUTHOR_DATE", "2020-01-01T00:00:00Z"),
    ("GIT_COMMITTER_DATE", "2020-01-01T00:00:00Z"),
    ("GIT_CONFIG_NOSYSTEM", "1"),
];

fn git(dir: &Path, args: &[&str], shim: bool) -> std::process::Output {
    let mut r = Run::new("git", args, dir).env("HOME", "/nonexistent");
    for (k, v) in ENV {
        r = r.env(k, v);
    }
    let out = if shim { r.shimmed(dir).0 } else { r.plain() };
    ok(&out, &format!("git {}", args.join(" ")));
    out
}

#[test]
fn git_gc_prints_what_it_prints_without_the_shim() {
    let tmp = TempDir::new("gitgc");
    let repo = tmp.path().join("repo");
    std::fs::create_dir_all(repo.join("a/b")).unwrap();
    git(&repo, &["init", "-q", "-b", "main"], false);
    git(&repo, &["config", "pack.threads", "1"], false);
    git(&repo, &["config", "core.fsync", "all"], false);
    for i in 1..=60u64 {
        std::fs::write(repo.join(format!("a/f{i}")), pattern(i, (i * 511) as usize)).unwrap();
        let lines: String = (1..=i).map(|n| format!("{n}\n")).collect();
        std::fs::write(repo.join(format!("a/b/s{i}")), lines).unwrap();
    }
    git(&repo, &["add", "-A"], false);
    git(&repo, &["commit", "-qm", "one"], false);
    git(&repo, &["gc", "-q", "--aggressive"], false);
    for round in 0..6 {
        std::fs::write(repo.join("a/f1"), format!("round {round}\n")).unwrap();
        git(&repo, &["commit", "-qam", &format!("c{round}")], false);
        let out = git(&repo, &["gc", "-q"], true);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.is_empty(), "git gc said, round {round}: {err}");
    }
    git(&repo, &["fsck", "--strict"], false);
}
