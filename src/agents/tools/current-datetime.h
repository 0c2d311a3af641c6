#pragma once
// The `current_datetime` tool: the local date, time and weekday, and UTC time (no arguments).
//
//     tool_registry reg;
//     reg.add(muse::current_datetime_tool());
//     reg.call("current_datetime", "{}").text;  // "local: 2026-11-30 21:30:00 UTC (Monday); UTC: 2026-11-30T21:30:00Z"
//
// Thread safety: the tool reads the clock only; call it from any thread.

#include "agents/tools.h"

namespace muse {

tool_def current_datetime_tool();

}  // namespace muse
