//! fork, vfork, execve, execv, execvp, execvpe, fexecve, posix_spawn,
//! posix_spawnp, system, popen, _exit, _Exit: barriers before another
//! program runs, and flushing before the process ends.

use crate::process::fork::fork_as;
use crate::process::{at_exit, barrier, before_exec, before_spawn, note_spawn_dup2, Reach};
use crate::real;
use libc::{c_char, c_int, pid_t, FILE};

/// # Safety
/// As for `fork(2)`.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn fork() -> pid_t {
    // SAFETY: the real fork, with the shim's barrier and locks around it.
    unsafe { fork_as("fork") }
}

/// `vfork` runs as `fork`: a vfork child shares the parent's memory, and a
/// hook running in it must not change the parent's state. `fork` gives
/// every guarantee `vfork` does.
///
/// # Safety
/// As for `vfork(2)`.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn vfork() -> pid_t {
    // SAFETY: as in `fork`.
    unsafe { fork_as("vfork") }
}

macro_rules! exec_hook {
    ($name:ident($($a:ident: $t:ty),*)) => {
        /// # Safety
        /// As for the `exec` family.
        #[cfg_attr(not(test), no_mangle)]
        pub unsafe extern "C" fn $name($($a: $t),*) -> c_int {
            before_exec(stringify!($name));
            // SAFETY: the caller's arguments.
            unsafe { real::$name($($a),*) }
        }
    };
}
exec_hook!(execve(path: *const c_char, argv: *const *const c_char, envp: *const *const c_char));
exec_hook!(execv(path: *const c_char, argv: *const *const c_char));
exec_hook!(execvp(file: *const c_char, argv: *const *const c_char));
exec_hook!(execvpe(file: *const c_char, argv: *const *const c_char, envp: *const *const c_char));
exec_hook!(fexecve(fd: c_int, argv: *const *const c_char, envp: *const *const c_char));
macro_rules! spawn_hook {
    ($name:ident, $reach:expr, ($($a:ident: $t:ty),*)) => {
        /// # Safety
        /// As for the C function of this name.
        #[cfg_attr(not(test), no_mangle)]
        pub unsafe extern "C" fn $name($($a: $t),*) -> c_int {
            before_spawn(stringify!($name), $reach);
            // SAFETY: the caller's arguments.
            unsafe { real::$name($($a),*) }
        }
    };
}
spawn_hook!(posix_spawn, Reach::Spawn, (
    pid: *mut pid_t,
    path: *const c_char,
    fa: *const libc::posix_spawn_file_actions_t,
    attr: *const libc::posix_spawnattr_t,
    argv: *const *mut c_char,
    envp: *const *mut c_char
));
spawn_hook!(posix_spawnp, Reach::Spawn, (
    pid: *mut pid_t,
    file: *const c_char,
    fa: *const libc::posix_spawn_file_actions_t,
    attr: *const libc::posix_spawnattr_t,
    argv: *const *mut c_char,
    envp: *const *mut c_char
));
spawn_hook!(system, Reach::Inherited, (cmd: *const c_char));

/// Notes the source descriptor, which the spawned child will `dup2`.
///
/// # Safety
/// As for `posix_spawn_file_actions_adddup2(3)`.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn posix_spawn_file_actions_adddup2(
    fa: *mut libc::posix_spawn_file_actions_t,
    fd: c_int,
    newfd: c_int,
) -> c_int {
    note_spawn_dup2(fd);
    // SAFETY: the caller's arguments.
    unsafe { real::posix_spawn_file_actions_adddup2(fa, fd, newfd) }
}

/// # Safety
/// As for `popen(3)`.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn popen(cmd: *const c_char, mode: *const c_char) -> *mut FILE {
    barrier("popen", Reach::Inherited);
    // SAFETY: the caller's arguments.
    unsafe { real::popen(cmd, mode) }
}

/// # Safety
/// As for `_exit(2)`.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn _exit(status: c_int) -> ! {
    at_exit(true);
    // SAFETY: the caller's argument; does not return.
    unsafe { real::_exit(status) };
    // Only if the real _exit could not be found.
    // SAFETY: exit_group ends the process.
    unsafe { libc::syscall(libc::SYS_exit_group, status) };
    unreachable!("exit_group returned")
}

/// # Safety
/// As for `_Exit(2)`.
#[cfg_attr(not(test), no_mangle)]
#[allow(non_snake_case)] // glibc's name
pub unsafe extern "C" fn _Exit(status: c_int) -> ! {
    at_exit(true);
    // SAFETY: the caller's argument; does not return.
    unsafe { real::_Exit(status) };
    // SAFETY: exit_group ends the process.
    unsafe { libc::syscall(libc::SYS_exit_group, status) };
    unreachable!("exit_group returned")
}
