//! The journal of acknowledged writes: write-behind segments in shared
//! memory, with a record of every pending write, so that a process outside
//! the program (the flusher, `conveyor flusher`) can write what the program
//! acknowledged when the program dies before it could.
//!
//! The journal is one `memfd` mapped by the program (the writer) and, once
//! handed over a Unix socket, by the flusher (the reader). It holds a
//! header page and a fixed number of *slots*; a slot is one write-behind
//! segment of the engine: a page of records, then [`SEGMENT`] bytes of
//! data.
//!
//! ```text
//! header (4 KiB) | files (FILES x 1 KiB) | slot 0: records (4 KiB) data (64 KiB) | slot 1 ...
//! ```
//!
//! The files table names each file that has pending data: its device,
//! inode and path when the writer first had data for it. The flusher opens
//! the path and writes only if it is still the same file (device and
//! inode): holding a descriptor instead would keep the file's description
//! open in another process (its `flock` locks, the release where s3fs and
//! rclone commit a file) and cost a `FLUSH` request per file on FUSE.
//!
//! A record describes one extent of pending data: its sequence number in
//! its file, its file offset (for an append, where the writer expects it
//! to land), where its bytes are in the slot, its length and its state
//! (an append, handed to storage, done). The writer keeps the records in
//! step with its segments: a record is published (the slot's count
//! raised, with release ordering) only after its bytes are in place, a
//! record grows (its length raised) only after the added bytes are, and a
//! record is marked done once storage has its bytes (or the writer
//! dropped them after a storage error, which the program was told of).
//! The reader reads only after the writer has died, so it sees a state the
//! writer left between two of these steps: every write the program was
//! told succeeded is in a published record.
//!
//! What the reader does with it is [`Journal::pending`]: every record not
//! done, oldest first per file, with its bytes. Written again in that
//! order, positioned records give what the writer would have written
//! (a record already on storage is written again with the same bytes, and
//! a later record over the same range comes after it). An append record
//! handed to storage may already have landed, in part or whole: the
//! reader compares the file's size with where the record expected to land
//! (see the flusher).
//!
//! Only one thread writes a slot at a time (the engine's file lock), and
//! the reader only reads, so every shared word is an atomic and the data
//! bytes are plain memory that only the owning slot writes.

pub mod wire;

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

/// Bytes of data in a slot: the engine's write-behind segment.
pub const SEGMENT: usize = 64 << 10;
/// Records in a slot: a segment with more extents than this is full.
pub const RECORDS: usize = (META - 16) / std::mem::size_of::<Record>();

const HEADER: usize = 4096;
/// Entries of the files table: more files than this with pending data at
/// once are not protected (the writer says so).
pub const FILES: usize = 4096;
const FILE_ENTRY: usize = 1024;
/// The longest path the files table holds.
pub const MAX_PATH: usize = FILE_ENTRY - std::mem::size_of::<FileHead>();
const FILES_AT: usize = HEADER;
const SLOTS_AT: usize = FILES_AT + FILES * FILE_ENTRY;
const META: usize = 4096;
/// Bytes of one slot in the mapping.
const SLOT: usize = META + SEGMENT;
const MAGIC: u64 = u64::from_le_bytes(*b"CNVYJRN1");
const VERSION: u32 = 2;

/// Record state bits.
const APPEND: u32 = 1;
const ISSUED: u32 = 2;
const DONE: u32 = 4;

#[repr(C)]
struct Header {
    magic: u64,
    version: u32,
    slots: u32,
    slot_size: u32,
    pid: u32,
    // One past the highest slot and files-table entry ever used: the
    // reader looks no further, so it touches no page the writer never did
    // (a read of a `memfd` hole allocates a page). Both only grow.
    slots_used: AtomicU32,
    files_used: AtomicU32,
}

#[repr(C)]
struct FileHead {
    // The writer's number for the file; 0: free. Published last.
    id: AtomicU64,
    dev: AtomicU64,
    ino: AtomicU64,
    len: AtomicU32,
    _pad: u32,
}

/// A file named in the journal: where the flusher writes its records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileName {
    /// Device (`st_dev`) when named.
    pub dev: u64,
    /// Inode (`st_ino`).
    pub ino: u64,
    /// Path (absolute).
    pub path: Vec<u8>,
}

#[repr(C)]
struct Record {
    seq: AtomicU64,
    off: AtomicU64,
    pos: AtomicU32,
    len: AtomicU32,
    flags: AtomicU32,
    _pad: u32,
}

#[repr(C)]
struct Meta {
    // File the slot belongs to (the writer's number for it); 0: free.
    owner: AtomicU64,
    // Records published.
    count: AtomicU32,
    _pad: u32,
    records: [Record; RECORDS],
}

const _: () = assert!(std::mem::size_of::<Meta>() <= META);
const _: () = assert!(std::mem::size_of::<Header>() <= HEADER);

/// A mapped journal.
pub struct Journal {
    base: NonNull<u8>,
    len: usize,
    slots: u32,
    fd: OwnedFd,
    // Free entries of the files table (the writer's; empty in a reader).
    free_files: std::sync::Mutex<Vec<u32>>,
}

// SAFETY: the mapping is shared memory that lives as long as `Journal`;
// every word threads share is an atomic, and the data bytes of a slot are
// written only through the one `Slot` that owns it (`&mut self`).
unsafe impl Send for Journal {}
// SAFETY: as for `Send`.
unsafe impl Sync for Journal {}

impl Journal {
    /// A new journal of `slots` slots in a fresh `memfd` (close-on-exec).
    /// Pages are allocated as slots are first used.
    pub fn create(slots: u32) -> io::Result<Journal> {
        Journal::create_placed(slots, |fd| fd)
    }

    /// As [`Journal::create`], with the `memfd`'s number chosen by `place`
    /// (given the new descriptor, it returns the one to keep, or -1; the
    /// shim moves it to a high number the program never closes).
    pub fn create_placed(slots: u32, place: impl FnOnce(i32) -> i32) -> io::Result<Journal> {
        // SAFETY: the name is a NUL-terminated literal; no other memory.
        let raw = unsafe { libc::memfd_create(c"conveyor-journal".as_ptr(), libc::MFD_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        let raw = place(raw);
        if raw < 0 {
            return Err(io::Error::from_raw_os_error(libc::EMFILE));
        }
        // SAFETY: `raw` is a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let len = SLOTS_AT + slots as usize * SLOT;
        // SAFETY: no memory involved.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), len as libc::off_t) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let j = Journal::map(fd, len, slots, libc::PROT_READ | libc::PROT_WRITE)?;
        *j.free_files.lock().unwrap_or_else(|p| p.into_inner()) = (0..FILES as u32).rev().collect();
        // SAFETY: the header page is ours; nobody else maps the memfd yet.
        unsafe {
            j.base.as_ptr().cast::<Header>().write(Header {
                magic: MAGIC,
                version: VERSION,
                slots,
                slot_size: SLOT as u32,
                pid: std::process::id(),
                slots_used: AtomicU32::new(0),
                files_used: AtomicU32::new(0),
            })
        };
        Ok(j)
    }

    /// Maps a journal another process created and handed over (`fd`),
    /// after checking that it is one and has the size its header says.
    pub fn open(fd: OwnedFd) -> io::Result<Journal> {
        let bad = |what: &str| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("not a conveyor journal: {what}"),
            )
        };
        // SAFETY: `st` is written by fstat before it is read.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: `st` is a valid, writable stat buffer.
        if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let size = st.st_size as usize;
        if size < SLOTS_AT {
            return Err(bad("too small"));
        }
        let slots = ((size - SLOTS_AT) / SLOT) as u32;
        // Read only: the reader never writes (and cannot by mistake).
        let j = Journal::map(fd, size, slots, libc::PROT_READ)?;
        let h = j.header();
        if h.magic != MAGIC || h.version != VERSION || h.slot_size != SLOT as u32 {
            return Err(bad("wrong magic, version or slot size"));
        }
        if h.slots != slots || size != SLOTS_AT + slots as usize * SLOT {
            return Err(bad("size does not match its header"));
        }
        Ok(j)
    }

    fn map(fd: OwnedFd, len: usize, slots: u32, prot: libc::c_int) -> io::Result<Journal> {
        // SAFETY: maps `len` bytes of our own descriptor; the mapping is
        // unmapped only in `drop`.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(p.cast::<u8>()).ok_or_else(io::Error::last_os_error)?;
        Ok(Journal {
            base,
            len,
            slots,
            fd,
            free_files: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// In a forked child: replaces this process's view of the journal
    /// with private zeroed memory, so that nothing the child does (it
    /// inherited its parent's segments, and drops them) reaches the
    /// parent's journal. The descriptor is closed too.
    /// Returns whether the view was replaced (if not, the mapping is
    /// made inaccessible instead: a write the child makes through it then
    /// kills the child, never the parent's data).
    pub fn detach(&self) -> bool {
        // SAFETY: replaces our own mapping, same address and length, with
        // anonymous private memory (not counted against the commit limit:
        // only what the child writes is ever allocated); every pointer
        // into it stays valid.
        let p = unsafe {
            libc::mmap(
                self.base.as_ptr().cast(),
                self.len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        let replaced = p == self.base.as_ptr().cast();
        if !replaced {
            // SAFETY: our own mapping; nothing may write the parent's
            // journal through it any more.
            unsafe { libc::mprotect(self.base.as_ptr().cast(), self.len, libc::PROT_NONE) };
        }
        // SAFETY: the descriptor is not used again in this process.
        unsafe { libc::close(self.fd.as_raw_fd()) };
        replaced
    }

    /// Gives slot `slot`'s memory back to the system (a free slot beyond
    /// those kept warm): the next use of it starts from zeroed pages.
    pub fn release_pages(&self, slot: u32) {
        let at = SLOTS_AT + slot as usize * SLOT;
        // SAFETY: punches a hole in our own memfd, inside the slot, which
        // is free (no record of it is published); no memory of ours is
        // passed.
        unsafe {
            libc::fallocate(
                self.fd.as_raw_fd(),
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                at as libc::off_t,
                SLOT as libc::off_t,
            )
        };
    }

    fn header(&self) -> &Header {
        // SAFETY: the header page is mapped for our lifetime; it is written
        // once by `create` before the journal is shared.
        unsafe { &*self.base.as_ptr().cast::<Header>() }
    }

    /// The `memfd`, to hand to the flusher.
    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// The `memfd`'s number (the shim protects it from the program's
    /// close ranges).
    pub fn fd_raw(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }

    /// Number of slots.
    pub fn slots(&self) -> u32 {
        self.slots
    }

    /// The process that created the journal.
    pub fn pid(&self) -> u32 {
        self.header().pid
    }

    fn meta(&self, slot: u32) -> &Meta {
        assert!(slot < self.slots, "slot {slot} out of {}", self.slots);
        // SAFETY: slot `slot` is inside the mapping (checked above), and
        // `Meta` is made of atomics, valid for any bytes.
        unsafe {
            &*self
                .base
                .as_ptr()
                .add(SLOTS_AT + slot as usize * SLOT)
                .cast::<Meta>()
        }
    }

    fn data_ptr(&self, slot: u32) -> *mut u8 {
        assert!(slot < self.slots, "slot {slot} out of {}", self.slots);
        // SAFETY: inside the mapping (checked above).
        unsafe {
            self.base
                .as_ptr()
                .add(SLOTS_AT + slot as usize * SLOT + META)
        }
    }

    fn file_entry(&self, i: usize) -> (&FileHead, *mut u8) {
        assert!(i < FILES);
        // SAFETY: entry `i` is inside the files table (checked above);
        // `FileHead` is made of atomics, and the path follows it in the
        // entry.
        unsafe {
            let at = self.base.as_ptr().add(FILES_AT + i * FILE_ENTRY);
            (
                &*at.cast::<FileHead>(),
                at.add(std::mem::size_of::<FileHead>()),
            )
        }
    }

    /// Names file `id` (not 0) for the flusher: `dev`, `ino` and `path`.
    /// Returns the entry to free with [`Journal::unname_file`], or `None`
    /// when the path is too long or the table is full (the file's data is
    /// then not protected).
    pub fn name_file(&self, id: u64, dev: u64, ino: u64, path: &[u8]) -> Option<u32> {
        if path.len() > MAX_PATH || id == 0 {
            return None;
        }
        let i = self
            .free_files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop()?;
        self.header().files_used.fetch_max(i + 1, Ordering::AcqRel);
        let (head, bytes) = self.file_entry(i as usize);
        // SAFETY: the entry is free (taken from the free list), so only
        // this call writes it; `path` fits (checked above).
        unsafe { std::ptr::copy_nonoverlapping(path.as_ptr(), bytes, path.len()) };
        head.dev.store(dev, Ordering::Relaxed);
        head.ino.store(ino, Ordering::Relaxed);
        head.len.store(path.len() as u32, Ordering::Relaxed);
        head.id.store(id, Ordering::Release);
        Some(i)
    }

    /// Frees an entry `name_file` returned (its file has no data left).
    pub fn unname_file(&self, entry: u32) {
        self.file_entry(entry as usize)
            .0
            .id
            .store(0, Ordering::Release);
        self.free_files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(entry);
    }

    /// The files named in the journal, by number.
    pub fn files(&self) -> std::collections::HashMap<u64, FileName> {
        let mut out = std::collections::HashMap::new();
        let used = (self.header().files_used.load(Ordering::Acquire) as usize).min(FILES);
        for i in 0..used {
            let (head, bytes) = self.file_entry(i);
            let id = head.id.load(Ordering::Acquire);
            if id == 0 {
                continue;
            }
            let len = (head.len.load(Ordering::Acquire) as usize).min(MAX_PATH);
            // SAFETY: `len` bytes of the entry's path area, which the
            // writer wrote before publishing `id`.
            let path = unsafe { std::slice::from_raw_parts(bytes, len) }.to_vec();
            out.insert(
                id,
                FileName {
                    dev: head.dev.load(Ordering::Acquire),
                    ino: head.ino.load(Ordering::Acquire),
                    path,
                },
            );
        }
        out
    }

    /// Every record not done, with its bytes, ordered by file and then by
    /// sequence number: what the flusher writes when the writer died.
    pub fn pending(&self) -> Vec<Pending> {
        let mut out = Vec::new();
        let used = self
            .header()
            .slots_used
            .load(Ordering::Acquire)
            .min(self.slots);
        for s in 0..used {
            let m = self.meta(s);
            let owner = m.owner.load(Ordering::Acquire);
            if owner == 0 {
                continue;
            }
            let count = (m.count.load(Ordering::Acquire) as usize).min(RECORDS);
            for r in &m.records[..count] {
                let flags = r.flags.load(Ordering::Acquire);
                if flags & DONE != 0 {
                    continue;
                }
                let pos = r.pos.load(Ordering::Acquire) as usize;
                let len = r.len.load(Ordering::Acquire) as usize;
                if pos.checked_add(len).is_none_or(|e| e > SEGMENT) {
                    continue;
                }
                // SAFETY: `pos..pos + len` is inside the slot's data
                // (checked above); the writer is gone or never writes
                // published bytes of a record below its length.
                let data =
                    unsafe { std::slice::from_raw_parts(self.data_ptr(s).add(pos), len) }.to_vec();
                out.push(Pending {
                    file: owner,
                    seq: r.seq.load(Ordering::Acquire),
                    off: r.off.load(Ordering::Acquire),
                    append: flags & APPEND != 0,
                    issued: flags & ISSUED != 0,
                    data,
                });
            }
        }
        out.sort_by_key(|p| (p.file, p.seq));
        out
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        // SAFETY: unmaps the mapping `map` made; nothing refers to it any
        // more (slots hold an `Arc<Journal>`).
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

/// A pending write found in a journal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    /// The writer's number for the file.
    pub file: u64,
    /// Order within the file.
    pub seq: u64,
    /// File offset; for an append, where the writer expected it to land.
    pub off: u64,
    /// Written with a real append.
    pub append: bool,
    /// Handed to storage before the writer died: it may have landed.
    pub issued: bool,
    /// The bytes.
    pub data: Vec<u8>,
}

/// One slot, owned by one file's write-behind segment: its data bytes and
/// the records of the extents in it. Dropping it frees the slot in the
/// journal (the caller gives the number back to its free list).
pub struct Slot {
    journal: Arc<Journal>,
    index: u32,
    len: usize,
}

impl Slot {
    /// Takes slot `index` (free) for file `owner` (not 0).
    pub fn claim(journal: &Arc<Journal>, index: u32, owner: u64) -> Slot {
        journal
            .header()
            .slots_used
            .fetch_max(index + 1, Ordering::AcqRel);
        let m = journal.meta(index);
        m.count.store(0, Ordering::Release);
        m.owner.store(owner, Ordering::Release);
        Slot {
            journal: Arc::clone(journal),
            index,
            len: 0,
        }
    }

    /// The slot's number in its journal.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The data bytes written so far.
    pub fn data(&self) -> &[u8] {
        // SAFETY: `0..len` is inside the slot's data and was written by
        // `push`; only `&mut self` methods write it.
        unsafe { std::slice::from_raw_parts(self.journal.data_ptr(self.index), self.len) }
    }

    /// Appends `bytes` to the data (as many as fit; returns how many).
    pub fn push(&mut self, bytes: &[u8]) -> usize {
        let n = bytes.len().min(SEGMENT - self.len);
        // SAFETY: `len..len + n` is inside the slot's data, which only
        // this slot writes, and `bytes` is not in it (it is unwritten).
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.journal.data_ptr(self.index).add(self.len),
                n,
            )
        };
        self.len += n;
        n
    }

    /// Overwrites data bytes at `pos` (all inside what was pushed).
    pub fn overwrite(&mut self, pos: usize, bytes: &[u8]) {
        assert!(pos + bytes.len() <= self.len, "overwrite past the data");
        // SAFETY: inside the written data (checked above), which only this
        // slot writes; `bytes` comes from the caller, not from the slot
        // (a `&mut self` borrow excludes a slice of it).
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.journal.data_ptr(self.index).add(pos),
                bytes.len(),
            )
        };
    }

    /// Publishes record `i` (the next one: `i` records are published) for
    /// an extent whose bytes are in place.
    pub fn record(&self, i: usize, seq: u64, off: u64, pos: usize, len: usize, append: bool) {
        let m = self.journal.meta(self.index);
        let r = &m.records[i];
        r.seq.store(seq, Ordering::Relaxed);
        r.off.store(off, Ordering::Relaxed);
        r.pos.store(pos as u32, Ordering::Relaxed);
        r.len.store(len as u32, Ordering::Relaxed);
        r.flags
            .store(if append { APPEND } else { 0 }, Ordering::Relaxed);
        m.count.store(i as u32 + 1, Ordering::Release);
    }

    /// Record `i` now covers `len` bytes (its added bytes are in place).
    pub fn grow(&self, i: usize, len: usize) {
        self.journal.meta(self.index).records[i]
            .len
            .store(len as u32, Ordering::Release);
    }

    /// Record `i` was handed to storage.
    pub fn issued(&self, i: usize) {
        self.journal.meta(self.index).records[i]
            .flags
            .fetch_or(ISSUED, Ordering::Release);
    }

    /// Record `i` is on storage (or was dropped after an error the program
    /// was told of): never to be written again.
    pub fn done(&self, i: usize) {
        self.journal.meta(self.index).records[i]
            .flags
            .fetch_or(DONE, Ordering::Release);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let m = self.journal.meta(self.index);
        m.owner.store(0, Ordering::Release);
        m.count.store(0, Ordering::Release);
    }
}

/// Where [`replay`] writes one file's pending records.
pub trait Target {
    /// Writes all of `data` at `off`.
    fn write_at(&mut self, off: u64, data: &[u8]) -> io::Result<()>;
    /// Appends all of `data` with a real append.
    fn append(&mut self, data: &[u8]) -> io::Result<()>;
    /// The file's size now.
    fn size(&mut self) -> io::Result<u64>;
    /// Reads up to `buf.len()` bytes at `off`; how many (0 at the end).
    fn read_at(&mut self, off: u64, buf: &mut [u8]) -> io::Result<usize>;
}

/// An in-memory file (the tests' storage).
impl Target for Vec<u8> {
    fn write_at(&mut self, off: u64, data: &[u8]) -> io::Result<()> {
        let end = off as usize + data.len();
        if self.len() < end {
            self.resize(end, 0);
        }
        self[off as usize..end].copy_from_slice(data);
        Ok(())
    }
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.extend_from_slice(data);
        Ok(())
    }
    fn size(&mut self) -> io::Result<u64> {
        Ok(self.len() as u64)
    }
    fn read_at(&mut self, off: u64, buf: &mut [u8]) -> io::Result<usize> {
        let at = (off as usize).min(self.len());
        let n = buf.len().min(self.len() - at);
        buf[..n].copy_from_slice(&self[at..at + n]);
        Ok(n)
    }
}

/// Reads exactly `len` bytes at `off`, or `None` if the file ends first.
fn read_exact(target: &mut impl Target, off: u64, len: usize) -> io::Result<Option<Vec<u8>>> {
    let mut buf = vec![0u8; len];
    let mut got = 0;
    while got < len {
        match target.read_at(off + got as u64, &mut buf[got..])? {
            0 => return Ok(None),
            n => got += n,
        }
    }
    Ok(Some(buf))
}

/// How much of append record `r`, handed to storage before the writer
/// died, is on storage: the bytes found where it was expected to land (in
/// whole, or a prefix ending at the file's end); else, at the file's end
/// (it landed after something the writer did not know of, such as one of
/// its own direct writes or another process's append); else none.
fn landed(r: &Pending, target: &mut impl Target) -> io::Result<usize> {
    let len = r.data.len();
    let size = target.size()?;
    if size >= r.off {
        let k = ((size - r.off) as usize).min(len);
        if read_exact(target, r.off, k)?.is_some_and(|b| b == r.data[..k])
            && (k == len || size == r.off + k as u64)
        {
            return Ok(k);
        }
    }
    // The largest prefix of the record that ends the file.
    let n = len.min(size as usize);
    let Some(tail) = read_exact(target, size - n as u64, n)? else {
        return Ok(0);
    };
    Ok((1..=n)
        .rev()
        .find(|&k| tail[n - k..] == r.data[..k])
        .unwrap_or(0))
}

/// Writes one file's pending records (oldest first, as
/// [`Journal::pending`] orders them) to `target`; returns the bytes
/// written.
///
/// A positioned record is written whole: written again, a record that
/// had reached storage changes nothing, and a later record over the same
/// bytes comes after it. An append record that was handed to storage may
/// have landed, in part or whole, before the writer died: the file's
/// bytes where it expected to land say how much (exact while the writer
/// was the file's only appender), else its bytes at the file's end, and
/// only the rest is appended. An append never handed to storage is
/// appended whole.
pub fn replay(records: &[Pending], target: &mut impl Target) -> io::Result<u64> {
    // Positioned records that continue each other go out as one write of
    // up to this much (in order, so nothing overtakes anything).
    const RUN: usize = 1 << 20;
    let mut run: Vec<u8> = Vec::new();
    let mut run_at = 0u64;
    let mut wrote = 0u64;
    for r in records {
        if !r.append {
            let continues = !run.is_empty() && run_at + run.len() as u64 == r.off;
            if !continues || run.len() + r.data.len() > RUN {
                if !run.is_empty() {
                    target.write_at(run_at, &run)?;
                    run.clear();
                }
                run_at = r.off;
            }
            run.extend_from_slice(&r.data);
            wrote += r.data.len() as u64;
            continue;
        }
        if !run.is_empty() {
            target.write_at(run_at, &run)?;
            run.clear();
        }
        let data = if r.issued {
            let rest = &r.data[landed(r, target)?..];
            if !rest.is_empty() {
                target.append(rest)?;
            }
            rest
        } else {
            target.append(&r.data)?;
            &r.data[..]
        };
        wrote += data.len() as u64;
    }
    if !run.is_empty() {
        target.write_at(run_at, &run)?;
    }
    Ok(wrote)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(seq: u64, off: u64, append: bool, issued: bool, data: &[u8]) -> Pending {
        Pending {
            file: 1,
            seq,
            off,
            append,
            issued,
            data: data.to_vec(),
        }
    }

    /// An append handed to storage lands once, whether none, part or all
    /// of it had landed; positioned records are written again in order.
    /// Records that continue each other are written together, in order:
    /// a later record over the same bytes still wins.
    #[test]
    fn replay_joins_runs_and_keeps_order() {
        let recs = [
            rec(0, 0, false, false, b"aa"),
            rec(1, 2, false, false, b"bb"),
            rec(2, 1, false, false, b"X"),
            rec(3, 3, false, false, b"cc"),
        ];
        let mut file = Vec::new();
        assert_eq!(replay(&recs, &mut file).unwrap(), 7);
        assert_eq!(file, b"aXbcc");
    }

    /// An append in flight when the writer died, expected at an end that
    /// another write (one of the writer's own direct writes) moved before
    /// it: the file's size says it landed, its bytes say it did not. Once
    /// it had landed after that write, it is not written twice.
    #[test]
    fn an_append_behind_a_write_it_did_not_know_of_lands_once() {
        let recs = [rec(0, 4, true, true, b"line\n")];
        let mut file = b"0123DIRECT WRITE".to_vec();
        replay(&recs, &mut file).unwrap();
        assert_eq!(file, b"0123DIRECT WRITEline\n");
        let mut file = b"0123DIRECT WRITEline\n".to_vec();
        replay(&recs, &mut file).unwrap();
        assert_eq!(file, b"0123DIRECT WRITEline\n");
        let mut file = b"0123DIRECT WRITElin".to_vec();
        replay(&recs, &mut file).unwrap();
        assert_eq!(file, b"0123DIRECT WRITEline\n");
    }

    #[test]
    fn replay_lands_each_append_once() {
        let recs = [
            rec(0, 2, false, true, b"XY"),
            rec(1, 4, true, true, b"abcd"),
            rec(2, 8, true, false, b"ef"),
            rec(3, 0, false, false, b"Z"),
        ];
        for landed in 0..=4 {
            let mut file = b"0123".to_vec();
            file.extend_from_slice(&b"abcd"[..landed]);
            replay(&recs, &mut file).unwrap();
            assert_eq!(file, b"Z1XYabcdef", "with {landed} bytes landed");
        }
    }

    fn reopen(j: &Journal) -> Journal {
        Journal::open(j.fd().try_clone().unwrap()).unwrap()
    }

    /// What a second mapping (the flusher's) finds: the records not done,
    /// by file and sequence, with the bytes as last written.
    #[test]
    fn the_reader_finds_what_is_not_done() {
        let j = Arc::new(Journal::create(4).unwrap());
        let mut a = Slot::claim(&j, 2, 7);
        let mut b = Slot::claim(&j, 0, 3);
        a.push(b"hello");
        a.record(0, 10, 100, 0, 5, false);
        a.push(b" world");
        a.grow(0, 11);
        a.push(b"tail");
        a.record(1, 11, 0, 11, 4, true);
        a.issued(1);
        b.push(b"xyz");
        b.record(0, 1, 5, 0, 3, false);
        b.done(0);
        b.push(b"q");
        b.record(1, 2, 8, 3, 1, false);
        b.overwrite(0, b"X");
        let r = reopen(&j);
        assert_eq!(r.pid(), std::process::id());
        let p = r.pending();
        let seen: Vec<_> = p
            .iter()
            .map(|p| (p.file, p.seq, p.off, p.append, p.issued, p.data.as_slice()))
            .collect();
        assert_eq!(
            seen,
            [
                (3, 2, 8, false, false, &b"q"[..]),
                (7, 10, 100, false, false, &b"hello world"[..]),
                (7, 11, 0, true, true, &b"tail"[..]),
            ]
        );
        drop(a);
        assert!(
            r.pending().iter().all(|p| p.file == 3),
            "a freed slot is still read"
        );
    }

    /// Bytes pushed but not yet in a record are not pending: the write
    /// that brought them had not returned.
    #[test]
    fn files_are_named_until_unnamed() {
        let j = Journal::create(1).unwrap();
        let a = j.name_file(5, 1, 2, b"/mnt/a").unwrap();
        let b = j.name_file(6, 1, 3, b"/mnt/b").unwrap();
        assert!(j.name_file(7, 1, 4, &[b'x'; MAX_PATH + 1]).is_none());
        let r = reopen(&j);
        assert_eq!(r.files().len(), 2);
        assert_eq!(
            r.files()[&5],
            FileName {
                dev: 1,
                ino: 2,
                path: b"/mnt/a".to_vec()
            }
        );
        j.unname_file(a);
        assert_eq!(r.files().keys().copied().collect::<Vec<_>>(), [6]);
        j.unname_file(b);
        for id in 1..=FILES as u64 {
            assert!(j.name_file(id, 0, 0, b"/f").is_some(), "entry {id}");
        }
        assert!(
            j.name_file(1, 0, 0, b"/f").is_none(),
            "more entries than the table"
        );
    }

    fn shmem_resident_kib() -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("RssShmem:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// The reader looks only where the writer wrote: a page of the journal
    /// it reads is mapped in (a scan of the whole files table and every
    /// slot, for a process that wrote one small file, mapped 4 MiB and cost
    /// its flusher over a millisecond at every process's end).
    #[test]
    fn the_reader_touches_only_what_the_writer_used() {
        let j = Arc::new(Journal::create(4096).unwrap());
        let mut s = Slot::claim(&j, 0, 1);
        s.push(b"hello");
        s.record(0, 0, 0, 0, 5, false);
        j.name_file(1, 2, 3, b"/f").unwrap();
        let r = reopen(&j);
        let before = shmem_resident_kib();
        assert_eq!(r.pending().len(), 1);
        assert_eq!(r.files().len(), 1);
        let mapped = shmem_resident_kib() - before;
        assert!(
            mapped < 256,
            "the reader mapped {mapped} KiB of the journal"
        );
    }

    #[test]
    fn unpublished_bytes_are_not_pending() {
        let j = Arc::new(Journal::create(1).unwrap());
        let mut s = Slot::claim(&j, 0, 1);
        s.push(b"abc");
        assert!(reopen(&j).pending().is_empty());
        s.record(0, 0, 0, 0, 2, false);
        s.push(b"def");
        assert_eq!(reopen(&j).pending()[0].data, b"ab");
    }

    #[test]
    fn a_file_that_is_not_a_journal_is_refused() {
        let path = std::env::temp_dir().join(format!("not-a-journal-{}", std::process::id()));
        std::fs::write(&path, vec![7u8; 3 * SLOT]).unwrap();
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        let e = Journal::open(OwnedFd::from(f))
            .err()
            .expect("an executable taken for a journal");
        assert!(e.to_string().contains("not a conveyor journal"), "{e}");
    }

    /// A forked child's view is private: what it does to its inherited
    /// slots leaves the parent's journal as it was.
    #[test]
    fn a_detached_view_leaves_the_journal_alone() {
        let j = Arc::new(Journal::create(1).unwrap());
        let mut s = Slot::claim(&j, 0, 9);
        s.push(b"data");
        s.record(0, 0, 0, 0, 4, false);
        let other = reopen(&j);
        j.detach();
        drop(s);
        assert_eq!(other.pending().len(), 1, "the detached view freed the slot");
    }
}
