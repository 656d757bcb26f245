//! dprintf, __dprintf_chk, vdprintf, __vdprintf_chk: glibc formats these
//! into a stream of its own over the descriptor and writes it with an
//! internal call no hook sees. On a managed descriptor the text is
//! formatted here and written through the managed `write`, in order with
//! the program's other writes.
//!
//! The variadic names are naked trampolines into C (`variadic.c`): they
//! jump with the caller's registers and stack as they are, so the C
//! function receives the `...` arguments exactly as the caller passed them.

use crate::fdtable::is_managed;
use crate::ops::io::write_all_formatted;
use crate::real;
use libc::{c_char, c_int, c_void};

extern "C" {
    fn conveyor_dprintf(fd: c_int, fmt: *const c_char, ...) -> c_int;
    fn conveyor_dprintf_chk(fd: c_int, flag: c_int, fmt: *const c_char, ...) -> c_int;
}

/// # Safety
/// As for `dprintf(3)`.
#[cfg_attr(not(test), no_mangle)]
#[unsafe(naked)]
pub unsafe extern "C" fn dprintf(fd: c_int, fmt: *const c_char) -> c_int {
    #[cfg(target_arch = "x86_64")]
    core::arch::naked_asm!("jmp {f}", f = sym conveyor_dprintf);
    #[cfg(target_arch = "aarch64")]
    core::arch::naked_asm!("b {f}", f = sym conveyor_dprintf);
}

/// # Safety
/// As for glibc's fortified `dprintf`.
#[cfg_attr(not(test), no_mangle)]
#[unsafe(naked)]
pub unsafe extern "C" fn __dprintf_chk(fd: c_int, flag: c_int, fmt: *const c_char) -> c_int {
    #[cfg(target_arch = "x86_64")]
    core::arch::naked_asm!("jmp {f}", f = sym conveyor_dprintf_chk);
    #[cfg(target_arch = "aarch64")]
    core::arch::naked_asm!("b {f}", f = sym conveyor_dprintf_chk);
}

/// # Safety
/// As for `vdprintf(3)`; `ap` is the caller's `va_list` (a pointer on
/// x86_64 and aarch64 when passed as an argument).
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn vdprintf(fd: c_int, fmt: *const c_char, ap: *mut c_void) -> c_int {
    if !is_managed(fd) {
        // SAFETY: the caller's arguments.
        return unsafe { real::vdprintf(fd, fmt, ap) };
    }
    let mut text: *mut c_char = std::ptr::null_mut();
    // SAFETY: the caller's format and arguments; glibc allocates `text`.
    let n = unsafe { real::vasprintf(&mut text, fmt, ap) };
    // SAFETY: `text` holds `n` bytes when `n >= 0`.
    unsafe { write_all_formatted("vdprintf", fd, text, n) }
}

/// # Safety
/// As for glibc's fortified `vdprintf`.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn __vdprintf_chk(
    fd: c_int,
    flag: c_int,
    fmt: *const c_char,
    ap: *mut c_void,
) -> c_int {
    if !is_managed(fd) {
        // SAFETY: the caller's arguments.
        return unsafe { real::__vdprintf_chk(fd, flag, fmt, ap) };
    }
    let mut text: *mut c_char = std::ptr::null_mut();
    // SAFETY: as in `vdprintf`, with glibc's format checks.
    let n = unsafe { real::__vasprintf_chk(&mut text, flag, fmt, ap) };
    // SAFETY: `text` holds `n` bytes when `n >= 0`.
    unsafe { write_all_formatted("__vdprintf_chk", fd, text, n) }
}
