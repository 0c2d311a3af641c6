#include "backend.h"

namespace muse {

chat_result collect(chat_stream & stream) {
    chat_result r;
    chat_event  ev;
    while (stream.next(ev)) {
        switch (ev.type) {
            case chat_event::REASONING: r.reasoning += ev.text; break;
            case chat_event::CONTENT:   r.content += ev.text; break;
            case chat_event::TOOL_CALL:
                if (ev.tool_call_index >= 0) {
                    if ((size_t) ev.tool_call_index >= r.tool_calls.size()) {
                        r.tool_calls.resize(ev.tool_call_index + 1);
                    }
                    auto & tc = r.tool_calls[ev.tool_call_index];
                    if (!ev.tool_call.id.empty()) {
                        tc.id = ev.tool_call.id;
                    }
                    tc.name += ev.tool_call.name;
                    tc.arguments += ev.tool_call.arguments;
                }
                break;
            case chat_event::DONE:
                r.finish = ev.finish;
                r.use    = ev.use;
                r.err    = ev.err;
                break;
        }
    }
    return r;
}

}  // namespace muse
