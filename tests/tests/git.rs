//! git under the shim: init, add and commit generated files (loose objects,
//! the index, refs), repack into a pack, `fsck --full`; with fixed
//! identities and dates the commit hashes, `git log` and `git cat-file`
//! output must equal a run without the shim, and the repository must be
//! sound for git without the shim afterwards.

mod common;

use common::{gen_tree, sum};
use conveyor_tests::{ok, pattern, Run, TempDir};
use std::collections::HashMap;
use std::path::Path;

fn git(dir: &Path, home: &Path, shim: bool, args: &[&str]) -> (String, HashMap<String, u64>) {
    let mut all = vec![
        "-c",
        "gc.auto=0",
        "-c",
        "init.defaultBranch=main",
        "-c",
        "core.fsync=all",
        "-c",
        "maintenance.auto=false",
    ];
    all.extend_from_slice(args);
    let run = Run::new("git", &all, dir)
        .env("HOME", home.to_str().unwrap())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Conveyor Test")
        .env("GIT_AUTHOR_EMAIL", "test@conveyor.invalid")
        .env("GIT_COMMITTER_NAME", "Conveyor Test")
        .env("GIT_COMMITTER_EMAIL", "test@conveyor.invalid")
        .env("GIT_AUTHOR_DATE", "2024-01-02T03:04:05+0000")
        .env("GIT_COMMITTER_DATE", "2024-01-02T03:04:05+0000")
        .env("LC_ALL", "C")
        .env("TZ", "UTC");
    let (out, counts) = if shim {
        run.shimmed(dir)
    } else {
        (run.plain(), HashMap::new())
    };
    ok(&out, &format!("git {} (shim: {shim})", args.join(" ")));
    (String::from_utf8_lossy(&out.stdout).into_owned(), counts)
}

/// The whole session; returns everything it printed, and the managed
/// calls of all the git runs.
fn session(shim: bool) -> (TempDir, Vec<(String, String)>, HashMap<String, u64>) {
    let home = TempDir::new("git-home");
    let dir = TempDir::new(if shim { "git-shim" } else { "git-plain" });
    let d = dir.path();
    let mut printed = Vec::new();
    let mut counts: HashMap<String, u64> = HashMap::new();
    let mut g = |args: &[&str]| {
        let (o, c) = git(d, home.path(), shim, args);
        for (k, v) in c {
            *counts.entry(k).or_insert(0) += v;
        }
        printed.push((args.join(" "), o.clone()));
        o
    };
    g(&["init", "-q", "."]);
    gen_tree(&d.join("tree"));
    g(&["add", "-A"]);
    g(&["commit", "-q", "-m", "first: generated tree"]);
    // Second commit: modified, new and deleted files.
    std::fs::write(d.join("tree/a/one"), b"changed\n").unwrap();
    std::fs::write(d.join("tree/new.bin"), pattern(77, 700_001)).unwrap();
    std::fs::remove_file(d.join("tree/x/y/small")).unwrap();
    for i in 0..40 {
        std::fs::write(
            d.join(format!("tree/many-{i:02}.txt")),
            format!("file {i}\n").repeat(i * 50 + 1),
        )
        .unwrap();
    }
    g(&["add", "-A"]);
    g(&["commit", "-q", "-m", "second: edits"]);
    g(&["tag", "-a", "v1", "-m", "tag v1"]);
    g(&["fsck", "--full", "--strict", "--no-progress"]);
    // Pack everything, then check again (reads the pack via mmap/pread).
    g(&["repack", "-a", "-d", "-q"]);
    g(&["prune-packed"]);
    g(&["fsck", "--full", "--strict", "--no-progress"]);
    g(&["rev-parse", "HEAD", "HEAD^", "HEAD^{tree}", "v1"]);
    g(&["log", "--format=%H %T %P %an %ae %ad %s", "--stat"]);
    g(&["cat-file", "-p", "HEAD"]);
    g(&["cat-file", "-p", "HEAD^{tree}"]);
    g(&["ls-tree", "-r", "-l", "HEAD"]);
    g(&["cat-file", "-p", "HEAD:tree/a/b/c/page+1"]);
    g(&["verify-pack", "-v", "--", &pack_idx(d)]);
    g(&["count-objects", "-v"]);
    g(&["status", "--porcelain"]);
    // A fresh checkout of the first commit in a second worktree.
    g(&["worktree", "add", "-q", "--detach", "wt", "HEAD^"]);
    g(&["-C", "wt", "status", "--porcelain"]);
    (dir, printed, counts)
}

/// The pack index's path, relative to the repository.
fn pack_idx(d: &Path) -> String {
    let packs = d.join(".git/objects/pack");
    let Ok(rd) = std::fs::read_dir(&packs) else {
        return String::from("no-pack");
    };
    let mut idx: Vec<String> = rd
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".idx"))
        .collect();
    idx.sort();
    idx.first()
        .map(|n| format!(".git/objects/pack/{n}"))
        .unwrap_or_default()
}

#[test]
fn git_commit_fsck_log() {
    let (pdir, plain, _) = session(false);
    let (sdir, shim, counts) = session(true);
    assert_eq!(plain.len(), shim.len());
    for ((what, p), (_, s)) in plain.iter().zip(&shim) {
        assert_eq!(s, p, "git {what}: output differs under the shim");
    }
    let find = |what: &str| &plain.iter().find(|(w, _)| w.starts_with(what)).unwrap().1;
    // The hashes really are fixed, and the log has both commits.
    let heads: Vec<&str> = find("rev-parse").lines().collect();
    assert_eq!(heads.len(), 4, "{heads:?}");
    assert!(heads.iter().all(|h| h.len() == 40), "{heads:?}");
    assert!(find("log").contains("second: edits"));
    assert!(find("log").contains("first: generated tree"));
    assert!(find("verify-pack").contains(" commit "), "no pack written");
    assert!(find("status").is_empty(), "worktree not clean");
    // git under the shim wrote and read its objects through it.
    assert!(sum(&counts, &["write"]) > 0, "no managed write: {counts:?}");
    assert!(
        sum(&counts, &["read", "pread", "pread64", "__read_chk"]) > 0,
        "no managed read: {counts:?}"
    );
    // The checked-out worktree equals the first commit's tree.
    let wt = conveyor_tests::tree(&sdir.path().join("wt/tree"));
    assert!(wt == conveyor_tests::tree(&pdir.path().join("wt/tree")));
    // 14 files, 6 links and the 10 non-empty directories of the first commit.
    assert_eq!(wt.len(), 30);
    // And git without the shim finds the shim's repository sound.
    let home = TempDir::new("git-home-check");
    let (o, _) = git(
        sdir.path(),
        home.path(),
        false,
        &["fsck", "--full", "--strict"],
    );
    assert!(o.is_empty() || !o.contains("error"), "{o}");
    let (o, _) = git(sdir.path(), home.path(), false, &["rev-parse", "HEAD"]);
    assert_eq!(o.trim(), heads[0]);
}
