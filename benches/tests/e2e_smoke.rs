//! The end-to-end benchmark driver, run small (8 MiB, 0 ms per request,
//! one repetition): every case runs plain and under the shim without
//! failing, results.json lists them all, and the filesystem's counters show
//! the shim turning small writes into few requests. No timing is asserted.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The driver looks for the shim and the filesystem beside itself, so they
/// are built with the profile this test was built with.
fn build_siblings() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut args = vec!["build", "-p", "conveyor-preload", "-p", "conveyor-slowfs"];
    if !cfg!(debug_assertions) {
        args.push("--release");
    }
    let st = Command::new(cargo)
        .args(&args)
        .current_dir(root())
        .status()
        .expect("run cargo build");
    assert!(st.success(), "building the shim and conveyor-slowfs failed");
}

fn writes(v: &Value, case: &str, variant: &str) -> u64 {
    v["summary"][case][variant]["requests"]["writes"]
        .as_u64()
        .unwrap_or_else(|| panic!("no write count for {case} {variant}: {v}"))
}

#[test]
fn quick_run_covers_every_case_and_coalesces_writes() {
    build_siblings();
    let out = std::env::temp_dir().join(format!("conveyor-e2e-smoke-{}", std::process::id()));
    let run = Command::new(env!("CARGO_BIN_EXE_e2e"))
        .args([
            "--quick",
            // At 0 ms, how many lines one request carries depends on how
            // busy the machine is; 0.2 ms per request keeps the coalescing
            // checks below independent of load.
            "--latencies",
            "0.2",
            "--modes",
            "page,tmpfs",
            "--reps",
            "1",
        ])
        .arg("--no-unmanaged")
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run e2e");
    assert!(
        run.status.success(),
        "e2e failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let text = std::fs::read_to_string(out.join("results.json")).expect("results.json");
    let doc: Value = serde_json::from_str(&text).expect("results.json is JSON");
    let targets = doc["targets"].as_array().expect("targets");
    assert_eq!(targets.len(), 2, "one slowfs and one tmpfs target");
    let cases = [
        "dd_write_4k",
        "dd_write_1m",
        "dd_read_4k",
        "fio_randread_4k",
        "fio_randwrite_4k",
        "tar_extract",
        "sqlite_insert",
        "python_log",
        "make_c",
        "git_checkout",
        "postmark",
    ];
    for t in targets {
        for c in cases {
            for v in ["plain", "conveyor"] {
                assert!(
                    t["summary"][c][v]["median_secs"].as_f64().is_some(),
                    "{} {c} {v} has no time",
                    t["label"]
                );
            }
        }
        for r in t["runs"].as_array().expect("runs") {
            assert!(r["error"].is_null(), "a run failed: {r}");
        }
    }
    let slow = &targets[0];
    assert_eq!(slow["mode"], "page");
    // 8 MiB of 4 KiB writes: 2,048 requests without the shim.
    let (plain, shim) = (
        writes(slow, "dd_write_4k", "plain"),
        writes(slow, "dd_write_4k", "conveyor"),
    );
    assert!(plain >= 2048, "plain dd made {plain} write requests");
    assert!(
        shim <= plain / 10,
        "dd under the shim made {shim} write requests (plain {plain})"
    );
    let (plain, shim) = (
        writes(slow, "python_log", "plain"),
        writes(slow, "python_log", "conveyor"),
    );
    assert!(
        shim <= plain / 10,
        "the python log made {shim} write requests (plain {plain})"
    );
    for f in ["results.md", "speedup.svg"] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    let _ = std::fs::remove_dir_all(&out);
}
