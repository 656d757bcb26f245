//! `conveyor report`: merges the stats reports of a real process tree,
//! prints JSON that matches its schema, and skips files it must not trust
//! with a message and exit status 1.

use conveyor_tests::{conveyor, ok, TempDir};
use serde_json::Value;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Fields of every stats object (`conveyor-stats/1` totals and rows).
const STATS_KEYS: &[&str] = &[
    "app_write_bytes",
    "app_read_bytes",
    "storage_write_bytes",
    "storage_read_bytes",
    "storage_write_requests",
    "storage_read_requests",
    "avg_write_request_bytes",
    "avg_read_request_bytes",
    "app_write_calls",
    "app_read_calls",
    "app_wait_ns",
    "app_write_p50_ns",
    "app_write_p99_ns",
    "storage_write_p50_ns",
    "storage_write_p99_ns",
    "read_ahead_hits",
    "read_ahead_misses",
    "read_ahead_hit_rate",
    "snoop_hits",
    "buffer_full_waits",
    "ring_requests",
    "errors",
    "last_errno",
    "lost_bytes",
];

fn conveyor_cmd(args: &[&str], dir: &Path) -> Output {
    Command::new(conveyor())
        .env("CONVEYOR_MODE", "always")
        .args(args)
        .current_dir(dir)
        .env_remove("LD_PRELOAD")
        .env_remove("CONVEYOR_PATHS")
        .env_remove("CONVEYOR_STATS")
        .env("CONVEYOR_LIVE_DIR", dir.join(".live"))
        .output()
        .expect("run conveyor")
}

fn check_stats(obj: &Value, what: &str) {
    for k in STATS_KEYS {
        assert!(
            obj[k].is_number(),
            "{what}: {k} missing or not a number: {obj}"
        );
    }
}

/// Runs a shell whose children write `a` (256 KiB), `b` (512 KiB) and read
/// `a`, each with its own report; returns the report files.
fn process_tree(dir: &Path) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::create_dir_all(dir.join("r")).unwrap();
    let out = conveyor_cmd(
        &[
            "run",
            "--stats",
            "r/report-%p.json",
            "--path",
            "data",
            "--",
            "sh",
            "-c",
            "dd if=/dev/zero of=data/a bs=4k count=64 2>/dev/null && \
             dd if=/dev/zero of=data/b bs=4k count=128 2>/dev/null && \
             dd if=data/a of=/dev/null bs=4k 2>/dev/null; true",
        ],
        dir,
    );
    ok(&out, "the process tree");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("r"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    // The shell and its three dd children (a shell may exec its last
    // command itself, so at least the three dd).
    assert!(files.len() >= 3, "reports: {files:?}");
    files
}

fn row<'a>(doc: &'a Value, path: &Path) -> &'a Value {
    let want = path.to_string_lossy();
    doc["files"]
        .as_array()
        .expect("files array")
        .iter()
        .find(|r| r["path"] == *want)
        .unwrap_or_else(|| panic!("no row for {want}: {doc}"))
}

/// Reports of a shell and its dd children merge into one document: each
/// file's row sums the processes that used it, the totals sum everything,
/// and every field of the schema is there.
#[test]
fn merges_the_reports_of_a_process_tree() {
    let dir = TempDir::new("report-tree");
    let files = process_tree(dir.path());
    let mut args = vec!["report", "--json"];
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    args.extend(names.iter().map(String::as_str));
    let out = conveyor_cmd(&args, dir.path());
    ok(&out, "conveyor report --json");
    let doc: Value = serde_json::from_slice(&out.stdout).expect("report --json is JSON");
    assert_eq!(doc["schema"], "conveyor-report/1");
    assert_eq!(doc["inputs"].as_array().unwrap().len(), files.len());
    assert_eq!(doc["skipped"].as_array().unwrap().len(), 0);
    for i in doc["inputs"].as_array().unwrap() {
        assert!(
            i["pid"].as_i64().unwrap() > 0 && i["command"].is_string(),
            "{i}"
        );
    }
    check_stats(&doc["totals"], "totals");
    let data = std::fs::canonicalize(dir.path().join("data")).unwrap();
    let a = row(&doc, &data.join("a"));
    let b = row(&doc, &data.join("b"));
    for r in [a, b] {
        check_stats(r, "row");
        assert!(r["open"].is_boolean(), "{r}");
    }
    assert_eq!(a["processes"], 2, "a: written by one dd, read by another");
    assert_eq!(b["processes"], 1);
    assert_eq!(a["app_write_bytes"], 64 * 4096);
    assert_eq!(a["app_read_bytes"], 64 * 4096);
    assert_eq!(b["app_write_bytes"], 128 * 4096);
    assert_eq!(b["storage_write_bytes"], 128 * 4096);
    assert_eq!(doc["totals"]["app_write_bytes"], 192 * 4096);
    assert_eq!(doc["totals"]["app_read_bytes"], 64 * 4096);
    assert_eq!(doc["totals"]["storage_write_bytes"], 192 * 4096);

    // The table: one line per file and one for all of them.
    let mut args = vec!["report"];
    args.extend(names.iter().map(String::as_str));
    let out = conveyor_cmd(&args, dir.path());
    ok(&out, "conveyor report");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with(&format!("{} processes", files.len())),
        "{text}"
    );
    let line = |p: &Path| {
        text.lines()
            .find(|l| l.ends_with(&*p.to_string_lossy()))
            .unwrap_or_else(|| panic!("no line for {}: {text}", p.display()))
            .to_string()
    };
    assert!(
        line(&data.join("a")).trim_start().starts_with("2 "),
        "{text}"
    );
    assert!(line(&data.join("b")).contains("512.0 KiB"), "{text}");
    assert!(text.contains("(all files)"), "{text}");
}

/// Truncated, foreign-schema, symlinked and other users' files are skipped,
/// each named with its problem; the rest is still merged; exit status 1.
#[test]
fn skips_files_it_must_not_trust() {
    let dir = TempDir::new("report-bad");
    let files = process_tree(dir.path());
    let good = &files[0];
    let text = std::fs::read_to_string(good).unwrap();
    let d = dir.path();
    std::fs::write(d.join("truncated.json"), &text[..text.len() / 2]).unwrap();
    std::fs::write(d.join("other.json"), "{\"schema\":\"something-else/2\"}").unwrap();
    std::fs::write(d.join("garbage.json"), [0xff, 0xfe, 0x00, 0x41]).unwrap();
    std::os::unix::fs::symlink(good, d.join("link.json")).unwrap();
    let foreign = d.join("foreign.json");
    std::fs::write(&foreign, &text).unwrap();
    // Another user's file (only root can give it away; others skip this).
    let me = std::fs::metadata(&foreign).unwrap().uid();
    let chowned = me == 0
        && Command::new("chown")
            .args(["65534", &foreign.to_string_lossy()])
            .status()
            .is_ok_and(|s| s.success());
    let out = conveyor_cmd(
        &[
            "report",
            &good.to_string_lossy(),
            "truncated.json",
            "other.json",
            "garbage.json",
            "link.json",
            "foreign.json",
            "missing.json",
        ],
        d,
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    for (f, why) in [
        ("truncated.json", "not valid JSON"),
        ("other.json", "schema is \"something-else/2\""),
        ("garbage.json", "is not UTF-8"),
        ("link.json", "is a symbolic link"),
        ("missing.json", "cannot open"),
    ] {
        assert!(
            err.contains(&format!("conveyor report: {f}: skipped: {why}")),
            "{f}: {err}"
        );
    }
    if chowned {
        assert!(
            err.contains("conveyor report: foreign.json: skipped: is owned by uid"),
            "{err}"
        );
    }
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.starts_with("1 process (pid "), "{table}");

    // Nothing usable: a message and status 1.
    let out = conveyor_cmd(&["report", "truncated.json"], d);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no report could be read"));
}

/// Usage errors exit 2; `--help` shows an example.
#[test]
fn usage_and_help() {
    let dir = TempDir::new("report-usage");
    let out = conveyor_cmd(&["report"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let out = conveyor_cmd(&["report", "--help"], dir.path());
    ok(&out, "report --help");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("Example:") && help.contains("Exit status"),
        "{help}"
    );
}
