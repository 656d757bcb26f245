/* Writes 16,000 bytes to argv[1] without closing it, then ends according to
 * argv[2]: replaces itself with cat of the file through execl, execlp or
 * execle (l, p, e), or ends by returning from main (r), exit (x), _exit (_)
 * or _Exit (E). Under the shim the writes are still pending at that point:
 * the hooks and exit handlers must write them first. */
#include <unistd.h>
#include <fcntl.h>
#include <string.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    int fd = open(argv[1], O_WRONLY|O_CREAT|O_TRUNC, 0644);
    for (int i = 0; i < 1000; i++) write(fd, "0123456789abcdef", 16);
    /* no close: exec must not lose the data */
    char *env[] = {"X=1", 0};
    if (argv[2][0] == 'r') return 0;
    if (argv[2][0] == 'x') exit(0);
    if (argv[2][0] == '_') _exit(0);
    if (argv[2][0] == 'E') _Exit(0);
    if (argv[2][0] == 'l') execl("/bin/cat", "cat", argv[1], (char*)0);
    if (argv[2][0] == 'p') execlp("cat", "cat", argv[1], (char*)0);
    execle("/bin/cat", "cat", argv[1], (char*)0, env);
    return 1;
}
