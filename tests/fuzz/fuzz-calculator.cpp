// The calculator tool's expression language (exact rationals on big integers): any text
// gives a value or an error, in bounded time and memory.
#include "agents/tools/calculator.h"
#include "core/number.h"

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    if (size > (1u << 16)) {
        return 0;
    }
    (void) muse::calculate(std::string((const char *) data, size));
    std::string out;
    (void) muse::normalize_number(std::string((const char *) data, size), out);
    return 0;
}
