/* A managed file reached by code no hook sees: stdio on descriptor 1
 * after the program moved the file there (fcntl F_DUPFD or dup2), a vfork
 * child that dup2s it and execs, and posix_spawn with a dup2 action. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static void put(int fd, const char *s) {
    if (write(fd, s, strlen(s)) != (ssize_t)strlen(s)) exit(3);
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "dupfd";
    if (!strcmp(mode, "append")) {
        /* An O_APPEND file opened straight onto descriptor 1, written by
         * write() and by printf in turn: every piece in program order. */
        int saved = dup(1);
        close(1);
        if (open("out", O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644) != 1) return 8;
        put(1, "a\n");
        printf("b\n");
        fflush(stdout);
        put(1, "c\n");
        printf("d\n");
        fflush(stdout);
        dup2(saved, 1);
        close(saved);
        int in = open("out", O_RDONLY);
        char buf[64];
        ssize_t n = read(in, buf, sizeof buf);
        if (n < 0 || write(1, buf, (size_t)n) != n) return 9;
        return 0;
    }
    int fd = open("out", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return 2;
    put(fd, "a\n");
    if (!strcmp(mode, "dupfd") || !strcmp(mode, "dup2")) {
        int saved = dup(1);
        close(1);
        int low = !strcmp(mode, "dupfd") ? fcntl(fd, F_DUPFD, 0) : dup2(fd, 1);
        if (low != 1) return 4;
        printf("b\n");
        fflush(stdout);
        put(fd, "c\n");
        printf("d\n");
        fflush(stdout);
        dup2(saved, 1);
        close(saved);
    } else if (!strcmp(mode, "vfork")) {
        pid_t pid = vfork();
        if (pid == 0) {
            dup2(fd, 1);
            execl("/bin/echo", "echo", "b", (char *)NULL);
            _exit(127);
        }
        waitpid(pid, NULL, 0);
        put(fd, "c\n");
    } else {
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, fd, 1);
        char *args[] = {"echo", "b", NULL};
        pid_t pid;
        if (posix_spawn(&pid, "/bin/echo", &fa, NULL, args, environ) != 0) return 5;
        waitpid(pid, NULL, 0);
        posix_spawn_file_actions_destroy(&fa);
        put(fd, "c\n");
    }
    put(fd, "e\n");
    char buf[256];
    ssize_t n = pread(fd, buf, sizeof buf, 0);
    if (n < 0) return 6;
    if (write(1, buf, (size_t)n) != n) return 7;
    close(fd);
    return 0;
}
