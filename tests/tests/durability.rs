//! Committed means durable: the sqlite3 shell under the shim commits one
//! transaction at a time (synchronous=FULL, rollback journal) and prints
//! the row count after each commit; it is killed with SIGKILL mid-run. The
//! database, opened afterwards without the shim, passes integrity_check
//! and holds at least every row reported committed (and at most one
//! transaction more: the one that may have committed before its count was
//! printed). Breaking it: an fsync that returns before the pending writes
//! of the journal or database reach storage, or pending data lost across
//! the journal's delete (corruption or missing rows after the kill).

use conveyor_tests::slowfs::SlowFs;
use conveyor_tests::{ok, shim, Run};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Rows carry a 3,000-byte payload, so every transaction changes several
/// pages (and the journal holds several).
fn script(first_id: u64, txns: u64) -> String {
    let mut s = String::from(
        "PRAGMA journal_mode=DELETE;\nPRAGMA synchronous=FULL;\n\
         CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, p BLOB);\n",
    );
    for id in first_id..first_id + txns {
        let _ = writeln!(
            s,
            "BEGIN;\nINSERT INTO t VALUES({id}, zeroblob(3000));\nCOMMIT;\nSELECT count(*) FROM t;"
        );
    }
    s
}

/// Runs the shell under the shim on `db` (in `dir`, managed), reads counts
/// until `commits` more were reported, kills it with SIGKILL, and returns
/// the last count it printed.
fn run_and_kill(dir: &Path, db: &str, first_id: u64, commits: u64) -> u64 {
    let sql = dir.join(format!("script-{first_id}.sql"));
    std::fs::write(&sql, script(first_id, 20_000)).unwrap();
    let mut child = Command::new("sqlite3")
        .arg(db)
        .current_dir(dir)
        .env("LD_PRELOAD", shim())
        .env("CONVEYOR_MODE", "always")
        .env("CONVEYOR_PATHS", dir)
        // The killed shell's live file stays in the test's own directory.
        .env("CONVEYOR_LIVE_DIR", dir.join(".live"))
        .env_remove("CONVEYOR_DISABLE")
        .env_remove("CONVEYOR_LOG")
        .stdin(std::fs::File::open(&sql).unwrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start sqlite3");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut last = 0u64;
    let mut seen = 0u64;
    // journal_mode prints "delete" first.
    let start = Instant::now();
    while seen < commits {
        let line = match lines.next() {
            Some(Ok(l)) => l,
            other => {
                let _ = child.kill();
                panic!("sqlite3 stopped early ({other:?}) after {seen} commits");
            }
        };
        if let Ok(n) = line.trim().parse::<u64>() {
            last = n;
            seen += 1;
        }
        if start.elapsed() > Duration::from_secs(40) {
            let _ = child.kill();
            panic!("sqlite3 too slow: {seen} commits in 40 s");
        }
    }
    child.kill().expect("SIGKILL sqlite3");
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "sqlite3 finished its script before the kill"
    );
    // Counts printed before the kill are also committed.
    for l in lines.map_while(Result::ok) {
        if let Ok(n) = l.trim().parse::<u64>() {
            last = n;
        }
    }
    last
}

/// Opens the database without the shim: (integrity_check, count, sum(id),
/// max(id), sum(length(p))).
fn check(dir: &Path, db: &str) -> (String, u64, u64, u64, u64) {
    let out = Run::new(
        "sqlite3",
        &[
            db,
            "PRAGMA integrity_check; SELECT count(*), coalesce(sum(id),0), coalesce(max(id),0), coalesce(sum(length(p)),0) FROM t;",
        ],
        dir,
    )
    .plain();
    ok(&out, "sqlite3 check without the shim");
    let text = String::from_utf8(out.stdout).unwrap();
    let mut it = text.lines();
    let integrity = it.next().unwrap_or("").to_string();
    let nums: Vec<u64> = it
        .next()
        .unwrap_or("")
        .split('|')
        .map(|v| v.parse().unwrap())
        .collect();
    (integrity, nums[0], nums[1], nums[2], nums[3])
}

fn kill_rounds(dir: &Path, commits: u64) {
    // Control: sqlite3's database I/O in this directory is managed (the
    // killed runs cannot write their counts).
    let (out, counts) = Run::new("sqlite3", &["control.db", &script(1, 20)], dir).shimmed(dir);
    ok(&out, "sqlite3 control run");
    let managed: u64 = ["write", "pwrite64", "read", "pread64"]
        .iter()
        .map(|k| counts.get(*k).copied().unwrap_or(0))
        .sum();
    assert!(managed > 0, "sqlite3's I/O not managed: {counts:?}");
    let db = "kill.db";
    let mut next_id = 1u64;
    for round in 0..3 {
        let reported = run_and_kill(dir, db, next_id, commits);
        let (integrity, count, sum, max, bytes) = check(dir, db);
        assert_eq!(integrity, "ok", "round {round}: integrity_check");
        assert!(
            count >= reported && count <= reported + 1,
            "round {round}: {count} rows on storage, {reported} reported committed"
        );
        // Rows are exactly ids 1..=count with their payloads.
        assert_eq!(max, count, "round {round}: ids not contiguous");
        assert_eq!(sum, count * (count + 1) / 2, "round {round}: ids");
        assert_eq!(bytes, count * 3000, "round {round}: payload bytes");
        next_id = count + 1;
    }
}

#[test]
fn sqlite_commits_survive_sigkill_local_disk() {
    let dir = conveyor_tests::TempDir::new("durable");
    kill_rounds(dir.path(), 150);
}

#[test]
fn sqlite_commits_survive_sigkill_slowfs() {
    let fs = SlowFs::mount(&["--latency-ms", "1"]);
    kill_rounds(&fs.mnt(), 40);
}
