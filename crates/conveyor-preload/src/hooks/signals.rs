//! signal, sigaction, bsd_signal, sysv_signal: the program sees its own
//! dispositions while the shim stands in for SIG_DFL of fatal signals.

use crate::process::fatal as signals;
use libc::{c_int, sighandler_t};

/// # Safety
/// As for `sigaction(2)`.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn sigaction(
    sig: c_int,
    act: *const libc::sigaction,
    old: *mut libc::sigaction,
) -> c_int {
    // SAFETY: the caller's arguments.
    unsafe { signals::program_sigaction(sig, act, old) }
}

macro_rules! signal_hook {
    ($name:ident, $flags:expr) => {
        /// # Safety
        /// As for `signal(2)`.
        #[cfg_attr(not(test), no_mangle)]
        pub unsafe extern "C" fn $name(sig: c_int, handler: sighandler_t) -> sighandler_t {
            // SAFETY: the caller's arguments.
            unsafe { signals::program_signal(sig, handler, $flags) }
        }
    };
}
signal_hook!(signal, libc::SA_RESTART);
signal_hook!(bsd_signal, libc::SA_RESTART);
signal_hook!(sysv_signal, libc::SA_RESETHAND | libc::SA_NODEFER);
