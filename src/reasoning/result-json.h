#pragma once
// An ask_result as JSON, the shape `muse ask --json` prints and the server's `muse` object
// carries: answer, mode and why, plan, per-agent traces, vote or synthesis, confidence,
// usage and timings.

#include "reasoning/orchestrator.h"

#include <nlohmann/json.hpp>

namespace muse {

nlohmann::ordered_json to_json(const ask_result & r);

}  // namespace muse
