#include "backend.h"

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

error backend::count_prompt_tokens(const chat_request &, int32_t & n) const {
    n = 0;
    return { ERROR_INVALID_ARGUMENT, caps().name + " backend: cannot count a prompt's tokens" };
}

}  // namespace muse
