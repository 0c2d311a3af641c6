#include "file.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace muse {

namespace {

const char * kind_of(mode_t m) {
    if (S_ISDIR(m)) {
        return "a directory";
    }
    if (S_ISFIFO(m)) {
        return "a FIFO (named pipe)";
    }
    if (S_ISSOCK(m)) {
        return "a socket";
    }
    if (S_ISCHR(m) || S_ISBLK(m)) {
        return "a device";
    }
    return "a special file";
}

}  // namespace

int open_regular_file(const std::string & path, std::string & why, uint64_t * size) {
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        why = path + ": cannot open it (" + std::strerror(errno) + "); check the path and permissions";
        return -1;
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        why = path + ": cannot read its status (" + std::strerror(errno) + ")";
        ::close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        why = path + ": " + kind_of(st.st_mode) + ", not a regular file; give the path of a file";
        ::close(fd);
        return -1;
    }
    const int flags = ::fcntl(fd, F_GETFL);
    if (flags >= 0) {
        ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    }
    if (size) {
        *size = (uint64_t) st.st_size;
    }
    return fd;
}

bool read_fd(int fd, size_t max_bytes, std::string & out) {
    out.clear();
    char buf[1 << 16];
    while (out.size() <= max_bytes) {
        const size_t  want = std::min(sizeof(buf), max_bytes + 1 - out.size());
        const ssize_t n    = ::read(fd, buf, want);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return false;
        }
        if (n == 0) {
            break;
        }
        out.append(buf, (size_t) n);
    }
    return true;
}

std::string file_name(const std::string & path) {
    const size_t slash = path.find_last_of('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

error read_file_capped(const std::string & path, size_t max_bytes, const std::string & what, const std::string & fix,
                       std::string & out) {
    std::string why;
    uint64_t    size = 0;
    const int   fd   = open_regular_file(path, why, &size);
    if (fd < 0) {
        return { ERROR_FILE_NOT_FOUND, why + " (the " + what + ")" };
    }
    auto too_big = [&](uint64_t n) {
        return error{ ERROR_BAD_INPUT, file_name(path) + ": " + std::to_string(n) + " bytes, over the " +
                                           std::to_string(max_bytes) + "-byte limit for " +
                                           (what == "image" ? "an " : "a ") + what + "; " + fix };
    };
    if (size > max_bytes) {
        ::close(fd);
        return too_big(size);
    }
    out.reserve((size_t) size);
    const bool ok = read_fd(fd, max_bytes, out);
    ::close(fd);
    if (!ok) {
        return { ERROR_FILE_NOT_FOUND, path + ": read failed" };
    }
    if (out.size() > max_bytes) {  // it grew while being read
        return too_big(out.size());
    }
    return {};
}

}  // namespace muse
