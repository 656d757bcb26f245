//! results.json (schema `conveyor-e2e/1`): every run, and per target and
//! case the medians and speedups. Written by hand: the document is flat
//! and only needs string escaping.

use crate::results::{Results, TargetResult};
use crate::run::Variant;
use crate::target::Requests;

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn num(x: Option<f64>) -> String {
    match x {
        Some(v) if v.is_finite() => format!("{v:.6}"),
        _ => "null".into(),
    }
}

fn reqs(r: &Option<Requests>) -> String {
    match r {
        None => "null".into(),
        Some(r) => format!(
            "{{\"total\": {}, \"writes\": {}, \"write_bytes\": {}, \"reads\": {}, \"read_bytes\": {}, \"fsyncs\": {}}}",
            r.total, r.writes, r.write_bytes, r.reads, r.read_bytes, r.fsyncs
        ),
    }
}

const VARIANTS: [Variant; 3] = [Variant::Plain, Variant::Conveyor, Variant::EatMyData];

fn target(t: &TargetResult) -> String {
    let runs: Vec<String> = t
        .runs
        .iter()
        .map(|r| {
            format!(
                "        {{\"case\": {}, \"variant\": {}, \"rep\": {}, \"secs\": {}, \"requests\": {}, \"error\": {}}}",
                esc(r.case.name()),
                esc(r.variant.name()),
                r.rep,
                num(r.secs),
                reqs(&r.requests),
                r.error.as_deref().map(esc).unwrap_or_else(|| "null".into())
            )
        })
        .collect();
    let summary: Vec<String> = t
        .cases()
        .into_iter()
        .map(|c| {
            let per: Vec<String> = VARIANTS
                .iter()
                .filter(|v| t.runs.iter().any(|r| r.case == c && r.variant == **v))
                .map(|v| {
                    format!(
                        "{}: {{\"median_secs\": {}, \"speedup\": {}, \"requests\": {}}}",
                        esc(v.name()),
                        num(t.median(c, *v)),
                        num(t.speedup(c, *v)),
                        reqs(&t.requests(c, *v))
                    )
                })
                .collect();
            format!("        {}: {{{}}}", esc(c.name()), per.join(", "))
        })
        .collect();
    let skipped: Vec<String> = t
        .skipped
        .iter()
        .map(|(c, why)| format!("{}: {}", esc(c.name()), esc(why)))
        .collect();
    format!(
        "    {{\"mode\": {}, \"latency_ms\": {}, \"label\": {}, \"reps\": {},\n     \"skipped\": {{{}}},\n     \"summary\": {{\n{}\n     }},\n     \"runs\": [\n{}\n     ]}}",
        esc(t.mode.name()),
        t.latency_ms,
        esc(&t.label),
        t.reps,
        skipped.join(", "),
        summary.join(",\n"),
        runs.join(",\n")
    )
}

/// The document.
pub fn render(r: &Results) -> String {
    let machine: Vec<String> = r
        .machine
        .iter()
        .map(|(k, v)| format!("{}: {}", esc(k), esc(v)))
        .collect();
    let z = &r.sizes;
    let unmanaged = match &r.unmanaged {
        None => "null".into(),
        Some(u) => u.json(),
    };
    format!(
        "{{\n  \"schema\": \"conveyor-e2e/1\",\n  \"command\": {},\n  \"elapsed_secs\": {:.1},\n  \"busy\": {},\n  \"machine\": {{{}}},\n  \
         \"sizes\": {{\"dd_mib\": {}, \"fio_ios\": {}, \"fio_mib\": {}, \"tar_files\": {}, \"sqlite_txns\": {}, \"log_lines\": {}, \
         \"make_units\": {}, \"git_files\": {}, \"postmark_files\": {}, \"postmark_txns\": {}}},\n  \
         \"unmanaged\": {},\n  \"targets\": [\n{}\n  ]\n}}\n",
        esc(&r.command),
        r.elapsed_secs,
        r.busy,
        machine.join(", "),
        z.dd_mib,
        z.fio_ios,
        z.fio_mib,
        z.tar_files,
        z.sqlite_txns,
        z.log_lines,
        z.make_units,
        z.git_files,
        z.postmark_files,
        z.postmark_txns,
        unmanaged,
        r.targets.iter().map(target).collect::<Vec<_>>().join(",\n")
    )
}
