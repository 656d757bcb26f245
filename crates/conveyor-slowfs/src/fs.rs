//! The passthrough filesystem: every request sleeps its latency, is
//! counted, may get an injected error, and is then carried out on the
//! backing directory. Requests run concurrently (one per session thread).

use crate::faults::Faults;
use crate::nodes::{Ident, Nodes, ROOT};
use crate::stats::Stats;
use fuser::{
    AccessFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow,
    WriteFlags,
};
use std::collections::HashMap;
use std::ffi::{CString, OsStr};
use std::fs::{File, Metadata, OpenOptions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long the kernel may keep names and attributes by default.
pub const TTL: Duration = Duration::from_secs(1);

/// Latency per request class.
#[derive(Clone, Copy, Debug, Default)]
pub struct Latency {
    /// Reads.
    pub read: Duration,
    /// Writes.
    pub write: Duration,
    /// fsync.
    pub fsync: Duration,
    /// Everything else (lookup, getattr, open, create, flush, readdir, ...).
    pub meta: Duration,
}

/// The filesystem.
pub struct SlowFs {
    root: PathBuf,
    latency: Latency,
    // How long the kernel may keep the names and attributes it is given.
    ttl: Duration,
    direct_io: bool,
    stats: Arc<Stats>,
    faults: Faults,
    // Node ids the kernel may hold -> the backing files they stand for.
    nodes: Mutex<Nodes>,
    files: Mutex<HashMap<u64, Arc<File>>>,
    next_fh: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn errno(e: std::io::Error) -> Errno {
    Errno::from_i32(e.raw_os_error().unwrap_or(libc::EIO))
}

fn kind(m: &Metadata) -> FileType {
    let t = m.file_type();
    use std::os::unix::fs::FileTypeExt;
    if t.is_dir() {
        FileType::Directory
    } else if t.is_symlink() {
        FileType::Symlink
    } else if t.is_fifo() {
        FileType::NamedPipe
    } else if t.is_socket() {
        FileType::Socket
    } else if t.is_char_device() {
        FileType::CharDevice
    } else if t.is_block_device() {
        FileType::BlockDevice
    } else {
        FileType::RegularFile
    }
}

fn time(secs: i64, nsec: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs as u64, nsec as u32)
    } else {
        UNIX_EPOCH
    }
}

/// The attributes of node `ino`, the file `m` describes.
fn attr(ino: u64, m: &Metadata) -> FileAttr {
    FileAttr {
        ino: INodeNo(ino),
        size: m.size(),
        blocks: m.blocks(),
        atime: time(m.atime(), m.atime_nsec()),
        mtime: time(m.mtime(), m.mtime_nsec()),
        ctime: time(m.ctime(), m.ctime_nsec()),
        crtime: time(m.ctime(), m.ctime_nsec()),
        kind: kind(m),
        perm: (m.mode() & 0o7777) as u16,
        nlink: m.nlink() as u32,
        uid: m.uid(),
        gid: m.gid(),
        rdev: m.rdev() as u32,
        blksize: m.blksize() as u32,
        flags: 0,
    }
}

fn cstr(p: &Path) -> Result<CString, Errno> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)
}

fn check(r: i32) -> Result<(), Errno> {
    if r < 0 {
        Err(errno(std::io::Error::last_os_error()))
    } else {
        Ok(())
    }
}

impl SlowFs {
    /// A filesystem over `root`.
    pub fn new(
        root: PathBuf,
        latency: Latency,
        direct_io: bool,
        stats: Arc<Stats>,
        faults: Faults,
    ) -> SlowFs {
        SlowFs {
            nodes: Mutex::new(Nodes::new(root.clone())),
            root,
            latency,
            ttl: TTL,
            direct_io,
            stats,
            faults,
            files: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
        }
    }

    /// Lets the kernel keep names and attributes for `ttl` (tests that
    /// count requests take a long one, so no count depends on how long a
    /// program took).
    pub fn with_ttl(mut self, ttl: Duration) -> SlowFs {
        self.ttl = ttl;
        self
    }

    fn wait(&self, op: &str, d: Duration) {
        self.stats.op(op);
        if !d.is_zero() {
            std::thread::sleep(d);
        }
    }

    fn meta(&self, op: &str) {
        self.wait(op, self.latency.meta);
    }

    /// Node `ino`'s backing path and what is there now. A node whose path
    /// holds another file now (replaced behind the mount's back, or renamed
    /// over) answers ESTALE rather than act on that file: the kernel's path
    /// walks then look the name up again (they retry once on ESTALE) and
    /// get the new file's node.
    fn live(&self, ino: INodeNo) -> Result<(PathBuf, Metadata), Errno> {
        let (path, ident) = lock(&self.nodes).get(ino.0).ok_or(Errno::ENOENT)?;
        let m = std::fs::symlink_metadata(&path).map_err(errno)?;
        match ident {
            Some(i) if i != Ident::of(&m) => Err(Errno::ESTALE),
            _ => Ok((path, m)),
        }
    }

    fn path(&self, ino: INodeNo) -> Result<PathBuf, Errno> {
        self.live(ino).map(|(p, _)| p)
    }

    fn child(&self, parent: INodeNo, name: &OsStr) -> Result<PathBuf, Errno> {
        Ok(self.path(parent)?.join(name))
    }

    /// The attributes of the file `m` describes, found at `path`, for a
    /// reply that hands its node to the kernel (lookup, create, ...).
    fn new_entry(&self, path: &Path, m: &Metadata) -> FileAttr {
        let ident = Ident::of(m);
        let at = |p: &Path| std::fs::symlink_metadata(p).is_ok_and(|m| Ident::of(&m) == ident);
        attr(lock(&self.nodes).lookup(path, ident, at), m)
    }

    fn file(&self, fh: FileHandle) -> Result<Arc<File>, Errno> {
        lock(&self.files).get(&fh.0).cloned().ok_or(Errno::EBADF)
    }

    fn add_file(&self, f: File) -> FileHandle {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        lock(&self.files).insert(fh, Arc::new(f));
        FileHandle(fh)
    }

    fn fopen(&self) -> FopenFlags {
        if self.direct_io {
            FopenFlags::FOPEN_DIRECT_IO
        } else {
            FopenFlags::empty()
        }
    }

    fn entry(&self, path: &Path, reply: ReplyEntry) {
        // Generation 0 throughout: an id stands for one file for as long
        // as the kernel holds it, so (id, 0) never names two files at once.
        match std::fs::symlink_metadata(path) {
            Ok(m) => reply.entry(&self.ttl, &self.new_entry(path, &m), Generation(0)),
            Err(e) => reply.error(errno(e)),
        }
    }
}

fn options(flags: i32) -> OpenOptions {
    let mut o = OpenOptions::new();
    match flags & libc::O_ACCMODE {
        libc::O_RDONLY => o.read(true),
        libc::O_WRONLY => o.write(true),
        _ => o.read(true).write(true),
    };
    // O_APPEND is the kernel's business: it sends writes at the end offset.
    o.custom_flags(flags & (libc::O_TRUNC | libc::O_NOFOLLOW));
    o
}

impl Filesystem for SlowFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // 1 MiB requests, as network filesystems negotiate.
        let _ = config.set_max_write(1 << 20);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        self.meta("lookup");
        match self.child(parent, name) {
            Ok(p) => self.entry(&p, reply),
            Err(e) => reply.error(e),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        // No reply, latency or counter: the kernel sends this when it
        // evicts an inode, not for a program's request.
        lock(&self.nodes).forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        self.meta("getattr");
        let r = match fh.map(|h| self.file(h)) {
            Some(Ok(f)) => f.metadata().map_err(errno),
            _ => self.live(ino).map(|(_, m)| m),
        };
        match r {
            Ok(m) => reply.attr(&self.ttl, &attr(ino.0, &m)),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        self.meta("setattr");
        let r = (|| -> Result<FileAttr, Errno> {
            let path = self.path(ino)?;
            if let Some(m) = mode {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(m))
                    .map_err(errno)?;
            }
            if uid.is_some() || gid.is_some() {
                std::os::unix::fs::lchown(&path, uid, gid).map_err(errno)?;
            }
            if let Some(len) = size {
                match fh.map(|h| self.file(h)) {
                    Some(Ok(f)) => f.set_len(len).map_err(errno)?,
                    _ => OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .and_then(|f| f.set_len(len))
                        .map_err(errno)?,
                }
            }
            if atime.is_some() || mtime.is_some() {
                let ts = |t: Option<TimeOrNow>| match t {
                    None => libc::timespec {
                        tv_sec: 0,
                        tv_nsec: libc::UTIME_OMIT,
                    },
                    Some(TimeOrNow::Now) => libc::timespec {
                        tv_sec: 0,
                        tv_nsec: libc::UTIME_NOW,
                    },
                    Some(TimeOrNow::SpecificTime(t)) => {
                        let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
                        libc::timespec {
                            tv_sec: d.as_secs() as i64,
                            tv_nsec: d.subsec_nanos() as i64,
                        }
                    }
                };
                let times = [ts(atime), ts(mtime)];
                let c = cstr(&path)?;
                // SAFETY: `c` is NUL-terminated and `times` holds two timespecs.
                check(unsafe {
                    libc::utimensat(
                        libc::AT_FDCWD,
                        c.as_ptr(),
                        times.as_ptr(),
                        libc::AT_SYMLINK_NOFOLLOW,
                    )
                })?;
            }
            let m = std::fs::symlink_metadata(&path).map_err(errno)?;
            Ok(attr(ino.0, &m))
        })();
        match r {
            Ok(a) => reply.attr(&self.ttl, &a),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        self.meta("readlink");
        match self
            .path(ino)
            .and_then(|p| std::fs::read_link(p).map_err(errno))
        {
            Ok(t) => reply.data(t.as_os_str().as_bytes()),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        self.meta("mknod");
        let r = self.child(parent, name).and_then(|p| {
            let c = cstr(&p)?;
            // SAFETY: `c` is NUL-terminated.
            check(unsafe { libc::mknod(c.as_ptr(), mode & !umask, u64::from(rdev)) })?;
            Ok(p)
        });
        match r {
            Ok(p) => self.entry(&p, reply),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        self.meta("mkdir");
        let r = self.child(parent, name).and_then(|p| {
            std::fs::DirBuilder::new()
                .mode(mode & !umask)
                .create(&p)
                .map_err(errno)?;
            Ok(p)
        });
        match r {
            Ok(p) => self.entry(&p, reply),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.meta("unlink");
        match self
            .child(parent, name)
            .and_then(|p| std::fs::remove_file(p).map_err(errno))
        {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.meta("rmdir");
        match self
            .child(parent, name)
            .and_then(|p| std::fs::remove_dir(p).map_err(errno))
        {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn symlink(
        &self,
        _req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        self.meta("symlink");
        let r = self.child(parent, link_name).and_then(|p| {
            std::os::unix::fs::symlink(target, &p).map_err(errno)?;
            Ok(p)
        });
        match r {
            Ok(p) => self.entry(&p, reply),
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        self.meta("rename");
        let r = (|| -> Result<(), Errno> {
            let from = self.child(parent, name)?;
            let to = self.child(newparent, newname)?;
            let (a, b) = (cstr(&from)?, cstr(&to)?);
            // SAFETY: both paths are NUL-terminated.
            check(unsafe {
                libc::renameat2(
                    libc::AT_FDCWD,
                    a.as_ptr(),
                    libc::AT_FDCWD,
                    b.as_ptr(),
                    flags.bits(),
                )
            })?;
            lock(&self.nodes).renamed(&from, &to);
            Ok(())
        })();
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        self.meta("link");
        let r = (|| -> Result<PathBuf, Errno> {
            let from = self.path(ino)?;
            let to = self.child(newparent, newname)?;
            std::fs::hard_link(&from, &to).map_err(errno)?;
            Ok(to)
        })();
        match r {
            Ok(p) => self.entry(&p, reply),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        self.meta("open");
        match self
            .path(ino)
            .and_then(|p| options(flags.0).open(p).map_err(errno))
        {
            Ok(f) => reply.opened(self.add_file(f), self.fopen()),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        self.wait("read", self.latency.read);
        if self.faults.eio() {
            self.stats.error();
            return reply.error(Errno::EIO);
        }
        let r = self.file(fh).and_then(|f| {
            let mut buf = vec![0u8; size as usize];
            let mut n = 0;
            while n < buf.len() {
                match f.read_at(&mut buf[n..], offset + n as u64) {
                    Ok(0) => break,
                    Ok(k) => n += k,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(errno(e)),
                }
            }
            buf.truncate(n);
            Ok(buf)
        });
        match r {
            Ok(b) => {
                self.stats.read(b.len());
                reply.data(&b)
            }
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        self.wait("write", self.latency.write);
        if self.faults.eio() {
            self.stats.error();
            return reply.error(Errno::EIO);
        }
        let n = match self.faults.allow_write(data.len()) {
            Ok(n) => n,
            Err(e) => {
                self.stats.error();
                return reply.error(Errno::from_i32(e));
            }
        };
        match self
            .file(fh)
            .and_then(|f| f.write_all_at(&data[..n], offset).map_err(errno))
        {
            Ok(()) => {
                self.stats.write(n);
                reply.written(n as u32)
            }
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        self.meta("flush");
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.stats.op("release");
        lock(&self.files).remove(&fh.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.wait("fsync", self.latency.fsync);
        let r = self.file(fh).and_then(|f| {
            if datasync {
                f.sync_data()
            } else {
                f.sync_all()
            }
            .map_err(errno)
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        self.meta("opendir");
        match self.path(ino) {
            Ok(_) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        self.meta("readdir");
        let r = (|| -> Result<Vec<(u64, FileType, std::ffi::OsString)>, Errno> {
            let dir = self.path(ino)?;
            let mut out = vec![
                (ino.0, FileType::Directory, ".".into()),
                (ROOT, FileType::Directory, "..".into()),
            ];
            let mut names: Vec<_> = std::fs::read_dir(&dir).map_err(errno)?.flatten().collect();
            names.sort_by_key(|e| e.file_name());
            for e in names {
                if let Ok(m) = e.metadata() {
                    let id = lock(&self.nodes).listed(&Ident::of(&m));
                    out.push((id, kind(&m), e.file_name()));
                }
            }
            Ok(out)
        })();
        match r {
            Ok(entries) => {
                for (i, (ino, k, name)) in entries.into_iter().enumerate().skip(offset as usize) {
                    if reply.add(INodeNo(ino), (i + 1) as u64, k, &name) {
                        break;
                    }
                }
                reply.ok()
            }
            Err(e) => reply.error(e),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        self.meta("statfs");
        let r = cstr(&self.root).and_then(|c| {
            // SAFETY: a plain C struct the call fills.
            let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
            // SAFETY: `c` is NUL-terminated and `s` writable.
            check(unsafe { libc::statvfs(c.as_ptr(), &mut s) })?;
            Ok(s)
        });
        match r {
            Ok(s) => reply.statfs(
                s.f_blocks,
                s.f_bfree,
                s.f_bavail,
                s.f_files,
                s.f_ffree,
                s.f_bsize as u32,
                s.f_namemax as u32,
                s.f_frsize as u32,
            ),
            Err(e) => reply.error(e),
        }
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        self.meta("access");
        reply.ok();
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        self.meta("create");
        let r = (|| -> Result<(FileAttr, File), Errno> {
            let p = self.child(parent, name)?;
            let mut o = options(flags);
            o.create(true).mode(mode & !umask);
            if flags & libc::O_EXCL != 0 {
                o.create_new(true);
            }
            let f = o.open(&p).map_err(errno)?;
            let m = f.metadata().map_err(errno)?;
            Ok((self.new_entry(&p, &m), f))
        })();
        match r {
            Ok((a, f)) => {
                reply.created(&self.ttl, &a, Generation(0), self.add_file(f), self.fopen())
            }
            Err(e) => reply.error(e),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        self.meta("fallocate");
        let r = self.file(fh).and_then(|f| {
            use std::os::fd::AsRawFd;
            // SAFETY: integers and a descriptor we own.
            check(unsafe { libc::fallocate(f.as_raw_fd(), mode, offset as i64, length as i64) })
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }
}
