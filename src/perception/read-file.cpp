#include "read-file.h"

#include "core/file.h"

#include <unistd.h>

namespace muse {

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
