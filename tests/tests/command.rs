//! The `conveyor` command as a new user meets it: mistakes caught before
//! the run (unknown options, bad settings, a report directory that does
//! not exist), the shell's exit codes, the setuid warning only where the
//! loader really ignores the preload, `--summary` and `--progress`, man
//! pages and completions, `--help`, the licence files and the installed
//! binary. Each test runs the real binary and checks its exit status and
//! messages.

mod common;

use common::python;
use conveyor_tests::{conveyor, ok, own_live_dir, pattern, root, Run, TempDir};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Output};

/// `conveyor ARGS` in `dir`, with a clean environment plus `env`.
fn conveyor_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(conveyor());
    c.args(args).current_dir(dir).env_remove("LD_PRELOAD");
    for (k, _) in std::env::vars() {
        if k.starts_with("CONVEYOR_") {
            c.env_remove(k);
        }
    }
    // Tests run in temporary directories on local disk, which the default
    // mode leaves to the kernel; tests of the mode itself set it.
    c.env("CONVEYOR_LIVE_DIR", dir.join(".live"))
        .env("CONVEYOR_MODE", "always");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run conveyor")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// (1) A misspelt option before the command is an error naming it and the
/// option meant (exit 2); it never becomes the command. Options after the
/// command's name are the command's.
#[test]
fn unknown_options_are_refused_with_a_suggestion() {
    let dir = TempDir::new("cmd-typo");
    let d = dir.path();
    let out = conveyor_in(
        d,
        &["run", "--path", ".", "--stast", "-", "--", "touch", "ran"],
        &[],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("unknown option '--stast'; did you mean '--stats'?"),
        "{err}"
    );
    assert!(!err.contains("command not found"), "{err}");
    let out = conveyor_in(d, &["run", "--pth", "S", "--", "touch", "ran"], &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("unknown option '--pth'; did you mean '--path'?"),
        "{err}"
    );
    let out = conveyor_in(d, &["run", "--path", ".", "-q", "touch", "ran"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("unknown option '-q'"),
        "{}",
        stderr(&out)
    );
    assert!(!d.join("ran").exists(), "a refused run started the command");
    // Words after the command's name belong to it, without `--`.
    let out = conveyor_in(d, &["run", "--path", ".", "ls", "-d", "--", "."], &[]);
    ok(&out, "conveyor run --path . ls -d -- .");
    assert_eq!(stdout(&out).trim(), ".");
}

/// (2) A bad `CONVEYOR_*` setting stops `conveyor run` before the command
/// starts (exit 2) with the shim's own message; the shim's behaviour under
/// a bare LD_PRELOAD is `misuse.rs`'s.
#[test]
fn bad_settings_stop_the_run() {
    let dir = TempDir::new("cmd-settings");
    let d = dir.path();
    for (var, bad, says) in [
        (
            "CONVEYOR_LOG",
            "verbose",
            "CONVEYOR_LOG=\"verbose\" is not a log level (expected error, warn, info, debug, trace or off)",
        ),
        (
            "CONVEYOR_WRITE_BUFFER",
            "10XB",
            "CONVEYOR_WRITE_BUFFER: \"10XB\" is not a size (unknown unit; use K, M, G or T); expected a byte count",
        ),
        (
            "CONVEYOR_MAX_AGE",
            "soon",
            "CONVEYOR_MAX_AGE: \"soon\" is not a duration",
        ),
        (
            "CONVEYOR_LIVE_DIR",
            "relative/dir",
            "CONVEYOR_LIVE_DIR=\"relative/dir\" is not an absolute path",
        ),
    ] {
        let out = conveyor_in(
            d,
            &["run", "--path", ".", "--", "touch", "ran"],
            &[(var, bad)],
        );
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{var}={bad}: {err}");
        assert!(err.contains(says), "{var}={bad}: {err}");
        assert!(err.contains("not started"), "{var}={bad}: {err}");
        assert!(!d.join("ran").exists(), "{var}={bad}: the command ran");
    }
    // A relative entry in an exported CONVEYOR_PATHS, used without --path.
    let out = conveyor_in(
        d,
        &["run", "--", "touch", "ran"],
        &[("CONVEYOR_PATHS", "data")],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("\"data\" is not an absolute path"),
        "{}",
        stderr(&out)
    );
    // A misspelt variable name is named with the one meant; the run goes on.
    let out = conveyor_in(
        d,
        &["run", "--path", ".", "--", "true"],
        &[("CONVEYOR_WRITEBUFFER", "1M")],
    );
    ok(&out, "run with a misspelt variable");
    assert!(
        stderr(&out).contains(
            "CONVEYOR_WRITEBUFFER is not a conveyor setting (did you mean CONVEYOR_WRITE_BUFFER?)"
        ),
        "{}",
        stderr(&out)
    );
}

/// (2) `conveyor doctor` shows every setting in effect with its default,
/// fails (exit 1) on a bad one, and says when a CONVEYOR_PATHS entry does
/// not exist.
#[test]
fn doctor_shows_the_settings_and_fails_on_a_bad_one() {
    let dir = TempDir::new("cmd-doctor");
    let d = dir.path();
    let sel = d.join("sel");
    std::fs::create_dir_all(&sel).unwrap();
    let missing = d.join("not-yet");
    let paths = format!("{}:{}", sel.display(), missing.display());
    let out = conveyor_in(
        d,
        &["doctor", "/etc/hosts"],
        &[("CONVEYOR_PATHS", &paths), ("CONVEYOR_READ_AHEAD", "2M")],
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    for want in [
        "CONVEYOR_WRITE_BUFFER: 16.0 MiB (default)",
        "CONVEYOR_READ_AHEAD=2M: 2.0 MiB",
        "CONVEYOR_MAX_AGE: 5000 ms (default)",
        "CONVEYOR_LOG: warn (default)",
        "CONVEYOR_STATS: unset: no report (default)",
    ] {
        assert!(text.lines().any(|l| l == want), "no line {want:?}:\n{text}");
    }
    assert!(
        text.contains(&format!(
            "CONVEYOR_PATHS entry {} does not exist (yet)",
            missing.display()
        )),
        "{text}"
    );
    let out = conveyor_in(
        d,
        &["doctor", "/etc/hosts"],
        &[("CONVEYOR_PATHS", &paths), ("CONVEYOR_LOG", "verbose")],
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("CONVEYOR_LOG: bad: CONVEYOR_LOG=\"verbose\" is not a log level"),
        "{text}"
    );
}

/// (2) `--path` together with an exported CONVEYOR_PATHS: the launcher says
/// `--path` wins; without `--path` the exported one is used.
#[test]
fn path_option_and_exported_paths_say_which_wins() {
    let dir = TempDir::new("cmd-wins");
    let d = dir.path();
    std::fs::create_dir_all(d.join("data")).unwrap();
    let counts = d.join("counts");
    let counts_s = counts.display().to_string();
    let out = conveyor_in(
        d,
        &["run", "--path", "data", "--", "sh", "-c", "echo x > data/f"],
        &[
            ("CONVEYOR_PATHS", "/elsewhere"),
            ("CONVEYOR_TEST_COUNTS", &counts_s),
        ],
    );
    ok(&out, "run --path with CONVEYOR_PATHS exported");
    let err = stderr(&out);
    assert!(
        err.contains("--path wins") && err.contains("CONVEYOR_PATHS=/elsewhere"),
        "{err}"
    );
    let out = conveyor_in(
        d,
        &["doctor", "--path", "data", "/etc/hosts"],
        &[("CONVEYOR_PATHS", "/elsewhere")],
    );
    assert!(stdout(&out).contains("--path wins"), "{}", stdout(&out));
    // No --path: the exported selection is used, and managed.
    let data = d.join("data").display().to_string();
    let out = conveyor_in(
        d,
        &[
            "run",
            "--",
            "dd",
            "if=/dev/zero",
            "of=data/g",
            "bs=4k",
            "count=8",
        ],
        &[
            ("CONVEYOR_PATHS", &data),
            ("CONVEYOR_TEST_COUNTS", &counts_s),
        ],
    );
    ok(&out, "run with CONVEYOR_PATHS only");
    let text = std::fs::read_to_string(&counts).expect("the shim was not loaded");
    assert!(text.lines().any(|l| l.starts_with("write ")), "{text}");
}

/// The lines of stderr that conveyor itself wrote.
fn conveyor_lines(out: &Output) -> Vec<String> {
    stderr(out)
        .lines()
        .filter(|l| l.starts_with("conveyor"))
        .map(str::to_string)
        .collect()
}

/// (3) `--summary`: one line for the whole process tree, in human units,
/// none per process; the command's exit status and signal pass through.
#[test]
fn summary_is_one_line_for_the_process_tree() {
    let dir = TempDir::new("cmd-summary");
    let d = dir.path();
    std::fs::create_dir_all(d.join("data")).unwrap();
    let script = "dd if=/dev/zero of=data/a.bin bs=4k count=2048 2>/dev/null; \
dd if=/dev/zero of=data/b.bin bs=4k count=1024 2>/dev/null; cat data/a.bin > /dev/null; exit 3";
    let out = conveyor_in(
        d,
        &[
            "run",
            "--path",
            "data",
            "--summary",
            "--",
            "sh",
            "-c",
            script,
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let lines = conveyor_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let l = &lines[0];
    assert!(
        l.starts_with("conveyor: 2 files, 12.0 MiB written in ")
            && l.contains(" requests (avg ")
            && l.contains("), 8.0 MiB read in ")
            && l.contains(", waited ")
            && l.ends_with(", 0 errors"),
        "{l}"
    );
    // A tree that managed nothing (python starts several processes under
    // pyenv): one line that says so, no empty tables.
    let out = conveyor_in(
        d,
        &[
            "run",
            "--path",
            "data",
            "--summary",
            "--",
            &python().display().to_string(),
            "-c",
            "pass",
        ],
        &[],
    );
    ok(&out, "python3 -c pass");
    let lines = conveyor_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("conveyor: no file under the selected paths was managed"),
        "{lines:?}"
    );
    // A signal: the summary, then the same signal ends conveyor.
    let out = conveyor_in(
        d,
        &[
            "run",
            "--path",
            "data",
            "--summary",
            "--",
            "sh",
            "-c",
            "echo x > data/c; kill -TERM $$",
        ],
        &[],
    );
    assert_eq!(out.status.signal(), Some(15), "{:?}", out.status);
    assert_eq!(conveyor_lines(&out).len(), 1, "{}", stderr(&out));
    // --summary and --stats both name the report: refused.
    let out = conveyor_in(
        d,
        &[
            "run",
            "--path",
            "data",
            "--summary",
            "--stats",
            "-",
            "--",
            "true",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
}

/// (4) A report whose directory does not exist is refused at the start,
/// not found missing at the end of a long run.
#[test]
fn missing_report_directory_is_refused_at_start() {
    let dir = TempDir::new("cmd-statsdir");
    let d = dir.path();
    let out = conveyor_in(
        d,
        &[
            "run",
            "--path",
            ".",
            "--stats",
            "nodir/r-%p.json",
            "--",
            "touch",
            "ran",
        ],
        &[],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--stats: cannot write")
            && err.contains("nodir/r-%p.json: directory")
            && err.contains("does not exist"),
        "{err}"
    );
    assert!(!d.join("ran").exists());
    // The same for an exported CONVEYOR_STATS and a --log-file.
    let out = conveyor_in(
        d,
        &["run", "--path", ".", "--", "touch", "ran"],
        &[("CONVEYOR_STATS", "/nonexistent-dir/r.json")],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("CONVEYOR_STATS: cannot write"));
    let out = conveyor_in(
        d,
        &[
            "run",
            "--path",
            ".",
            "--log-file",
            "nodir/log",
            "--",
            "touch",
            "ran",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--log-file: cannot open"));
    assert!(!d.join("ran").exists());
    // The reference's example creates the directory its reports go to.
    let doc = std::fs::read_to_string(root().join("docs/reference.md")).unwrap();
    let run_at = doc
        .find("$ conveyor run --stats r/report-%p.json")
        .expect("the reference's report example");
    assert!(
        doc[..run_at]
            .rfind("$ mkdir -p r")
            .is_some_and(|m| run_at - m < 200),
        "the reference's report example does not create r/"
    );
}

/// (5) A setuid binary run by its owner is accelerated, with no warning; one
/// that changes the effective uid gets the warning (secure execution).
#[test]
fn setuid_warning_only_in_secure_execution() {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc_getuid() } != 0 {
        eprintln!("skipped: needs root to make a setuid binary of another user");
        return;
    }
    let dir = TempDir::new("cmd-setuid");
    let d = dir.path();
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    let sdd = d.join("sdd");
    std::fs::copy("/bin/dd", &sdd).unwrap();
    std::fs::set_permissions(&sdd, std::fs::Permissions::from_mode(0o4755)).unwrap();
    std::fs::write(d.join("src.bin"), pattern(5, 1 << 20)).unwrap();
    let counts = d.join("counts").display().to_string();
    let out = conveyor_in(
        d,
        &[
            "run",
            "--path",
            ".",
            "--",
            "./sdd",
            "if=src.bin",
            "of=out.bin",
            "bs=4k",
        ],
        &[("CONVEYOR_TEST_COUNTS", &counts)],
    );
    ok(&out, "setuid-root dd run by root");
    assert!(
        !stderr(&out).contains("without acceleration"),
        "{}",
        stderr(&out)
    );
    let text = std::fs::read_to_string(&counts).expect("the shim was not loaded");
    assert!(text.lines().any(|l| l.starts_with("write ")), "{text}");
    // Owned by nobody: root running it gets euid 65534, secure execution.
    ok(
        &Command::new("chown")
            .args(["65534", &sdd.display().to_string()])
            .output()
            .unwrap(),
        "chown",
    );
    std::fs::set_permissions(&sdd, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let out = conveyor_in(d, &["run", "--path", ".", "--", "./sdd", "--version"], &[]);
    let err = stderr(&out);
    assert!(
        err.contains("will run without acceleration: it is setuid to uid 65534"),
        "{err}"
    );
}

extern "C" {
    #[link_name = "getuid"]
    fn libc_getuid() -> u32;
}

/// (6) The shell's exit codes: 126 for a file that is not executable and
/// for a directory (said so), 127 for a missing command.
#[test]
fn exit_codes_are_the_shells() {
    let dir = TempDir::new("cmd-codes");
    let d = dir.path();
    std::fs::write(d.join("script.sh"), "#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(d.join("script.sh"), std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::create_dir_all(d.join("subdir")).unwrap();
    let out = conveyor_in(d, &["run", "--path", ".", "--", "./script.sh"], &[]);
    assert_eq!(out.status.code(), Some(126), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("./script.sh: permission denied"),
        "{}",
        stderr(&out)
    );
    let out = conveyor_in(d, &["run", "--path", ".", "--", "./subdir"], &[]);
    assert_eq!(out.status.code(), Some(126), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("./subdir: is a directory"),
        "{}",
        stderr(&out)
    );
    let out = conveyor_in(d, &["run", "--path", ".", "--", "./nothing-here"], &[]);
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    assert!(stderr(&out).contains("./nothing-here: no such file or directory"));
    // What sh itself answers, for comparison.
    let sh = Command::new("sh")
        .args(["-c", "./script.sh; echo $?; ./subdir; echo $?"])
        .current_dir(d)
        .output()
        .unwrap();
    assert_eq!(stdout(&sh), "126\n126\n");
}

/// (7) Programs the tests run under the shim keep their live files in a
/// directory of the test's own: one killed with SIGKILL leaves its file
/// there, not in the user's real `/dev/shm/conveyor-$UID`.
#[test]
fn tests_keep_live_files_in_their_own_directory() {
    let dir = TempDir::new("cmd-live");
    let d = dir.path();
    let code = "import os\nf = open('f', 'w')\nf.write('x' * 4096)\nf.flush()\n\
print(os.getpid(), flush=True)\nos.kill(os.getpid(), 9)\n";
    let py = python().display().to_string();
    // Other runs may have left a file under the same pid there long ago.
    let start = std::time::SystemTime::now() - std::time::Duration::from_secs(1);
    let left_since_start = |p: &Path| {
        std::fs::metadata(p)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t >= start)
    };
    // Through the Run helper most tests use.
    let (out, _) = Run::new(&py, &["-c", code], d).shimmed(d);
    assert_eq!(out.status.signal(), Some(9));
    let pid = stdout(&out).trim().to_string();
    // SAFETY: geteuid has no preconditions.
    let real = Path::new("/dev/shm").join(format!("conveyor-{}", unsafe { libc_geteuid() }));
    assert!(
        !left_since_start(&real.join(format!("{pid}.live"))),
        "a test left {pid}.live in {}",
        real.display()
    );
    // With the helper itself: the file is in the test's directory.
    let mut c = Command::new(&py);
    c.args(["-c", code])
        .current_dir(d)
        .env("LD_PRELOAD", conveyor_tests::shim())
        .env("CONVEYOR_MODE", "always")
        .env("CONVEYOR_PATHS", d);
    let live = own_live_dir(&mut c);
    let out = c.output().unwrap();
    let pid = stdout(&out).trim().to_string();
    assert!(live.path().join(format!("{pid}.live")).exists());
    assert!(!left_since_start(&real.join(format!("{pid}.live"))));
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

/// (8) Man pages and completions from one command.
#[test]
fn man_pages_and_completions_are_generated() {
    let dir = TempDir::new("cmd-generate");
    let d = dir.path();
    std::fs::create_dir_all(d.join("man")).unwrap();
    std::fs::create_dir_all(d.join("comp")).unwrap();
    let out = conveyor_in(
        d,
        &["generate", "--man", "man", "--completions", "comp"],
        &[],
    );
    ok(&out, "conveyor generate");
    for page in [
        "conveyor.1",
        "conveyor-run.1",
        "conveyor-doctor.1",
        "conveyor-report.1",
        "conveyor-top.1",
    ] {
        let text = std::fs::read_to_string(d.join("man").join(page))
            .unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.starts_with(".ie") || text.contains(".TH"), "{page}");
    }
    let run = std::fs::read_to_string(d.join("man/conveyor-run.1")).unwrap();
    assert!(
        run.contains("summary") && run.contains("Durability"),
        "{run}"
    );
    for (file, needle) in [
        ("conveyor.bash", "--summary"),
        ("_conveyor", "--summary"),
        ("conveyor.fish", "summary"),
    ] {
        let text = std::fs::read_to_string(d.join("comp").join(file))
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(text.contains(needle), "{file}");
    }
    // bash accepts the completion script.
    let bash = Command::new("bash")
        .arg("-c")
        .arg("source comp/conveyor.bash && complete -p conveyor")
        .current_dir(d)
        .output()
        .unwrap();
    ok(&bash, "sourcing the bash completion");
    // A missing directory: exit 1, named.
    let out = conveyor_in(d, &["generate", "--man", "no-such-dir"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no-such-dir"));
}

/// (8) `--help` of every subcommand has an example; `run`'s and the main
/// one's say the durability trade-off in one line.
#[test]
fn help_has_examples_and_the_durability_line() {
    let dir = TempDir::new("cmd-help");
    for sub in [
        None,
        Some("run"),
        Some("doctor"),
        Some("report"),
        Some("top"),
    ] {
        let mut args: Vec<&str> = sub.into_iter().collect();
        args.push("--help");
        let out = conveyor_in(dir.path(), &args, &[]);
        ok(&out, &format!("{args:?}"));
        let text = stdout(&out);
        assert!(text.contains("Example:\n  "), "{args:?}: {text}");
        if matches!(sub, None | Some("run")) {
            let line = text
                .lines()
                .find(|l| l.starts_with("Durability:"))
                .unwrap_or_else(|| panic!("{args:?}: no durability line: {text}"));
            assert!(line.contains("close, fsync") && line.contains("SIGKILL"));
        }
    }
}

/// (8) The licence files `Cargo.toml` names are there; the README installs
/// with `--locked`; the binary carries no debug info.
#[test]
fn licence_install_and_binary() {
    let r = root();
    let manifest = std::fs::read_to_string(r.join("Cargo.toml")).unwrap();
    assert!(manifest.contains("license = \"MIT OR Apache-2.0\""));
    let mit = std::fs::read_to_string(r.join("LICENSE-MIT")).expect("LICENSE-MIT");
    assert!(mit.contains("Permission is hereby granted, free of charge"));
    let apache = std::fs::read_to_string(r.join("LICENSE-APACHE")).expect("LICENSE-APACHE");
    assert!(apache.contains("Apache License") && apache.contains("Version 2.0"));
    let readme = std::fs::read_to_string(r.join("README.md")).unwrap();
    assert!(readme.contains("cargo install --locked --path crates/conveyor"));
    assert!(!readme.contains("cargo install --path"));
    let out = Command::new("readelf")
        .arg("-S")
        .arg(conveyor())
        .output()
        .expect("readelf (binutils)");
    ok(&out, "readelf");
    assert!(
        !stdout(&out).contains(".debug_"),
        "the conveyor binary has debug sections"
    );
}

/// (9) `--progress` on a terminal: a status line refreshed while the
/// command runs and cleared at the end; never when stderr is not a
/// terminal.
#[test]
fn progress_line_only_on_a_terminal() {
    let dir = TempDir::new("cmd-progress");
    let d = dir.path();
    std::fs::create_dir_all(d.join("data")).unwrap();
    let py = python().display().to_string();
    // Keeps a managed file open for a few seconds, writing.
    let child = "import time\nf = open('data/f', 'wb')\nfor i in range(40):\n    \
f.write(b'x' * 65536)\n    f.flush()\n    time.sleep(0.1)\nf.close()\n";
    let conveyor_s = conveyor().display().to_string();
    let live = d.join(".live").display().to_string();
    // Runs conveyor with stderr on a pseudo-terminal and prints what it wrote there.
    let driver = r#"
import os, pty, subprocess, sys
m, s = pty.openpty()
env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
env.pop("LD_PRELOAD", None)
env["CONVEYOR_LIVE_DIR"] = sys.argv[2]
env["CONVEYOR_MODE"] = "always"
p = subprocess.Popen([sys.argv[1], "run", "--path", "data", "--progress", "--", sys.argv[3], "-c", sys.argv[4]],
                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=s, env=env)
os.close(s)
data = b""
while True:
    try:
        chunk = os.read(m, 4096)
    except OSError:
        break
    if not chunk:
        break
    data += chunk
code = p.wait()
sys.stdout.write(repr(data) + "\n" + str(code) + "\n")
"#;
    let out = Command::new(&py)
        .args(["-c", driver, &conveyor_s, &live, &py, child])
        .current_dir(d)
        .output()
        .unwrap();
    ok(&out, "the pty driver");
    let text = stdout(&out);
    let (tty, code) = text.trim_end().rsplit_once('\n').unwrap();
    assert_eq!(code, "0", "{text}");
    assert!(
        tty.contains("\\r\\x1b[Kconveyor ")
            && tty.contains("s: 1 file open, ")
            && tty.contains(" errors"),
        "no status line: {tty}"
    );
    assert!(
        tty.ends_with("\\r\\x1b[K'"),
        "the line is not cleared: {tty}"
    );
    // Not a terminal: nothing but the program's own output.
    let out = conveyor_in(
        d,
        &[
            "run",
            "--path",
            "data",
            "--progress",
            "--",
            &py,
            "-c",
            child,
        ],
        &[],
    );
    ok(&out, "--progress without a terminal");
    assert_eq!(stderr(&out), "", "stderr is not a terminal");
}

/// The command reference (docs/reference.md) and the README's synopsis
/// list every option each subcommand accepts, and no other.
#[test]
fn reference_matches_the_binary() {
    let dir = TempDir::new("cmd-reference");
    let reference = std::fs::read_to_string(root().join("docs/reference.md")).unwrap();
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let long_options = |text: &str| -> Vec<String> {
        let mut v: Vec<String> = text
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .filter(|w| w.starts_with("--") && w.len() > 2)
            .map(str::to_string)
            .collect();
        v.sort();
        v.dedup();
        v
    };
    for sub in ["run", "doctor", "report", "top", "generate", "flusher"] {
        let out = conveyor_in(dir.path(), &[sub, "--help"], &[]);
        ok(&out, &format!("{sub} --help"));
        let help = stdout(&out);
        let options: Vec<String> = long_options(
            &help
                .lines()
                .filter(|l| l.trim_start().starts_with('-'))
                .map(|l| l.trim_start().split("  ").next().unwrap_or(""))
                .collect::<Vec<_>>()
                .join(" "),
        )
        .into_iter()
        .filter(|o| o != "--help")
        .collect();
        let head = format!("## conveyor {sub}\n");
        let start = reference
            .find(&head)
            .unwrap_or_else(|| panic!("no section {head:?}"));
        let section = &reference[start + head.len()..];
        let section = &section[..section.find("\n## ").unwrap_or(section.len())];
        let synopsis = section
            .lines()
            .find(|l| l.starts_with(&format!("    conveyor {sub}")))
            .unwrap_or_else(|| panic!("no synopsis for {sub}"));
        let in_readme = readme
            .lines()
            .find(|l| l.starts_with(&format!("    conveyor {sub} ")))
            .unwrap_or_else(|| panic!("no README synopsis for {sub}"));
        assert_eq!(long_options(synopsis), options, "{sub}: reference synopsis");
        assert_eq!(
            long_options(in_readme.split('#').next().unwrap()),
            options,
            "{sub}: README synopsis"
        );
        for o in &options {
            assert!(
                section.contains(&format!("| `{o}")),
                "{sub}: {o} is not in the reference's option table"
            );
        }
    }
}

/// (7) Every test file that starts the shim by hand (not through `Run`)
/// gives it a live directory of its own, so new tests keep the rule too.
#[test]
fn every_test_that_preloads_the_shim_sets_a_live_directory() {
    let dir = root().join("tests/tests");
    let mut missing = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        let p = e.path();
        if p.extension().is_none_or(|x| x != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&p).unwrap();
        let preloads = text.contains(".env(\"LD_PRELOAD\", shim())")
            || text.contains(".env(\"LD_PRELOAD\", conveyor_tests::shim())")
            || (text.contains("Command::new(conveyor())") && text.contains("\"run\""));
        if preloads && !text.contains("CONVEYOR_LIVE_DIR") && !text.contains("own_live_dir") {
            missing.push(p.display().to_string());
        }
    }
    assert!(
        missing.is_empty(),
        "these start the shim without a live directory of their own: {missing:?}"
    );
}
