/* The variadic hooks' C halves. The exported symbols (dprintf,
 * __dprintf_chk) are Rust trampolines that jump here with every argument
 * register untouched; these turn the `...` into a va_list and call the
 * va_list forms, which the shim hooks in Rust (vdprintf, __vdprintf_chk)
 * and which resolve to those hooks through the dynamic symbol table. */
#include <stdarg.h>
#include <stdio.h>

extern int __vdprintf_chk(int fd, int flag, const char *fmt, va_list ap);

__attribute__((visibility("hidden"))) int conveyor_dprintf(int fd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = vdprintf(fd, fmt, ap);
    va_end(ap);
    return r;
}

__attribute__((visibility("hidden"))) int conveyor_dprintf_chk(int fd, int flag, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = __vdprintf_chk(fd, flag, fmt, ap);
    va_end(ap);
    return r;
}
