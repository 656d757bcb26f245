/* stdio mixed with descriptors on one managed file: the streams read and
 * write through glibc's internal calls, which no hook sees. Prints what
 * each step saw; the test compares it with the plain run. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static void fill(int fd, char c, size_t n) {
    char buf[4096];
    memset(buf, c, sizeof buf);
    while (n > 0) {
        size_t k = n < sizeof buf ? n : sizeof buf;
        if (write(fd, buf, k) != (ssize_t)k) exit(3);
        n -= k;
    }
}

static unsigned long sum(const unsigned char *p, size_t n) {
    unsigned long s = 0;
    for (size_t i = 0; i < n; i++) s = s * 31 + p[i];
    return s;
}

int main(void) {
    /* 1. write() then fopen + fread, fstat and mmap through the stream. */
    int fd = open("a", O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return 2;
    for (int i = 0; i < 100; i++) dprintf(fd, "line %04d\n", i);
    fill(fd, 'x', 100);
    FILE *s = fopen("a", "r");
    if (!s) return 4;
    char buf[65536];
    size_t n = fread(buf, 1, sizeof buf, s);
    printf("fread after write: %zu bytes, sum %lu\n", n, sum((unsigned char *)buf, n));
    struct stat st;
    fstat(fileno(s), &st);
    printf("fstat through the stream: %lld\n", (long long)st.st_size);
    void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fileno(s), 0);
    if (m == MAP_FAILED) return 5;
    printf("mapping sum %lu\n", sum(m, (size_t)st.st_size));
    munmap(m, (size_t)st.st_size);
    fclose(s);

    /* 2. freopen onto stdin and fgets, after more writes. */
    fill(fd, 'y', 10);
    dprintf(fd, "\nlast line\n");
    if (!freopen("a", "r", stdin)) return 6;
    int lines = 0;
    char line[256];
    while (fgets(line, sizeof line, stdin)) lines++;
    printf("freopen + fgets: %d lines, last: %s", lines, line);
    close(fd);

    /* 3. A descriptor reading sequentially while a stream rewrites the
     * middle of the file with fwrite + fflush. */
    int w = open("b", O_RDWR | O_CREAT | O_TRUNC, 0644);
    fill(w, 'a', 256 << 10);
    close(w);
    int r = open("b", O_RDONLY);
    if (r < 0) return 7;
    if (read(r, buf, 4096) != 4096) return 8;
    FILE *u = fopen("b", "r+");
    if (!u) return 9;
    fseek(u, 64 << 10, SEEK_SET);
    memset(buf, 'b', sizeof buf);
    fwrite(buf, 1, 64 << 10, u);
    fflush(u);
    long bs = 0;
    ssize_t k;
    while ((k = read(r, buf, 4096)) > 0)
        for (ssize_t i = 0; i < k; i++) bs += buf[i] == 'b';
    printf("read() after a stream's fwrite: %ld new bytes\n", bs);
    fclose(u);
    close(r);

    /* 4. A stream written first, then a descriptor of the same file. */
    FILE *o = fopen("c", "w");
    for (int i = 0; i < 5000; i++) fprintf(o, "record %d\n", i);
    int cd = open("c", O_RDONLY);
    fflush(o);
    n = (size_t)read(cd, buf, sizeof buf);
    printf("read() of a stream's flushed data: %zu bytes, sum %lu\n", n, sum((unsigned char *)buf, n));
    fclose(o);
    close(cd);
    return 0;
}
