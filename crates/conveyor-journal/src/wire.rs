//! How a program hands its journal to the flusher: it connects to the
//! flusher's Unix socket and sends one message, a greeting with the
//! journal's `memfd` attached (`SCM_RIGHTS`). Then it sends nothing more;
//! the flusher waits for the connection to end. The connection ends when
//! every copy of the program's socket is closed, which for a process that
//! dies happens only once all its threads are gone (and so are their
//! storage requests), and for one that execs once the exec succeeded
//! (the socket is close-on-exec).
//!
//! Every call here is a raw system call (`rustix`): the shim makes them,
//! and must not reach its own hooks.

use crate::Journal;
use rustix::net::{
    recvmsg, sendmsg, AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags,
    SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketAddrUnix, SocketFlags, SocketType,
};
use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

const GREETING: &[u8; 8] = b"CNVYFLS1";

fn io(e: rustix::io::Errno) -> io::Error {
    io::Error::from_raw_os_error(e.raw_os_error())
}

/// Connects to the flusher listening at `path` (a close-on-exec socket).
pub fn connect(path: &std::path::Path) -> io::Result<OwnedFd> {
    let fd = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(io)?;
    let addr = SocketAddrUnix::new(path).map_err(io)?;
    rustix::net::connect(&fd, &addr).map_err(io)?;
    Ok(fd)
}

/// Sends the greeting with `journal`'s descriptor.
pub fn greet(sock: BorrowedFd<'_>, journal: &Journal) -> io::Result<()> {
    let mut msg = [0u8; 16];
    msg[..8].copy_from_slice(GREETING);
    msg[8..12].copy_from_slice(&std::process::id().to_le_bytes());
    let fds = [journal.fd().as_fd()];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    control.push(SendAncillaryMessage::ScmRights(&fds));
    let n = sendmsg(
        sock,
        &[IoSlice::new(&msg)],
        &mut control,
        SendFlags::NOSIGNAL,
    )
    .map_err(io)?;
    if n != msg.len() {
        return Err(io::Error::new(io::ErrorKind::WriteZero, "short greeting"));
    }
    Ok(())
}

/// True unless `sock` is a live connection with nothing to read (the
/// flusher never sends anything): its end closed, or the descriptor is
/// no longer a socket. The program then connects anew.
pub fn hung_up(sock: BorrowedFd<'_>) -> bool {
    let mut b = [0u8; 1];
    !matches!(
        rustix::net::recv(sock, &mut b, RecvFlags::PEEK | RecvFlags::DONTWAIT),
        Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR)
    )
}

/// What a greeting brought: the sender's pid and its journal.
pub struct Greeting {
    /// The process that sent it (as it says; the peer's credentials are
    /// checked separately).
    pub pid: u32,
    /// Its journal's descriptor.
    pub journal: OwnedFd,
}

/// Receives a greeting on a connection the flusher accepted.
pub fn receive(sock: BorrowedFd<'_>) -> io::Result<Greeting> {
    let mut msg = [0u8; 16];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let got = recvmsg(
        sock,
        &mut [IoSliceMut::new(&mut msg)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC | RecvFlags::WAITALL,
    )
    .map_err(io)?;
    let mut journal = None;
    for m in control.drain() {
        if let RecvAncillaryMessage::ScmRights(fds) = m {
            for fd in fds {
                journal.get_or_insert(fd);
            }
        }
    }
    if got.bytes == 0 {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "nothing sent"));
    }
    if got.bytes != msg.len() || &msg[..8] != GREETING {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a conveyor greeting",
        ));
    }
    let journal = journal.ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidData, "a greeting without a journal")
    })?;
    let pid = u32::from_le_bytes([msg[8], msg[9], msg[10], msg[11]]);
    Ok(Greeting { pid, journal })
}

/// The process at the other end of `sock` when it connected, and its
/// user id (from the kernel: `SO_PEERCRED`).
pub fn peer(sock: BorrowedFd<'_>) -> io::Result<(i32, u32)> {
    let c = rustix::net::sockopt::socket_peercred(sock).map_err(io)?;
    Ok((c.pid.as_raw_nonzero().get(), c.uid.as_raw()))
}
