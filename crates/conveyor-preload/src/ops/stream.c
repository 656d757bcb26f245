/* Streams of managed files: glibc's own stdio reads and writes a FILE
 * through internal calls no hook sees, so a stream on a managed descriptor
 * is a cookie stream (fopencookie) whose reads, writes, seeks and close are
 * the program-visible read, write, lseek64 and close: they reach the
 * shim's hooks through the dynamic symbol table, exactly as the program's
 * own calls on the descriptor do (in a forked child, or once the file is
 * handed to the kernel, they are the kernel's). glibc keeps the buffering,
 * ungetc, setvbuf, ftell arithmetic and locking; `fileno` answers the
 * descriptor. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <unistd.h>

/* Told when a stream of ours closes (ops/stream.rs keeps the list of
 * them, so that freopen knows one); set before the first stream is made. */
static void (*closed_hook)(int fd, FILE *f);

__attribute__((visibility("hidden"))) void conveyor_stream_on_close(void (*hook)(int, FILE *)) {
    closed_hook = hook;
}

/* The cookie: the descriptor, and the stream it serves. */
struct cookie {
    int fd;
    FILE *file;
};

static int fd_of(void *cookie) { return ((struct cookie *)cookie)->fd; }

static ssize_t stream_read(void *cookie, char *buf, size_t n) {
    for (;;) {
        ssize_t r = read(fd_of(cookie), buf, n);
        if (r >= 0 || errno != EINTR)
            return r;
    }
}

/* glibc takes a short count from a cookie writer as an error, so the
 * whole buffer is written here, as its own file streams do. */
static ssize_t stream_write(void *cookie, const char *buf, size_t n) {
    size_t done = 0;
    while (done < n) {
        ssize_t r = write(fd_of(cookie), buf + done, n - done);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return done > 0 ? (ssize_t)done : -1;
        }
        if (r == 0)
            break;
        done += (size_t)r;
    }
    return (ssize_t)done;
}

static int stream_seek(void *cookie, off64_t *pos, int whence) {
    off64_t r = lseek64(fd_of(cookie), *pos, whence);
    if (r < 0)
        return -1;
    *pos = r;
    return 0;
}

static int stream_close(void *cookie) {
    struct cookie *c = cookie;
    int fd = c->fd;
    if (closed_hook != NULL)
        closed_hook(fd, c->file);
    free(c);
    return close(fd);
}

/* glibc's flags of a FILE (libio.h; part of its ABI since libio). */
#define CONVEYOR_IO_USER_BUF 0x0001
#define CONVEYOR_IO_NO_READS 0x0004
#define CONVEYOR_IO_NO_WRITES 0x0008
#define CONVEYOR_IO_IS_APPENDING 0x1000

/* glibc gives a stream of a file a buffer of the file's block size when
 * that is below BUFSIZ; a cookie stream always gets BUFSIZ. The same
 * size as glibc's own stream keeps the program's bytes reaching the file
 * at the same moments (a program that _exits with data buffered, or mixes
 * write(fileno(f)) with unflushed fprintf, leaves the same file). The
 * buffer is glibc's to free at fclose, as one it allocated. */
static void same_buffer(FILE *f, long blksize) {
    if (blksize <= 0 || blksize >= BUFSIZ)
        return;
    size_t size = (size_t)blksize;
    char *buf = malloc(size);
    if (buf == NULL)
        return;
    if (setvbuf(f, buf, _IOFBF, size) != 0) {
        free(buf);
        return;
    }
    f->_flags &= ~CONVEYOR_IO_USER_BUF;
}

/* A stream on descriptor `fd`, opened with `mode` as fopen would (`rw`:
 * the normalised mode fopencookie understands: "r", "w", "a", with "+"),
 * whose fileno is `fd` and whose buffer is what glibc would give a file of
 * block size `blksize`; NULL with errno set when glibc cannot make one. */
__attribute__((visibility("hidden"))) FILE *conveyor_stream(int fd, const char *rw, long blksize) {
    cookie_io_functions_t io = {stream_read, stream_write, stream_seek, stream_close};
    struct cookie *c = malloc(sizeof *c);
    if (c == NULL)
        return NULL;
    c->fd = fd;
    FILE *f = fopencookie(c, rw, io);
    if (f == NULL) {
        int e = errno;
        free(c);
        errno = e;
        return NULL;
    }
    c->file = f;
    f->_fileno = fd;
    same_buffer(f, blksize);
    return f;
}

/* After freopen moved another file onto the stream's descriptor: what was
 * buffered is dropped (it was flushed before), the error and end-of-file
 * marks cleared, the access set as `rw` says, the position unknown. */
__attribute__((visibility("hidden"))) void conveyor_stream_reset(FILE *f, const char *rw) {
    __fpurge(f);
    clearerr(f);
    int plus = rw[1] == '+';
    f->_flags &= ~(CONVEYOR_IO_NO_READS | CONVEYOR_IO_NO_WRITES | CONVEYOR_IO_IS_APPENDING);
    if (rw[0] == 'r' && !plus)
        f->_flags |= CONVEYOR_IO_NO_WRITES;
    if (rw[0] != 'r' && !plus)
        f->_flags |= CONVEYOR_IO_NO_READS;
    if (rw[0] == 'a')
        f->_flags |= CONVEYOR_IO_IS_APPENDING;
    f->_offset = -1;
}

/* glibc's flags of a FILE (libio.h) the program set with setvbuf. */
#define CONVEYOR_IO_UNBUFFERED 0x0002
#define CONVEYOR_IO_LINE_BUF 0x0200

/* Gives stdout a buffer of `size` bytes when the program has not used it
 * or chosen its buffering yet (CONVEYOR_STDOUT_BUFFER); 1 if it did. */
__attribute__((visibility("hidden"))) int conveyor_widen_stdout(size_t size) {
    FILE *f = stdout;
    if (f == NULL || f->_IO_buf_base != NULL ||
        (f->_flags & (CONVEYOR_IO_UNBUFFERED | CONVEYOR_IO_LINE_BUF)) != 0)
        return 0;
    char *buf = malloc(size);
    if (buf == NULL)
        return 0;
    if (setvbuf(f, buf, _IOFBF, size) != 0) {
        free(buf);
        return 0;
    }
    return 1;
}
