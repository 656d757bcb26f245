/* stdio streams of managed files, as a program uses them: each step prints
 * what it saw, and leaves files the test compares byte for byte with the
 * plain run's. Run in an empty directory. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static unsigned long sum_file(const char *name) {
    FILE *f = fopen(name, "rb");
    if (!f) return 0;
    unsigned long s = 0;
    int c;
    while ((c = getc(f)) != EOF) s = s * 31 + (unsigned)c;
    fclose(f);
    return s;
}

int main(void) {
    /* 1. fprintf per line, ftell, fseek back-patching a header. */
    FILE *f = fopen("log.txt", "w");
    if (!f) return 2;
    fprintf(f, "HEADER ????????\n");
    for (int i = 0; i < 20000; i++) fprintf(f, "%06d record with some text %d\n", i, i * 7);
    long end = ftell(f);
    fseek(f, 7, SEEK_SET);
    fprintf(f, "%08ld", end);
    fseek(f, 0, SEEK_END);
    printf("1. ftell %ld, after seek to end %ld, fileno ok %d\n", end, ftell(f), fileno(f) > 2);
    if (fclose(f) != 0) return 3;

    /* 2. fwrite of records, back-patched with fseek, read back with fread. */
    f = fopen("records.bin", "w+b");
    if (!f) return 4;
    struct { int id; char name[28]; } rec;
    for (int i = 0; i < 3000; i++) {
        memset(&rec, 0, sizeof rec);
        rec.id = i;
        snprintf(rec.name, sizeof rec.name, "name-%d", i);
        fwrite(&rec, sizeof rec, 1, f);
    }
    for (int i = 0; i < 3000; i += 97) {
        fseek(f, (long)i * (long)sizeof rec, SEEK_SET);
        rec.id = -i;
        fwrite(&rec.id, sizeof rec.id, 1, f);
    }
    rewind(f);
    long neg = 0, n = 0;
    while (fread(&rec, sizeof rec, 1, f) == 1) {
        n++;
        neg += rec.id < 0;
    }
    printf("2. %ld records read back, %ld patched\n", n, neg);
    fclose(f);

    /* 3. write(fileno(f)) between fprintf calls, in the order the program
     * flushes. */
    f = fopen("mixed.txt", "w");
    fprintf(f, "one\n");
    fflush(f);
    write(fileno(f), "two\n", 4);
    fprintf(f, "three\n");
    fflush(NULL);
    write(fileno(f), "four\n", 5);
    fclose(f);

    /* 4. Unbuffered putc and a line-buffered stream set by the program. */
    f = fopen("chars.txt", "w");
    setvbuf(f, NULL, _IONBF, 0);
    for (int i = 0; i < 5000; i++) putc('a' + i % 26, f);
    fclose(f);
    f = fopen("lines.txt", "w");
    setvbuf(f, NULL, _IOLBF, 0);
    for (int i = 0; i < 500; i++) fprintf(f, "line %d\n", i);
    fclose(f);

    /* 5. Reading: fgets, getline, ungetc, fscanf, getc to EOF. */
    f = fopen("log.txt", "r");
    char line[256];
    int lines = 0;
    while (fgets(line, sizeof line, f)) lines++;
    rewind(f);
    int c = getc(f);
    ungetc(c, f);
    char *lp = NULL;
    size_t cap = 0;
    ssize_t got = getline(&lp, &cap, f);
    int id = 0;
    int scanned = fscanf(f, "%d", &id);
    printf("5. %d lines, first %zd bytes: %s   then fscanf %d -> %d, sum %lu\n", lines, got, lp, scanned, id, sum_file("log.txt"));
    free(lp);
    fclose(f);

    /* 6. Appending: "a" starts at the end; "a+" reads from the start. */
    f = fopen("log.txt", "a");
    printf("6. append ftell before writing %ld\n", ftell(f));
    fprintf(f, "appended\n");
    fclose(f);
    f = fopen("log.txt", "a+");
    fgets(line, sizeof line, f);
    fprintf(f, "appended again\n");
    printf("6. a+ first line %s", line);
    fclose(f);

    /* 7. fdopen of a descriptor the program opened and wrote. */
    int fd = open("fd.txt", O_RDWR | O_CREAT | O_TRUNC, 0644);
    write(fd, "from write()\n", 13);
    f = fdopen(fd, "r+");
    fseek(f, 0, SEEK_SET);
    fgets(line, sizeof line, f);
    fseek(f, 0, SEEK_END);
    fprintf(f, "from fprintf after reading: %s", line);
    fclose(f);
    printf("7. fd.txt sum %lu\n", sum_file("fd.txt"));

    /* 8. fork with data still in the stream's buffer: the child inherits
     * it, and both flush their copies. */
    f = fopen("fork.txt", "w");
    fprintf(f, "before fork\n");
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        fprintf(f, "child\n");
        exit(0);
    }
    waitpid(pid, NULL, 0);
    fprintf(f, "parent\n");
    fclose(f);

    /* 9. A stream from popen, and one to /dev/null, are the kernel's. */
    FILE *p = popen("cat > popen.txt", "w");
    fprintf(p, "through a pipe\n");
    pclose(p);

    /* 10. fstat through fileno sees buffered-then-flushed data. */
    f = fopen("size.txt", "w");
    fprintf(f, "%0500d", 7);
    fflush(f);
    struct stat st;
    fstat(fileno(f), &st);
    printf("10. fstat after fflush %lld\n", (long long)st.st_size);
    fclose(f);

    /* 11. A failed open sets errno as fopen does. */
    errno = 0;
    f = fopen("missing/dir/file", "r");
    printf("11. missing: %s, %s\n", f ? "opened" : "NULL", strerror(errno));
    f = fopen("log.txt", "wx");
    printf("11. exclusive on an existing file: %s, %s\n", f ? "opened" : "NULL", strerror(errno));

    /* 12. freopen of stdout onto a file of the selected directory. */
    fflush(stdout);
    int saved = dup(1);
    if (!freopen("stdout.txt", "w", stdout)) return 5;
    for (int i = 0; i < 1000; i++) printf("to stdout.txt %d\n", i);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);

    /* 14. freopen of a stream onto another file, and of the same file
     * for reading (a null path). */
    f = fopen("re.txt", "w");
    fputs("abcd", f);
    f = freopen("re2.txt", "w", f);
    fputs("xyz\n", f);
    f = freopen(NULL, "r", f);
    fgets(line, sizeof line, f);
    printf("14. freopen: fileno ok %d, read back %s", fileno(f) > 2, line);
    fclose(f);

    /* 15. "+" anywhere in the mode, as glibc reads it. */
    f = fopen("re2.txt", "re+");
    printf("15. re+ fputs %d\n", fputs("W", f) >= 0);
    fclose(f);
    f = fopen("wxp.txt", "wx+");
    fputs("Wx", f);
    rewind(f);
    printf("15. wx+ read back %c\n", fgetc(f));
    fclose(f);

    /* 16. The stream's buffer is glibc's size for the file: the kernel
     * offset after 5,800 bytes shows what was written so far. */
    f = fopen("buffer.txt", "w");
    for (int i = 0; i < 100; i++) fputs("0123456789012345678901234567890123456789012345678901234\n", f);
    printf("16. offset after 5800 buffered bytes %lld\n", (long long)lseek(fileno(f), 0, SEEK_CUR));
    fclose(f);

    /* 13. Left for exit() to flush (no fclose). */
    f = fopen("atexit.txt", "w");
    for (int i = 0; i < 3000; i++) fprintf(f, "flushed by exit %d\n", i);
    return 0;
}
