#include "random.h"

#include <cerrno>
#include <stdexcept>
#include <sys/random.h>
#include <vector>

namespace muse {

std::string random_hex(size_t n) {
    std::vector<unsigned char> bytes((n + 1) / 2);
    size_t                     got = 0;
    while (got < bytes.size()) {
        const ssize_t r = getrandom(bytes.data() + got, bytes.size() - got, 0);
        if (r < 0 && errno != EINTR) {
            throw std::runtime_error("getrandom failed");
        }
        got += r > 0 ? (size_t) r : 0;
    }
    static const char * digits = "0123456789abcdef";
    std::string         s;
    for (unsigned char b : bytes) {
        s += digits[b >> 4];
        s += digits[b & 15];
    }
    s.resize(n);
    return s;
}

}  // namespace muse
