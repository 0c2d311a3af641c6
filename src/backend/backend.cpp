#include "backend.h"

#include "core/limits.h"

namespace muse {

void chat_result::add(const chat_event & ev) {
    logprobs.insert(logprobs.end(), ev.logprobs.begin(), ev.logprobs.end());
    switch (ev.type) {
        case chat_event::REASONING: reasoning += ev.text; break;
        case chat_event::CONTENT:   content += ev.text; break;
        case chat_event::TOOL_CALL:
            if (ev.tool_call_index >= 0) {
                if ((size_t) ev.tool_call_index >= tool_calls.size()) {
                    tool_calls.resize(ev.tool_call_index + 1);
                }
                auto & tc = tool_calls[ev.tool_call_index];
                if (!ev.tool_call.id.empty()) {
                    tc.id = ev.tool_call.id;
                }
                tc.name += ev.tool_call.name;
                tc.arguments += ev.tool_call.arguments;
            }
            break;
        case chat_event::DONE:
            finish = ev.finish;
            use    = ev.use;
            err    = ev.err;
            break;
    }
}

chat_result collect(chat_stream & stream) {
    chat_result r;
    chat_event  ev;
    while (stream.next(ev)) {
        r.add(ev);
    }
    return r;
}

error check_request(const chat_request & req, bool can_fork) {
    if (req.messages.empty()) {
        return { ERROR_INVALID_ARGUMENT, "messages: at least one message is required" };
    }
    if (std::string msg = validate(req.sampling); !msg.empty()) {
        return { ERROR_INVALID_ARGUMENT, msg };
    }
    if (req.max_tokens < -1) {
        return { ERROR_INVALID_ARGUMENT, "max_tokens must be >= -1" };
    }
    if (!can_fork && (req.fork_from != 0 || req.retain)) {
        return { ERROR_INVALID_ARGUMENT, "this backend cannot fork or retain a stream (caps().fork is false)" };
    }
    if (req.stop.size() > (size_t) k_limit_stop.max) {
        return { ERROR_INVALID_ARGUMENT, "stop: at most " + std::to_string((int) k_limit_stop.max) + " stop strings, got " +
                                             std::to_string(req.stop.size()) };
    }
    return {};
}

error backend::count_prompt_tokens(const chat_request &, int32_t & n) const {
    n = 0;
    return { ERROR_INVALID_ARGUMENT, caps().name + " backend: cannot count a prompt's tokens" };
}

}  // namespace muse
