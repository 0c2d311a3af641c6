#pragma once
// Tools that agents call through the model's native tool-call format, and the registry that
// names them. Built in: `calculator` (exact arithmetic) and `current_datetime`, one file each
// under agents/tools/; the adapters over a request's attachments (agents/tools/query-table.h,
// read-image-text.h) register the same way.
//
//   tool_registry reg = builtin_tools();
//   tool_output out = reg.call("calculator", R"({"expression": "0.1 + 0.2"})");  // out.text == "0.3"
//
// Thread safety: a registry is read-only once built; call() may run from many agent threads
// as long as each tool's function is itself thread-safe (the built-ins are).

#include "core/chat-types.h"

#include <functional>
#include <string>
#include <vector>

namespace muse {

struct tool_output {
    bool        ok = false;
    std::string text;  // the result, or a one-line error the model can act on
};

struct tool_def {
    chat_tool                                              spec;  // name, description, JSON-schema parameters
    std::function<tool_output(const std::string & args)>   run;   // args: the call's JSON arguments text
};

class tool_registry {
  public:
    // Replaces a tool of the same name.
    void add(tool_def t);

    const tool_def *         find(const std::string & name) const;
    std::vector<std::string> names() const;
    // The specs of the named tools, in registry order; unknown names are skipped.
    std::vector<chat_tool>   specs(const std::vector<std::string> & names) const;

    // Runs a tool. Unknown tools, arguments that are not a JSON object, and results over
    // k_max_output bytes (cut, with a note) are handled here, so every tool gets clean input.
    tool_output call(const std::string & name, const std::string & args) const;

    static constexpr size_t k_max_output = 8192;

  private:
    std::vector<tool_def> tools;
};

tool_registry builtin_tools();

// The text a tool result carries into the prompt: delimited, and marked as data so that
// nothing inside it is taken as an instruction.
std::string tool_result_block(const std::string & name, const tool_output & out);

}  // namespace muse
