#include "error.h"

namespace muse {

const char * error_code_name(error_code code) {
    switch (code) {
        case ERROR_NONE:             return "none";
        case ERROR_INVALID_ARGUMENT: return "invalid_argument";
        case ERROR_FILE_NOT_FOUND:   return "file_not_found";
        case ERROR_NOT_GGUF:         return "not_gguf";
        case ERROR_CORRUPT_MODEL:    return "corrupt_model";
        case ERROR_UNSUPPORTED_ARCH: return "unsupported_architecture";
        case ERROR_MODEL_LOAD:       return "model_load_failed";
        case ERROR_PROJECTOR_LOAD:   return "projector_load_failed";
        case ERROR_CONTEXT_OVERFLOW: return "context_overflow";
        case ERROR_NO_KV_SLOT:       return "no_kv_slot";
        case ERROR_DECODE:           return "decode_failed";
        case ERROR_PARENT_NOT_FOUND: return "parent_not_found";
        case ERROR_ENGINE_STOPPED:   return "engine_stopped";
        case ERROR_BAD_INPUT:        return "bad_input";
        case ERROR_NOT_FOUND:        return "not_found";
        case ERROR_STORAGE:          return "storage_error";
        case ERROR_UNAVAILABLE:      return "backend_unavailable";
        case ERROR_INTERNAL:         return "internal_error";
    }
    return "unknown";
}

}  // namespace muse
