/* Writes 16,000 bytes to argv[1] without closing it, then replaces itself
 * with cat of that file through execl, execlp or execle (argv[2]: l, p, e).
 * Under the shim the writes are still pending at the exec: the exec hook
 * must write them first, or cat prints less. */
#include <unistd.h>
#include <fcntl.h>
#include <string.h>
int main(int argc, char **argv) {
    int fd = open(argv[1], O_WRONLY|O_CREAT|O_TRUNC, 0644);
    for (int i = 0; i < 1000; i++) write(fd, "0123456789abcdef", 16);
    /* no close: exec must not lose the data */
    char *env[] = {"X=1", 0};
    if (argv[2][0] == 'l') execl("/bin/cat", "cat", argv[1], (char*)0);
    if (argv[2][0] == 'p') execlp("cat", "cat", argv[1], (char*)0);
    execle("/bin/cat", "cat", argv[1], (char*)0, env);
    return 1;
}
