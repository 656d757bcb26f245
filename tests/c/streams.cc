// C++ streams mixed with descriptors on one managed file: libstdc++ opens
// with fopen (no hook sees it) and reads and writes the descriptor itself.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

int main() {
    int fd = open("a", O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return 2;
    std::string text;
    for (int i = 0; i < 289; i++) text += "row " + std::to_string(1000 + i) + "\n";
    text.resize(2890, '.');
    if (write(fd, text.data(), text.size()) != (ssize_t)text.size()) return 3;
    {
        std::ifstream in("a", std::ios::binary);
        std::stringstream ss;
        ss << in.rdbuf();
        std::cout << "ifstream after write: " << ss.str().size() << " bytes, same: "
                  << (ss.str() == text) << "\n";
    }
    {
        std::ofstream out("a", std::ios::app);
        out << "appended by ofstream\n";
    }
    char buf[8192];
    ssize_t n = pread(fd, buf, sizeof buf, 0);
    std::cout << "pread after ofstream: " << n << " bytes, tail: "
              << std::string(buf + (n > 21 ? n - 21 : 0), buf + (n > 0 ? n : 0));
    if (write(fd, "by write\n", 9) != 9) return 4;
    close(fd);
    std::ifstream in("a");
    std::string line, last;
    int lines = 0;
    while (std::getline(in, line)) {
        lines++;
        last = line;
    }
    std::cout << "getline: " << lines << " lines, last: " << last << "\n";
    return 0;
}
