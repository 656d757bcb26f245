//! The end-to-end benchmark driver, run small (8 MiB, 0 ms per request,
//! one repetition): every case runs plain and under the shim without
//! failing, results.json lists them all, and the filesystem's counters show
//! the shim turning small writes into few requests. No timing is asserted.
//! And `--busy`: recorded in the results, its processes gone when the
//! benchmark ends or is interrupted.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

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

/// The tests run one at a time: the busy processes of one would load the
/// cores under the other's runs.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn writes(v: &Value, case: &str, variant: &str) -> u64 {
    v["summary"][case][variant]["requests"]["writes"]
        .as_u64()
        .unwrap_or_else(|| panic!("no write count for {case} {variant}: {v}"))
}

#[test]
fn quick_run_covers_every_case_and_coalesces_writes() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
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
    assert_eq!(doc["busy"], 0, "an idle run records no busy processes");
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

/// The busy processes of `e2e` (`e2e --spin PARENT`) still in /proc.
fn spinners(parent: u32) -> Vec<u32> {
    let want = format!("--spin\0{parent}\0");
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            String::from_utf8_lossy(&cmd).contains(&want).then_some(pid)
        })
        .collect()
}

fn busy_run(out: &Path, reps: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_e2e"));
    c.args([
        "--quick",
        "--modes",
        "tmpfs",
        "--cases",
        "python_log",
        "--reps",
        reps,
        "--no-unmanaged",
        "--busy",
        "--work",
    ])
    .arg(out.join("work"))
    .arg("--out")
    .arg(out)
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    c
}

#[test]
fn busy_processes_are_recorded_and_end_with_the_benchmark() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    build_siblings();
    let out = std::env::temp_dir().join(format!("conveyor-e2e-busy-{}", std::process::id()));
    // A finished run: a bare --busy means 2, recorded in both results.
    let child = busy_run(&out, "1").spawn().expect("run e2e");
    let pid = child.id();
    let done = child.wait_with_output().expect("wait for e2e");
    assert!(
        done.status.success(),
        "e2e --busy failed: {}",
        String::from_utf8_lossy(&done.stderr)
    );
    let text = std::fs::read_to_string(out.join("results.json")).expect("results.json");
    let doc: Value = serde_json::from_str(&text).expect("results.json is JSON");
    assert_eq!(doc["busy"], 2);
    let md = std::fs::read_to_string(out.join("results.md")).expect("results.md");
    assert!(
        md.contains("(`--busy`): 2"),
        "results.md does not record --busy"
    );
    assert!(spinners(pid).is_empty(), "busy processes outlived e2e");

    // An interrupted run: SIGINT to the benchmark alone (not its process
    // group, as a terminal would) still ends them.
    let mut child = busy_run(&out, "1000")
        .stderr(Stdio::null())
        .spawn()
        .expect("run e2e");
    let pid = child.id();
    let t = std::time::Instant::now();
    while spinners(pid).len() < 2 {
        assert!(
            t.elapsed().as_secs() < 60,
            "the busy processes did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // SAFETY: kill with a plain pid and signal number touches no memory.
    unsafe { libc::kill(pid as i32, libc::SIGINT) };
    let st = child.wait().expect("wait for e2e");
    assert!(!st.success(), "e2e finished 1000 repetitions before SIGINT");
    assert!(spinners(pid).is_empty(), "busy processes outlived SIGINT");
    // An interrupted run leaves its tmpfs directory behind.
    let _ = std::fs::remove_dir_all(format!("/dev/shm/conveyor-e2e.{pid}"));
    let _ = std::fs::remove_dir_all(&out);
}
