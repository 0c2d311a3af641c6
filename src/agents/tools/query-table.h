#pragma once
// The `query_table` tool: one read-only SQL SELECT over a request's attached tables
// (perception/table.h runs it; this file only speaks the tool-call format).
//
//   auto set = std::make_shared<attachment_set>();
//   set->add_table_file("sales.csv");
//   reg.add(query_table_tool(set));   // {"sql": "SELECT region, SUM(amount) FROM sales GROUP BY region"}
//
// The description lists the tables attached when the tool is made (add them first).
//
// Thread safety: the tool may run from many agent threads at once (the table store
// serialises its queries); it keeps the set alive.

#include "agents/tools.h"
#include "perception/attachment-set.h"

#include <memory>

namespace muse {

tool_def query_table_tool(std::shared_ptr<const attachment_set> set);

}  // namespace muse
