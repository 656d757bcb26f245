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
#include <stdlib.h>
#include <unistd.h>

static int fd_of(void *cookie) { return (int)(intptr_t)cookie; }

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

static int stream_close(void *cookie) { return close(fd_of(cookie)); }

/* A stream on descriptor `fd` opened with `mode` (as fopen's), whose
 * fileno is `fd`; NULL with errno set when glibc cannot make one. */
__attribute__((visibility("hidden"))) FILE *conveyor_stream(int fd, const char *mode) {
    cookie_io_functions_t io = {stream_read, stream_write, stream_seek, stream_close};
    FILE *f = fopencookie((void *)(intptr_t)fd, mode, io);
    if (f != NULL)
        f->_fileno = fd;
    return f;
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
