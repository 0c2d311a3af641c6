#pragma once
// Nesting depth of untrusted JSON, measured before anything walks it recursively. The
// request body, uploaded JSON tables, JSON schemas and model-written JSON are checked here
// first; nlohmann's parser itself is iterative, but copying, dumping and converting a value
// (and llama.cpp's json_schema_to_grammar) recurse once per level.
//
//   std::string where;
//   if (json_text_depth(body, 128, &where) > 128) { /* 400: "tools[0].function..." nests too deep */ }
//   if (std::string why = json_schema_problem(schema_text); !why.empty()) { /* 400: "schema " + why */ }
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

// Why a JSON schema from outside (response_format, tool parameters, --json-schema) is
// refused, or "" when it is within k_max_schema_depth levels, k_max_schema_bytes and
// k_max_schema_items (array elements plus object members: they become the grammar's
// alternatives, and a grammar's cost per generated token grows with them; 2,000 enum values
// took over a second per token on 2 cores).
std::string json_schema_problem(std::string_view text);

}  // namespace muse
