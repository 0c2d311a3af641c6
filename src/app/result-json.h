#pragma once
// The front ends' view of a finished request as JSON: `muse ask --json` prints it and the chat
// route's `muse` object carries it (answer, mode and why, plan, per-agent traces, vote or
// synthesis, confidence, usage, timings). The shape is reasoning's (reasoning/result-json.h);
// this header is how the front ends reach it, so they include app/ only.
//
//   nlohmann::ordered_json j = muse::to_json(out.results[0]);
//
// Thread safety: to_json is reentrant.

#include "reasoning/result-json.h"
