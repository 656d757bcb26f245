/* Built static, so no preload reaches it: overwrites LEN bytes of FILE at
 * OFFSET with the byte BYTE, as a program outside conveyor would. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 5) return 2;
    int fd = open(argv[1], O_WRONLY);
    if (fd < 0) return 3;
    size_t len = strtoul(argv[3], NULL, 0);
    char *buf = malloc(len);
    memset(buf, argv[4][0], len);
    if (pwrite(fd, buf, len, strtol(argv[2], NULL, 0)) != (ssize_t)len) return 4;
    return close(fd);
}
