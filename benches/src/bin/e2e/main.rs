//! e2e: real programs on slow storage, with and without conveyor, in one
//! run.
//!
//! For each storage target (conveyor-slowfs at each latency, with the page
//! cache and with direct I/O, and a tmpfs directory) it runs every workload
//! plain, under `libconveyor_preload.so` and, where it applies, under
//! libeatmydata, alternating within each repetition; times each program
//! from start until it exits (its data on storage); checks what it left
//! there; records the filesystem's request counters per run; and writes
//! results.json, results.md and speedup.svg. Last, what the shim adds to a
//! call on an unmanaged descriptor (time and instructions).
//!
//! Build first (`cargo build --release`), then
//! `cargo run --release -p conveyor-bench --bin e2e -- [--quick] [--reps N]
//! [--slow-reps N] [--latencies 0,0.2,1,5] [--modes page,direct,tmpfs]
//! [--cases NAME,...] [--out DIR] [--work DIR] [--no-unmanaged]
//! [--busy [N]]`.

mod args;
mod busy;
mod cases;
mod json;
mod machine;
mod plot;
mod projects;
mod report;
mod results;
mod run;
mod target;

use args::Args;
use cases::{Case, Inputs};
use results::{Results, RunRecord, TargetResult};
use run::{Preloads, Variant};
use std::path::{Path, PathBuf};
use std::time::Instant;
use target::{Mode, Requests, Target};

/// Latencies from this many ms on use `--slow-reps`.
const SLOW_MS: f64 = 2.0;

fn fail(msg: &str) -> ! {
    eprintln!("e2e: {msg}");
    // process::exit runs no destructors: the busy processes go here.
    busy::stop();
    std::process::exit(1);
}

fn need_tools(a: &Args) {
    let mut tools: Vec<(&str, &str)> = Vec::new();
    for c in &a.cases {
        tools.extend(c.programs());
    }
    if a.modes
        .iter()
        .any(|m| matches!(m, Mode::Page | Mode::Direct))
    {
        tools.push(("fusermount3", "fuse3"));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut missing: Vec<(&str, &str)> = tools
        .into_iter()
        .filter(|(t, _)| !std::env::split_paths(&path).any(|d| d.join(t).exists()))
        .collect();
    missing.sort();
    missing.dedup();
    if !missing.is_empty() {
        let progs: Vec<&str> = missing.iter().map(|m| m.0).collect();
        let pkgs: Vec<&str> = missing.iter().map(|m| m.1).collect();
        fail(&format!(
            "missing programs: {} (Debian: apt-get install {})",
            progs.join(", "),
            pkgs.join(" ")
        ));
    }
}

fn variants(c: Case, rep: usize, pre: &Preloads, a: &Args) -> Vec<Variant> {
    let mut v = vec![Variant::Plain, Variant::Conveyor];
    if c.has_eatmydata_peer() && pre.eatmydata.is_some() {
        v.push(Variant::EatMyData);
    }
    if c.has_relaxed_peer() {
        v.push(Variant::Relaxed);
    }
    if a.executors {
        v.push(Variant::Uring);
    }
    if a.crash_safe {
        v.push(Variant::InProcess);
    }
    // Rotating the order evens out whatever the previous run leaves behind
    // (warm caches, a busy flusher of the filesystem).
    let k = rep % v.len();
    v.rotate_left(k);
    v
}

fn one_run(
    t: &Target,
    inp: &Inputs,
    pre: &Preloads,
    (c, v, rep): (Case, Variant, usize),
    always: bool,
) -> RunRecord {
    let name = format!("{}-{}-{rep}", c.name(), v.name());
    let mut rec = RunRecord {
        case: c,
        variant: v,
        rep,
        secs: None,
        requests: None,
        error: None,
    };
    let res = (|| {
        let p = c.prepare(t, inp, &name)?;
        let before = t.counters();
        let ran = run::timed(&p, v, pre, &t.data, always);
        let after = t.counters();
        if let (Some(b), Some(a)) = (before, after) {
            rec.requests = Some(Requests::between(&b, &a));
        }
        let ran = ran?;
        c.check(inp, &p, &ran.stdout, &ran.stderr)?;
        Ok::<f64, String>(ran.secs)
    })();
    match res {
        Ok(s) => rec.secs = Some(s),
        Err(e) => rec.error = Some(e),
    }
    rec
}

fn run_target(t: &Target, a: &Args, inp: &Inputs, pre: &Preloads) -> TargetResult {
    let reps = if t.latency_ms >= SLOW_MS {
        a.slow_reps
    } else {
        a.reps
    };
    let mut res = TargetResult {
        mode: t.mode,
        latency_ms: t.latency_ms,
        label: t.label(),
        reps,
        runs: Vec::new(),
        skipped: Vec::new(),
    };
    let cases: Vec<Case> = a
        .cases
        .iter()
        .copied()
        .filter(|c| c.applies(t.mode))
        .collect();
    for &c in &a.cases {
        if let Some(why) = c.skipped(t.mode) {
            res.skipped.push((c, why));
        }
    }
    for rep in 0..reps {
        for &c in &cases {
            for v in variants(c, rep, pre, a) {
                let r = one_run(t, inp, pre, (c, v, rep), a.always);
                match (&r.secs, &r.error) {
                    (Some(s), _) => eprintln!(
                        "[{}] rep {}/{reps} {} {}: {s:.3} s{}",
                        res.label,
                        rep + 1,
                        c.name(),
                        v.name(),
                        r.requests
                            .as_ref()
                            .map(|q| format!(" ({} requests, {} writes)", q.total, q.writes))
                            .unwrap_or_default()
                    ),
                    (None, Some(e)) => {
                        eprintln!("[{}] {} {} FAILED: {e}", res.label, c.name(), v.name())
                    }
                    _ => {}
                }
                res.runs.push(r);
            }
        }
    }
    res
}

fn write_out(r: &Results, out: &Path) {
    let w = |name: &str, text: String| {
        let p = out.join(name);
        if let Err(e) = std::fs::write(&p, text) {
            eprintln!("e2e: cannot write {}: {e}", p.display());
        }
    };
    w("results.json", json::render(r));
    w("results.md", report::render(r));
    if let Err(e) = plot::svg(r, &out.join("speedup.svg")) {
        eprintln!("e2e: plot: {e}");
    }
}

fn main() {
    if busy::child_if_asked() || conveyor_bench::unmanaged::child_if_asked() {
        return;
    }
    let a = args::parse();
    let me = std::env::current_exe().unwrap_or_else(|e| fail(&format!("own path: {e}")));
    let bin_dir = me.parent().map(Path::to_path_buf).unwrap_or_default();
    let pre = Preloads::find(&bin_dir).unwrap_or_else(|e| fail(&e));
    let slowfs = bin_dir.join("conveyor-slowfs");
    if !slowfs.exists() {
        fail(&format!(
            "{} is missing: run cargo build --release first",
            slowfs.display()
        ));
    }
    need_tools(&a);
    if pre.eatmydata.is_none() {
        eprintln!("e2e: libeatmydata not found (apt-get install eatmydata): its runs are left out");
    }
    let work = a.work.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("conveyor-e2e.{}", std::process::id()))
    });
    let shm = PathBuf::from("/dev/shm").join(format!("conveyor-e2e.{}", std::process::id()));
    for d in [&work, &a.out] {
        std::fs::create_dir_all(d).unwrap_or_else(|e| fail(&format!("{}: {e}", d.display())));
    }
    let started = Instant::now();
    let inputs = Inputs::make(&work, &a.sizes, &a.cases).unwrap_or_else(|e| fail(&e));
    // Started after the inputs (a reference build need not compete) and
    // before the first measurement; stopped after the last one, or by
    // fail() or the signal handler.
    let busy = busy::start(&me, a.busy).unwrap_or_else(|e| fail(&e));
    let mut res = Results {
        command: a.command.clone(),
        machine: machine::describe(&inputs.python),
        sizes: a.sizes.clone(),
        busy: busy.count,
        targets: Vec::new(),
        unmanaged: None,
        elapsed_secs: 0.0,
    };
    for &mode in &a.modes {
        let lats = if matches!(mode, Mode::Tmpfs | Mode::Disk) || mode.is_netfs() {
            vec![0.0]
        } else {
            a.latencies.clone()
        };
        for lat in lats {
            let t = match mode {
                Mode::Tmpfs => Target::local(&shm, mode),
                Mode::Disk => Target::local(&work.join("disk"), mode),
                m if m.is_netfs() => Target::netfs(&work.join(m.name()), m),
                _ => Target::slowfs(
                    &slowfs,
                    &work.join(format!("{}-{lat}", mode.name())),
                    mode,
                    lat,
                ),
            }
            .unwrap_or_else(|e| fail(&e));
            inputs.prepare(&t).unwrap_or_else(|e| fail(&e));
            res.targets.push(run_target(&t, &a, &inputs, &pre));
            drop(t);
            res.elapsed_secs = started.elapsed().as_secs_f64();
            write_out(&res, &a.out);
        }
    }
    if !a.no_unmanaged {
        match conveyor_bench::unmanaged::measure(&me, &pre.conveyor, &work, 11, true) {
            Ok(u) => res.unmanaged = Some(u),
            Err(e) => eprintln!("e2e: unmanaged-descriptor measurement failed: {e}"),
        }
    }
    drop(busy);
    res.machine
        .push(("load average at end".into(), machine::load()));
    res.elapsed_secs = started.elapsed().as_secs_f64();
    write_out(&res, &a.out);
    if a.work.is_none() {
        let _ = std::fs::remove_dir_all(&work);
    }
    eprintln!(
        "e2e: wrote {}/results.{{json,md}} and speedup.svg",
        a.out.display()
    );
    print!("{}", report::render(&res));
    let f = res.failures();
    if !f.is_empty() {
        fail(&format!("{} runs failed", f.len()));
    }
}
