//! Request counters: how many requests of each kind reached the filesystem
//! and how large the reads and writes were. The evidence for "a 64 MiB
//! write of 4 KiB blocks reaches storage as about 64 requests".

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Request kinds counted.
pub const OPS: &[&str] = &[
    "lookup",
    "getattr",
    "setattr",
    "readlink",
    "mknod",
    "mkdir",
    "unlink",
    "rmdir",
    "symlink",
    "rename",
    "link",
    "open",
    "read",
    "write",
    "flush",
    "release",
    "fsync",
    "opendir",
    "readdir",
    "releasedir",
    "statfs",
    "create",
    "fallocate",
    "access",
];

const BUCKETS: usize = 25; // 1 B .. 16 MiB, powers of two

/// All counters.
pub struct Stats {
    ops: Vec<AtomicU64>,
    read_sizes: Vec<AtomicU64>,
    write_sizes: Vec<AtomicU64>,
    read_bytes: AtomicU64,
    write_bytes: AtomicU64,
    errors: AtomicU64,
}

fn bucket(n: usize) -> usize {
    (usize::BITS - n.max(1).leading_zeros() - 1).min(BUCKETS as u32 - 1) as usize
}

impl Stats {
    /// All zero.
    pub fn new() -> Stats {
        let z = |n| (0..n).map(|_| AtomicU64::new(0)).collect();
        Stats {
            ops: z(OPS.len()),
            read_sizes: z(BUCKETS),
            write_sizes: z(BUCKETS),
            read_bytes: AtomicU64::new(0),
            write_bytes: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        }
    }

    /// Counts one request of kind `op`.
    pub fn op(&self, op: &str) {
        if let Some(i) = OPS.iter().position(|o| *o == op) {
            self.ops[i].fetch_add(1, Relaxed);
        }
    }

    /// Counts a read of `n` bytes.
    pub fn read(&self, n: usize) {
        self.read_sizes[bucket(n)].fetch_add(1, Relaxed);
        self.read_bytes.fetch_add(n as u64, Relaxed);
    }

    /// Counts a write of `n` bytes.
    pub fn write(&self, n: usize) {
        self.write_sizes[bucket(n)].fetch_add(1, Relaxed);
        self.write_bytes.fetch_add(n as u64, Relaxed);
    }

    /// Counts an injected or real error.
    pub fn error(&self) {
        self.errors.fetch_add(1, Relaxed);
    }

    /// `key value` lines: `op.NAME N`, `read_bytes N`, `write_bytes N`,
    /// `read_size.2^K N`, `write_size.2^K N`, `errors N`.
    pub fn report(&self) -> String {
        let mut s = String::new();
        for (i, o) in OPS.iter().enumerate() {
            s.push_str(&format!("op.{o} {}\n", self.ops[i].load(Relaxed)));
        }
        s.push_str(&format!("read_bytes {}\n", self.read_bytes.load(Relaxed)));
        s.push_str(&format!("write_bytes {}\n", self.write_bytes.load(Relaxed)));
        s.push_str(&format!("errors {}\n", self.errors.load(Relaxed)));
        for (name, v) in [
            ("read_size", &self.read_sizes),
            ("write_size", &self.write_sizes),
        ] {
            for (k, c) in v.iter().enumerate() {
                let c = c.load(Relaxed);
                if c > 0 {
                    s.push_str(&format!("{name}.{} {c}\n", 1u64 << k));
                }
            }
        }
        s
    }
}
