/*
 * Calls every symbol conveyor's shim hooks, by its exact exported name, on
 * files in the working directory, and prints what it observes: return
 * values, errno names, offsets, sizes and data digests (never pids,
 * addresses, fd numbers or times). Run once with the working directory
 * managed by the shim and once without it: the outputs and the files left
 * behind must be identical.
 *
 * Each name is resolved with dlsym(RTLD_DEFAULT) (the preloaded shim's
 * definition comes first; without it, glibc's), falling back to
 * dlvsym(..., "GLIBC_2.2.5") for the compat-only names (__fxstat, __xstat,
 * ...), so header macros (_FILE_OFFSET_BITS=64 turns open into open64) do not
 * decide which name is called. A few plain calls, built with
 * -D_FORTIFY_SOURCE=2, go through the compiler's own __open64_2,
 * __openat64_2, __read_chk and __pread64_chk.
 *
 * "raw" lines look at the files with raw system calls, which the shim
 * cannot see: they show what another process would find after a barrier
 * (close, fsync, unlock, ...).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

/* ---- the hooked names, as function pointers ---- */

#define SYMS(X)                                                                \
    X(int, open, (const char *, int, ...))                                     \
    X(int, open64, (const char *, int, ...))                                   \
    X(int, openat, (int, const char *, int, ...))                              \
    X(int, openat64, (int, const char *, int, ...))                            \
    X(int, __open_2, (const char *, int))                                      \
    X(int, __open64_2, (const char *, int))                                    \
    X(int, __openat_2, (int, const char *, int))                               \
    X(int, __openat64_2, (int, const char *, int))                             \
    X(int, creat, (const char *, mode_t))                                      \
    X(int, creat64, (const char *, mode_t))                                    \
    X(ssize_t, read, (int, void *, size_t))                                    \
    X(ssize_t, __read_chk, (int, void *, size_t, size_t))                      \
    X(ssize_t, pread, (int, void *, size_t, off_t))                            \
    X(ssize_t, pread64, (int, void *, size_t, off64_t))                        \
    X(ssize_t, __pread_chk, (int, void *, size_t, off_t, size_t))              \
    X(ssize_t, __pread64_chk, (int, void *, size_t, off64_t, size_t))          \
    X(ssize_t, readv, (int, const struct iovec *, int))                        \
    X(ssize_t, preadv, (int, const struct iovec *, int, off_t))                \
    X(ssize_t, preadv64, (int, const struct iovec *, int, off64_t))            \
    X(ssize_t, preadv2, (int, const struct iovec *, int, off_t, int))          \
    X(ssize_t, preadv64v2, (int, const struct iovec *, int, off64_t, int))     \
    X(ssize_t, write, (int, const void *, size_t))                             \
    X(ssize_t, pwrite, (int, const void *, size_t, off_t))                     \
    X(ssize_t, pwrite64, (int, const void *, size_t, off64_t))                 \
    X(ssize_t, writev, (int, const struct iovec *, int))                       \
    X(ssize_t, pwritev, (int, const struct iovec *, int, off_t))               \
    X(ssize_t, pwritev64, (int, const struct iovec *, int, off64_t))           \
    X(ssize_t, pwritev2, (int, const struct iovec *, int, off_t, int))         \
    X(ssize_t, pwritev64v2, (int, const struct iovec *, int, off64_t, int))    \
    X(off_t, lseek, (int, off_t, int))                                         \
    X(off64_t, lseek64, (int, off64_t, int))                                   \
    X(int, close, (int))                                                       \
    X(int, close_range, (unsigned, unsigned, int))                             \
    X(void, closefrom, (int))                                                  \
    X(int, fsync, (int))                                                       \
    X(int, fdatasync, (int))                                                   \
    X(int, sync_file_range, (int, off64_t, off64_t, unsigned))                 \
    X(int, syncfs, (int))                                                      \
    X(void, sync, (void))                                                      \
    X(int, fstat, (int, struct stat *))                                        \
    X(int, fstat64, (int, struct stat64 *))                                    \
    X(int, __fxstat, (int, int, struct stat *))                                \
    X(int, __fxstat64, (int, int, struct stat64 *))                            \
    X(int, fstatat, (int, const char *, struct stat *, int))                   \
    X(int, fstatat64, (int, const char *, struct stat64 *, int))               \
    X(int, statx, (int, const char *, int, unsigned, struct statx *))          \
    X(int, stat, (const char *, struct stat *))                                \
    X(int, stat64, (const char *, struct stat64 *))                            \
    X(int, lstat, (const char *, struct stat *))                               \
    X(int, lstat64, (const char *, struct stat64 *))                           \
    X(int, __xstat, (int, const char *, struct stat *))                        \
    X(int, __xstat64, (int, const char *, struct stat64 *))                    \
    X(int, __lxstat, (int, const char *, struct stat *))                       \
    X(int, __lxstat64, (int, const char *, struct stat64 *))                   \
    X(int, ftruncate, (int, off_t))                                            \
    X(int, ftruncate64, (int, off64_t))                                        \
    X(int, truncate, (const char *, off_t))                                    \
    X(int, truncate64, (const char *, off64_t))                                \
    X(int, fallocate, (int, int, off_t, off_t))                                \
    X(int, fallocate64, (int, int, off64_t, off64_t))                          \
    X(int, posix_fallocate, (int, off_t, off_t))                               \
    X(int, posix_fallocate64, (int, off64_t, off64_t))                         \
    X(int, dup, (int))                                                         \
    X(int, dup2, (int, int))                                                   \
    X(int, dup3, (int, int, int))                                              \
    X(int, fcntl, (int, int, ...))                                             \
    X(int, fcntl64, (int, int, ...))                                           \
    X(ssize_t, copy_file_range, (int, loff_t *, int, loff_t *, size_t, unsigned)) \
    X(ssize_t, sendfile, (int, int, off_t *, size_t))                          \
    X(ssize_t, sendfile64, (int, int, off64_t *, size_t))                      \
    X(ssize_t, splice, (int, loff_t *, int, loff_t *, size_t, unsigned))       \
    X(void *, mmap, (void *, size_t, int, int, int, off_t))                    \
    X(void *, mmap64, (void *, size_t, int, int, int, off64_t))                \
    X(FILE *, fdopen, (int, const char *))                                     \
    X(int, flock, (int, int))                                                  \
    X(int, lockf, (int, int, off_t))                                           \
    X(int, lockf64, (int, int, off64_t))

#define DECL(r, n, a) static r(*p_##n) a;
SYMS(DECL)

static void *sym(const char *name) {
    void *p = dlsym(RTLD_DEFAULT, name);
    if (!p)
        p = dlvsym(RTLD_DEFAULT, name, "GLIBC_2.2.5");
    if (!p) {
        fprintf(stderr, "symbols: cannot resolve %s\n", name);
        exit(2);
    }
    return p;
}

static void resolve(void) {
#define RES(r, n, a) p_##n = (r(*) a)sym(#n);
    SYMS(RES)
}

/* ---- output ---- */

static const char *ename(int e) {
    static char other[32];
    switch (e) {
#define E(x)                                                                   \
    case x:                                                                    \
        return #x;
        E(EBADF) E(EINVAL) E(ENOENT) E(EEXIST) E(ENOTDIR) E(EISDIR) E(ENXIO)
        E(ESPIPE) E(EACCES) E(EPERM) E(EAGAIN) E(EFBIG) E(EOVERFLOW) E(ENOSYS)
        E(EOPNOTSUPP) E(EXDEV) E(EIO) E(ENOSPC) E(ENODEV) E(EFAULT)
#undef E
    }
    snprintf(other, sizeof other, "errno%d", e);
    return other;
}

static int failures;

/* A numeric result (or -1 and the errno name). */
static void res(const char *what, long long r) {
    if (r < 0)
        printf("%s -1 %s\n", what, ename(errno));
    else
        printf("%s %lld\n", what, r);
}

/* An fd-returning call: "fd" or the errno name, never the number. */
static int resfd(const char *what, int fd) {
    if (fd < 0)
        printf("%s -1 %s\n", what, ename(errno));
    else
        printf("%s fd\n", what);
    return fd;
}

/* A call returning an error number (posix_fallocate). */
static void reserr(const char *what, int e) {
    printf("%s %s\n", what, e ? ename(e) : "0");
}

static uint64_t fnv(const void *p, size_t n) {
    const unsigned char *b = p;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ULL;
    }
    return h;
}

/* A read's result and the digest of what it returned. */
static void dig(const char *what, const void *buf, long long n) {
    if (n < 0)
        printf("%s -1 %s\n", what, ename(errno));
    else
        printf("%s %lld %016llx\n", what, n,
               (unsigned long long)fnv(buf, (size_t)n));
}

/* A must-hold condition: the run fails if it does not. */
static void must(int ok, const char *what) {
    if (!ok) {
        printf("FAIL %s\n", what);
        fprintf(stderr, "symbols: FAIL %s\n", what);
        failures++;
    }
}

static void section(const char *name) { printf("== %s\n", name); }

/* Deterministic bytes. */
static void fill(char *buf, size_t n, unsigned seed) {
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        buf[i] = (char)(x >> 24);
    }
}

static size_t zeros(const char *b, size_t n) {
    size_t z = 0;
    for (size_t i = 0; i < n; i++)
        z += b[i] == 0;
    return z;
}

/* ---- raw views, through system calls the shim does not hook ---- */

static long long raw_size(const char *path) {
    struct stat st;
    if (syscall(SYS_newfstatat, AT_FDCWD, path, &st, 0) != 0)
        return -1;
    return st.st_size;
}

/* Prints the size and digest of `path` as another process would see it. */
static void raw(const char *path) {
    static char buf[4 << 20];
    int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        printf("raw %s -1 %s\n", path, ename(errno));
        return;
    }
    long long n = 0;
    for (;;) {
        long k = syscall(SYS_pread64, fd, buf + n, sizeof buf - n, n);
        if (k <= 0)
            break;
        n += k;
    }
    syscall(SYS_close, fd);
    printf("raw %s %lld %016llx\n", path, n,
           (unsigned long long)fnv(buf, (size_t)n));
}

/* Size through fstat (the shim includes pending data). */
static long long fsize(int fd) {
    struct stat st;
    if (p_fstat(fd, &st) != 0)
        return -1;
    return st.st_size;
}

static long long cur(int fd) { return p_lseek64(fd, 0, SEEK_CUR); }

static int mk(const char *path) {
    return p_open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
}

/* Whole-file content through a new managed descriptor. */
static void readback(const char *what, const char *path) {
    static char buf[4 << 20];
    int fd = p_open(path, O_RDONLY);
    long long n = 0;
    for (;;) {
        ssize_t k = p_read(fd, buf + n, 65536);
        if (k <= 0)
            break;
        n += k;
    }
    p_close(fd);
    dig(what, buf, n);
}

/* ---- sections ---- */

static char A[1 << 20], B[1 << 20];

static void t_open(void) {
    section("open");
    struct {
        const char *path;
        int fd;
    } f[10];
    int dir = p_open(".", O_RDONLY | O_DIRECTORY);
    must(dir >= 0, "open .");
    f[0].path = "o_open.dat";
    f[0].fd = resfd("open", p_open(f[0].path, O_RDWR | O_CREAT | O_TRUNC, 0644));
    f[1].path = "o_open64.dat";
    f[1].fd = resfd("open64", p_open64(f[1].path, O_RDWR | O_CREAT | O_TRUNC, 0644));
    f[2].path = "o_openat.dat";
    f[2].fd = resfd("openat", p_openat(dir, f[2].path, O_RDWR | O_CREAT | O_TRUNC, 0644));
    f[3].path = "o_openat64.dat";
    f[3].fd = resfd("openat64",
                    p_openat64(AT_FDCWD, f[3].path, O_RDWR | O_CREAT | O_TRUNC, 0644));
    f[4].path = "o_creat.dat";
    f[4].fd = resfd("creat", p_creat(f[4].path, 0644));
    f[5].path = "o_creat64.dat";
    f[5].fd = resfd("creat64", p_creat64(f[5].path, 0644));
    /* The fortified names take no mode: existing files. */
    f[6].path = "o_open.dat";
    f[6].fd = resfd("__open_2", p___open_2(f[6].path, O_RDWR));
    f[7].path = "o_open64.dat";
    f[7].fd = resfd("__open64_2", p___open64_2(f[7].path, O_RDWR | O_APPEND));
    f[8].path = "o_openat.dat";
    f[8].fd = resfd("__openat_2", p___openat_2(dir, f[8].path, O_RDWR));
    f[9].path = "o_openat64.dat";
    f[9].fd = resfd("__openat64_2", p___openat64_2(AT_FDCWD, f[9].path, O_RDWR));
    for (int i = 0; i < 10; i++) {
        char line[64];
        int n = snprintf(line, sizeof line, "written through fd %d of %s\n", i, f[i].path);
        res("write", p_write(f[i].fd, line, (size_t)n));
    }
    /* The second descriptors see what the first ones wrote, at their own
     * offsets. */
    for (int i = 6; i < 10; i++) {
        memset(B, 0, 256);
        dig("pread other fd", B, p_pread64(f[i].fd, B, 256, 0));
    }
    for (int i = 0; i < 10; i++) {
        res("fstat size", fsize(f[i].fd));
        res("close", p_close(f[i].fd));
    }
    p_close(dir);
    for (int i = 0; i < 6; i++)
        raw(f[i].path);

    /* O_TRUNC open of a file with pending data: the truncation comes after
     * it, and what is written next stays. */
    int a = mk("o_trunc.dat");
    fill(A, 5000, 7);
    res("write", p_write(a, A, 5000));
    int b = resfd("open O_TRUNC", p_open("o_trunc.dat", O_WRONLY | O_TRUNC));
    res("fstat after O_TRUNC", fsize(a));
    res("write after O_TRUNC", p_write(b, "fresh", 5));
    res("pwrite old fd", p_pwrite(a, "X", 1, 10));
    res("close", p_close(b));
    res("close", p_close(a));
    raw("o_trunc.dat");

    /* Errors are the kernel's. */
    resfd("open O_EXCL existing", p_open("o_open.dat", O_RDWR | O_CREAT | O_EXCL, 0644));
    resfd("open missing", p_open("missing.dat", O_RDONLY));
    resfd("open64 O_DIRECTORY on file", p_open64("o_open.dat", O_RDONLY | O_DIRECTORY));
    resfd("openat bad dirfd", p_openat(-5, "o_open.dat", O_RDONLY));
}

static void t_rw(void) {
    section("read/write");
    fill(A, sizeof A, 1);
    int w = resfd("open64 rw", p_open64("rw.dat", O_RDWR | O_CREAT | O_TRUNC, 0644));
    int r = resfd("open ro", p_open("rw.dat", O_RDONLY));
    res("write", p_write(w, A, 3000));
    res("pwrite", p_pwrite(w, A + 3000, 1000, 5000)); /* hole 3000..5000 */
    res("pwrite64", p_pwrite64(w, A + 4000, 500, 6000));
    struct iovec iv[3] = {{A + 100, 10}, {A + 200, 0}, {A + 300, 90}};
    res("writev", p_writev(w, iv, 3)); /* 3000..3100 */
    res("pwritev", p_pwritev(w, iv, 3, 7000));
    res("pwritev64", p_pwritev64(w, iv, 3, 7100));
    res("pwritev2 at", p_pwritev2(w, iv, 3, 7200, 0));
    res("pwritev2 cur", p_pwritev2(w, iv, 3, -1, 0)); /* 3100..3200 */
    res("pwritev64v2 at", p_pwritev64v2(w, iv, 3, 7300, 0));
    res("pwritev64v2 cur dsync", p_pwritev64v2(w, iv, 3, -1, RWF_DSYNC));
    res("lseek cur", p_lseek(w, 0, SEEK_CUR));
    res("lseek64 end", p_lseek64(w, 0, SEEK_END));
    res("lseek64 cur after end", p_lseek64(w, 0, SEEK_CUR));
    res("lseek set", p_lseek(w, 3300, SEEK_SET));
    res("write empty", p_write(w, A, 0));
    res("lseek cur", p_lseek(w, 0, SEEK_CUR));

    /* Reads through the other description see every byte written. */
    ssize_t n;
    memset(B, 0x55, 16384);
    n = p_read(r, B, 4000);
    dig("read", B, n);
    must(n == 4000 && memcmp(B, A, 3000) == 0, "read sees write()");
    must(zeros(B + 3300, 700) == 700, "hole reads as zeros");
    dig("__read_chk", B, p___read_chk(r, B, 100, 16384));
    dig("pread past end", B, p_pread(r, B, 8000, 0));
    dig("pread64 over hole edge", B, p_pread64(r, B, 20, 4990));
    dig("__pread_chk", B, p___pread_chk(r, B, 600, 5800, 16384));
    dig("__pread64_chk", B, p___pread64_chk(r, B, 300, 7000, 16384));
    dig("pread at end", B, p_pread(r, B, 10, 7400));
    dig("pread beyond end", B, p_pread(r, B, 10, 90000));
    res("lseek cur r", p_lseek(r, 0, SEEK_CUR));
    char x1[7], x2[1], x3[4000];
    struct iovec rv[3] = {{x1, sizeof x1}, {x2, 0}, {x3, sizeof x3}};
    memset(x3, 0, sizeof x3);
    n = p_readv(r, rv, 3);
    res("readv", n);
    dig("readv x1", x1, sizeof x1);
    dig("readv x3", x3, sizeof x3);
    res("lseek cur r", p_lseek(r, 0, SEEK_CUR));
    res("preadv", p_preadv(r, rv, 3, 50));
    dig("preadv x3", x3, sizeof x3);
    res("preadv64", p_preadv64(r, rv, 3, 6990));
    dig("preadv64 x3", x3, 407);
    res("preadv2 at", p_preadv2(r, rv, 3, 10, 0));
    dig("preadv2 x1", x1, sizeof x1);
    res("lseek set r", p_lseek(r, 5000, SEEK_SET));
    res("preadv2 cur", p_preadv2(r, rv, 3, -1, 0));
    dig("preadv2 cur x3", x3, sizeof x3);
    res("lseek cur r", p_lseek(r, 0, SEEK_CUR));
    res("preadv64v2 at", p_preadv64v2(r, rv, 3, 20, 0));
    dig("preadv64v2 x1", x1, sizeof x1);
    res("lseek set r", p_lseek(r, 7000, SEEK_SET));
    res("preadv64v2 cur", p_preadv64v2(r, rv, 3, -1, 0));
    dig("preadv64v2 x3", x3, 400);
    res("read at eof", p_read(r, B, 10));
    res("lseek cur r", p_lseek(r, 0, SEEK_CUR));

    /* The writer's own reads. */
    res("lseek w", p_lseek(w, 2990, SEEK_SET));
    dig("read w", B, p_read(w, B, 20));
    res("write w", p_write(w, "MID", 3));
    dig("pread r after write w", B, p_pread(r, B, 10, 3005));
    res("lseek cur w", cur(w));

    /* Errors, as the kernel gives them. */
    int wo = resfd("open wronly", p_open("rw.dat", O_WRONLY));
    res("read wronly", p_read(wo, B, 10));
    res("pread wronly", p_pread(wo, B, 10, 0));
    res("write rdonly", p_write(r, "x", 1));
    res("pwrite64 rdonly", p_pwrite64(r, "x", 1, 0));
    res("pread negative", p_pread(r, B, 10, -1));
    res("pwrite negative", p_pwrite(w, "x", 1, -1));
    res("lseek negative", p_lseek(w, -1, SEEK_SET));
    res("lseek bad whence", p_lseek(w, 0, 77));
    res("lseek cur w", cur(w));
    res("fstat w", fsize(w));
    res("close wo", p_close(wo));
    res("close r", p_close(r));
    res("close w", p_close(w));
    res("close again", p_close(w));
    raw("rw.dat");
}

static void statline(const char *what, int r, long long size, unsigned mode) {
    if (r != 0)
        printf("%s -1 %s\n", what, ename(errno));
    else
        printf("%s size %lld %s\n", what, size,
               S_ISREG(mode) ? "reg" : S_ISLNK(mode) ? "lnk" : "other");
}

static void stat_all(const char *tag, const char *path, int fd) {
    struct stat s;
    struct stat64 s64;
    struct statx sx;
    char w[64];
#define ST(name, call, buf)                                                    \
    do {                                                                       \
        memset(&buf, 0, sizeof buf);                                           \
        snprintf(w, sizeof w, "%s %s", tag, name);                             \
        int r_ = call;                                                         \
        statline(w, r_, (long long)buf.st_size, buf.st_mode);                  \
    } while (0)
    ST("fstat", p_fstat(fd, &s), s);
    ST("fstat64", p_fstat64(fd, &s64), s64);
    ST("__fxstat", p___fxstat(1, fd, &s), s);
    ST("__fxstat64", p___fxstat64(1, fd, &s64), s64);
    ST("fstatat", p_fstatat(AT_FDCWD, path, &s, 0), s);
    ST("fstatat64", p_fstatat64(AT_FDCWD, path, &s64, AT_SYMLINK_NOFOLLOW), s64);
    ST("fstatat empty", p_fstatat(fd, "", &s, AT_EMPTY_PATH), s);
    ST("stat", p_stat(path, &s), s);
    ST("stat64", p_stat64(path, &s64), s64);
    ST("lstat", p_lstat(path, &s), s);
    ST("lstat64", p_lstat64(path, &s64), s64);
    ST("__xstat", p___xstat(1, path, &s), s);
    ST("__xstat64", p___xstat64(1, path, &s64), s64);
    ST("__lxstat", p___lxstat(1, path, &s), s);
    ST("__lxstat64", p___lxstat64(1, path, &s64), s64);
#undef ST
    memset(&sx, 0, sizeof sx);
    int r = p_statx(AT_FDCWD, path, 0, STATX_SIZE | STATX_TYPE, &sx);
    snprintf(w, sizeof w, "%s statx", tag);
    statline(w, r, (long long)sx.stx_size, sx.stx_mode);
    memset(&sx, 0, sizeof sx);
    r = p_statx(fd, "", AT_EMPTY_PATH, STATX_SIZE | STATX_TYPE, &sx);
    snprintf(w, sizeof w, "%s statx empty", tag);
    statline(w, r, (long long)sx.stx_size, sx.stx_mode);
}

static void t_stat(void) {
    section("stat");
    fill(A, 30000, 2);
    int w = resfd("open", mk("st.dat"));
    int r = resfd("open64 ro", p_open64("st.dat", O_RDONLY));
    res("write", p_write(w, A, 12345));
    res("pwrite", p_pwrite(w, A, 100, 20000));
    /* Right after the writes, before any close or fsync: sizes include
     * the pending data, through either descriptor and by path. */
    stat_all("w", "st.dat", w);
    stat_all("r", "st.dat", r);
    res("write more", p_write(w, A, 9000)); /* 12345..21345 */
    stat_all("grown", "st.dat", r);
    res("lseek64 end r", p_lseek64(r, 0, SEEK_END));
    /* Through a symlink: stat follows it, lstat sees the link. */
    unlink("st.lnk");
    must(symlink("st.dat", "st.lnk") == 0, "symlink");
    stat_all("link", "st.lnk", r);
    struct stat s;
    statline("stat missing", p_stat("missing.dat", &s), s.st_size, s.st_mode);
    statline("fstat bad fd", p_fstat(-1, &s), s.st_size, s.st_mode);
    res("close w", p_close(w));
    stat_all("after close w", "st.dat", r);
    res("close r", p_close(r));
    unlink("st.lnk");
    raw("st.dat");
}

static void t_dup(void) {
    section("dup");
    int fd = resfd("open", mk("dup.dat"));
    res("write", p_write(fd, "0123456789", 10));
    int d1 = resfd("dup", p_dup(fd));
    res("lseek d1", cur(d1));
    res("write d1", p_write(d1, "abc", 3));
    res("lseek fd", cur(fd));
    int d2 = p_dup2(fd, 70);
    printf("dup2 -> 70 %d\n", d2 == 70);
    res("lseek d2 set", p_lseek(d2, 2, SEEK_SET));
    memset(B, 0, 8);
    dig("read fd", B, p_read(fd, B, 4));
    res("lseek d1", cur(d1));
    int d3 = p_dup3(fd, 71, O_CLOEXEC);
    printf("dup3 -> 71 %d\n", d3 == 71);
    res("F_GETFD d3", p_fcntl(d3, F_GETFD));
    res("F_GETFD d2", p_fcntl(d2, F_GETFD));
    int d4 = p_fcntl(fd, F_DUPFD, 72);
    printf("F_DUPFD >= 72 %d\n", d4 >= 72);
    int d5 = p_fcntl64(fd, F_DUPFD_CLOEXEC, 72);
    printf("F_DUPFD_CLOEXEC >= 72 %d\n", d5 >= 72 && d5 != d4);
    res("F_GETFD d5", p_fcntl64(d5, F_GETFD));
    res("F_GETFL d5", p_fcntl(d5, F_GETFL) & (O_ACCMODE | O_APPEND));
    res("write d4", p_write(d4, "XY", 2)); /* at 6 */
    res("lseek d5", cur(d5));
    res("close fd", p_close(fd));
    res("write d5", p_write(d5, "Z", 1)); /* at 8 */
    res("lseek d3", cur(d3));
    res("fstat d2", fsize(d2));
    dig("pread d1", B, p_pread(d1, B, 64, 0));
    res("dup2 self", p_dup2(d1, d1) == d1);
    res("dup3 self", p_dup3(d1, d1, 0));
    res("dup bad", p_dup(-1));
    res("dup2 bad", p_dup2(-1, 75));
    /* dup2 onto a managed descriptor of another file: that file's pending
     * data is written, then the number refers to dup.dat. */
    int g = resfd("open other", mk("dup_other.dat"));
    res("write other", p_write(g, "other file data", 15));
    int g2 = p_dup2(d1, g);
    printf("dup2 onto managed %d\n", g2 == g);
    res("write via replaced", p_write(g, "!", 1)); /* dup.dat at 9 */
    res("lseek d4", cur(d4));
    raw("dup_other.dat");
    int gd = p_dup3(d1, g, 0);
    printf("dup3 onto same file %d\n", gd == g);
    int fds[] = {d1, d2, d3, d4, d5, g};
    for (unsigned i = 0; i < sizeof fds / sizeof fds[0]; i++)
        res("close", p_close(fds[i]));
    raw("dup.dat");
}

static void t_append(void) {
    section("append");
    int a = resfd("open append",
                  p_open("app.dat", O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644));
    int w = resfd("open rdwr", p_open("app.dat", O_RDWR));
    res("write a", p_write(a, "first-", 6));
    res("pwrite w at 0", p_pwrite(w, "XX", 2, 0));
    res("write a", p_write(a, "second", 6));
    res("lseek a", cur(a));
    res("pwrite a at 0 appends", p_pwrite(a, "P", 1, 0));
    res("lseek a", cur(a));
    struct iovec iv[2] = {{"<v1", 3}, {"v2>", 3}};
    res("writev a", p_writev(a, iv, 2));
    res("pwritev a at 1 appends", p_pwritev(a, iv, 2, 1));
    res("lseek a", cur(a));
    res("write w at 0", p_write(w, "zz", 2));
    res("lseek64 end w", p_lseek64(w, 0, SEEK_END));
    res("lseek64 cur a", p_lseek64(a, 0, SEEK_CUR));
    res("lseek a set", p_lseek(a, 3, SEEK_SET));
    res("write a after seek", p_write(a, "!", 1));
    res("lseek a", cur(a));
    dig("pread w", B, p_pread(w, B, 100, 0));
    res("F_GETFL a", p_fcntl(a, F_GETFL) & (O_ACCMODE | O_APPEND));
    res("close a", p_close(a));
    res("close w", p_close(w));
    raw("app.dat");
}

static void t_setfl(void) {
    section("setfl");
    /* F_SETFL O_APPEND on a managed descriptor: its later writes append. */
    int w = resfd("open", mk("setfl.dat"));
    res("write", p_write(w, "0123456789", 10));
    res("lseek set", p_lseek(w, 2, SEEK_SET));
    res("F_SETFL append", p_fcntl(w, F_SETFL, O_APPEND));
    res("F_GETFL", p_fcntl(w, F_GETFL) & (O_ACCMODE | O_APPEND));
    res("lseek cur", cur(w));
    res("write appends", p_write(w, "AP", 2));
    res("lseek cur", cur(w));
    res("F_SETFL none", p_fcntl64(w, F_SETFL, 0));
    res("lseek set", p_lseek(w, 1, SEEK_SET));
    res("write at 1", p_write(w, "b", 1));
    dig("pread", B, p_pread(w, B, 100, 0));
    res("fstat", fsize(w));
    res("close", p_close(w));
    raw("setfl.dat");
}

static void t_trunc(void) {
    section("truncate");
    fill(A, 20000, 3);
    int t = resfd("open", mk("tr.dat"));
    int r = resfd("open ro", p_open("tr.dat", O_RDONLY));
    res("write", p_write(t, A, 10000));
    res("ftruncate shrink", p_ftruncate(t, 4000));
    res("fstat", fsize(t));
    res("fstat r", fsize(r));
    dig("pread across new end", B, p_pread(r, B, 100, 3950));
    res("ftruncate64 grow", p_ftruncate64(t, 9000));
    res("fstat", fsize(t));
    memset(B, 0x55, 6000);
    ssize_t n = p_pread(r, B, 6000, 3000);
    dig("pread grown", B, n);
    must(n == 6000 && memcmp(B, A + 3000, 1000) == 0 && zeros(B + 1000, 5000) == 5000,
         "ftruncate grows with zeros");
    res("lseek cur t", cur(t));
    res("write at 10000", p_write(t, "end", 3));
    res("fstat", fsize(t));
    dig("pread gap", B, p_pread(r, B, 1003, 9000));
    /* By path, while open with pending data. */
    res("truncate", p_truncate("tr.dat", 5000));
    res("fstat t", fsize(t));
    res("lseek64 end r", p_lseek64(r, 0, SEEK_END));
    dig("pread after truncate", B, p_pread(r, B, 100, 4950));
    res("write at 10003", p_write(t, "more", 4));
    res("truncate64", p_truncate64("tr.dat", 6000));
    res("fstat t", fsize(t));
    memset(B, 0x55, 2000);
    dig("pread after truncate64", B, p_pread(r, B, 2000, 4500));
    res("truncate missing", p_truncate("missing.dat", 10));
    res("ftruncate negative", p_ftruncate(t, -1));
    res("ftruncate rdonly", p_ftruncate(r, 10));
    res("close t", p_close(t));
    res("close r", p_close(r));
    raw("tr.dat");
}

static void t_alloc(void) {
    section("fallocate");
    fill(A, 40000, 4);
    int f = resfd("open", mk("fa.dat"));
    int r = resfd("open ro", p_open("fa.dat", O_RDONLY));
    res("write", p_write(f, A, 1000));
    res("fallocate grow", p_fallocate(f, 0, 0, 8192));
    res("fstat", fsize(f));
    res("fstat r", fsize(r));
    res("fallocate64 keep size", p_fallocate64(f, FALLOC_FL_KEEP_SIZE, 8192, 8192));
    res("fstat", fsize(f));
    res("write at 1000", p_write(f, A + 1000, 3000));
    res("fallocate punch", p_fallocate(f, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 2048, 1024));
    memset(B, 0x55, 8192);
    ssize_t n = p_pread(r, B, 8192, 0);
    dig("pread after punch", B, n);
    must(n == 8192 && memcmp(B, A, 2048) == 0 && zeros(B + 2048, 1024) == 1024 &&
             memcmp(B + 3072, A + 3072, 928) == 0,
         "punched range reads as zeros");
    res("write at 4000", p_write(f, A + 4000, 100));
    reserr("posix_fallocate", p_posix_fallocate(f, 0, 20000));
    res("fstat", fsize(f));
    reserr("posix_fallocate64", p_posix_fallocate64(f, 30000, 100));
    res("fstat", fsize(f));
    res("lseek64 end", p_lseek64(r, 0, SEEK_END));
    memset(B, 0x55, 30100);
    n = p_pread(r, B, 40000, 0);
    dig("pread all", B, n);
    must(n == 30100 && zeros(B + 4100, 26000) == 26000, "allocated range reads as zeros");
    res("fallocate rdonly", p_fallocate(r, 0, 0, 100));
    res("fallocate negative", p_fallocate(f, 0, -1, 100));
    reserr("posix_fallocate rdonly", p_posix_fallocate(r, 0, 100));
    res("close", p_close(f));
    res("close r", p_close(r));
    raw("fa.dat");
}

static void t_seek(void) {
    section("seek");
    fill(A, 8192, 5);
    int s = resfd("open", mk("seek.dat"));
    res("write", p_write(s, A, 4096));
    res("pwrite at 1 MiB", p_pwrite(s, A, 4096, 1 << 20));
    res("lseek end", p_lseek(s, 0, SEEK_END));
    res("lseek end -100", p_lseek64(s, -100, SEEK_END));
    res("lseek cur +50", p_lseek(s, 50, SEEK_CUR));
    res("lseek data from 8192", p_lseek(s, 8192, SEEK_DATA));
    res("lseek cur", cur(s));
    res("lseek64 hole from 0", p_lseek64(s, 0, SEEK_HOLE));
    res("lseek data past end", p_lseek(s, 2 << 20, SEEK_DATA));
    res("lseek cur", cur(s));
    res("lseek cur negative", p_lseek(s, -(1 << 30), SEEK_CUR));
    res("lseek past end", p_lseek(s, 2 << 20, SEEK_SET));
    res("write past end", p_write(s, "far", 3));
    res("lseek end", p_lseek(s, 0, SEEK_END));
    res("lseek64 data from 1 MiB + 8192", p_lseek64(s, (1 << 20) + 8192, SEEK_DATA));
    res("close", p_close(s));
    raw("seek.dat");
}

static void t_copy(void) {
    section("copy");
    fill(A, 70000, 6);
    int src = resfd("open src", mk("cp_src.dat"));
    int dst = resfd("open dst", mk("cp_dst.dat"));
    res("write src", p_write(src, A, 70000));
    res("write dst", p_write(dst, "HEADER", 6));
    res("lseek src", p_lseek(src, 1000, SEEK_SET));
    res("copy_file_range cur", p_copy_file_range(src, NULL, dst, NULL, 20000, 0));
    res("lseek src", cur(src));
    res("lseek dst", cur(dst));
    loff_t oi = 30000, oo = 50000;
    res("copy_file_range at", p_copy_file_range(src, &oi, dst, &oo, 5000, 0));
    printf("offsets %lld %lld\n", (long long)oi, (long long)oo);
    res("lseek src", cur(src));
    res("fstat dst", fsize(dst));
    res("write dst", p_write(dst, "--", 2)); /* at 20006 */
    off_t off = 100;
    res("sendfile", p_sendfile(dst, src, &off, 3000)); /* dst 20008.. */
    printf("sendfile off %lld\n", (long long)off);
    res("lseek src", cur(src));
    res("lseek dst", cur(dst));
    res("sendfile64 cur", p_sendfile64(dst, src, NULL, 2000));
    res("lseek src", cur(src));
    res("lseek dst", cur(dst));
    int p[2];
    must(pipe(p) == 0, "pipe");
    loff_t so = 60000;
    res("splice file->pipe", p_splice(src, &so, p[1], NULL, 4000, 0));
    printf("splice off %lld\n", (long long)so);
    res("splice pipe->file", p_splice(p[0], NULL, dst, NULL, 4000, 0));
    res("lseek dst", cur(dst));
    res("splice file->pipe cur", p_splice(src, NULL, p[1], NULL, 1000, 0));
    loff_t doff = 52000;
    res("splice pipe->file at", p_splice(p[0], NULL, dst, &doff, 1000, 0));
    printf("splice doff %lld\n", (long long)doff);
    res("lseek src", cur(src));
    res("lseek dst", cur(dst));
    res("write dst", p_write(dst, "TAIL", 4));
    res("fstat dst", fsize(dst));
    memset(B, 0, 60000);
    dig("pread dst", B, p_pread(dst, B, 60000, 0));
    readback("readback dst", "cp_dst.dat");
    /* Into the source itself through another description. */
    int src2 = resfd("open src again", p_open("cp_src.dat", O_RDWR));
    res("write src2", p_write(src2, "NEWHEAD", 7));
    oi = 0;
    oo = 100000;
    res("copy_file_range same file", p_copy_file_range(src, &oi, src2, &oo, 100, 0));
    res("fstat src", fsize(src));
    dig("pread src", B, p_pread(src, B, 200, 99950));
    close(p[0]);
    close(p[1]);
    res("close src2", p_close(src2));
    res("close src", p_close(src));
    res("close dst", p_close(dst));
    raw("cp_src.dat");
    raw("cp_dst.dat");
}

static void t_mmap(void) {
    section("mmap");
    fill(A, 20000, 8);
    int m2 = resfd("open64", p_open64("mm64.dat", O_RDWR | O_CREAT | O_TRUNC, 0644));
    res("write", p_write(m2, A, 20000));
    char *q = p_mmap64(NULL, 8192, PROT_READ, MAP_PRIVATE, m2, 8192);
    must(q != MAP_FAILED, "mmap64");
    if (q != MAP_FAILED) {
        dig("mmap64 data", q, 8192);
        must(memcmp(q, A + 8192, 8192) == 0, "mmap64 shows pending writes");
        munmap(q, 8192);
    }
    res("write after mmap64", p_write(m2, "x", 1));
    int wo = resfd("open wronly", p_open("mm64.dat", O_WRONLY));
    res("write wo", p_write(wo, "W", 1));
    q = p_mmap(NULL, 4096, PROT_READ, MAP_SHARED, wo, 0);
    printf("mmap wronly %s\n", q == MAP_FAILED ? ename(errno) : "mapped");
    res("close wo", p_close(wo));
    res("close", p_close(m2));
    raw("mm64.dat");
}

static void t_fdopen(void) {
    section("fdopen");
    int f = resfd("open", mk("fd.dat"));
    res("write", p_write(f, "line one\n", 9));
    res("write", p_write(f, "line two\n", 9));
    res("lseek set", p_lseek(f, 0, SEEK_SET));
    FILE *fp = p_fdopen(f, "r+");
    must(fp != NULL, "fdopen");
    char line[64] = "";
    printf("fgets %s", fgets(line, sizeof line, fp) ? line : "(null)\n");
    printf("ftell %ld\n", ftell(fp));
    res("fseek end", fseek(fp, 0, SEEK_END));
    printf("ftell %ld\n", ftell(fp));
    res("fwrite", (long long)fwrite("line three\n", 1, 11, fp));
    res("fflush", fflush(fp));
    res("fclose", fclose(fp));
    raw("fd.dat");

    int g = resfd("open", mk("fd2.dat"));
    res("write", p_write(g, "abc", 3));
    fp = p_fdopen(g, "w");
    must(fp != NULL, "fdopen w");
    res("fwrite", (long long)fwrite("def", 1, 3, fp));
    printf("ftell %ld\n", ftell(fp));
    res("fclose", fclose(fp));
    raw("fd2.dat");

    /* Reading: stdio starts where the descriptor's offset is. */
    int h = resfd("open", p_open("fd.dat", O_RDWR));
    memset(B, 0, 16);
    dig("read 5", B, p_read(h, B, 5));
    fp = p_fdopen(h, "r");
    size_t k = fread(B, 1, 100, fp);
    dig("fread rest", B, (long long)k);
    res("fclose", fclose(fp));
}

static void t_lock(void) {
    section("locks");
    int l = resfd("open", mk("lk.dat"));
    res("write", p_write(l, "locked data 1", 13));
    res("flock ex", p_flock(l, LOCK_EX));
    res("write", p_write(l, " 2", 2));
    res("flock un", p_flock(l, LOCK_UN));
    res("raw size after flock un", raw_size("lk.dat"));
    res("flock sh nb", p_flock(l, LOCK_SH | LOCK_NB));
    res("flock un", p_flock(l, LOCK_UN));
    res("lockf lock", p_lockf(l, F_LOCK, 0));
    res("lockf test", p_lockf(l, F_TEST, 0));
    res("write", p_write(l, " 3", 2));
    res("lockf ulock", p_lockf(l, F_ULOCK, 0));
    res("raw size after lockf ulock", raw_size("lk.dat"));
    res("lockf64 tlock", p_lockf64(l, F_TLOCK, 100));
    res("write", p_write(l, " 4", 2));
    res("lockf64 ulock", p_lockf64(l, F_ULOCK, 100));
    res("raw size after lockf64 ulock", raw_size("lk.dat"));
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    res("fcntl setlk wr", p_fcntl(l, F_SETLK, &fl));
    struct flock q = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    res("fcntl getlk", p_fcntl(l, F_GETLK, &q));
    printf("getlk type unlocked %d\n", q.l_type == F_UNLCK);
    res("write", p_write(l, " 5", 2));
    fl.l_type = F_UNLCK;
    res("fcntl setlk un", p_fcntl(l, F_SETLK, &fl));
    res("raw size after fcntl unlock", raw_size("lk.dat"));
    fl.l_type = F_RDLCK;
    res("fcntl64 setlkw rd", p_fcntl64(l, F_SETLKW, &fl));
    res("write", p_write(l, " 6", 2));
    fl.l_type = F_UNLCK;
    res("fcntl64 setlkw un", p_fcntl64(l, F_SETLKW, &fl));
    res("raw size after fcntl64 unlock", raw_size("lk.dat"));
    struct flock ofd = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 10};
    res("fcntl ofd setlk", p_fcntl(l, F_OFD_SETLK, &ofd));
    res("write", p_write(l, " 7", 2));
    ofd.l_type = F_UNLCK;
    res("fcntl64 ofd setlk un", p_fcntl64(l, F_OFD_SETLK, &ofd));
    res("raw size after ofd unlock", raw_size("lk.dat"));
    dig("pread", B, p_pread(l, B, 100, 0));
    res("flock bad op", p_flock(l, 12345));
    res("lockf bad cmd", p_lockf(l, 99, 0));
    res("close", p_close(l));
    raw("lk.dat");
}

static void t_sync(void) {
    section("sync");
    fill(A, 10000, 9);
    int y = resfd("open", mk("sy.dat"));
    int r = resfd("open ro", p_open("sy.dat", O_RDONLY));
    res("write", p_write(y, A, 5000));
    res("fsync", p_fsync(y));
    res("raw size", raw_size("sy.dat"));
    res("write", p_write(y, A + 5000, 1000));
    res("fdatasync", p_fdatasync(y));
    res("raw size", raw_size("sy.dat"));
    res("write", p_write(y, A + 6000, 1000));
    res("sync_file_range", p_sync_file_range(y, 0, 0,
                                             SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                                                 SYNC_FILE_RANGE_WAIT_AFTER));
    res("raw size", raw_size("sy.dat"));
    res("write", p_write(y, A + 7000, 1000));
    res("syncfs", p_syncfs(y));
    res("raw size", raw_size("sy.dat"));
    res("write", p_write(y, A + 8000, 1000));
    p_sync();
    printf("sync\n");
    res("raw size", raw_size("sy.dat"));
    res("fsync ro", p_fsync(r));
    res("fdatasync ro", p_fdatasync(r));
    res("sync_file_range bad flags", p_sync_file_range(y, 0, 0, 0xff));
    res("fsync bad", p_fsync(-1));
    res("close", p_close(y));
    res("close r", p_close(r));
    raw("sy.dat");
}

static void t_close(void) {
    section("close");
    fill(A, 30000, 10);
    int c = resfd("open", mk("cl.dat"));
    res("write", p_write(c, A, 3000));
    res("close", p_close(c));
    res("raw size", raw_size("cl.dat"));
    res("close again", p_close(c));

    /* close_range over managed descriptors (stdio stays out of range). */
    const char *names[] = {"cr0.dat", "cr1.dat", "cr2.dat"};
    for (int i = 0; i < 3; i++) {
        int fd = mk(names[i]);
        res("write", p_write(fd, A + i * 1000, 1000 + i));
        int n = p_dup2(fd, 100 + i);
        must(n == 100 + i, "dup2 to 100+");
        res("close", p_close(fd));
    }
    res("write 101", p_write(101, "+", 1));
    res("close_range", p_close_range(100, 102, 0));
    for (int i = 0; i < 3; i++)
        res("raw size", raw_size(names[i]));
    res("F_GETFD 101", p_fcntl(101, F_GETFD));
    res("write 101", p_write(101, "x", 1));

    int e = mk("cr_exec.dat");
    res("dup2 110", p_dup2(e, 110) == 110);
    res("close", p_close(e));
    res("write 110", p_write(110, "cloexec", 7));
    res("close_range cloexec", p_close_range(110, 110, CLOSE_RANGE_CLOEXEC));
    res("F_GETFD 110", p_fcntl(110, F_GETFD));
    res("write 110", p_write(110, "!", 1));
    res("fstat 110", fsize(110));
    res("close 110", p_close(110));
    raw("cr_exec.dat");

    /* closefrom over managed descriptors. */
    const char *more[] = {"cf0.dat", "cf1.dat"};
    for (int i = 0; i < 2; i++) {
        int fd = mk(more[i]);
        res("write", p_write(fd, A + 5000, 2000 + i));
        must(p_dup2(fd, 200 + i) == 200 + i, "dup2 to 200+");
        res("close", p_close(fd));
    }
    res("pwrite 200", p_pwrite(200, "@", 1, 5000));
    p_closefrom(200);
    printf("closefrom\n");
    for (int i = 0; i < 2; i++)
        res("raw size", raw_size(more[i]));
    res("F_GETFD 200", p_fcntl(200, F_GETFD));
    res("F_GETFD 201", p_fcntl(201, F_GETFD));
    for (int i = 0; i < 3; i++)
        raw(names[i]);
    for (int i = 0; i < 2; i++)
        raw(more[i]);

    /* Closing every descriptor above a managed one that stays open: the
     * descriptors the shim keeps for it, whatever their numbers, stay. */
    int k = resfd("open", mk("cf_keep.dat"));
    res("write", p_write(k, A, 1000));
    res("close_range above", p_close_range((unsigned)k + 1, ~0U, 0));
    res("write", p_write(k, A + 1000, 1000));
    res("fsync", p_fsync(k));
    p_closefrom(k + 1);
    printf("closefrom above\n");
    res("write", p_write(k, A + 2000, 1000));
    res("fsync", p_fsync(k));
    res("raw size", raw_size("cf_keep.dat"));
    dig("pread", B, p_pread(k, B, 4000, 0));
    res("close", p_close(k));
    raw("cf_keep.dat");
}

static void t_edge(void) {
    section("edges");
    /* pwritev2 RWF_APPEND on a description opened without O_APPEND: the
     * data goes to the end; at offset -1 the offset moves past it. */
    int w = resfd("open", mk("edge.dat"));
    res("write", p_write(w, "0123456789", 10));
    res("lseek set", p_lseek(w, 2, SEEK_SET));
    struct iovec iv[2] = {{"AP", 2}, {"P", 1}};
    res("pwritev2 append cur", p_pwritev2(w, iv, 2, -1, RWF_APPEND));
    res("lseek cur", cur(w));
    res("pwritev64v2 append at 0", p_pwritev64v2(w, iv, 2, 0, RWF_APPEND));
    res("lseek cur", cur(w));
    res("write", p_write(w, "w", 1));
    /* A dup2/dup3/close_range that fails leaves the descriptor as it was. */
    res("dup2 from bad fd", p_dup2(-1, w));
    res("write", p_write(w, "x", 1));
    res("dup3 from bad fd", p_dup3(1000, w, 0));
    res("write", p_write(w, "y", 1));
    res("dup3 bad flags", p_dup3(w, 1001, 12345));
    res("close_range bad flags", p_close_range(w, w, 0x40000000));
    res("write", p_write(w, "z", 1));
    res("lseek cur", cur(w));
    dig("pread", B, p_pread(w, B, 100, 0));
    res("close", p_close(w));
    raw("edge.dat");
}

/* Several descriptions of one file where one of them is served by the
 * kernel directly (mapped, fdopen'ed, O_APPEND set, O_DSYNC): every byte is
 * still seen in program order, through all of them. */
/* Shared writable mappings: the first one hands every file of the process
   to the kernel for good, so these run after everything else that needs
   managed descriptors. */
static void t_shared_map(void) {
    section("shared map");
    fill(A, 1 << 20, 11);
    /* A file read ahead before it is mapped. */
    int big = resfd("open", mk("sh_big.dat"));
    char *p;
    res("write", p_write(big, A, 1 << 20));
    res("fsync", p_fsync(big));
    int r = resfd("open ro", p_open("sh_big.dat", O_RDONLY));
    for (int i = 0; i < 16; i++)
        p_read(r, B, 4096);
    res("lseek ro", cur(r));
    p = p_mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, big, 0);
    must(p != MAP_FAILED, "mmap big");
    memset(p, 'N', 1 << 20);
    res("msync", msync(p, 1 << 20, MS_SYNC));
    dig("read ro after mapping write", B, p_read(r, B, 4096));
    dig("pread ro after mapping write", B, p_pread(r, B, 4096, 500000));
    munmap(p, 1 << 20);
    res("close", p_close(r));
    res("close", p_close(big));
    raw("sh_big.dat");

    /* A mapping sees writes made later through another descriptor. */
    int m = resfd("open", mk("sh_map.dat"));
    int w = resfd("open rdwr", p_open("sh_map.dat", O_RDWR));
    res("write", p_write(m, A, 8192));
    p = p_mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, m, 0);
    must(p != MAP_FAILED, "mmap shared");
    res("pwrite other fd", p_pwrite(w, "NEW", 3, 100));
    dig("mapping after pwrite", p + 96, 12);
    res("write other fd", p_write(w, "more", 4));
    dig("mapping after write", p, 8);
    /* ... and reads through another descriptor see the mapping's writes,
     * also where that one had read ahead. */
    r = resfd("open ro", p_open("sh_map.dat", O_RDONLY));
    for (int i = 0; i < 2; i++)
        dig("read ro", B, p_read(r, B, 4096));
    memset(p, 'M', 8192);
    res("lseek ro", p_lseek(r, 0, SEEK_SET));
    dig("read ro after mapping write", B, p_read(r, B, 4096));
    dig("pread other fd after mapping write", B, p_pread(w, B, 16, 5000));
    munmap(p, 8192);
    res("close", p_close(r));
    res("close", p_close(w));
    res("close", p_close(m));
    raw("sh_map.dat");

    /* A mapping of a file with pending writes. */
    m = resfd("open", mk("mm.dat"));
    r = resfd("open ro", p_open("mm.dat", O_RDONLY));
    res("write", p_write(m, A, 10000));
    res("pwrite", p_pwrite(m, A + 10000, 2000, 12000));
    p = p_mmap(NULL, 14000, PROT_READ | PROT_WRITE, MAP_SHARED, m, 0);
    must(p != MAP_FAILED, "mmap");
    if (p != MAP_FAILED) {
        dig("mmap data", p, 14000);
        must(memcmp(p, A, 10000) == 0 && zeros(p + 10000, 2000) == 2000 &&
                 memcmp(p + 12000, A + 10000, 2000) == 0,
             "mapping shows pending writes");
        memcpy(p + 100, "MAPPED", 6);
        res("msync", msync(p, 14000, MS_SYNC));
        munmap(p, 14000);
    }
    /* The description goes on (passed through) after the mmap. */
    res("lseek cur", cur(m));
    res("write after mmap", p_write(m, "after", 5));
    res("fstat", fsize(m));
    dig("pread r", B, p_pread(r, B, 200, 0));
    res("close", p_close(m));

    res("close r", p_close(r));
    raw("mm.dat");
}

static void t_shared(void) {
    section("shared");
    /* stdio on one descriptor, write() on another. */
    int a = resfd("open", mk("sh_stdio.dat"));
    int b = resfd("open rdwr", p_open("sh_stdio.dat", O_RDWR));
    res("write", p_write(a, "aaaaaaaaaa", 10));
    FILE *fp = p_fdopen(b, "r+");
    must(fp != NULL, "fdopen");
    memset(B, 0, 32);
    res("fread", (long long)fread(B, 1, 10, fp));
    printf("fread %s\n", B);
    res("fseek end", fseek(fp, 0, SEEK_END));
    res("fputs", fputs("SS", fp) >= 0);
    res("fflush", fflush(fp));
    res("write", p_write(a, "bb", 2));
    res("fseek end", fseek(fp, 0, SEEK_END));
    printf("ftell %ld\n", ftell(fp));
    res("fputs", fputs("TT", fp) >= 0);
    res("fflush", fflush(fp));
    res("write", p_write(a, "cc", 2));
    dig("pread", B, p_pread(a, B, 100, 0));
    res("fclose", fclose(fp));
    res("close", p_close(a));
    raw("sh_stdio.dat");

    /* O_APPEND set on one description, another one writes too. */
    int x = resfd("open", mk("sh_setfl.dat"));
    int y = resfd("open rdwr", p_open("sh_setfl.dat", O_RDWR));
    for (int i = 0; i < 40; i++)
        p_pwrite(x, "p", 1, i);
    res("F_SETFL append", p_fcntl(y, F_SETFL, O_APPEND));
    for (int i = 0; i < 10; i++) {
        p_write(x, "X", 1);
        p_write(y, "Y", 1);
    }
    res("fstat", fsize(x));
    dig("pread", B, p_pread(y, B, 200, 0));
    res("close", p_close(x));
    res("close", p_close(y));
    raw("sh_setfl.dat");

    /* An O_DSYNC descriptor beside a buffered one. */
    int c = resfd("open", mk("sh_dsync.dat"));
    res("write", p_write(c, "cccccccccc", 10));
    int d = resfd("open O_DSYNC", p_open("sh_dsync.dat", O_RDWR | O_DSYNC));
    memset(B, 0, 32);
    dig("read O_DSYNC", B, p_read(d, B, 100));
    res("write O_DSYNC", p_write(d, "DD", 2));
    res("write", p_write(c, "ee", 2));
    res("fstat O_DSYNC", fsize(d));
    dig("pread", B, p_pread(c, B, 100, 0));
    dig("pread O_DSYNC", B, p_pread(d, B, 100, 0));
    res("close", p_close(c));
    res("close", p_close(d));
    raw("sh_dsync.dat");
}

/* Megabytes in small and large pieces, overlapping, read back while
 * pending (with small buffers: back-pressure and direct writes). */
static void t_big(void) {
    section("big");
    static char C[3 << 20];
    fill(C, sizeof C, 12);
    int w = resfd("open", mk("big.dat"));
    int r = resfd("open ro", p_open("big.dat", O_RDONLY));
    for (size_t o = 0; o < (2 << 20); o += 4096)
        if (p_write(w, C + o, 4096) != 4096)
            must(0, "small write");
    res("lseek cur", cur(w));
    res("pwrite 3 MiB at 1 MiB", p_pwrite(w, C, 3 << 20, 1 << 20));
    res("write 1 MiB", p_write(w, C + (1 << 20), 1 << 20));
    res("fstat", fsize(r));
    for (int i = 0; i < 5; i++) {
        long long off = (long long)i * 900000;
        ssize_t n = p_pread(r, B, 1 << 20, off);
        char what[64];
        snprintf(what, sizeof what, "pread at %lld", off);
        dig(what, B, n);
    }
    long long total = 0;
    uint64_t h = 1469598103934665603ULL;
    for (;;) {
        ssize_t n = p_read(r, B, 65536);
        if (n <= 0)
            break;
        for (ssize_t i = 0; i < n; i++) {
            h ^= (unsigned char)B[i];
            h *= 1099511628211ULL;
        }
        total += n;
    }
    printf("read all %lld %016llx\n", total, (unsigned long long)h);
    res("close", p_close(w));
    res("close", p_close(r));
    raw("big.dat");
}

static void t_fortify(int argc) {
    section("fortify");
    /* Non-constant flags and sizes: the compiler's fortified paths. */
    volatile int flags = O_RDWR;
    volatile size_t small = 10 * (size_t)argc;
    int c = p_creat("fort.dat", 0644);
    res("write", p_write(c, "fortified read data", 19));
    int fd = resfd("open (__open64_2)", open("fort.dat", flags));
    char buf[64];
    memset(buf, 0, sizeof buf);
    dig("read (__read_chk)", buf, read(fd, buf, small));
    dig("pread (__pread64_chk)", buf, pread(fd, buf, small, 5));
    int fd2 = resfd("openat (__openat64_2)", openat(AT_FDCWD, "fort.dat", flags));
    dig("read (__read_chk)", buf, read(fd2, buf, small + 3));
    res("close", close(fd2));
    res("close", close(fd));
    res("close", p_close(c));
    raw("fort.dat");
}

int main(int argc, char **argv) {
    (void)argv;
    /* Before anything: the shim's constructor left errno alone. */
    printf("errno at start %s\n", errno ? ename(errno) : "0");
    resolve();
    t_open();
    t_rw();
    t_stat();
    t_dup();
    t_append();
    t_setfl();
    t_trunc();
    t_alloc();
    t_seek();
    t_copy();
    t_fdopen();
    t_lock();
    t_sync();
    t_close();
    t_edge();
    t_shared();
    t_big();
    t_fortify(argc);
    t_mmap();
    t_shared_map(); /* last: see there */
    printf("== end failures %d\n", failures);
    return failures ? 1 : 0;
}
