/* Wide-character output and input on a file opened with fopen: glibc's
 * streams have a wide side (the streams the shim makes for managed files
 * do not, so a program importing these functions keeps glibc's). */
#include <locale.h>
#include <stdio.h>
#include <wchar.h>

int main(void) {
    setlocale(LC_ALL, "C.UTF-8");
    FILE *f = fopen("wide.txt", "w");
    if (!f) return 2;
    int a = fwprintf(f, L"caf\u00e9 %d\n", 42);
    int b = fputws(L"\u00fcber\n", f);
    int c = fwide(f, 0);
    fclose(f);
    f = fopen("wide.txt", "r");
    wchar_t line[64];
    int lines = 0;
    while (fgetws(line, 64, f)) lines++;
    fclose(f);
    printf("fwprintf %d fputws %d fwide %d lines %d\n", a, b, c > 0, lines);
    return 0;
}
