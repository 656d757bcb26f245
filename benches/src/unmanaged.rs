//! What the shim adds to a call on a descriptor it does not manage.
//!
//! Time per call is noisy (a 1-byte read() of /dev/zero costs about 230 ns
//! and varies by more than the few ns the shim adds), so the instructions
//! are counted too: this binary runs a loop of N calls under valgrind's
//! callgrind (deterministic instruction counts), with and without the shim
//! preloaded, at two values of N; the difference of the differences divided
//! by the extra calls is the instructions the shim adds per call, free of
//! start-up costs.

use std::path::Path;
use std::process::Command;

/// Calls measured.
const CALLS: [&str; 2] = ["read", "fstat"];

/// Result for one call.
pub struct Cost {
    /// "read" (1 byte of /dev/zero) or "fstat".
    pub call: &'static str,
    /// Median ns per call without the shim.
    pub ns_plain: f64,
    /// Median ns per call with the shim loaded.
    pub ns_shim: f64,
    /// Median of the paired differences (shim run minus the plain run
    /// made just before it): steadier than the difference of medians
    /// when other work on the machine comes and goes.
    pub ns_added: f64,
    /// Instructions per call added by the shim (None without valgrind).
    pub instructions: Option<f64>,
}

/// Results for every call.
pub struct Unmanaged {
    /// Per call.
    pub costs: Vec<Cost>,
    /// Calls per timed run, and runs per side.
    pub timed_calls: u64,
    /// Runs per side for the timing.
    pub timed_runs: usize,
    /// The two loop lengths run under callgrind.
    pub counted_calls: (u64, u64),
}

/// The child side: `e2e --loop read|fstat N` (or `conveyor-bench --loop
/// ...`) runs N calls on /dev/zero and prints ns per call.
pub fn child(call: &str, n: u64) {
    // SAFETY: plain libc calls on a descriptor this function owns, with
    // buffers that outlive them.
    unsafe {
        let fd = libc::open(c"/dev/zero".as_ptr(), libc::O_RDONLY);
        assert!(fd >= 0, "open /dev/zero");
        let mut b = [0u8; 1];
        let mut st: libc::stat = std::mem::zeroed();
        let t = std::time::Instant::now();
        for _ in 0..n {
            let r = if call == "read" {
                libc::read(fd, b.as_mut_ptr().cast(), 1) as i32
            } else {
                libc::fstat(fd, &mut st)
            };
            assert!(r >= 0, "{call} failed");
        }
        let ns = t.elapsed().as_nanos() as f64 / n.max(1) as f64;
        libc::close(fd);
        println!("{ns}");
    }
}

/// When this process was started as a measurement child (`--loop CALL
/// N`, see [`child`]), runs it and returns true; the binary then exits.
pub fn child_if_asked() -> bool {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) != Some("--loop") {
        return false;
    }
    let n = argv
        .get(3)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    child(argv.get(2).map_or("read", |s| s.as_str()), n);
    true
}

fn loop_cmd(prog: &Path, call: &str, n: u64, shim: Option<(&Path, &Path)>) -> Command {
    let mut c = Command::new(prog);
    c.args(["--loop", call, &n.to_string()]);
    c.env_remove("LD_PRELOAD");
    if let Some((so, paths)) = shim {
        c.env("LD_PRELOAD", so).env("CONVEYOR_PATHS", paths);
    }
    c
}

fn timed(me: &Path, call: &str, n: u64, shim: Option<(&Path, &Path)>) -> Result<f64, String> {
    let out = loop_cmd(me, call, n, shim)
        .output()
        .map_err(|e| e.to_string())?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|_| format!("loop {call}: {}", String::from_utf8_lossy(&out.stderr)))
}

/// Instructions callgrind counted for the whole process.
fn counted(me: &Path, call: &str, n: u64, shim: Option<(&Path, &Path)>) -> Option<f64> {
    let mut c = Command::new("valgrind");
    c.args([
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        "--trace-children=no",
    ]);
    let inner = loop_cmd(me, call, n, shim);
    c.arg(inner.get_program()).args(inner.get_args());
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    let out = c.output().ok()?;
    let err = String::from_utf8_lossy(&out.stderr);
    err.lines()
        .find_map(|l| l.split_once("Collected :"))
        .and_then(|(_, v)| v.trim().parse().ok())
}

/// Measures read() and fstat() on /dev/zero, plain and with `so` loaded
/// (managing `paths`, where /dev/zero is not): `runs` timed runs of each
/// side, alternating, and with `count` the instructions under callgrind.
/// `me` is a binary that handles `--loop` with [`child`].
pub fn measure(
    me: &Path,
    so: &Path,
    paths: &Path,
    runs: usize,
    count: bool,
) -> Result<Unmanaged, String> {
    const N: u64 = 2_000_000;
    const COUNTED: (u64, u64) = (20_000, 120_000);
    let shim = Some((so, paths));
    let mut costs = Vec::new();
    for call in CALLS {
        let (mut p, mut s, mut d) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            let a = timed(me, call, N, None)?;
            let b = timed(me, call, N, shim)?;
            p.push(a);
            s.push(b);
            d.push(b - a);
        }
        let instr = count.then(|| {
            let d_plain = counted(me, call, COUNTED.1, None)? - counted(me, call, COUNTED.0, None)?;
            let d_shim = counted(me, call, COUNTED.1, shim)? - counted(me, call, COUNTED.0, shim)?;
            Some((d_shim - d_plain) / (COUNTED.1 - COUNTED.0) as f64)
        });
        let instr = instr.flatten();
        costs.push(Cost {
            call,
            ns_plain: crate::median(p).unwrap_or(f64::NAN),
            ns_shim: crate::median(s).unwrap_or(f64::NAN),
            ns_added: crate::median(d).unwrap_or(f64::NAN),
            instructions: instr,
        });
    }
    Ok(Unmanaged {
        costs,
        timed_calls: N,
        timed_runs: runs,
        counted_calls: COUNTED,
    })
}

impl Unmanaged {
    /// JSON object for results.json.
    pub fn json(&self) -> String {
        let c: Vec<String> = self
            .costs
            .iter()
            .map(|c| {
                format!(
                    "{{\"call\": \"{}\", \"ns_plain\": {:.2}, \"ns_conveyor\": {:.2}, \"ns_added\": {:.2}, \"instructions_added\": {}}}",
                    c.call,
                    c.ns_plain,
                    c.ns_shim,
                    c.ns_added,
                    c.instructions.map(|i| format!("{i:.2}")).unwrap_or_else(|| "null".into())
                )
            })
            .collect();
        format!(
            "{{\"timed_calls\": {}, \"timed_runs\": {}, \"counted_calls\": [{}, {}], \"calls\": [{}]}}",
            self.timed_calls,
            self.timed_runs,
            self.counted_calls.0,
            self.counted_calls.1,
            c.join(", ")
        )
    }
}
