#include "json-depth.h"

#include "limits.h"

#include <vector>

namespace muse {

namespace {

// One open array or object, as far as the path needs it.
struct level {
    bool        object    = false;
    bool        want_key  = false;  // an object, before ':' (the next string is a key)
    int64_t     index     = 0;      // an array: the element
    std::string key;                // an object: the member
};

constexpr size_t k_path_levels = 6;  // the path names this many levels, then "..."

std::string path_of(const std::vector<level> & st) {
    std::string p;
    for (size_t i = 0; i < st.size() && i < k_path_levels; ++i) {
        if (st[i].object) {
            p += (p.empty() ? "" : ".") + st[i].key;
        } else {
            p += "[" + std::to_string(st[i].index) + "]";
        }
    }
    return st.size() > k_path_levels ? p + "..." : p;
}

// The scan behind both functions: nesting (with the path when `where` is given) and, when
// `items` is given, the members and elements seen (every ':' and ',' outside strings, plus one).
int scan(std::string_view text, int stop_after, std::string * where, int64_t * items) {
    std::vector<level> st;  // only kept when a path is wanted
    int                depth = 0, deepest = 0;
    bool               in_string = false, escaped = false;
    size_t             string_start = 0;
    for (size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (in_string) {
            if (escaped) {
                escaped = false;
            } else if (c == '\\') {
                escaped = true;
            } else if (c == '"') {
                in_string = false;
                if (where && !st.empty() && st.back().object && st.back().want_key && st.size() <= k_path_levels) {
                    st.back().key = std::string(text.substr(string_start, i - string_start));
                }
            }
            continue;
        }
        switch (c) {
            case '"':
                in_string    = true;
                string_start = i + 1;
                break;
            case '[':
            case '{':
                ++depth;
                if (where) {
                    level l;
                    l.object = l.want_key = c == '{';
                    st.push_back(l);
                }
                if (depth > deepest) {
                    deepest = depth;
                    if (deepest > stop_after) {
                        if (where) {
                            *where = path_of(st);
                        }
                        return deepest;
                    }
                }
                break;
            case ']':
            case '}':
                if (depth > 0) {
                    --depth;
                    if (where && !st.empty()) {
                        st.pop_back();
                    }
                }
                break;
            case ':':
                if (items) {
                    ++*items;
                }
                if (where && !st.empty() && st.back().object) {
                    st.back().want_key = false;
                }
                break;
            case ',':
                if (items) {
                    ++*items;
                }
                if (where && !st.empty()) {
                    st.back().want_key = st.back().object;
                    st.back().index += st.back().object ? 0 : 1;
                }
                break;
            default:
                break;
        }
    }
    return deepest;
}

}  // namespace

int json_text_depth(std::string_view text, int stop_after, std::string * where) {
    return scan(text, stop_after, where, nullptr);
}

std::string json_schema_problem(std::string_view text) {
    if (text.size() > k_max_schema_bytes) {
        return "is " + std::to_string(text.size()) + " bytes, over the " + std::to_string(k_max_schema_bytes) +
               "-byte limit for a schema";
    }
    int64_t items = 1;
    if (scan(text, k_max_schema_depth, nullptr, &items) > k_max_schema_depth) {
        return "nests more than " + std::to_string(k_max_schema_depth) +
               " levels deep; flatten it (use $defs and $ref for shared parts)";
    }
    if (items > k_max_schema_items) {
        return "has " + std::to_string(items) + " members and elements, over the limit of " +
               std::to_string(k_max_schema_items) + " (each becomes an alternative the grammar checks at every token)";
    }
    return "";
}

}  // namespace muse
