#include "fold-attachments.h"

#include "agents/tools/query-table.h"
#include "agents/tools/read-image-text.h"
#include "safety/injection.h"

namespace muse {

std::string fold_attachments(const std::shared_ptr<const attachment_set> & set, ask_request & req, tool_registry & reg,
                             bool vision, const std::string & spotlight_marker) {
    if (!set || set->empty()) {
        return "";
    }
    const auto images    = set->images();
    const bool as_vision = vision && !images.empty();
    chat_message * user  = nullptr;
    for (auto it = req.messages.rbegin(); it != req.messages.rend(); ++it) {
        if (it->role == "user") {
            user = &*it;
            break;
        }
    }
    if (!user) {
        req.messages.push_back({ "user", "" });
        user = &req.messages.back();
    }
    if (req.route_text.empty()) {
        req.route_text = user->content;  // the router judges the question, not the data
    }
    req.attachments += (int32_t) set->count();
    const std::string block = set->prompt_block(as_vision);
    user->content += spotlight_marker.empty() ? block : spotlight(block, spotlight_marker);
    if (as_vision) {
        user->images.insert(user->images.end(), images.begin(), images.end());
        reg.add(read_image_text_tool(set));
        if (!req.opt.tools.empty()) {
            req.opt.tools.push_back("read_image_text");
        }
    }
    if (!set->tables().tables().empty()) {
        reg.add(query_table_tool(set));
        if (!req.opt.tools.empty()) {
            req.opt.tools.push_back("query_table");
        }
    }
    return block;
}

}  // namespace muse
