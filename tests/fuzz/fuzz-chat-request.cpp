// The /v1/chat/completions body parser: any bytes give a request or a 400, never an
// exception, a crash or deep recursion.
#include "server/openai-api.h"

#include <cstddef>
#include <cstdint>
#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    muse::chat_api_request req;
    const muse::api_error  e = muse::parse_chat_body(std::string((const char *) data, size), {}, req);
    if (e && (e.status < 400 || e.status > 499)) {
        std::abort();  // a bad body is the client's error
    }
    return 0;
}
