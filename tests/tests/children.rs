//! Child processes that reach a managed description through paths no hook
//! sees: Python's `subprocess` (the child `dup2`s an `O_CLOEXEC` descriptor
//! before it execs), `posix_spawn` file actions, fork + dup2 + exec,
//! `system` and `popen` children, a descriptor passed over a Unix socket
//! (`SCM_RIGHTS`), and a managed description moved onto a low descriptor
//! that stdio writes through. Each runs without and with the shim, on local
//! disk and on the slow filesystem; output and files must match exactly.

mod common;

use common::python;
use conveyor_tests::twin::{differences, report, Twins, PLACES};
use conveyor_tests::{compile_c, root, TempDir};
use std::path::Path;

const PY: &[(&str, &str)] = &[
    (
        "subprocess.run stdout=f",
        r#"
import subprocess
f = open("log", "w")
f.write("a\n"); f.flush()
subprocess.run(["echo", "b"], stdout=f)
f.write("c\n"); f.close()
"#,
    ),
    (
        "Popen stdout=f, parent writes while the child runs",
        r#"
import subprocess
f = open("log", "w")
f.write("a\n"); f.flush()
p = subprocess.Popen(["sh", "-c", "read x; echo child-$x"], stdin=subprocess.PIPE, stdout=f)
f.write("p\n"); f.flush()
p.communicate(b"go\n")
f.write("c\n"); f.close()
"#,
    ),
    (
        "stderr=f and a logging stream handed to a child",
        r#"
import logging, subprocess
logging.basicConfig(filename="app.log", level=logging.INFO, format="%(message)s")
log = logging.getLogger()
log.info("first")
stream = log.handlers[0].stream
subprocess.run(["sh", "-c", "echo out; echo err >&2"], stdout=stream, stderr=stream)
log.info("second")
subprocess.run(["ls", "missing-file"], stderr=stream)
log.info("third")
"#,
    ),
    (
        "stdin=f: the parent reads on after the child consumed lines",
        r#"
import os, subprocess
with open("in", "wb") as w:
    w.write(b"".join(b"line%d\n" % i for i in range(2000)))
fd = os.open("in", os.O_RDONLY | os.O_CLOEXEC)
print(os.read(fd, 6))
with os.fdopen(os.dup(fd), "rb", buffering=0) as f:
    subprocess.run(["head", "-n", "3"], stdin=f)
print(os.read(fd, 12))
os.lseek(fd, 100, os.SEEK_SET)
subprocess.run(["sh", "-c", "head -c 7 <&0"], stdin=fd)
print(os.read(fd, 9))
"#,
    ),
    (
        "posix_spawn with a dup2 file action",
        r#"
import os
fd = os.open("log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
os.write(fd, b"a\n")
pid = os.posix_spawn("/bin/echo", ["echo", "b"], os.environ,
                     file_actions=[(os.POSIX_SPAWN_DUP2, fd, 1)])
os.waitpid(pid, 0)
os.write(fd, b"c\n")
pid = os.posix_spawnp("sh", ["sh", "-c", "echo d; echo e"], os.environ,
                      file_actions=[(os.POSIX_SPAWN_DUP2, fd, 1)])
os.waitpid(pid, 0)
os.write(fd, b"f\n")
os.close(fd)
"#,
    ),
    (
        "fork, dup2, exec",
        r#"
import os
fd = os.open("log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
os.write(fd, b"a\n")
pid = os.fork()
if pid == 0:
    os.dup2(fd, 1)
    os.execv("/bin/echo", ["echo", "b"])
os.waitpid(pid, 0)
os.write(fd, b"c\n")
pid = os.fork()
if pid == 0:
    os.write(fd, b"child\n")
    os._exit(0)
os.waitpid(pid, 0)
os.write(fd, b"d\n")
os.close(fd)
"#,
    ),
    (
        "system and popen children writing to an inherited descriptor",
        r#"
import os
fd = os.open("log", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
os.set_inheritable(fd, True)
os.write(fd, b"a\n")
os.system("echo b >&%d" % fd)
os.write(fd, b"c\n")
p = os.popen("echo d >&%d; echo piped" % fd)
print(p.read().strip())
p.close()
os.write(fd, b"e\n")
os.lseek(fd, 0, os.SEEK_SET)
print(os.read(fd, 100))
os.close(fd)
"#,
    ),
    (
        "a descriptor sent over a Unix socket",
        r#"
import os, socket, subprocess, sys
parent, child = socket.socketpair()
code = (
    "import os, socket, sys\n"
    "s = socket.socket(fileno=int(sys.argv[1]))\n"
    "msg, fds, _, _ = socket.recv_fds(s, 16, 1)\n"
    "os.write(fds[0], b'b\\n')\n"
    "s.send(b'done')\n"
)
p = subprocess.Popen([sys.executable, "-c", code, str(child.fileno())], pass_fds=[child.fileno()])
fd = os.open("log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
os.write(fd, b"a\n")
socket.send_fds(parent, [b"fd"], [fd])
parent.recv(4)
os.write(fd, b"c\n")
os.close(fd)
p.wait()
"#,
    ),
];

#[test]
fn python_children_see_and_keep_every_byte() {
    let mut failures = Vec::new();
    for place in PLACES {
        let t = Twins::new(place, "children");
        for (name, code) in PY {
            let py = python().to_str().expect("python path");
            let (plain, shim) = t.run(|_: &Path| {}, py, &["-c", code], &[]);
            failures.extend(differences(
                &plain,
                &shim,
                false,
                &format!("{name} ({place:?})"),
            ));
        }
    }
    report(&failures);
}

/// A managed description moved onto descriptor 1 with `fcntl(F_DUPFD)`
/// and `dup2`, or an `O_APPEND` file opened there, then written by
/// `printf` (glibc's stdio, no hook) between the program's own `write`s;
/// and a `vfork` child writing through it.
#[test]
fn stdio_on_a_low_descriptor_and_vfork_children() {
    let bin_dir = TempDir::new("lowfd-bin");
    let bin = bin_dir.path().join("lowfd");
    compile_c(&root().join("tests/c/lowfd.c"), &bin, &[]);
    let bin = bin.to_str().expect("path");
    let mut failures = Vec::new();
    for place in PLACES {
        let t = Twins::new(place, "lowfd");
        for mode in ["dupfd", "dup2", "append", "vfork", "spawn"] {
            let (plain, shim) = t.run(|_: &Path| {}, bin, &[mode], &[]);
            failures.extend(differences(
                &plain,
                &shim,
                false,
                &format!("lowfd {mode} ({place:?})"),
            ));
        }
    }
    report(&failures);
}
