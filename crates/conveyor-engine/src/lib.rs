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

#![deny(unsafe_code)]
#![warn(missing_docs)]

mod age;
mod aimd;
#[allow(unsafe_code)] // FileBackend calls pwritev, writev, lseek and fallocate.
pub mod backend;
mod budget;
pub mod clock;
pub mod config;
mod engine;
pub mod error;
mod file;
mod handle;
mod index;
pub mod mock;
mod pool;
mod read_ahead;
pub mod stats;
mod write_buffer;

pub use backend::{Backend, FileBackend};
pub use clock::{Clock, SystemClock};
pub use config::{
    parse_duration, parse_log_level, parse_size, Config, DurationError, LevelError, SizeError,
};
pub use engine::{Attrs, Engine, FileKey, FileReport, Gauges};
pub use error::{Errno, Result};
pub use handle::{Handle, Mode};
pub use stats::{Snapshot, Summary};
