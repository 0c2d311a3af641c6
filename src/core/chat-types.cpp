#include "chat-types.h"

#include "core/limits.h"

namespace muse {

const char * finish_reason_name(finish_reason r) {
    switch (r) {
        case FINISH_NONE:      return "none";
        case FINISH_STOP:      return "stop";
        case FINISH_LENGTH:    return "length";
        case FINISH_CANCELLED: return "cancelled";
        case FINISH_ERROR:     return "error";
        case FINISH_TOOL_CALLS: return "tool_calls";
    }
    return "unknown";
}

std::string validate(const sampling_params & s) {
    // The request limits' ranges (a float's nearest value to a bound counts as the bound).
    // The seed takes any value: 0xFFFFFFFF is random.
    for (const std::string & e : {
             limit_problem(k_limit_temperature, s.temperature),
             limit_problem(k_limit_top_k, s.top_k),
             limit_problem(k_limit_top_p, s.top_p),
             limit_problem(k_limit_min_p, s.min_p),
             limit_problem(k_limit_repeat_penalty, s.repeat_penalty),
             limit_problem(k_limit_frequency_penalty, s.frequency_penalty),
             limit_problem(k_limit_presence_penalty, s.presence_penalty),
         }) {
        if (!e.empty()) {
            return e;
        }
    }
    if (s.repeat_last_n < -1 || s.repeat_last_n > 1000000) {
        return "repeat_last_n must be in [-1, 1000000]";
    }
    return {};
}

}  // namespace muse
