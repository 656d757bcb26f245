//! The exported symbols. Each one decides "managed or not" with one table
//! lookup (or, for opens and process calls, forwards around the real call)
//! and otherwise calls the real function; all logic lives in `ops`.

mod execl;
mod fd;
mod meta;
mod open;
mod printf;
mod process;
mod rw;
mod signals;
mod stat;
mod sync;
mod transfer;
