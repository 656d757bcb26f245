//! results.md: the tables, the request counts that explain them, and the
//! performance targets of the design checked against the measurements.

use crate::cases::Case;
use crate::results::{Results, TargetResult};
use crate::run::Variant;
use crate::target::Mode;
use crate::target::Requests;
use std::fmt::Write;

fn secs(x: f64) -> String {
    if x < 10.0 {
        format!("{x:.3}")
    } else {
        format!("{x:.1}")
    }
}

/// "96x", "1.04x".
pub fn ratio(x: f64) -> String {
    if x >= 10.0 {
        format!("{x:.0}x")
    } else {
        format!("{x:.2}x")
    }
}

fn ms(l: f64) -> String {
    format!("{l} ms")
}

fn cell(t: &TargetResult, c: Case, v: Variant) -> String {
    match (t.median(c, Variant::Plain), t.median(c, v)) {
        (Some(p), Some(x)) => format!("{} → {} s ({})", secs(p), secs(x), ratio(p / x)),
        _ if t.runs.iter().any(|r| r.case == c && r.error.is_some()) => "failed".into(),
        _ => "".into(),
    }
}

fn mean_kib(n: u64, bytes: u64) -> String {
    if n == 0 {
        "0".into()
    } else {
        format!("{} ({:.0} KiB)", n, bytes as f64 / n as f64 / 1024.0)
    }
}

fn req_row(out: &mut String, t: &TargetResult, c: Case, v: Variant, r: &Requests) {
    let _ = writeln!(
        out,
        "| {} | {} | {} | {} | {} | {} | {} |",
        t.label,
        c.name(),
        v.name(),
        r.total,
        mean_kib(r.writes, r.write_bytes),
        mean_kib(r.reads, r.read_bytes),
        r.fsyncs
    );
}

/// One target of the design: what was measured and whether it is met.
pub struct Check {
    /// The target in words.
    pub what: String,
    /// The measurement.
    pub measured: String,
    /// Met or not.
    pub met: bool,
}

/// Evaluates the targets of DESIGN.md §4 that this run measured.
pub fn checks(r: &Results) -> Vec<Check> {
    let mut v = Vec::new();
    let conv = Variant::Conveyor;
    if let Some(t) = r.target(Mode::Page, 1.0) {
        if let Some(s) = t.speedup(Case::DdWrite4k, conv) {
            v.push(Check {
                what: "dd bs=4k writes at 1 ms (page cache): at least 50x faster".into(),
                measured: ratio(s),
                met: s >= 50.0,
            });
        }
        if let (Some(c), Some(m)) = (
            t.median(Case::DdWrite4k, conv),
            t.median(Case::DdWrite1m, Variant::Plain),
        ) {
            v.push(Check {
                what: "dd bs=4k writes at 1 ms with conveyor: within 1.5x of dd bs=1M without (aim 1.1x)".into(),
                measured: format!("{} s vs {} s: {:.2}x", secs(c), secs(m), c / m),
                met: c / m <= 1.5,
            });
        }
        if let Some(s) = t.speedup(Case::DdRead4k, conv) {
            v.push(Check {
                what: "dd bs=4k reads at 1 ms (page cache): at least 3x faster".into(),
                measured: ratio(s),
                met: s >= 3.0,
            });
        }
    }
    if let Some(s) = r
        .target(Mode::Direct, 1.0)
        .and_then(|t| t.speedup(Case::DdRead4k, conv))
    {
        v.push(Check {
            what: "dd bs=4k reads at 1 ms (direct I/O): at least 50x faster".into(),
            measured: ratio(s),
            met: s >= 50.0,
        });
    }
    let worst = |cases: &[Case], modes: &[Mode]| {
        r.targets
            .iter()
            .filter(|t| modes.contains(&t.mode))
            .flat_map(|t| {
                cases
                    .iter()
                    .filter_map(move |c| Some((t.speedup(*c, conv)?, t.label.clone(), *c)))
            })
            .min_by(|a, b| a.0.total_cmp(&b.0))
    };
    let all = [Mode::Page, Mode::Direct, Mode::Tmpfs];
    let small_files = [Case::TarExtract, Case::Make, Case::GitCheckout];
    for (what, cases, modes) in [
        (
            "fio random 4 KiB reads: no slower (within 5%), everywhere",
            &[Case::FioRandRead][..],
            &all[..],
        ),
        (
            "sqlite3, one fsync per transaction: no slower (within 5%), everywhere",
            &[Case::Sqlite][..],
            &all[..],
        ),
        (
            "many small files (tar -x, make, git checkout): no slower (within 5%), everywhere",
            &small_files[..],
            &all[..],
        ),
        (
            "tmpfs, dd bs=4k writes and reads: no slower (within 5%)",
            &[Case::DdWrite4k, Case::DdRead4k][..],
            &[Mode::Tmpfs][..],
        ),
    ] {
        if let Some((s, label, c)) = worst(cases, modes) {
            v.push(Check {
                what: what.into(),
                measured: format!("worst {} ({}, {})", ratio(s), c.name(), label),
                met: s >= 0.95,
            });
        }
    }
    if let Some((s, c)) = r.target(Mode::Page, 1.0).and_then(|t| {
        small_files
            .iter()
            .filter_map(|c| Some((t.speedup(*c, conv)?, *c)))
            .min_by(|a, b| a.0.total_cmp(&b.0))
    }) {
        v.push(Check {
            what: "many small files at 1 ms (page cache): at least 1.3x faster".into(),
            measured: format!("worst {} ({})", ratio(s), c.name()),
            met: s >= 1.3,
        });
    }
    for t in r.targets.iter().filter(|t| t.mode.is_netfs()) {
        let worst = t
            .cases()
            .into_iter()
            .filter_map(|c| Some((t.speedup(c, conv)?, c)))
            .min_by(|a, b| a.0.total_cmp(&b.0));
        if let Some((s, c)) = worst {
            v.push(Check {
                what: format!("{}: every workload at least 0.95x", t.label),
                measured: format!("worst {} ({})", ratio(s), c.name()),
                met: s >= 0.95,
            });
        }
    }
    // sshfs sends each write to its server; rclone and s3fs keep writes in
    // a local cache (or stream them) until close.
    if let Some(s) = r
        .target(Mode::Sshfs, 0.0)
        .and_then(|t| t.speedup(Case::DdWrite4k, conv))
    {
        v.push(Check {
            what: "sshfs, dd bs=4k writes: at least 2x faster".into(),
            measured: ratio(s),
            met: s >= 2.0,
        });
    }
    if let Some(u) = &r.unmanaged {
        for c in &u.costs {
            let added = c.ns_added;
            v.push(Check {
                what: format!("{}() of an unmanaged fd: under 5 ns added per call", c.call),
                measured: format!(
                    "{added:+.1} ns ({:.1} vs {:.1} ns){}",
                    c.ns_shim,
                    c.ns_plain,
                    c.instructions
                        .map(|i| format!("; {i:.1} instructions"))
                        .unwrap_or_default()
                ),
                met: added < 5.0,
            });
        }
    }
    v
}

/// The cases asked for that a storage mode does not run, once per mode.
fn skipped(out: &mut String, r: &Results) {
    let mut rows: Vec<(Mode, Case, &str)> = Vec::new();
    for t in &r.targets {
        for (c, why) in &t.skipped {
            if !rows.iter().any(|(m, x, _)| *m == t.mode && x == c) {
                rows.push((t.mode, *c, why));
            }
        }
    }
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "## Cases not run\n\n| storage | workload | why |\n|---|---|---|"
    );
    for (m, c, why) in rows {
        let _ = writeln!(out, "| {} | {} | {why} |", m.label(), c.name());
    }
    out.push('\n');
}

/// The io_uring executor against the worker pool, on every storage both
/// ran on (`--executors`).
fn executors(o: &mut String, r: &Results) {
    against(
        o,
        r,
        Variant::Uring,
        "## Executors: io_uring against the worker pool\n\n\
         Each against the plain run; `pool / io_uring` divides the pool's time by io_uring's \
         (above 1: io_uring is faster). Requests: what the storage received (median per run).\n\n\
         | storage | workload | pool | io_uring | pool / io_uring | requests pool → io_uring |\n\
         |---|---|---|---|---|---|",
        false,
    );
}

/// Crash-safe write-behind against today's in-process buffers, on every
/// storage both ran on (`--crash-safe`).
fn crash_safe(o: &mut String, r: &Results) {
    against(
        o,
        r,
        Variant::InProcess,
        "## Crash safety: the journal against in-process buffers\n\n\
         Each against the plain run; `in-process / crash-safe` divides the time with \
         `CONVEYOR_CRASH_SAFE=off` by that of the default, crash-safe write-behind (above 1: \
         crash-safe is faster; the target is at least 0.9). Requests: what the storage received \
         (median per run).\n\n\
         | storage | workload | crash-safe | in-process | in-process / crash-safe | requests crash-safe → in-process |\n\
         |---|---|---|---|---|---|",
        true,
    );
}

/// A table of `v` against conveyor's default, one row per storage and
/// case both ran, under `head`; the ratio is the default's time over
/// `v`'s, or (`v_over_default`) the other way round.
fn against(o: &mut String, r: &Results, v: Variant, head: &str, v_over_default: bool) {
    let ts: Vec<&TargetResult> = r
        .targets
        .iter()
        .filter(|t| t.runs.iter().any(|x| x.variant == v))
        .collect();
    if ts.is_empty() {
        return;
    }
    let _ = writeln!(o, "{head}");
    for t in ts {
        for c in t.cases() {
            let (Some(p), Some(u)) = (t.median(c, Variant::Conveyor), t.median(c, v)) else {
                continue;
            };
            let q = |v| {
                t.requests(c, v)
                    .map_or("-".to_string(), |q: Requests| q.total.to_string())
            };
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} → {} |",
                t.label,
                c.name(),
                cell(t, c, Variant::Conveyor),
                cell(t, c, v),
                ratio(if v_over_default { u / p } else { p / u }),
                q(Variant::Conveyor),
                q(v)
            );
        }
    }
    o.push('\n');
}

fn mode_table(out: &mut String, r: &Results, mode: Mode, v: Variant) {
    let lats = r.latencies(mode);
    let ts: Vec<&TargetResult> = lats.iter().filter_map(|l| r.target(mode, *l)).collect();
    let Some(first) = ts.first() else { return };
    let cases: Vec<Case> = first
        .cases()
        .into_iter()
        .filter(|c| ts.iter().any(|t| t.median(*c, v).is_some()))
        .collect();
    if cases.is_empty() {
        return;
    }
    let _ = write!(out, "| workload |");
    for l in &lats {
        let _ = write!(out, " {} |", ms(*l));
    }
    let _ = write!(out, "\n|---|");
    for _ in &lats {
        let _ = write!(out, "---|");
    }
    out.push('\n');
    for c in cases {
        let _ = write!(out, "| {} |", c.title(&r.sizes));
        for t in &ts {
            let _ = write!(out, " {} |", cell(t, c, v));
        }
        out.push('\n');
    }
    out.push('\n');
}

/// The whole document.
pub fn render(r: &Results) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# conveyor end-to-end benchmark\n");
    let _ = writeln!(o, "Command: `{}`\n", r.command);
    for (k, val) in &r.machine {
        let _ = writeln!(o, "- {k}: {val}");
    }
    let _ = writeln!(
        o,
        "- CPU-bound processes running beside the benchmark (`--busy`): {}",
        match r.busy {
            0 => "none".to_string(),
            n => n.to_string(),
        }
    );
    let _ = writeln!(o, "- whole run: {:.0} s\n", r.elapsed_secs);
    let _ = writeln!(
        o,
        "Each cell: median seconds without conveyor → with it (speedup = without / with), \
         each program timed from start until it exited (its data on storage). \
         Runs alternate plain / conveyor / eatmydata within each repetition.\n"
    );
    let reps: Vec<String> = r
        .targets
        .iter()
        .map(|t| format!("{}: {}", t.label, t.reps))
        .collect();
    let _ = writeln!(o, "Repetitions: {}.\n", reps.join("; "));
    for mode in [Mode::Page, Mode::Direct] {
        if !r.latencies(mode).is_empty() {
            let _ = writeln!(o, "## {} (per-request latency in columns)\n", mode.label());
            mode_table(&mut o, r, mode, Variant::Conveyor);
        }
    }
    if let Some(t) = r.target(Mode::Tmpfs, 0.0) {
        let _ = writeln!(o, "## tmpfs (the shim's overhead on fast storage)\n");
        let _ = writeln!(o, "| workload | conveyor | eatmydata |\n|---|---|---|");
        for c in t.cases() {
            let _ = writeln!(
                o,
                "| {} | {} | {} |",
                c.title(&r.sizes),
                cell(t, c, Variant::Conveyor),
                cell(t, c, Variant::EatMyData)
            );
        }
        o.push('\n');
    }
    for t in r
        .targets
        .iter()
        .filter(|t| t.mode.is_netfs() && !t.cases().is_empty())
    {
        let _ = writeln!(o, "## {}\n", t.label);
        let _ = writeln!(
            o,
            "| workload | without → with conveyor | server requests without → with |\n|---|---|---|"
        );
        for c in t.cases() {
            let q = |v| {
                t.requests(c, v)
                    .map_or("-".to_string(), |q: Requests| q.total.to_string())
            };
            let _ = writeln!(
                o,
                "| {} | {} | {} → {} |",
                c.title(&r.sizes),
                cell(t, c, Variant::Conveyor),
                q(Variant::Plain),
                q(Variant::Conveyor)
            );
        }
        o.push('\n');
    }
    // The peers: a mode of conveyor's that gives something up, and a
    // library that gives up more.
    let peers = [
        (
            Variant::Relaxed,
            "Relaxed close",
            "`CONVEYOR_CLOSE=relaxed`: other programs see the data at the process's barriers",
        ),
        (
            Variant::EatMyData,
            "libeatmydata",
            "fsync made a no-op: not durable",
        ),
    ];
    for (v, name, what) in peers {
        for mode in [Mode::Page, Mode::Direct] {
            if r.targets
                .iter()
                .any(|t| t.mode == mode && t.runs.iter().any(|x| x.variant == v))
            {
                let _ = writeln!(o, "## {name}, {} ({what})\n", mode.label());
                mode_table(&mut o, r, mode, v);
            }
        }
    }
    executors(&mut o, r);
    crash_safe(&mut o, r);
    let _ = writeln!(
        o,
        "## Requests reaching conveyor-slowfs (median per run)\n\n\
         | storage | workload | run | requests | writes (mean size) | reads (mean size) | fsyncs |\n\
         |---|---|---|---|---|---|---|"
    );
    for t in r
        .targets
        .iter()
        .filter(|t| matches!(t.mode, Mode::Page | Mode::Direct))
    {
        let cases = if t.latency_ms == 1.0 {
            t.cases()
        } else {
            vec![Case::DdWrite4k, Case::DdRead4k]
        };
        for c in cases {
            for v in [
                Variant::Plain,
                Variant::Conveyor,
                Variant::Relaxed,
                Variant::Uring,
                Variant::InProcess,
                Variant::EatMyData,
            ] {
                if let Some(q) = t.requests(c, v) {
                    req_row(&mut o, t, c, v, &q);
                }
            }
        }
    }
    o.push('\n');
    if let Some(u) = &r.unmanaged {
        let _ = writeln!(
            o,
            "## Unmanaged descriptors\n\n\
             {} runs of {} calls each on /dev/zero, alternating plain and with the shim loaded \
             (CONVEYOR_PATHS elsewhere): medians, and the median of the paired differences; \
             instructions counted by valgrind's callgrind ({} minus {} calls, so start-up \
             cancels out).\n\n\
             | call | without | with | added (paired) | instructions added |\n|---|---|---|---|---|",
            u.timed_runs, u.timed_calls, u.counted_calls.1, u.counted_calls.0
        );
        for c in &u.costs {
            let _ = writeln!(
                o,
                "| {}() | {:.1} ns | {:.1} ns | {:+.1} ns | {} |",
                c.call,
                c.ns_plain,
                c.ns_shim,
                c.ns_added,
                c.instructions
                    .map(|i| format!("{i:.1}"))
                    .unwrap_or_else(|| "(valgrind missing)".into())
            );
        }
        o.push('\n');
    }
    skipped(&mut o, r);
    let _ = writeln!(
        o,
        "## Targets (DESIGN.md §4)\n\n| target | measured | |\n|---|---|---|"
    );
    for c in checks(r) {
        let _ = writeln!(
            o,
            "| {} | {} | {} |",
            c.what,
            c.measured,
            if c.met { "met" } else { "**missed**" }
        );
    }
    let f = r.failures();
    if !f.is_empty() {
        let _ = writeln!(o, "\n## Failed runs\n");
        for e in f {
            let _ = writeln!(o, "- {}", e.replace('\n', " "));
        }
    }
    o
}
