#include "read-file.h"

#include <cstdint>
#include <fstream>

namespace muse {

std::string file_name(const std::string & path) {
    const size_t slash = path.find_last_of('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

error read_file_capped(const std::string & path, size_t max_bytes, const std::string & what, const std::string & fix,
                       std::string & out) {
    std::ifstream f(path, std::ios::binary | std::ios::ate);
    if (!f) {
        return { ERROR_FILE_NOT_FOUND, path + ": cannot open the " + what + " (check the path and permissions)" };
    }
    const std::streamoff size = f.tellg();
    if (size < 0) {
        return { ERROR_FILE_NOT_FOUND, path + ": cannot read the " + what };
    }
    if ((uint64_t) size > max_bytes) {
        return { ERROR_BAD_INPUT, file_name(path) + ": " + std::to_string(size) +
                                      " bytes, over the " + std::to_string(max_bytes) + "-byte limit for " +
                                      (what == "image" ? "an " : "a ") + what + "; " + fix };
    }
    out.assign((size_t) size, '\0');
    f.seekg(0);
    if (size > 0 && !f.read(&out[0], size)) {
        return { ERROR_FILE_NOT_FOUND, path + ": read failed" };
    }
    return {};
}

}  // namespace muse
