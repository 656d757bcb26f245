/* A signal handler that writes to a managed file while the main thread
 * asks about the same file in a loop (fstat, stat, statx, lockf,
 * posix_fallocate, ftruncate, and lseek(SEEK_END) on a second
 * descriptor): each of those must not
 * hold the file's state while the handler can run, or the thread waits
 * for itself. A 50 us timer; the handler appends one byte 'S'. At the end
 * the file holds exactly one 'S' per handler run, then zeros up to the
 * size ftruncate gave it. Usage: sigmeta DIR LOOPS */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#define SIZE (1 << 20)

static int fd = -1;
static volatile sig_atomic_t runs = 0, bad = 0;

static void on_alarm(int sig) {
    (void)sig;
    int saved = errno;
    char c = 'S';
    if (write(fd, &c, 1) != 1)
        bad = 1;
    else
        runs = runs + 1;
    errno = saved;
}

int main(int argc, char **argv) {
    if (argc < 3 || chdir(argv[1]) != 0)
        return 100;
    int loops = atoi(argv[2]);
    fd = open("meta.dat", O_RDWR | O_CREAT | O_TRUNC, 0644);
    /* A second description of the file, for lseek(SEEK_END) without
     * moving the handler's offset. */
    int other = open("meta.dat", O_RDONLY);
    if (fd < 0 || other < 0)
        return 101;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = {{0, 50}, {0, 50}};
    setitimer(ITIMER_REAL, &it, NULL);
    for (int i = 0; i < loops; i++) {
        struct stat st;
        struct statx sx;
        if (fstat(fd, &st) != 0 || stat("meta.dat", &st) != 0 ||
            statx(AT_FDCWD, "meta.dat", 0, STATX_SIZE, &sx) != 0)
            return 102;
        if (lockf(fd, F_LOCK, 0) != 0 || lockf(fd, F_ULOCK, 0) != 0)
            return 103;
        if (i % 16 == 0) {
            int e = posix_fallocate(fd, 0, 4096);
            if (e != 0) {
                fprintf(stderr, "posix_fallocate: %s\n", strerror(e));
                return 104;
            }
            if (ftruncate(fd, SIZE) != 0)
                return 105;
        }
        if (lseek(other, 0, SEEK_END) < 0)
            return 106;
    }
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    int n = runs;
    if (bad) {
        fprintf(stderr, "the handler's write failed\n");
        return 107;
    }
    if (n >= SIZE) {
        fprintf(stderr, "too many handler runs for the check: %d\n", n);
        return 108;
    }
    static char buf[SIZE];
    ssize_t got = pread(fd, buf, SIZE, 0);
    if (got != SIZE) {
        fprintf(stderr, "size %zd, want %d\n", got, SIZE);
        return 109;
    }
    for (int i = 0; i < SIZE; i++) {
        if (buf[i] != (i < n ? 'S' : 0)) {
            fprintf(stderr, "byte %d is %d after %d handler runs\n", i, buf[i], n);
            return 110;
        }
    }
    printf("%d handler runs\n", n);
    return close(fd) == 0 ? 0 : 111;
}
