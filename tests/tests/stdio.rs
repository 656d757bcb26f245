//! stdio streams of selected files get write-behind and read-ahead
//! (`fopen`, `fdopen`, and files glibc's `mkstemp` opens): a program's
//! output, files and exit status are byte for byte the plain run's, on
//! local disk and on the slow filesystem, and on the slow filesystem the
//! filesystem's counters show few large writes where the plain run sends
//! one per stdio buffer.

use conveyor_tests::slowfs::SlowFs;
use conveyor_tests::twin::{differences, report, Twins, PLACES};
use conveyor_tests::{ok, root, Run, TempDir};
use std::collections::HashMap;
use std::path::Path;

fn compile(name: &str) -> (TempDir, String) {
    let bins = TempDir::new("stdio-bin");
    let bin = bins.path().join(name);
    conveyor_tests::compile_c(&root().join(format!("tests/c/{name}.c")), &bin, &[]);
    let s = bin.display().to_string();
    (bins, s)
}

/// The semantics of `tests/c/stdio.c` (ftell/fseek back-patching, fwrite
/// of records, `write(fileno(f))` between flushes, unbuffered and
/// line-buffered streams, fgets/getline/ungetc/fscanf, "a" and "a+",
/// `fdopen`, fork with a buffer not yet flushed, popen, fstat through
/// fileno, fopen's errno, freopen of stdout, exit flushing a stream left
/// open) are the plain run's.
/// `tests/c/wide.c` writes and reads wide characters through `fopen`'s
/// streams, which only glibc's own streams can do.
#[test]
fn streams_behave_as_without_the_shim() {
    let (_bins, bin) = compile("stdio");
    let (_wbins, wide) = compile("wide");
    let mut failures = Vec::new();
    for place in PLACES {
        let t = Twins::new(place, "stdio");
        for b in [&bin, &wide] {
            let (plain, shim) = t.run(|_: &Path| {}, b, &[], &[]);
            ok(&plain.out, &format!("{b} without the shim"));
            failures.extend(differences(
                &plain,
                &shim,
                false,
                &format!("{b} ({place:?})"),
            ));
        }
    }
    report(&failures);
}

/// A program run by `stream_programs_send_few_large_writes`: its name, the
/// program, its arguments, its output file, and hooks that must have run.
type Case<'a> = (&'a str, &'a str, Vec<&'a str>, &'a str, &'a [&'a str]);

/// `in.txt` at the top of `fs`: `lines` lines of a number out of order, a
/// line number and some words (input for sort, awk and sed).
fn write_input(fs: &SlowFs, lines: usize) {
    let input: String = (0..lines)
        .map(|i| format!("{} {} some words here\n", (i * 7919) % 100_003, i))
        .collect();
    std::fs::write(fs.backing().join("in.txt"), &input).unwrap();
}

/// Requests the filesystem received during `f`.
fn requests(fs: &SlowFs, f: impl FnOnce()) -> HashMap<String, u64> {
    let before = fs.stats();
    f();
    let after = fs.stats();
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .collect()
}

/// Real programs whose files are streams, on the slow filesystem: each
/// output is the plain run's byte for byte, the shim managed the streams,
/// and their writes reached storage as far fewer requests.
#[test]
fn stream_programs_send_few_large_writes() {
    let (_bins, fprintf_bin) = compile("stdio");
    let fs = SlowFs::mount(&["--latency-ms", "1"]);
    write_input(&fs, 60_000);
    let cc_src = TempDir::new("stdio-cc");
    let cc_bin = cc_src.path().join("fstreams");
    std::fs::write(
        cc_src.path().join("fstreams.cc"),
        r#"#include <fstream>
#include <iostream>
#include <string>
int main() {
    { std::ofstream o("cc.txt"); for (int i = 0; i < 40000; i++) o << "row " << i << " of the C++ output\n"; }
    std::ifstream in("cc.txt"); std::string l; long n = 0, bytes = 0;
    while (std::getline(in, l)) { n++; bytes += l.size(); }
    std::cout << n << " lines " << bytes << " bytes\n";
}
"#,
    )
    .unwrap();
    let made = std::process::Command::new("g++")
        .args(["-O2", "-o"])
        .arg(&cc_bin)
        .arg(cc_src.path().join("fstreams.cc"))
        .output()
        .unwrap();
    ok(&made, "g++ fstreams.cc");
    let cc = cc_bin.display().to_string();
    let cases: [Case; 5] = [
        ("fprintf", &fprintf_bin, vec![], "log.txt", &["fopen"]),
        (
            "awk",
            "awk",
            vec!["$1 > 30000 { print $2, $1 > \"awk.txt\" }", "../in.txt"],
            "awk.txt",
            &["fopen"],
        ),
        (
            "sed -i",
            "sh",
            vec![
                "-c",
                "cp ../in.txt sed.txt && sed -i 's/1/X/g; s/some/SOME/' sed.txt",
            ],
            "sed.txt",
            &["mkostemp", "fdopen"],
        ),
        ("C++ fstreams", &cc, vec![], "cc.txt", &["fopen", "writev"]),
        (
            "sort -o",
            "sort",
            vec!["-n", "-o", "sorted.txt", "../in.txt"],
            "sorted.txt",
            &["fdopen", "read"],
        ),
    ];
    for (name, prog, args, out, hooks) in cases {
        // (stdout, output file, write requests) without and with the shim.
        let mut runs: Vec<(Vec<u8>, Vec<u8>, u64)> = Vec::new();
        for shim in [false, true] {
            let dir = fs
                .mnt()
                .join(format!("{}-{}", name.replace(' ', "_"), shim));
            std::fs::create_dir(&dir).unwrap();
            let mut counts = HashMap::new();
            let mut stdout = Vec::new();
            let reqs = requests(&fs, || {
                let run = Run::new(prog, &args, &dir).env("LC_ALL", "C");
                let o = if shim {
                    // The whole mount: the input is managed too.
                    let (o, c) = run.shimmed(&fs.mnt());
                    counts = c;
                    o
                } else {
                    run.plain()
                };
                ok(&o, &format!("{name} (shim: {shim})"));
                stdout = o.stdout;
            });
            for h in hooks.iter().filter(|_| shim) {
                assert!(
                    counts.get(*h).copied().unwrap_or(0) > 0,
                    "{name}: no managed {h}: {counts:?}"
                );
            }
            let file = std::fs::read(dir.join(out)).unwrap();
            runs.push((stdout, file, reqs.get("op.write").copied().unwrap_or(0)));
        }
        let (plain, shim) = (&runs[0], &runs[1]);
        assert!(
            (&plain.0, &plain.1) == (&shim.0, &shim.1),
            "{name}: output differs from the plain run"
        );
        if name != "sort -o" {
            // sort writes its output through stdout (descriptor 1), which
            // glibc writes with calls no hook sees: exact, not coalesced.
            assert!(
                shim.2 * 4 <= plain.2,
                "{name}: {} write requests under the shim against {} without",
                shim.2,
                plain.2
            );
        }
    }
}

/// A full disk reaches a stream as it would without the shim: `fclose`
/// (or an earlier `fflush`) fails with ENOSPC, and the program says so.
#[test]
fn a_write_error_reaches_the_stream() {
    let script = r#"
#include <errno.h>
#include <stdio.h>
#include <string.h>
int main(void) {
    FILE *f = fopen("full.txt", "w");
    if (!f) return 2;
    int failed_at = -1;
    for (int i = 0; i < 40000 && failed_at < 0; i++)
        if (fprintf(f, "%06d a line of text to fill the disk\n", i) < 0) failed_at = i;
    int flush = fflush(f);
    int err = ferror(f);
    int saved = errno;
    int close = fclose(f);
    if (close != 0) saved = errno;
    printf("failed: %s\n", (failed_at >= 0 || flush != 0 || err || close != 0) ? strerror(saved) : "no");
    return 0;
}
"#;
    let src = TempDir::new("stdio-enospc");
    std::fs::write(src.path().join("full.c"), script).unwrap();
    let bin = src.path().join("full");
    conveyor_tests::compile_c(&src.path().join("full.c"), &bin, &[]);
    let bin = bin.display().to_string();
    let mut said = Vec::new();
    for shim in [false, true] {
        let fs = SlowFs::mount(&["--latency-ms", "0", "--enospc-after", "500000"]);
        let run = Run::new(&bin, &[], &fs.mnt());
        let out = if shim {
            let (o, counts) = run.shimmed(&fs.mnt());
            assert!(
                counts.contains_key("fopen"),
                "the stream was not managed: {counts:?}"
            );
            o
        } else {
            run.plain()
        };
        ok(&out, &format!("full (shim: {shim})"));
        said.push(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    assert_eq!(said[0], "failed: No space left on device\n");
    assert_eq!(said[0], said[1]);
}

/// bonnie++'s per-character phases (a one-byte `write` or `read` per call)
/// and its block and rewrite phases, on the slow filesystem at 1 ms: it
/// completes and reports, and its 2 MiB per-character write reaches
/// storage in far fewer requests than its two million calls (without the
/// shim that phase alone would take over half an hour here, so it is not
/// run plain).
#[test]
fn bonnie_per_character_phases_are_coalesced() {
    let fs = SlowFs::mount(&["--latency-ms", "1"]);
    let dir = fs.mnt().join("bonnie");
    std::fs::create_dir(&dir).unwrap();
    let d = dir.display().to_string();
    let mut counts = HashMap::new();
    let mut out = None;
    let reqs = requests(&fs, || {
        let (o, c) = Run::new(
            "bonnie++",
            &[
                "-d", &d, "-s", "2", "-r", "1", "-n", "0", "-u", "root", "-q", "-x", "1",
            ],
            &dir,
        )
        .shimmed(&dir);
        counts = c;
        out = Some(o);
    });
    let out = out.unwrap();
    ok(&out, "bonnie++ under the shim");
    let csv = String::from_utf8_lossy(&out.stdout);
    assert!(csv.contains(",2M,"), "no result line for 2 MiB: {csv}");
    let calls = counts.get("write").copied().unwrap_or(0);
    assert!(
        calls >= 2 << 20,
        "the per-character writes were not managed: {counts:?}"
    );
    let writes = reqs.get("op.write").copied().unwrap_or(0);
    assert!(
        writes * 100 < calls,
        "{writes} write requests for {calls} write calls"
    );
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "bonnie++ left files"
    );
}

/// `CONVEYOR_STDOUT_BUFFER` (off unless set): stdout written to a selected
/// file, by a shell redirection or by `sort -o` moving its output onto
/// descriptor 1, gets the larger buffer; the output is the plain run's
/// and reaches storage in far fewer writes. Unset, stdout keeps glibc's.
#[test]
fn stdout_buffer_is_opt_in_and_coalesces() {
    let fs = SlowFs::mount(&["--latency-ms", "1"]);
    write_input(&fs, 40_000);
    let src = TempDir::new("stdio-printer");
    std::fs::write(
        src.path().join("printer.c"),
        "#include <stdio.h>\nint main(void) { for (int i = 0; i < 40000; i++) printf(\"line %d of the output\\n\", i); return 0; }\n",
    )
    .unwrap();
    let printer = src.path().join("printer");
    conveyor_tests::compile_c(&src.path().join("printer.c"), &printer, &[]);
    let redirect = format!("{} > out.txt", printer.display());
    let cases: [(&str, &str, Vec<&str>); 2] = [
        ("sort -o", "sort", vec!["-n", "-o", "out.txt", "../in.txt"]),
        ("a shell redirection", "sh", vec!["-c", &redirect]),
    ];
    for (name, prog, args) in cases {
        let mut runs: Vec<(Vec<u8>, u64, HashMap<String, u64>)> = Vec::new();
        for variant in ["plain", "default", "buffer"] {
            let dir = fs
                .mnt()
                .join(format!("{}-{variant}", name.replace(' ', "_")));
            std::fs::create_dir(&dir).unwrap();
            let mut counts = HashMap::new();
            let reqs = requests(&fs, || {
                let run = Run::new(prog, &args, &dir).env("LC_ALL", "C");
                let o = match variant {
                    "plain" => run.plain(),
                    "default" => {
                        let (o, c) = run.shimmed(&fs.mnt());
                        counts = c;
                        o
                    }
                    _ => {
                        let (o, c) = run.env("CONVEYOR_STDOUT_BUFFER", "1M").shimmed(&fs.mnt());
                        counts = c;
                        o
                    }
                };
                ok(&o, &format!("{name} ({variant})"));
            });
            let out = std::fs::read(dir.join("out.txt")).unwrap();
            runs.push((out, reqs.get("op.write").copied().unwrap_or(0), counts));
        }
        assert!(runs[0].0 == runs[1].0, "{name}: output differs (default)");
        assert!(runs[0].0 == runs[2].0, "{name}: output differs (buffer)");
        assert!(
            !runs[1].2.contains_key("stdout_buffer"),
            "{name}: stdout got a buffer unasked: {:?}",
            runs[1].2
        );
        assert!(
            runs[2].2.contains_key("stdout_buffer"),
            "{name}: stdout got no buffer: {:?}",
            runs[2].2
        );
        assert!(
            runs[2].1 * 4 <= runs[0].1,
            "{name}: {} write requests with the buffer against {} plain",
            runs[2].1,
            runs[0].1
        );
    }
}
