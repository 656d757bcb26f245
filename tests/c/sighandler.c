/* A program whose signal handler does file I/O on a managed descriptor
 * while the main thread is busy with managed I/O of its own: a timer fires
 * every 100 us and its handler appends one byte to sig.log with write(),
 * and reads a byte of main.dat with pread(). At the end sig.log must hold
 * exactly one byte per handler run and main.dat every record, in order.
 * Usage: sighandler DIR [RECORDS [INTERVAL_US]] (default 20000 and 100) */
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

#define REC 512

static int sig_fd = -1, main_fd = -1;
static volatile sig_atomic_t runs = 0, bad = 0;

static void on_alarm(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    int saved = errno;
    /* SA_SIGINFO: the details arrive as the kernel sent them. */
    if (sig != SIGALRM || si == NULL || si->si_signo != SIGALRM)
        bad = 4;
    char c = 'S';
    if (write(sig_fd, &c, 1) != 1)
        bad = 1;
    char b;
    if (pread(main_fd, &b, 1, 0) != 1 || b != 'R')
        bad = 2;
    runs = runs + 1;
    errno = saved;
}

int main(int argc, char **argv) {
    if (argc < 2 || chdir(argv[1]) != 0)
        return 100;
    int records = argc > 2 ? atoi(argv[2]) : 20000;
    long interval = argc > 3 ? atol(argv[3]) : 100;
    if (records < 2 || interval < 1)
        return 100;
    sig_fd = open("sig.log", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    main_fd = open("main.dat", O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (sig_fd < 0 || main_fd < 0)
        return 101;
    char rec[REC];
    memset(rec, 'R', REC);
    if (write(main_fd, rec, REC) != REC)
        return 102;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_alarm;
    sa.sa_flags = SA_RESTART | SA_SIGINFO;
    sigaction(SIGALRM, &sa, NULL);
    /* The program sees the action it installed. */
    struct sigaction cur;
    if (sigaction(SIGALRM, NULL, &cur) != 0 || cur.sa_sigaction != on_alarm ||
        (cur.sa_flags & (SA_RESTART | SA_SIGINFO)) != (SA_RESTART | SA_SIGINFO))
        bad = 3;
    struct itimerval it = {{0, interval}, {0, interval}};
    setitimer(ITIMER_REAL, &it, NULL);

    for (int i = 1; i < records; i++) {
        snprintf(rec, sizeof rec, "R%09d", i);
        rec[10] = '|';
        ssize_t w;
        while ((w = write(main_fd, rec, REC)) < 0 && errno == EINTR)
            ;
        if (w != REC) {
            fprintf(stderr, "write %d: %s\n", i, strerror(errno));
            return 103;
        }
        if (i % 64 == 0) {
            char back[REC];
            if (pread(main_fd, back, REC, (off_t)(i - 10) * REC) != REC || back[0] != 'R') {
                fprintf(stderr, "read back %d\n", i);
                return 104;
            }
        }
    }
    /* On fast paths the loop can end before the timer fired often: keep
     * reading (which changes no file) until the handler ran 50 times. */
    while (runs < 50) {
        char back[REC];
        if (pread(main_fd, back, REC, 0) != REC || back[0] != 'R')
            return 104;
    }
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    int n = runs;
    if (close(sig_fd) != 0 || close(main_fd) != 0)
        return 105;

    struct stat st;
    if (stat("sig.log", &st) != 0)
        return 106;
    printf("handler runs %d, sig.log %lld bytes, bad %d\n", n, (long long)st.st_size, (int)bad);
    return (st.st_size == n && bad == 0 && n > 0) ? 0 : 1;
}
