//! The inputs and checks of the workloads that are whole projects rather
//! than one file: a C build with make, a git checkout, and postmark. Each
//! input is generated deterministically once per benchmark run on local
//! disk, with a reference made there the same way, untimed; every run on a
//! target, with or without a preload, is compared with that reference, so
//! a plain and a shim run that both pass left the same bytes.

use crate::cases::{io, status, Lcg};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Copies the tree `from` to `to` (which must not exist), keeping the
/// executable bits.
pub fn copy_tree(from: &Path, to: &Path) -> Result<(), String> {
    io(std::fs::create_dir(to), to)?;
    for e in io(std::fs::read_dir(from), from)? {
        let e = io(e, from)?;
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let m = io(std::fs::symlink_metadata(&src), &src)?;
        if m.is_dir() {
            copy_tree(&src, &dst)?;
        } else {
            io(std::fs::copy(&src, &dst), &dst)?;
        }
    }
    Ok(())
}

/// A tree's entries by path relative to its root: `None` for a directory,
/// `Some(executable)` for a file.
fn listing(root: &Path, skip: &[&str]) -> Result<BTreeMap<PathBuf, Option<bool>>, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let d = root.join(&rel);
        for e in io(std::fs::read_dir(&d), &d)? {
            let e = io(e, &d)?;
            let name = e.file_name();
            if rel.as_os_str().is_empty() && skip.iter().any(|s| name == **s) {
                continue;
            }
            let r = rel.join(&name);
            let m = io(std::fs::symlink_metadata(e.path()), &e.path())?;
            if m.is_dir() {
                stack.push(r.clone());
                out.insert(r, None);
            } else {
                out.insert(r, Some(m.permissions().mode() & 0o100 != 0));
            }
        }
    }
    Ok(out)
}

/// Whether the filesystem holding `dir` keeps a file's executable bit
/// (rclone, for one, shows every file with the same mode).
fn keeps_exec_bit(dir: &Path) -> bool {
    let f = dir.join(".conveyor-mode-probe");
    let kept = std::fs::write(&f, b"")
        .and_then(|_| std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)))
        .and_then(|_| std::fs::metadata(&f))
        .is_ok_and(|m| m.permissions().mode() & 0o100 != 0);
    let _ = std::fs::remove_file(&f);
    kept
}

/// Checks that `got` holds the same names, kinds, executable bits and
/// bytes as `reference` (top-level names in `skip` left out of both).
/// Executable bits are compared only where the filesystem keeps them.
pub fn same_tree(reference: &Path, got: &Path, skip: &[&str]) -> Result<(), String> {
    let want = listing(reference, skip)?;
    let have = listing(got, skip)?;
    let mut diffs = Vec::new();
    let mut modes = Vec::new();
    for p in want.keys().filter(|p| !have.contains_key(*p)) {
        diffs.push(format!("{} missing", p.display()));
    }
    for p in have.keys().filter(|p| !want.contains_key(*p)) {
        diffs.push(format!("{} not expected", p.display()));
    }
    for (p, kind) in &want {
        let Some(got_kind) = have.get(p) else {
            continue;
        };
        match (kind, got_kind) {
            (None, None) => {}
            (Some(x), Some(y)) => {
                let a = io(std::fs::read(reference.join(p)), &reference.join(p))?;
                let b = io(std::fs::read(got.join(p)), &got.join(p))?;
                if a.len() != b.len() {
                    diffs.push(format!(
                        "{}: {} bytes, expected {}",
                        p.display(),
                        b.len(),
                        a.len()
                    ));
                } else if let Some(i) = a.iter().zip(&b).position(|(x, y)| x != y) {
                    diffs.push(format!("{}: differs at byte {i}", p.display()));
                } else if x != y {
                    modes.push(format!("{}: executable bit {y}, expected {x}", p.display()));
                }
            }
            _ => diffs.push(format!("{}: file and directory swapped", p.display())),
        }
    }
    // Probed only on a difference, so that filesystems that keep modes
    // see no extra request.
    if !modes.is_empty() && keeps_exec_bit(got) {
        diffs.extend(modes);
    }
    match diffs.len() {
        0 => Ok(()),
        n => Err(format!(
            "{} differs from the reference in {n} entries: {}",
            got.display(),
            diffs.into_iter().take(5).collect::<Vec<_>>().join("; ")
        )),
    }
}

/// A generated C project: `units` small translation units, each with a
/// table of constants and one function, a main that chains them, three
/// headers every unit includes, and a Makefile building `prog` from them.
pub struct MakeProject {
    // Sources and Makefile only, copied to the target before each run.
    src: PathBuf,
    // The same built once on local disk.
    reference: PathBuf,
    // What `prog` prints, computed here from the generated tables.
    expected: String,
    // A local copy of each run's binary is executed here.
    scratch: PathBuf,
}

const MIX: u64 = 31;

impl MakeProject {
    /// Generates the project under `dir` and builds the reference.
    pub fn make(dir: &Path, units: usize) -> Result<MakeProject, String> {
        let src = dir.join("make-src");
        let _ = std::fs::remove_dir_all(&src);
        for d in [src.join("src"), src.join("include")] {
            io(std::fs::create_dir_all(&d), &d)?;
        }
        let w = |rel: &str, text: &str| io(std::fs::write(src.join(rel), text), &src.join(rel));
        w(
            "include/common.h",
            &format!(
                "#ifndef COMMON_H\n#define COMMON_H\n\ntypedef unsigned long u64;\n\n\
                 #define MIX(s, v) ((s) * {MIX}UL + (v))\n\n#endif\n"
            ),
        )?;
        w(
            "include/config.h",
            "#ifndef CONFIG_H\n#define CONFIG_H\n\n#define TABLE_LEN 16\n\n#endif\n",
        )?;
        let mut protos =
            String::from("#ifndef UNITS_H\n#define UNITS_H\n\n#include \"common.h\"\n\n");
        let mut rng = Lcg(11);
        let mut acc: u64 = 1;
        let mut objs = Vec::new();
        for i in 0..units {
            let _ = writeln!(protos, "u64 unit_{i:03}(u64 x);");
            let tab: Vec<u64> = (0..16).map(|_| rng.next() % 100_000).collect();
            let mut s = acc;
            for v in &tab {
                s = s.wrapping_mul(MIX).wrapping_add(*v);
            }
            acc = s ^ i as u64;
            // Comment lines of varying count give the units the spread of
            // sizes of a real tree without changing what they compute.
            let mut c = String::new();
            for l in 0..(2 + rng.next() % 40) {
                let _ = writeln!(
                    c,
                    " * step {l}: mixes entry {} of the table into the state",
                    l % 16
                );
            }
            let list: Vec<String> = tab.iter().map(u64::to_string).collect();
            w(
                &format!("src/unit_{i:03}.c"),
                &format!(
                    "#include \"common.h\"\n#include \"config.h\"\n#include \"units.h\"\n\n\
                     /*\n * unit {i}\n{c} */\n\
                     static const unsigned tab[TABLE_LEN] = {{{}}};\n\n\
                     u64 unit_{i:03}(u64 x)\n{{\n    u64 s = x;\n    int k;\n\n\
                     \x20   for (k = 0; k < TABLE_LEN; k++)\n        s = MIX(s, tab[k]);\n\
                     \x20   return s ^ {i}UL;\n}}\n",
                    list.join(", ")
                ),
            )?;
            objs.push(format!("src/unit_{i:03}.o"));
        }
        protos.push_str("\n#endif\n");
        w("include/units.h", &protos)?;
        let calls: String = (0..units)
            .map(|i| format!("    acc = unit_{i:03}(acc);\n"))
            .collect();
        w(
            "main.c",
            &format!(
                "#include <stdio.h>\n#include \"common.h\"\n#include \"units.h\"\n\n\
                 int main(void)\n{{\n    u64 acc = 1;\n\n{calls}\
                 \x20   printf(\"units {units} checksum %lu\\n\", acc);\n    return 0;\n}}\n"
            ),
        )?;
        objs.push("main.o".into());
        // The objects are listed, not found by wildcard, so the link order
        // (and so the binary) is the same everywhere. `make -C` runs the
        // compiler with relative names, and without -g an object records
        // only the source's base name, so objects and binary are identical
        // byte for byte wherever the project is built (the build ID is a
        // hash of the contents).
        w(
            "Makefile",
            &format!(
                "CC = cc\nCFLAGS = -O0 -Iinclude\nHEADERS = include/common.h include/config.h include/units.h\n\
                 OBJS = {}\n\nprog: $(OBJS)\n\t$(CC) -o $@ $(OBJS)\n\n\
                 %.o: %.c $(HEADERS)\n\t$(CC) $(CFLAGS) -c $< -o $@\n",
                objs.join(" \\\n\t")
            ),
        )?;
        let reference = dir.join("make-ref");
        let _ = std::fs::remove_dir_all(&reference);
        copy_tree(&src, &reference)?;
        status(
            Command::new("make")
                .arg("-s")
                .arg("-j2")
                .arg("-C")
                .arg(&reference),
        )?;
        let p = MakeProject {
            src,
            expected: format!("units {units} checksum {acc}\n"),
            scratch: dir.join("make-prog"),
            reference,
        };
        p.run_prog(&p.reference.join("prog"))
            .map_err(|e| format!("the reference build: {e}"))?;
        Ok(p)
    }

    /// Copies the sources to `out` (on the target, outside the timed run)
    /// and returns the arguments of make building them at `out_seen`
    /// (the same directory as the program sees it).
    pub fn prepare(&self, out: &Path, out_seen: &Path) -> Result<Vec<String>, String> {
        copy_tree(&self.src, out)?;
        Ok(vec![
            "-j2".into(),
            "-C".into(),
            out_seen.display().to_string(),
        ])
    }

    // Runs a copy of `bin` from local disk (a mount may not allow
    // executing, or may not keep the executable bit) and compares what it
    // prints.
    fn run_prog(&self, bin: &Path) -> Result<(), String> {
        let _ = std::fs::remove_file(&self.scratch);
        io(std::fs::copy(bin, &self.scratch), &self.scratch)?;
        io(
            std::fs::set_permissions(&self.scratch, std::fs::Permissions::from_mode(0o755)),
            &self.scratch,
        )?;
        let got = status(&mut Command::new(&self.scratch))?;
        let _ = std::fs::remove_file(&self.scratch);
        if got != self.expected {
            return Err(format!(
                "prog printed {:?}, expected {:?}",
                got.trim(),
                self.expected.trim()
            ));
        }
        Ok(())
    }

    /// Checks a build at `out`: the binary prints what the tables give,
    /// and sources, objects and binary equal the reference byte for byte.
    pub fn check(&self, out: &Path) -> Result<(), String> {
        self.run_prog(&out.join("prog"))?;
        same_tree(&self.reference, out, &[])
    }
}

/// A git repository of generated text files (a few of them executable
/// scripts) on local disk: its work tree is the reference.
pub struct GitRepo {
    src: PathBuf,
}

/// git's environment in every command: no system or user configuration,
/// so the checkout is the same whoever runs the benchmark.
pub const GIT_ENV: [(&str, &str); 2] = [
    ("GIT_CONFIG_NOSYSTEM", "1"),
    ("GIT_CONFIG_GLOBAL", "/dev/null"),
];

fn git() -> Command {
    let mut c = Command::new("git");
    c.envs(GIT_ENV);
    c
}

impl GitRepo {
    /// Generates `files` files in 100 directories (10 x 10) under `dir`
    /// and commits them.
    pub fn make(dir: &Path, files: usize) -> Result<GitRepo, String> {
        let src = dir.join("git-src");
        let _ = std::fs::remove_dir_all(&src);
        let mut rng = Lcg(5);
        for i in 0..files {
            let d = src.join(format!("pkg{}/mod{}", i % 10, (i / 10) % 10));
            io(std::fs::create_dir_all(&d), &d)?;
            let script = i % 40 == 7;
            let f = d.join(if script {
                format!("run{i:04}.sh")
            } else {
                format!("file{i:04}.txt")
            });
            let mut text = if script {
                "#!/bin/sh\nset -e\n".to_string()
            } else {
                String::new()
            };
            let target = 200 + (rng.next() % 6000) as usize;
            while text.len() < target {
                let _ = writeln!(
                    text,
                    "{} entry {} weight {} of file {i}",
                    if script { "echo" } else { "-" },
                    rng.next() % 1000,
                    rng.next() % 97
                );
            }
            io(std::fs::write(&f, text), &f)?;
            if script {
                io(
                    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)),
                    &f,
                )?;
            }
        }
        status(git().arg("-C").arg(&src).args(["init", "-q", "-b", "main"]))?;
        status(git().arg("-C").arg(&src).args(["add", "-A"]))?;
        // Fixed names and dates: the same commit id in every run.
        status(
            git()
                .arg("-C")
                .arg(&src)
                .args(["commit", "-q", "-m", "generated tree"])
                .envs([
                    ("GIT_AUTHOR_NAME", "conveyor"),
                    ("GIT_AUTHOR_EMAIL", "bench@conveyor.invalid"),
                    ("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z"),
                    ("GIT_COMMITTER_NAME", "conveyor"),
                    ("GIT_COMMITTER_EMAIL", "bench@conveyor.invalid"),
                    ("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z"),
                ]),
        )?;
        Ok(GitRepo { src })
    }

    /// Clones the repository to `out` without checking out (outside the
    /// timed run; a file:// URL so the objects arrive as one pack, as from
    /// a server) and returns the arguments of the checkout at `out_seen`.
    pub fn prepare(&self, out: &Path, out_seen: &Path) -> Result<Vec<String>, String> {
        status(
            git()
                .args(["clone", "-q", "--no-checkout"])
                .arg(format!("file://{}", self.src.display()))
                .arg(out),
        )?;
        // After a clone without checkout there is no index: a plain
        // `git checkout` of the current branch writes every file and the
        // index.
        Ok(vec![
            "-C".into(),
            out_seen.display().to_string(),
            "checkout".into(),
        ])
    }

    /// Checks a checkout at `out`: git sees no change, and the files equal
    /// the source's work tree byte for byte, executable bits included.
    pub fn check(&self, out: &Path) -> Result<(), String> {
        // Without optional locks, status does not rewrite the index: `out`
        // may be the backing directory of a mount, where a file replaced
        // behind the mount's back confuses it (see cases::Prepared).
        let st = status(
            git()
                .arg("--no-optional-locks")
                .arg("-C")
                .arg(out)
                .args(["status", "--porcelain"]),
        )?;
        if !st.is_empty() {
            let n = st.lines().count();
            let first: Vec<&str> = st.lines().take(3).collect();
            return Err(format!(
                "git status lists {n} changes: {}",
                first.join("; ")
            ));
        }
        same_tree(&self.src, out, &[".git"])
    }
}

/// postmark's configuration and the part of its report that depends only
/// on the seed, from a reference run on local disk.
pub struct Postmark {
    files: usize,
    transactions: usize,
    config: PathBuf,
    report: Vec<String>,
}

/// The report from "Files:" on, without the rates, which depend on time:
/// the counts of files created, read, appended and deleted and the bytes
/// read and written.
fn counts(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .skip_while(|l| l.trim() != "Files:")
        .map(|l| match l.find(" (") {
            Some(i) => l[..i].trim().to_string(),
            None => l.trim().to_string(),
        })
        .filter(|l| !l.is_empty())
        .collect()
}

// The number in a report line such as "Creation alone: 300 files".
fn number_after(lines: &[String], prefix: &str) -> Vec<u64> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix(prefix))
        .filter_map(|r| r.split_whitespace().next()?.parse().ok())
        .collect()
}

impl Postmark {
    fn config(&self, location: &Path) -> String {
        format!(
            "set location {}\nset number {}\nset transactions {}\nset seed 42\nset size 500 10000\nrun\nquit\n",
            location.display(),
            self.files,
            self.transactions
        )
    }

    /// Runs postmark once in a directory under `dir` for the reference
    /// report.
    pub fn make(dir: &Path, files: usize, transactions: usize) -> Result<Postmark, String> {
        let mut p = Postmark {
            files,
            transactions,
            config: dir.join("postmark.cfg"),
            report: Vec::new(),
        };
        let loc = dir.join("postmark-ref");
        let _ = std::fs::remove_dir_all(&loc);
        io(std::fs::create_dir(&loc), &loc)?;
        let cfg = p.prepare(&loc, &loc)?;
        let out = Command::new("postmark")
            .args(&cfg)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| format!("postmark: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        p.report = counts(&stdout);
        p.check(&loc, &stdout, &String::from_utf8_lossy(&out.stderr))
            .map_err(|e| format!("the reference run of postmark: {e}"))?;
        let _ = std::fs::remove_dir(&loc);
        Ok(p)
    }

    /// Makes the directory postmark works in (`out`, seen by the program
    /// as `out_seen`) and writes its configuration on local disk; returns
    /// postmark's arguments.
    pub fn prepare(&self, out: &Path, out_seen: &Path) -> Result<Vec<String>, String> {
        if !out.exists() {
            io(std::fs::create_dir(out), out)?;
        }
        io(
            std::fs::write(&self.config, self.config(out_seen)),
            &self.config,
        )?;
        Ok(vec![self.config.display().to_string()])
    }

    /// Checks a run: postmark reported no error (it exits 0 even when it
    /// cannot create a file), made the transactions asked for (each one a
    /// creation or a deletion, with a read or an append), left its
    /// directory `out` empty, and its counts equal the reference run's.
    pub fn check(&self, out: &Path, stdout: &str, stderr: &str) -> Result<(), String> {
        if let Some(l) = stderr
            .lines()
            .chain(stdout.lines())
            .find(|l| l.contains("Error"))
        {
            return Err(format!("postmark: {}", l.trim()));
        }
        let got = counts(stdout);
        let alone = number_after(&got, "Creation alone:");
        let mixed: u64 = number_after(&got, "Mixed with transactions:").iter().sum();
        if alone != [self.files as u64] || mixed != self.transactions as u64 {
            return Err(format!(
                "postmark made {alone:?} files and {mixed} transactions, expected {} and {}: {stdout:?}",
                self.files, self.transactions
            ));
        }
        let left = io(std::fs::read_dir(out), out)?.count();
        if left != 0 {
            return Err(format!("postmark left {left} files in {}", out.display()));
        }
        if !self.report.is_empty() && got != self.report {
            return Err(format!(
                "postmark's counts differ from the reference run: {got:?}, expected {:?}",
                self.report
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("conveyor-projects-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("a/sub")).unwrap();
        std::fs::write(d.join("a/sub/f"), b"0123456789").unwrap();
        std::fs::write(d.join("a/g"), b"x").unwrap();
        copy_tree(&d.join("a"), &d.join("b")).unwrap();
        d
    }

    #[test]
    fn same_tree_finds_each_kind_of_difference() {
        let d = scratch("tree");
        let (a, b) = (d.join("a"), d.join("b"));
        same_tree(&a, &b, &[]).unwrap();
        std::fs::write(b.join("a-file"), b"").unwrap();
        let e = same_tree(&a, &b, &[]).unwrap_err();
        assert!(e.contains("a-file not expected"), "{e}");
        same_tree(&a, &b, &["a-file"]).unwrap();
        std::fs::write(b.join("sub/f"), b"0123x56789").unwrap();
        let e = same_tree(&a, &b, &["a-file"]).unwrap_err();
        assert!(e.contains("sub/f: differs at byte 4"), "{e}");
        std::fs::write(b.join("sub/f"), b"012").unwrap();
        let e = same_tree(&a, &b, &["a-file"]).unwrap_err();
        assert!(e.contains("sub/f: 3 bytes, expected 10"), "{e}");
        std::fs::remove_file(b.join("g")).unwrap();
        let e = same_tree(&a, &b, &["a-file"]).unwrap_err();
        assert!(e.contains("g missing"), "{e}");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn same_tree_compares_executable_bits_where_kept() {
        let d = scratch("mode");
        let (a, b) = (d.join("a"), d.join("b"));
        std::fs::set_permissions(a.join("g"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let e = same_tree(&a, &b, &[]).unwrap_err();
        assert!(e.contains("g: executable bit false, expected true"), "{e}");
        let _ = std::fs::remove_dir_all(&d);
    }

    const REPORT: &str = "Creating files...Done\nPerforming transactions..........Done\n\
        Deleting files...Done\nTime:\n\t1 seconds total\n\t1 seconds of transactions (600 per second)\n\n\
        Files:\n\t612 created (612 per second)\n\t\tCreation alone: 300 files (300 per second)\n\
        \t\tMixed with transactions: 312 files (312 per second)\n\t306 read (306 per second)\n\
        \t293 appended (293 per second)\n\t612 deleted (612 per second)\n\
        \t\tDeletion alone: 324 files (324 per second)\n\
        \t\tMixed with transactions: 288 files (288 per second)\n\n\
        Data:\n\t1.77 megabytes read (1.77 megabytes per second)\n\
        \t3.72 megabytes written (3.72 megabytes per second)\n";

    #[test]
    fn postmark_check_needs_the_transactions_the_counts_and_no_error() {
        let d = scratch("postmark");
        let empty = d.join("empty");
        std::fs::create_dir(&empty).unwrap();
        let p = Postmark {
            files: 300,
            transactions: 600,
            config: d.join("cfg"),
            report: counts(REPORT),
        };
        // Rates differ from run to run; counts do not.
        p.check(
            &empty,
            &REPORT.replace("(600 per second)", "(17 per second)"),
            "",
        )
        .unwrap();
        let e = p
            .check(&empty, REPORT, "Error: cannot open '/x/1' for writing")
            .unwrap_err();
        assert!(e.contains("cannot open"), "{e}");
        let short = REPORT.replace(
            "Mixed with transactions: 288",
            "Mixed with transactions: 287",
        );
        let e = p.check(&empty, &short, "").unwrap_err();
        assert!(e.contains("599 transactions"), "{e}");
        let e = p
            .check(
                &empty,
                &REPORT.replace("1.77 megabytes read", "1.76 megabytes read"),
                "",
            )
            .unwrap_err();
        assert!(e.contains("differ from the reference"), "{e}");
        let e = p.check(&d.join("a"), REPORT, "").unwrap_err();
        assert!(e.contains("left 2 files"), "{e}");
        let _ = std::fs::remove_dir_all(&d);
    }
}
