//! conveyor's engine: write-behind with coalescing, read-ahead and snooping
//! for files on slow storage, behind a small positioned-I/O [`Backend`].
//!
//! The engine knows nothing of `LD_PRELOAD` or libc symbols: the shim calls
//! it for every managed file, and tests drive it directly with
//! [`mock::MemBackend`]. One [`Engine`] holds the shared worker pool and the
//! process-wide memory cap; [`Engine::open`] returns a [`Handle`] (one open
//! file description), and handles of the same [`FileKey`] share one file
//! state, so a read through any of them sees every write made through any.
//!
//! ```
//! use conveyor_engine::{mock::{MemBackend, MockConfig}, Config, Engine, FileKey, Mode};
//! use std::sync::Arc;
//!
//! let engine = Engine::new(Config::default());
//! let storage = Arc::new(MemBackend::new(MockConfig::default()));
//! let h = engine.open(FileKey { dev: 1, ino: 1 }, "demo", storage.clone(), Mode::READ_WRITE);
//! h.write(b"hello").unwrap();
//! let mut buf = [0u8; 5];
//! assert_eq!(h.pread(&mut buf, 0).unwrap(), 5); // sees the pending write
//! h.close().unwrap();
//! assert_eq!(storage.contents(), b"hello");
//! ```
//!
//! # How the engine works
//!
//! **Write-behind.** A write copies the bytes into the file's newest 64 KiB
//! segment and records the extent (offset, length) in the extent index. No heap
//! allocation happens per write: segments come from a free list, and a write
//! adjacent to, or overlapping, the newest not-yet-issued extent extends or
//! overwrites it in place (so a program rewriting one block a thousand times
//! keeps one copy). A flusher starts at once: the first batch goes to storage as
//! soon as there is data, however small; while it is in flight more data
//! accumulates, so the next batch is larger. This makes request size adapt to
//! latency: on 2 ms storage, 10 MiB of 4 KiB writes reaches storage as 11
//! requests of about 1 MiB. A batch is a run of consecutive extents that are
//! adjacent in the file, up to `io_size` (1 MiB), written with one `pwritev`.
//! More batches run in parallel (when `max_inflight` allows more than the
//! default one) only when they are full-sized or a backlog waits, up to an AIMD
//! limit (additive increase while latency stays near the best seen,
//! halving when it climbs or a request fails). A batch that overlaps one in
//! flight waits for it, and append batches run alone, so overlapping data always
//! reaches storage oldest first.
//!
//! **Back-pressure and memory.** Each file starts with a 256 KiB buffer that
//! doubles each time a writer finds it full, up to `write_buffer` (16 MiB);
//! all files share `max_memory` (256 MiB), which also bounds read-ahead. A full
//! buffer makes the writer wait for its own flusher; a file with nothing pending
//! that cannot get memory because other files hold it all writes directly, so no
//! writer waits on another file forever. A write larger than `write_buffer`
//! waits for the file's pending data and then goes to storage directly.
//! Memory outside the cap: at most 64 free segments (4 MiB) and 8 MiB of free
//! read-ahead buffers kept for reuse (fresh pages cost a page fault and a zeroed
//! page each, which on tmpfs made engine reads 0.4-0.7x as fast as plain reads
//! before the buffers were reused), and the index and bookkeeping.
//!
//! **Appends** are written with a real append write (`O_APPEND` `writev`), never a
//! `pwrite` at a guessed end, so records of several processes appending to one
//! log interleave whole. Within the process, pending appended bytes are placed
//! (for reads and sizes) at the end of file as this process knows it.
//!
//! **Read-ahead.** Each handle has a stream: a read at the offset where the last
//! one ended (or inside the window) is sequential and keeps prefetched chunks
//! covering the next `window` bytes; the window starts at 128 KiB and doubles
//! each time a chunk is consumed, up to `read_ahead` (8 MiB), in chunks of up to
//! `io_size`, several in flight. A read elsewhere is random: it goes straight to
//! storage and resets the stream, and `lseek` outside the window drops it. When a
//! batch of writes reaches storage, overlapping chunks are dropped and chunks
//! still loading are marked stale and dropped on arrival (a generation check per
//! chunk). End of file is never cached: a chunk that came back short serves only
//! the bytes it has, and a read beyond them asks storage again (so data another
//! process appends is seen).
//!
//! **Snooping.** Every read overlays the pending bytes of the range on what the
//! cache or storage returned. Reads past the stored end of file see pending data,
//! holes read as zeros, and the returned length is the logical one. For a read
//! that goes to storage, the pending bytes are copied out before the request, so
//! a batch that lands while the read is in flight is never missed.
//!
//! **Sizes, offsets, truncation.** The logical size is the larger of the stored
//! size and the end of the pending data (for `fstat` and `SEEK_END`).
//! `truncate` and `allocate` wait for all pending data and run under the file's
//! lock, so no write slips between. `flush` returns when every byte written
//! before it has been written to storage (not when it was taken from the
//! queue); `sync` flushes, then calls the backend's `fsync`/`fdatasync`, whose
//! result is returned; `close` flushes and returns any error not yet reported.
//!
//! **Executors.** Background requests (batches, prefetches) run on the
//! worker pool, or with `Config::executor = Executor::Uring` the write
//! batches run on io_uring (`ring.rs`): submitted by the thread that starts
//! them, completed by one reaper thread, at most `workers` in flight, the
//! pool taking what the ring cannot, prefetches, and everything where the
//! kernel refuses io_uring. Both
//! follow the same limits: the file's AIMD limit on write requests and its
//! filesystem's AIMD depth over all background requests of its files
//! (`fs_inflight`; a file always keeps one).
//!
//! **Errors.** Short reads and writes are continued, `EINTR` is retried. When a
//! background write fails, the error is sticky on the file: the next `write`,
//! `flush`, `sync` or `close` of each handle returns it with its errno, once per
//! handle (as the kernel's errseq does per open file description); a handle
//! opened after the failure does not see it. Data queued behind the failed batch
//! is dropped, counted in `lost_bytes`, and never written, so nothing later
//! reaches storage as if the failure had not happened. Writes accepted after the
//! error was reported are written normally.
//!
//! **Stats.** Per file and in total: bytes the application wrote and read, bytes
//! to and from storage, storage request sizes (histogram), latency of the
//! application's calls and of storage requests (mean, p50, p99, max), buffer-full
//! waits, read-ahead hits and misses, snoop hits, errors and the last errno, lost
//! bytes, the adaptive buffer limit and AIMD in-flight limit. Snapshots can reset
//! what they read.
//!
//! ## Choices where the design is silent
//!
//! - `pwrite` on an append handle appends, as Linux does.
//! - `ftruncate` on a handle not open for writing returns `EINVAL`, as Linux does.
//! - After a background write error, the data queued behind it is dropped rather
//!   than written (see Errors): the program learns of the failure at its next
//!   write, flush, sync or close, and nothing written after the lost data can
//!   make the file look complete.
//! - `Engine::open` with a key that is already open shares that file's state and
//!   backend; a writing handle replaces a backend that was opened read-only.
//! - Stats rows of closed files are kept for the last 256 files; totals count
//!   everything.
//!
//! # Modules
//!
//! | module | job |
//! |---|---|
//! | `engine.rs` | `Engine`: configuration, shared worker pool, memory budget, the registry that gives all handles of one file (same `FileKey`, i.e. device and inode) one file state |
//! | `handle.rs` | `Handle`: one open file description: offset, access mode, append flag, errors already reported; `dup`'ed descriptors share one |
//! | `file/` | per-file state and its locking (`mod.rs`), the write path with the one storage loop that batched and direct writes share (`write.rs`), the read path with read-ahead and prefetches (`read.rs`) |
//! | `write_buffer.rs` | pending writes in 64 KiB segments, cut into batches in arrival order |
//! | `index.rs` | extent index: where the newest pending copy of each byte lives (last writer wins) |
//! | `read_ahead.rs` | sequential detection and prefetch windows per handle, invalidation |
//! | `age.rs` | how old a file's oldest pending write is (the maximum age) |
//! | `defer.rs` | the timer that writes, after `Config::defer_limit`, small data a file holds for the program's own thread |
//! | `aimd.rs` | how many write requests a file keeps in flight, and how many requests a filesystem does |
//! | `budget.rs` | process-wide memory cap and the segment free list |
//! | `pool.rs` | worker threads, started on demand, shared by all files |
//! | `ring.rs` | the io_uring executor beside the pool: batched submission, one reaper thread, the pool for what it cannot take |
//! | `stats.rs` | counters and histograms, per file and totals, reset-on-read |
//! | `backend.rs` | the `Backend` trait (positioned I/O on one file) and `FileBackend` over `std::fs::File` |
//! | `mock.rs` | `MemBackend`: in-memory storage with latency, short I/O, `EINTR`, faults, `ENOSPC`, serialised writes, and a request log |
//! | `config.rs` | `Config`, the size syntax (`4096`, `64K`, `8M`, `1G`, `1GiB`) and the duration syntax (`500ms`, `5s`, `2m`) |

#![deny(unsafe_code)]
#![warn(missing_docs)]

mod age;
mod aimd;
#[allow(unsafe_code)] // FileBackend calls pwritev, writev, lseek and fallocate.
pub mod backend;
mod budget;
pub mod clock;
pub mod config;
mod defer;
mod engine;
pub mod error;
mod file;
mod handle;
mod index;
pub mod mock;
mod pool;
mod read_ahead;
#[allow(unsafe_code)] // io_uring: pushing entries, reclaiming their boxes.
mod ring;
pub mod stats;
mod write_buffer;

pub use backend::{Backend, FileBackend};
pub use clock::{Clock, SystemClock};
pub use config::{
    parse_duration, parse_log_level, parse_size, Config, DurationError, Executor, ExecutorError,
    LevelError, SizeError,
};
pub use conveyor_journal as journal;
pub use engine::{Attrs, Engine, FileKey, FileReport, Gauges, Hooks, Journaling};
pub use error::{Errno, Result};
pub use handle::{Handle, Mode};
pub use ring::io_uring_available;
pub use stats::{Snapshot, Summary};
