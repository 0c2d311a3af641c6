#include "current-datetime.h"

#include <chrono>
#include <ctime>

namespace muse {

static tool_output run_datetime(const std::string &) {
    const auto   now = std::chrono::system_clock::now();
    const time_t t   = std::chrono::system_clock::to_time_t(now);
    struct tm    local {
    }, utc{};
    localtime_r(&t, &local);
    gmtime_r(&t, &utc);
    char l[64], u[64];
    strftime(l, sizeof(l), "%Y-%m-%d %H:%M:%S %Z (%A)", &local);
    strftime(u, sizeof(u), "%Y-%m-%dT%H:%M:%SZ", &utc);
    return { true, std::string("local: ") + l + "; UTC: " + u };
}

tool_def current_datetime_tool() {
    return { { "current_datetime", "The current local date, time and weekday, and UTC time.",
               R"({"type":"object","properties":{}})" },
             run_datetime };
}

}  // namespace muse
