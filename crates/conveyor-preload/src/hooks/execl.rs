//! execl, execlp, execle: the variadic exec forms. glibc implements them
//! with its internal `__execve`, which no hook sees, so without these an
//! `execl` would replace the process image with pending data unwritten.
//!
//! Stable Rust cannot define a C-variadic function. On the x86_64 and
//! aarch64 Linux ABIs a variadic pointer argument travels exactly like a
//! fixed one (registers first, then the caller's stack in order), so these
//! hooks take a fixed list of `MAX_ARGS` pointer parameters, read them up to
//! the terminating NULL (and, for `execle`, the environment after it), and
//! never look past it. A call with more arguments than that fails with
//! `E2BIG` rather than reading further.

use crate::process::before_exec;
use crate::real;
use libc::{c_char, c_int};

/// Arguments (after the path) read before giving up with E2BIG.
const MAX_ARGS: usize = 64;

macro_rules! exec_variadic {
    ($name:ident, $env:expr, $call:expr) => {
        /// # Safety
        /// As for the `execl` family; the argument list is NULL-terminated.
        #[cfg_attr(not(test), no_mangle)]
        #[allow(clippy::too_many_arguments)]
        pub unsafe extern "C" fn $name(
            path: *const c_char,
            a0: *const c_char,
            a1: *const c_char,
            a2: *const c_char,
            a3: *const c_char,
            a4: *const c_char,
            a5: *const c_char,
            a6: *const c_char,
            a7: *const c_char,
            a8: *const c_char,
            a9: *const c_char,
            a10: *const c_char,
            a11: *const c_char,
            a12: *const c_char,
            a13: *const c_char,
            a14: *const c_char,
            a15: *const c_char,
            a16: *const c_char,
            a17: *const c_char,
            a18: *const c_char,
            a19: *const c_char,
            a20: *const c_char,
            a21: *const c_char,
            a22: *const c_char,
            a23: *const c_char,
            a24: *const c_char,
            a25: *const c_char,
            a26: *const c_char,
            a27: *const c_char,
            a28: *const c_char,
            a29: *const c_char,
            a30: *const c_char,
            a31: *const c_char,
            a32: *const c_char,
            a33: *const c_char,
            a34: *const c_char,
            a35: *const c_char,
            a36: *const c_char,
            a37: *const c_char,
            a38: *const c_char,
            a39: *const c_char,
            a40: *const c_char,
            a41: *const c_char,
            a42: *const c_char,
            a43: *const c_char,
            a44: *const c_char,
            a45: *const c_char,
            a46: *const c_char,
            a47: *const c_char,
            a48: *const c_char,
            a49: *const c_char,
            a50: *const c_char,
            a51: *const c_char,
            a52: *const c_char,
            a53: *const c_char,
            a54: *const c_char,
            a55: *const c_char,
            a56: *const c_char,
            a57: *const c_char,
            a58: *const c_char,
            a59: *const c_char,
            a60: *const c_char,
            a61: *const c_char,
            a62: *const c_char,
            a63: *const c_char,
            a64: *const c_char,
        ) -> c_int {
            let all: [*const c_char; MAX_ARGS + 1] = [
                a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15, a16, a17,
                a18, a19, a20, a21, a22, a23, a24, a25, a26, a27, a28, a29, a30, a31, a32, a33,
                a34, a35, a36, a37, a38, a39, a40, a41, a42, a43, a44, a45, a46, a47, a48, a49,
                a50, a51, a52, a53, a54, a55, a56, a57, a58, a59, a60, a61, a62, a63, a64,
            ];
            let Some(end) = all[..MAX_ARGS].iter().position(|p| p.is_null()) else {
                real::set_errno(libc::E2BIG);
                return -1;
            };
            let argv: Vec<*const c_char> = all[..=end].to_vec();
            let envp = if $env {
                all[end + 1] as *const *const c_char
            } else {
                std::ptr::null()
            };
            before_exec(stringify!($name));
            #[allow(clippy::redundant_closure_call)]
            ($call)(path, argv.as_ptr(), envp)
        }
    };
}

exec_variadic!(execl, false, |p, a, _e| {
    // SAFETY: a NULL-terminated argv built from the caller's arguments.
    unsafe { real::execv(p, a) }
});
exec_variadic!(execlp, false, |p, a, _e| {
    // SAFETY: as above.
    unsafe { real::execvp(p, a) }
});
exec_variadic!(execle, true, |p, a, e| {
    // SAFETY: as above; `e` is the caller's environment array.
    unsafe { real::execve(p, a, e) }
});
