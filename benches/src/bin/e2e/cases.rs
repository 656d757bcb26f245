//! The workloads: real programs, their inputs (made outside the timed
//! region), their command lines, and the checks of what they left on
//! storage.

use crate::projects::{GitRepo, MakeProject, Postmark, GIT_ENV};
use crate::target::Mode;
use crate::target::Target;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Sizes of the workloads (the same at every latency, so ratios compare).
#[derive(Clone, Debug)]
pub struct Sizes {
    /// MiB written or read by the dd cases.
    pub dd_mib: usize,
    /// Random 4 KiB I/Os per fio run.
    pub fio_ios: usize,
    /// MiB of the file fio works in.
    pub fio_mib: usize,
    /// Files in the tarball.
    pub tar_files: usize,
    /// sqlite3 transactions (one insert and one commit, with fsync, each).
    pub sqlite_txns: usize,
    /// Lines the python3 logger writes.
    pub log_lines: usize,
    /// C files (besides main.c) in the project make builds.
    pub make_units: usize,
    /// Files git checks out.
    pub git_files: usize,
    /// Files postmark starts with.
    pub postmark_files: usize,
    /// postmark's transactions.
    pub postmark_txns: usize,
    /// MiB of the text file `sort` and `awk` read.
    pub text_mib: usize,
    /// Lines the C program writes with `fprintf`.
    pub fprintf_lines: usize,
}

impl Sizes {
    /// The sizes of the published results.
    pub fn full() -> Sizes {
        Sizes {
            dd_mib: 64,
            fio_ios: 1000,
            fio_mib: 64,
            tar_files: 2000,
            sqlite_txns: 200,
            log_lines: 5000,
            make_units: 150,
            git_files: 3000,
            postmark_files: 300,
            postmark_txns: 600,
            text_mib: 50,
            fprintf_lines: 100_000,
        }
    }

    /// Small sizes for a smoke test.
    pub fn quick() -> Sizes {
        Sizes {
            dd_mib: 8,
            fio_ios: 200,
            fio_mib: 8,
            tar_files: 200,
            sqlite_txns: 20,
            log_lines: 500,
            make_units: 20,
            git_files: 300,
            postmark_files: 50,
            postmark_txns: 100,
            text_mib: 4,
            fprintf_lines: 10_000,
        }
    }
}

/// One workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    /// `dd bs=4k` writing zeros: many small sequential writes.
    DdWrite4k,
    /// `dd bs=1M` writing the same: the storage's limit.
    DdWrite1m,
    /// `dd bs=4k` reading a file sequentially.
    DdRead4k,
    /// fio, random 4 KiB reads (psync).
    FioRandRead,
    /// fio, random 4 KiB writes (psync).
    FioRandWrite,
    /// GNU tar extracting many small files.
    TarExtract,
    /// sqlite3 inserting rows, one transaction (and fsync) each.
    Sqlite,
    /// python3 writing a log line by line (line-buffered file).
    PythonLog,
    /// `make -j2` compiling and linking a generated C project.
    Make,
    /// `git checkout` of a cloned repository of many small files.
    GitCheckout,
    /// postmark: small files created, read, appended and deleted.
    Postmark,
    /// A C program writing a log with one `fprintf` per line (a stdio
    /// stream of the default size).
    FprintfLog,
    /// `sort -n -o` of a text file (read through stdio; written through
    /// stdout on descriptor 1).
    Sort,
    /// `awk` filtering a text file into a file of its own (`print > f`).
    Awk,
}

impl Case {
    /// Every case, in table order.
    pub const ALL: [Case; 14] = [
        Case::DdWrite4k,
        Case::DdWrite1m,
        Case::DdRead4k,
        Case::FioRandRead,
        Case::FioRandWrite,
        Case::TarExtract,
        Case::Sqlite,
        Case::PythonLog,
        Case::Make,
        Case::GitCheckout,
        Case::Postmark,
        Case::FprintfLog,
        Case::Sort,
        Case::Awk,
    ];

    /// Short name used in results and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Case::DdWrite4k => "dd_write_4k",
            Case::DdWrite1m => "dd_write_1m",
            Case::DdRead4k => "dd_read_4k",
            Case::FioRandRead => "fio_randread_4k",
            Case::FioRandWrite => "fio_randwrite_4k",
            Case::TarExtract => "tar_extract",
            Case::Sqlite => "sqlite_insert",
            Case::PythonLog => "python_log",
            Case::Make => "make_c",
            Case::GitCheckout => "git_checkout",
            Case::Postmark => "postmark",
            Case::FprintfLog => "fprintf_log",
            Case::Sort => "sort",
            Case::Awk => "awk",
        }
    }

    /// Parses a name.
    pub fn parse(s: &str) -> Option<Case> {
        Case::ALL.into_iter().find(|c| c.name() == s)
    }

    /// What the case does, with its size.
    pub fn title(self, s: &Sizes) -> String {
        match self {
            Case::DdWrite4k => format!("dd bs=4k write, {} MiB", s.dd_mib),
            Case::DdWrite1m => format!("dd bs=1M write, {} MiB", s.dd_mib),
            Case::DdRead4k => format!("dd bs=4k sequential read, {} MiB", s.dd_mib),
            Case::FioRandRead => format!(
                "fio 4 KiB random reads, {} I/Os in {} MiB",
                s.fio_ios, s.fio_mib
            ),
            Case::FioRandWrite => format!(
                "fio 4 KiB random writes, {} I/Os in {} MiB",
                s.fio_ios, s.fio_mib
            ),
            Case::TarExtract => format!("tar -x of {} small files", s.tar_files),
            Case::Sqlite => format!("sqlite3, {} inserts, one transaction each", s.sqlite_txns),
            Case::PythonLog => format!("python3 log, {} lines, line-buffered", s.log_lines),
            Case::Make => format!(
                "make -j2, {} C files compiled (cc -O0) and linked",
                s.make_units + 1
            ),
            Case::GitCheckout => format!(
                "git checkout of {} files (after an untimed clone --no-checkout)",
                s.git_files
            ),
            Case::Postmark => format!(
                "postmark, {} files, {} transactions",
                s.postmark_files, s.postmark_txns
            ),
            Case::FprintfLog => format!("C fprintf log, {} lines", s.fprintf_lines),
            Case::Sort => format!(
                "sort -n -o of {} MiB of text (CONVEYOR_STDOUT_BUFFER=1M)",
                s.text_mib
            ),
            Case::Awk => format!("awk filtering {} MiB of text into a file", s.text_mib),
        }
    }

    /// The programs the case runs (checked before the benchmark starts),
    /// with the Debian package of each.
    pub fn programs(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Case::DdWrite4k | Case::DdWrite1m | Case::DdRead4k => &[("dd", "coreutils")],
            Case::FioRandRead | Case::FioRandWrite => &[("fio", "fio")],
            Case::TarExtract => &[("tar", "tar")],
            Case::Sqlite => &[("sqlite3", "sqlite3")],
            Case::PythonLog => &[("python3", "python3")],
            Case::Make => &[("make", "make"), ("cc", "gcc")],
            Case::GitCheckout => &[("git", "git")],
            Case::Postmark => &[("postmark", "postmark")],
            Case::FprintfLog => &[("cc", "gcc")],
            Case::Sort => &[("sort", "coreutils")],
            Case::Awk => &[("awk", "mawk")],
        }
    }

    /// Why the case does not run in `mode`, or None when it does. With
    /// direct I/O only reads change (FUSE sends every write() to the
    /// filesystem in both modes), so that mode runs the cases that read.
    pub fn skipped(self, mode: Mode) -> Option<&'static str> {
        match mode {
            Mode::Direct
                if !matches!(
                    self,
                    Case::DdRead4k
                        | Case::Sort
                        | Case::Awk
                        | Case::FioRandRead
                        | Case::Sqlite
                        | Case::Make
                        | Case::GitCheckout
                        | Case::Postmark
                ) =>
            {
                Some("writes only: FUSE sends every write() to the filesystem with or without the page cache, so it would repeat the page-cache table")
            }
            Mode::RcloneOff
                if matches!(self, Case::FioRandRead | Case::FioRandWrite | Case::Sqlite) =>
            {
                Some("rclone without its cache cannot open a file for reading and writing nor write out of order")
            }
            Mode::RcloneOff if self == Case::Make => Some(
                "the assembler writes an object file out of order, which rclone without its cache refuses (Illegal seek)",
            ),
            Mode::RcloneOff if self == Case::GitCheckout => Some(
                "git clone fails on rclone without its cache (it cannot lock .git/config: File exists)",
            ),
            _ => None,
        }
    }

    /// Whether the case runs in `mode`.
    pub fn applies(self, mode: Mode) -> bool {
        self.skipped(mode).is_none()
    }

    /// Whether libeatmydata (which turns fsync and O_SYNC into no-ops) is
    /// a meaningful peer: programs that sync (tar's and sqlite3's), and dd
    /// 4 KiB writes, to show that dropping syncs does not help small writes.
    pub fn has_eatmydata_peer(self) -> bool {
        matches!(self, Case::DdWrite4k | Case::TarExtract | Case::Sqlite)
    }

    /// Whether relaxed close (`CONVEYOR_CLOSE=relaxed`) runs too: the jobs
    /// that write many small files, where close-to-open is the floor.
    pub fn has_relaxed_peer(self) -> bool {
        matches!(
            self,
            Case::TarExtract | Case::GitCheckout | Case::Postmark | Case::Make
        )
    }
}

/// Inputs shared by all targets, made once on local disk.
pub struct Inputs {
    /// Tarball of `tar_files` small files.
    pub tarball: PathBuf,
    /// Bytes in the tarball's files.
    pub tar_bytes: u64,
    /// sqlite3 script: one INSERT per line (each its own transaction).
    pub sql: PathBuf,
    /// The python3 logger.
    pub logger: PathBuf,
    /// python3 to run (the system one, not a wrapper script).
    pub python: String,
    /// The C project make builds (when that case runs).
    pub make: Option<MakeProject>,
    /// The repository git checks out (when that case runs).
    pub git: Option<GitRepo>,
    /// postmark's configuration and reference report (when it runs).
    pub postmark: Option<Postmark>,
    /// The text `sort` and `awk` read, and what each must write.
    pub text: PathBuf,
    /// `sort -n` of `text`.
    pub sorted: PathBuf,
    /// What the awk program writes from `text`.
    pub filtered: PathBuf,
    /// The fprintf logger (when its case runs) and the log it writes.
    pub fprintf: Option<(PathBuf, PathBuf)>,
    /// Sizes.
    pub sizes: Sizes,
}

/// A small deterministic generator, so every run sees the same inputs.
pub struct Lcg(pub u64);

impl Lcg {
    /// The next 31 bits.
    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// `r` with the path it concerns in the error.
pub fn io<T>(r: std::io::Result<T>, what: &Path) -> Result<T, String> {
    r.map_err(|e| format!("{}: {e}", what.display()))
}

/// Runs `cmd` to completion; its stdout, or an error with its stderr.
pub fn status(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

const LOGGER: &str = r#"import sys
n = int(sys.argv[2])
with open(sys.argv[1], "w", buffering=1) as f:
    for i in range(n):
        f.write(f"{i:08d} INFO request {i % 97} served in {i % 13} ms\n")
"#;

fn log_bytes(lines: usize) -> u64 {
    (0..lines)
        .map(|i| format!("{i:08} INFO request {} served in {} ms\n", i % 97, i % 13).len() as u64)
        .sum()
}

impl Inputs {
    /// Makes the tarball and scripts under `dir`, and the projects of the
    /// cases in `cases` that need one.
    pub fn make(dir: &Path, sizes: &Sizes, cases: &[Case]) -> Result<Inputs, String> {
        let tree = dir.join("tree");
        let _ = std::fs::remove_dir_all(&tree);
        let mut rng = Lcg(1);
        let mut tar_bytes = 0;
        for i in 0..sizes.tar_files {
            let d = tree.join(format!("d{:02}", i / 100));
            if i % 100 == 0 {
                io(std::fs::create_dir_all(&d), &d)?;
            }
            let n = 100 + (rng.next() % 8000) as usize;
            tar_bytes += n as u64;
            let f = d.join(format!("f{i:04}.dat"));
            io(std::fs::write(&f, rng.bytes(n)), &f)?;
        }
        let tarball = dir.join("files.tar");
        status(
            Command::new("tar")
                .arg("-C")
                .arg(dir)
                .arg("-cf")
                .arg(&tarball)
                .arg("tree"),
        )?;
        let _ = std::fs::remove_dir_all(&tree);
        let sql = dir.join("inserts.sql");
        let script: String = (0..sizes.sqlite_txns)
            .map(|i| format!("INSERT INTO t(v) VALUES('row {i} ' || hex(randomblob(64)));\n"))
            .collect();
        io(std::fs::write(&sql, script), &sql)?;
        let logger = dir.join("logger.py");
        io(std::fs::write(&logger, LOGGER), &logger)?;
        let python = if Path::new("/usr/bin/python3").exists() {
            "/usr/bin/python3".into()
        } else {
            "python3".into()
        };
        // Made only when their case runs: the reference build and run take
        // seconds.
        let make = cases
            .contains(&Case::Make)
            .then(|| MakeProject::make(dir, sizes.make_units))
            .transpose()?;
        let git = cases
            .contains(&Case::GitCheckout)
            .then(|| GitRepo::make(dir, sizes.git_files))
            .transpose()?;
        let postmark = cases
            .contains(&Case::Postmark)
            .then(|| Postmark::make(dir, sizes.postmark_files, sizes.postmark_txns))
            .transpose()?;
        let (text, sorted, filtered) = text_inputs(dir, sizes, cases)?;
        let fprintf = cases
            .contains(&Case::FprintfLog)
            .then(|| fprintf_logger(dir, sizes.fprintf_lines))
            .transpose()?;
        Ok(Inputs {
            tarball,
            tar_bytes,
            sql,
            logger,
            python,
            make,
            git,
            postmark,
            text,
            sorted,
            filtered,
            fprintf,
            sizes: sizes.clone(),
        })
    }

    /// Files the read cases need on `t`, written straight to its backing
    /// directory (so no page cache of the mount holds them).
    pub fn prepare(&self, t: &Target) -> Result<(), String> {
        let mut rng = Lcg(7);
        let read = t.raw.join("read.dat");
        io(
            std::fs::write(&read, rng.bytes(self.sizes.dd_mib << 20)),
            &read,
        )?;
        let fio = t.raw.join("fio.dat");
        io(
            std::fs::write(&fio, rng.bytes(self.sizes.fio_mib << 20)),
            &fio,
        )?;
        if self.text.exists() {
            let text = t.raw.join("text.txt");
            io(std::fs::copy(&self.text, &text), &text)?;
        }
        Ok(())
    }
}

/// One run's command: program and arguments, and what to check after.
pub struct Prepared {
    /// Program.
    pub prog: String,
    /// Arguments.
    pub args: Vec<String>,
    /// Environment set for the program on top of the benchmark's own.
    pub env: Vec<(String, String)>,
    // The output, checked through the backing directory ...
    out: PathBuf,
    // ... and removed through the mount, as a program removes its files:
    // the kernel then drops what it cached of them. (Removed behind the
    // kernel's back, a reused inode number once made a new file show the
    // old one's pages; conveyor-slowfs now gives it a node id of its own.)
    out_seen: PathBuf,
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn project<T>(p: &Option<T>) -> Result<&T, String> {
    p.as_ref()
        .ok_or_else(|| "the case's inputs were not made".to_string())
}

impl Case {
    /// Sets up one run writing to output `name` (untimed) and returns its
    /// command.
    pub fn prepare(self, t: &Target, inp: &Inputs, name: &str) -> Result<Prepared, String> {
        let z = &inp.sizes;
        let data = |f: &str| s(&t.data.join(f));
        let dd = |bs: &str, count: usize| {
            vec![
                "if=/dev/zero".into(),
                format!("of={}", data(name)),
                format!("bs={bs}"),
                format!("count={count}"),
            ]
        };
        let fio = |rw: &str| {
            vec![
                format!("--name={rw}"),
                format!("--filename={}", data("fio.dat")),
                format!("--rw={rw}"),
                "--bs=4k".into(),
                format!("--size={}M", z.fio_mib),
                format!("--number_ios={}", z.fio_ios),
                "--ioengine=psync".into(),
                "--randseed=1".into(),
                "--invalidate=0".into(),
                "--output-format=terse".into(),
            ]
        };
        let (prog, args): (&str, Vec<String>) = match self {
            Case::DdWrite4k => ("dd", dd("4k", z.dd_mib * 256)),
            Case::DdWrite1m => ("dd", dd("1M", z.dd_mib)),
            Case::DdRead4k => (
                "dd",
                vec![
                    format!("if={}", data("read.dat")),
                    "of=/dev/null".into(),
                    "bs=4k".into(),
                ],
            ),
            Case::FioRandRead => ("fio", fio("randread")),
            Case::FioRandWrite => ("fio", fio("randwrite")),
            Case::TarExtract => {
                let d = t.raw.join(name);
                io(std::fs::create_dir(&d), &d)?;
                (
                    "tar",
                    vec!["-C".into(), data(name), "-xf".into(), s(&inp.tarball)],
                )
            }
            Case::Sqlite => {
                status(
                    Command::new("sqlite3")
                        .arg(t.raw.join(name))
                        .arg("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);"),
                )?;
                (
                    "sqlite3",
                    vec![data(name), format!(".read {}", s(&inp.sql))],
                )
            }
            Case::PythonLog => (
                inp.python.as_str(),
                vec![s(&inp.logger), data(name), z.log_lines.to_string()],
            ),
            Case::Make => (
                "make",
                project(&inp.make)?.prepare(&t.raw.join(name), &t.data.join(name))?,
            ),
            Case::GitCheckout => (
                "git",
                project(&inp.git)?.prepare(&t.raw.join(name), &t.data.join(name))?,
            ),
            Case::Postmark => (
                "postmark",
                project(&inp.postmark)?.prepare(&t.raw.join(name), &t.data.join(name))?,
            ),
            Case::FprintfLog => (
                project(&inp.fprintf)?.0.to_str().unwrap_or("fprintf-log"),
                vec![data(name), z.fprintf_lines.to_string()],
            ),
            Case::Sort => (
                "sort",
                vec!["-n".into(), "-o".into(), data(name), data("text.txt")],
            ),
            Case::Awk => (
                "awk",
                vec![
                    format!("$1 % 3 == 0 {{ print $2, $1 > \"{}\" }}", data(name)),
                    data("text.txt"),
                ],
            ),
        };
        let env = match self {
            Case::GitCheckout => GIT_ENV
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            // The reference outputs were made in the C locale. sort writes
            // through stdout (descriptor 1), which only a larger stdio
            // buffer can coalesce: the opt-in `CONVEYOR_STDOUT_BUFFER`,
            // safe for a single writer of its own output file (ignored
            // without the shim).
            Case::Sort => vec![
                ("LC_ALL".into(), "C".into()),
                ("CONVEYOR_STDOUT_BUFFER".into(), "1M".into()),
            ],
            Case::Awk => vec![("LC_ALL".into(), "C".into())],
            _ => Vec::new(),
        };
        Ok(Prepared {
            prog: prog.into(),
            args,
            env,
            out: t.raw.join(name),
            out_seen: t.data.join(name),
        })
    }

    /// Checks what the run left on storage (through the backing directory)
    /// and what it printed (`stdout`, `stderr`), and removes its output.
    pub fn check(
        self,
        inp: &Inputs,
        p: &Prepared,
        stdout: &str,
        stderr: &str,
    ) -> Result<(), String> {
        let z = &inp.sizes;
        let size = |f: &Path| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
        let want = |what: &str, got: u64, want: u64| {
            if got == want {
                Ok(())
            } else {
                Err(format!("{what}: {got}, expected {want}"))
            }
        };
        let r = match self {
            Case::DdWrite4k | Case::DdWrite1m => {
                want("bytes written", size(&p.out), (z.dd_mib as u64) << 20)
            }
            Case::DdRead4k | Case::FioRandRead | Case::FioRandWrite => Ok(()),
            Case::TarExtract => {
                let (mut files, mut bytes) = (0, 0);
                let mut stack = vec![p.out.clone()];
                while let Some(d) = stack.pop() {
                    for e in io(std::fs::read_dir(&d), &d)?.flatten() {
                        let m = io(e.metadata(), &e.path())?;
                        if m.is_dir() {
                            stack.push(e.path());
                        } else {
                            files += 1;
                            bytes += m.len();
                        }
                    }
                }
                want("files extracted", files, z.tar_files as u64).and(want(
                    "bytes extracted",
                    bytes,
                    inp.tar_bytes,
                ))
            }
            Case::Sqlite => {
                let n = status(
                    Command::new("sqlite3")
                        .arg(&p.out)
                        .arg("SELECT count(*) FROM t;"),
                )?;
                want("rows", n.trim().parse().unwrap_or(0), z.sqlite_txns as u64)
            }
            Case::PythonLog => want("log bytes", size(&p.out), log_bytes(z.log_lines)),
            Case::Make => project(&inp.make)?.check(&p.out),
            Case::GitCheckout => project(&inp.git)?.check(&p.out),
            Case::Postmark => project(&inp.postmark)?.check(&p.out, stdout, stderr),
            Case::FprintfLog => same_file(&p.out, &project(&inp.fprintf)?.1),
            Case::Sort => same_file(&p.out, &inp.sorted),
            Case::Awk => same_file(&p.out, &inp.filtered),
        };
        if p.out.is_dir() {
            let _ = std::fs::remove_dir_all(&p.out_seen);
        } else {
            let _ = std::fs::remove_file(&p.out_seen);
        }
        r
    }
}

/// Ok if `got` holds exactly what `want` does.
fn same_file(got: &Path, want: &Path) -> Result<(), String> {
    let a = io(std::fs::read(got), got)?;
    let b = io(std::fs::read(want), want)?;
    if a == b {
        Ok(())
    } else {
        Err(format!(
            "{} differs from the reference ({} bytes, expected {})",
            got.display(),
            a.len(),
            b.len()
        ))
    }
}

/// The text `sort` and `awk` read (lines of a number and a word), and the
/// outputs each must write, made on local disk by the same programs in
/// the C locale. Nothing is made when neither case runs.
fn text_inputs(
    dir: &Path,
    sizes: &Sizes,
    cases: &[Case],
) -> Result<(PathBuf, PathBuf, PathBuf), String> {
    let text = dir.join("text.txt");
    let sorted = dir.join("sorted.ref");
    let filtered = dir.join("filtered.ref");
    if !cases.iter().any(|c| matches!(c, Case::Sort | Case::Awk)) {
        return Ok((text, sorted, filtered));
    }
    let mut rng = Lcg(11);
    let mut s = String::with_capacity(sizes.text_mib << 20);
    while s.len() < sizes.text_mib << 20 {
        let n = rng.next() % 1_000_000;
        s.push_str(&format!(
            "{n} word{} {}\n",
            rng.next() % 5000,
            rng.next() % 97
        ));
    }
    io(std::fs::write(&text, s), &text)?;
    status(
        Command::new("sort")
            .env("LC_ALL", "C")
            .args(["-n", "-o"])
            .arg(&sorted)
            .arg(&text),
    )?;
    status(
        Command::new("awk")
            .env("LC_ALL", "C")
            .arg(format!(
                "$1 % 3 == 0 {{ print $2, $1 > \"{}\" }}",
                filtered.display()
            ))
            .arg(&text),
    )?;
    Ok((text, sorted, filtered))
}

const FPRINTF_LOGGER: &str = r#"#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    FILE *f = fopen(argv[1], "w");
    if (!f) { perror(argv[1]); return 1; }
    long n = atol(argv[2]);
    for (long i = 0; i < n; i++)
        fprintf(f, "%08ld INFO request %ld served in %ld ms\n", i, i % 97, i % 13);
    return fclose(f) == 0 ? 0 : 1;
}
"#;

/// Compiles the fprintf logger and writes, with it, the log each run must
/// reproduce.
fn fprintf_logger(dir: &Path, lines: usize) -> Result<(PathBuf, PathBuf), String> {
    let src = dir.join("fprintf-log.c");
    io(std::fs::write(&src, FPRINTF_LOGGER), &src)?;
    let bin = dir.join("fprintf-log");
    status(Command::new("cc").args(["-O2", "-o"]).arg(&bin).arg(&src))?;
    let reference = dir.join("fprintf-log.ref");
    status(Command::new(&bin).arg(&reference).arg(lines.to_string()))?;
    Ok((bin, reference))
}
