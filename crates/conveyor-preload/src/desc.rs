//! A managed open file description: the engine handle that every fd
//! `dup`'ed from it shares, and what the shim needs to hand it back to the
//! kernel (its path, identity and private backend).

use crate::backend::RawBackend;
use conveyor_engine::{FileKey, Handle};
use std::sync::Arc;

/// One managed open file description.
pub struct Desc {
    /// The engine's view: offset, mode, buffered state.
    pub handle: Handle,
    /// The private descriptors the engine's I/O goes through.
    pub backend: Arc<RawBackend>,
    /// The file (inode) it is open on.
    pub key: FileKey,
}
