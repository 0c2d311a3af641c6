#include "query-table.h"

#include "core/data-block.h"

#include <nlohmann/json.hpp>

namespace muse {

tool_def query_table_tool(std::shared_ptr<const attachment_set> set) {
    std::string tables;
    for (const auto & t : set->tables().tables()) {
        std::string cols;
        for (size_t c = 0; c < t.columns.size() && c < 32; ++c) {
            cols += (c ? ", " : "") + block_text(t.columns[c].name) + " " + column_type_name(t.columns[c].type);
        }
        if (t.columns.size() > 32) {
            cols += ", ...";
        }
        tables += (tables.empty() ? "" : "; ") + t.name + "(" + cols + ")";
    }
    tool_def d;
    d.spec.name        = "query_table";
    d.spec.description = "Run one read-only SQL SELECT (SQLite dialect) on the attached tables and get the rows back "
                         "(at most 50 shown). Tables: " + (tables.empty() ? std::string("none") : tables) + ".";
    d.spec.parameters  = R"({"type":"object","properties":{"sql":{"type":"string","description":"one SELECT statement"}},"required":["sql"]})";
    d.run              = [set](const std::string & args) {
        tool_output o;
        const auto  j = nlohmann::json::parse(args, nullptr, false);
        if (j.is_discarded() || !j.is_object() || !j.contains("sql") || !j["sql"].is_string()) {
            o.text = "query_table: pass {\"sql\": \"SELECT ...\"}";
            return o;
        }
        const query_output q = set->tables().query(j["sql"].get<std::string>());
        o.ok   = q.ok;
        o.text = q.text;
        return o;
    };
    return d;
}

}  // namespace muse
