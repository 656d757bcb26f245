/* Writes 16,000 bytes to argv[1] without closing it, then ends according to
 * argv[2]: replaces itself with cat of the file through execl, execlp or
 * execle (l, p, e), or ends by returning from main (r), exit (x), _exit (_)
 * or _Exit (E), or by SIGTERM: default action (t), default set again with
 * signal() after asking what it was (d), the program's own handler (h);
 * or forks a child that dies of SIGTERM and reports how it ended (f).
 * Under the shim the writes are still pending at that point:
 * the hooks and exit handlers must write them first. */
#include <unistd.h>
#include <fcntl.h>
#include <string.h>
#include <stdlib.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>

static void on_term(int sig) {
    (void)sig;
    write(1, "handled\n", 8);
    _exit(3);
}
int main(int argc, char **argv) {
    int fd = open(argv[1], O_WRONLY|O_CREAT|O_TRUNC, 0644);
    for (int i = 0; i < 1000; i++) write(fd, "0123456789abcdef", 16);
    /* no close: exec must not lose the data */
    char *env[] = {"X=1", 0};
    if (argv[2][0] == 'r') return 0;
    if (argv[2][0] == 't') raise(SIGTERM);
    if (argv[2][0] == 'd') {
        struct sigaction old;
        sigaction(SIGTERM, NULL, &old);
        printf("query %s\n", old.sa_handler == SIG_DFL ? "default" : "other");
        printf("previous %s\n", signal(SIGTERM, SIG_DFL) == SIG_DFL ? "default" : "other");
        fflush(stdout);
        raise(SIGTERM);
    }
    if (argv[2][0] == 'f') {
        pid_t p = fork();
        if (p == 0) {
            raise(SIGTERM);
            _exit(9);
        }
        int st;
        waitpid(p, &st, 0);
        printf("child %s %d\n", WIFSIGNALED(st) ? "signal" : "exit",
               WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
        return 0;
    }
    if (argv[2][0] == 'h') {
        signal(SIGTERM, on_term);
        raise(SIGTERM);
    }
    if (argv[2][0] == 'x') exit(0);
    if (argv[2][0] == '_') _exit(0);
    if (argv[2][0] == 'E') _Exit(0);
    if (argv[2][0] == 'l') execl("/bin/cat", "cat", argv[1], (char*)0);
    if (argv[2][0] == 'p') execlp("cat", "cat", argv[1], (char*)0);
    execle("/bin/cat", "cat", argv[1], (char*)0, env);
    return 1;
}
