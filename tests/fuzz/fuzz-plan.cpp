// The planner's JSON plan as a model might write it: parse and validate (cycles, unknown
// roles, limits), then order the tasks. Rejections are fine; crashes and hangs are not.
#include "agents/plan.h"

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    muse::plan        p;
    std::string       why;
    const std::string text((const char *) data, size);
    if (muse::parse_plan(text, {}, p, why)) {
        (void) muse::plan_topological_order(p);
        (void) muse::plan_to_json(p);
    }
    return 0;
}
