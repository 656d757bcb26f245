/* A writer to kill: writes BYTES to PATH in 4 KiB write()s (no fsync),
 * each block holding its own offsets (8-byte little-endian words: the
 * word at byte o is ID << 48 | o), and after each write returns reports
 * it on stdout as 16 bytes: ID, then the offset the file now reaches.
 * After DIE_AFTER writes (0: never) it ends the way HOW says:
 *   segv    a write through a bad pointer (SIGSEGV)
 *   abort   abort() (SIGABRT)
 *   oom     allocates and touches memory until the OOM killer ends it
 *   wait    sleeps until it is killed
 * usage: crashwriter ID PATH BYTES DIE_AFTER HOW */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void put(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w <= 0) _exit(3);
        c += w;
        n -= (size_t)w;
    }
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: crashwriter ID PATH BYTES DIE_AFTER HOW\n");
        return 2;
    }
    uint64_t id = strtoull(argv[1], 0, 10);
    uint64_t bytes = strtoull(argv[3], 0, 10);
    uint64_t die_after = strtoull(argv[4], 0, 10);
    const char *how = argv[5];
    int fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        perror("crashwriter: open");
        return 1;
    }
    uint64_t block[512];
    uint64_t n = 0;
    for (uint64_t off = 0; off < bytes; off += sizeof block) {
        for (int k = 0; k < 512; k++) block[k] = id << 48 | (off + 8 * (uint64_t)k);
        if (write(fd, block, sizeof block) != (ssize_t)sizeof block) {
            perror("crashwriter: write");
            return 1;
        }
        uint64_t rep[2] = {id, off + sizeof block};
        put(1, rep, sizeof rep);
        if (++n == die_after) {
            if (!strcmp(how, "segv")) {
                int *volatile bad = (int *)16;
                *bad = 1;
            } else if (!strcmp(how, "abort")) {
                abort();
            } else if (!strcmp(how, "oom")) {
                for (;;) {
                    char *p = malloc(1 << 20);
                    if (p) memset(p, 1, 1 << 20);
                }
            } else {
                for (;;) pause();
            }
        }
    }
    return 0;
}
