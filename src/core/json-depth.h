#pragma once
// Nesting depth of untrusted JSON, measured before anything walks it recursively. The
// request body, uploaded JSON tables, JSON schemas and model-written JSON are checked here
// first; nlohmann's parser itself is iterative, but copying, dumping and converting a value
// (and llama.cpp's json_schema_to_grammar) recurse once per level.
//
//   if (int d = json_text_depth(body, 128); d > 128) { /* 400: nested d levels, limit 128 */ }
//   if (json_value_depth(schema, 64) > 64) { /* 400 naming the field */ }
//
// Thread safety: pure functions.

#include <string>
#include <string_view>

namespace muse {

// The deepest nesting of '[' and '{' outside strings (a scalar is 0, "[]" is 1). Scanning
// stops as soon as the depth passes stop_after, and that depth is returned; `where` (when
// given) then receives the path to that point, its first levels as a request field is
// named ("tools[0].function.parameters.properties"). Linear time; malformed text is measured
// as far as it goes (the parser reports the error).
int json_text_depth(std::string_view text, int stop_after, std::string * where = nullptr);

// The nesting depth of a parsed value (a scalar is 0), recursing at most stop_after + 1
// levels: a deeper value returns stop_after + 1.
template <typename Json> int json_value_depth(const Json & v, int stop_after) {
    if (!v.is_object() && !v.is_array()) {
        return 0;
    }
    if (stop_after <= 0) {
        return 1;
    }
    int deepest = 0;
    for (const auto & child : v) {
        const int d = json_value_depth(child, stop_after - 1);
        deepest     = d > deepest ? d : deepest;
        if (deepest >= stop_after) {
            break;
        }
    }
    return 1 + deepest;
}

}  // namespace muse
