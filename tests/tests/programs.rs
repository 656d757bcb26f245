//! coreutils and tar under the shim: `cp -r`, tar create and extract (to
//! files and through a pipe), `sha256sum` and `cat`, on a generated tree
//! with nested and empty directories, empty files, odd sizes up to a few
//! MiB and symlinks. The whole pipeline runs once in a directory the shim
//! manages and once without the shim; results must match byte for byte.

mod common;

use common::{gen_tree, managed_calls, sum};
use conveyor_tests::{ok, pattern, tree, Run, TempDir};
use std::collections::HashMap;
use std::path::Path;
use std::process::Output;

/// Deterministic tar options: the archives of equal trees are equal.
const TAR_C: &[&str] = &[
    "--format=gnu",
    "--sort=name",
    "--mtime=@0",
    "--owner=0",
    "--group=0",
    "--numeric-owner",
];

struct Pipeline {
    /// stdout of each step, for comparison between the runs.
    outputs: Vec<(String, Vec<u8>)>,
    /// Managed calls of each step (empty without the shim).
    counts: Vec<(String, HashMap<String, u64>)>,
}

/// Runs `prog args` in `dir`, under the shim managing `dir` if `shim`.
fn step(p: &mut Pipeline, shim: bool, dir: &Path, prog: &str, args: &[&str]) -> Output {
    let what = format!("{prog} {}", args.join(" "));
    let run = Run::new(prog, args, dir).env("LC_ALL", "C");
    let out = if shim {
        let (out, counts) = run.shimmed(dir);
        p.counts.push((what.clone(), counts));
        out
    } else {
        run.plain()
    };
    ok(&out, &format!("{what} (shim: {shim})"));
    p.outputs.push((what, out.stdout.clone()));
    out
}

fn pipeline(dir: &Path, shim: bool) -> Pipeline {
    let mut p = Pipeline {
        outputs: Vec::new(),
        counts: Vec::new(),
    };
    gen_tree(&dir.join("src"));
    step(&mut p, shim, dir, "cp", &["-r", "src", "copy"]);
    let mut c: Vec<&str> = TAR_C.to_vec();
    c.extend(["-cf", "src.tar", "-C", "src", "."]);
    step(&mut p, shim, dir, "tar", &c);
    let mut c: Vec<&str> = TAR_C.to_vec();
    c.extend(["-cf", "copy.tar", "-C", "copy", "."]);
    step(&mut p, shim, dir, "tar", &c);
    std::fs::create_dir(dir.join("ext")).unwrap();
    step(&mut p, shim, dir, "tar", &["-xf", "src.tar", "-C", "ext"]);
    // tar to tar through a pipe: both ends are fresh processes under the
    // shim (the shell forks and execs them).
    std::fs::create_dir(dir.join("piped")).unwrap();
    let script = format!(
        "tar {} -cf - -C copy . | tar -xf - -C piped",
        TAR_C.join(" ")
    );
    step(&mut p, shim, dir, "sh", &["-c", &script]);
    // Checksums of what the extractions wrote, read back by another
    // program (through the shim, in the managed run).
    step(
        &mut p,
        shim,
        dir,
        "sh",
        &[
            "-c",
            "cd ext && find . -type f | sort | tr '\\n' '\\0' | xargs -0 sha256sum",
        ],
    );
    step(
        &mut p,
        shim,
        dir,
        "sh",
        &[
            "-c",
            "cd piped && find . -type f | sort | tr '\\n' '\\0' | xargs -0 sha256sum",
        ],
    );
    p
}

#[test]
fn cp_and_tar_tree() {
    let managed = TempDir::new("tree-shim");
    let plain = TempDir::new("tree-plain");
    let s = pipeline(managed.path(), true);
    let q = pipeline(plain.path(), false);

    // The generated trees are the reference.
    let want = tree(&plain.path().join("src"));
    assert!(want.len() > 30, "generated tree too small: {}", want.len());
    assert_eq!(tree(&managed.path().join("src")), want, "sources differ");
    for sub in ["copy", "ext", "piped"] {
        let got = tree(&managed.path().join(sub));
        let names = |t: &[(String, String, Vec<u8>)]| {
            t.iter()
                .map(|e| (e.0.clone(), e.1.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(&got),
            names(&want),
            "{sub}: entries differ under the shim"
        );
        assert!(got == want, "{sub}: contents differ under the shim");
        assert!(
            tree(&plain.path().join(sub)) == want,
            "{sub}: contents differ without the shim"
        );
    }
    // The archives are deterministic: equal trees, equal bytes.
    let plain_tar = std::fs::read(plain.path().join("src.tar")).unwrap();
    assert!(plain_tar.len() > 6 * 1024 * 1024, "archive too small");
    for name in ["src.tar", "copy.tar"] {
        let got = std::fs::read(managed.path().join(name)).unwrap();
        assert!(
            got == plain_tar,
            "{name} under the shim differs from the plain src.tar"
        );
    }
    // Every program printed the same (the checksum listings).
    assert_eq!(s.outputs.len(), q.outputs.len());
    for ((what, a), (_, b)) in s.outputs.iter().zip(&q.outputs) {
        assert!(
            a == b,
            "{what}: stdout differs:\n{}\n---\n{}",
            String::from_utf8_lossy(a),
            String::from_utf8_lossy(b)
        );
    }
    let listing = &s.outputs[s.outputs.len() - 1].1;
    assert_eq!(
        String::from_utf8_lossy(listing).lines().count(),
        14,
        "checksum listing: {}",
        String::from_utf8_lossy(listing)
    );

    // The shim really carried the I/O: tar wrote and read managed files.
    let find = |prefix: &str| {
        s.counts
            .iter()
            .find(|(w, _)| w.starts_with(prefix))
            .map(|(_, c)| c)
            .unwrap()
    };
    let create = find("tar --format=gnu");
    assert!(sum(create, &["write"]) > 0, "tar -c: {create:?}");
    assert!(
        sum(create, &["read", "__read_chk"]) > 0,
        "tar -c: {create:?}"
    );
    let extract = find("tar -xf");
    assert!(sum(extract, &["write"]) > 0, "tar -x: {extract:?}");
    assert!(
        sum(extract, &["read", "__read_chk"]) > 0,
        "tar -x: {extract:?}"
    );
    let cp = find("cp -r");
    assert!(!managed_calls(cp).is_empty(), "cp: nothing managed: {cp:?}");
}

fn cat_files(dir: &Path) -> Vec<u8> {
    let files: &[(&str, usize)] = &[
        ("a", 1024 * 1024 + 17),
        ("b", 0),
        ("c", 3),
        ("d", 300_001),
        ("e", 4096),
    ];
    let mut all = Vec::new();
    for (i, (name, len)) in files.iter().enumerate() {
        let data = pattern(40 + i as u64, *len);
        std::fs::write(dir.join(name), &data).unwrap();
        all.extend_from_slice(&data);
    }
    all
}

#[test]
fn cat_to_pipe_and_file() {
    let dir = TempDir::new("cat");
    let want = cat_files(dir.path());
    let files = ["a", "b", "c", "d", "e"];

    // To a pipe (the test's stdout capture).
    let plain = Run::new("cat", &files, dir.path()).plain();
    ok(&plain, "cat without the shim");
    assert!(plain.stdout == want, "cat without the shim");
    let (out, counts) = Run::new("cat", &files, dir.path()).shimmed(dir.path());
    ok(&out, "cat to a pipe under the shim");
    assert!(out.stdout == want, "cat to a pipe differs under the shim");
    assert!(
        sum(&counts, &["read", "__read_chk"]) > 0,
        "cat read nothing through the shim: {counts:?}"
    );

    // To a file, through the shell's redirection, and through a pipe into a
    // second cat; then read back by a third.
    for (script, out_name) in [
        ("cat a b c d e > out1", "out1"),
        ("cat a b c - e < d > out2", "out2"),
        ("cat a b c d e | cat > out3", "out3"),
        ("cat a b c d e > out4 && cat out4 out4 > out5", "out5"),
    ] {
        let (out, counts) = Run::new("sh", &["-c", script], dir.path()).shimmed(dir.path());
        ok(&out, script);
        let got = std::fs::read(dir.path().join(out_name)).unwrap();
        let expect = if out_name == "out5" {
            [want.as_slice(), want.as_slice()].concat()
        } else {
            want.clone()
        };
        assert!(
            got == expect,
            "{script}: {out_name} differs ({} bytes)",
            got.len()
        );
        assert!(
            !managed_calls(&counts).is_empty(),
            "{script}: nothing managed: {counts:?}"
        );
    }
}

#[test]
fn shell_writes_around_children() {
    // The shell opens the file itself (a managed description), writes to
    // it with builtins, and lets children write through the same inherited
    // description in between: every byte must land after the previous one.
    let dir = TempDir::new("sh-redirect");
    std::fs::write(dir.path().join("a"), pattern(7, 100_003)).unwrap();
    std::fs::write(dir.path().join("c"), b"ccc").unwrap();
    let script = "{ printf start; cat a; printf mid; cat c; printf end; } > out; \
                  printf more >> out; cat out > copy";
    let plain_dir = TempDir::new("sh-redirect-plain");
    std::fs::copy(dir.path().join("a"), plain_dir.path().join("a")).unwrap();
    std::fs::copy(dir.path().join("c"), plain_dir.path().join("c")).unwrap();
    ok(
        &Run::new("sh", &["-c", script], plain_dir.path()).plain(),
        "plain shell",
    );
    let (out, counts) = Run::new("sh", &["-c", script], dir.path()).shimmed(dir.path());
    ok(&out, "shell under the shim");
    let mut want = b"start".to_vec();
    want.extend_from_slice(&pattern(7, 100_003));
    want.extend_from_slice(b"midcccendmore");
    assert!(
        std::fs::read(plain_dir.path().join("out")).unwrap() == want,
        "plain run is not what the test expects"
    );
    let got = std::fs::read(dir.path().join("out")).unwrap();
    assert!(
        got == want,
        "out differs under the shim: {} bytes, want {}; starts {:?}, ends {:?}",
        got.len(),
        want.len(),
        String::from_utf8_lossy(&got[..got.len().min(8)]),
        String::from_utf8_lossy(&got[got.len().saturating_sub(16)..])
    );
    assert!(std::fs::read(dir.path().join("copy")).unwrap() == want);
    assert!(
        sum(&counts, &["write"]) > 0,
        "the shell's builtins wrote nothing through the shim: {counts:?}"
    );
}
