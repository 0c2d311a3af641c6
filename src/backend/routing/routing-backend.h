#pragma once
// A backend over several others (remote servers, the local engine): each request goes to one
// of them.
//   - Affinity: requests that start alike (the same cache scope and first message: one
//     conversation, the agents of one contemplating request) go to the same member, whose
//     prompt cache holds their prefix, unless it is saturated.
//   - Otherwise the member with the fewest requests in flight for its weight.
//   - A circuit breaker: after `breaker_failures` failures in a row a member is skipped for
//     `breaker_cooldown_s`, then tried again with one request.
//   - Health checks in the background (routing_params::health_interval_s) open and close the
//     breakers too.
//   - Failover: a request whose member fails before streaming anything (ERROR_UNAVAILABLE) is
//     sent to the next member; one that has streamed fails with its error, never duplicating text.
//
//   muse::routing_backend be({ { &a, { "gpu-a" } }, { &b, { "gpu-b", 8 } } });
//
// The members must outlive it. caps().fork is false (a fork cannot cross members).
// Thread safety: start() and caps() from any thread; each stream belongs to one reader.

#include "backend/backend.h"

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace muse {

struct routing_member {
    std::string name;               // in /metrics and errors
    int32_t     max_in_flight = 0;  // requests at once; 0: no limit
    int32_t     weight        = 1;  // share of the load, 1..1000
};

struct routing_params {
    int32_t breaker_failures   = 3;     // failures in a row that open a member's breaker
    double  breaker_cooldown_s = 10.0;  // seconds an open breaker skips its member
    // Every this many seconds each member's health() is asked (0: never): a failing check opens
    // its breaker at once, a passing one closes it, so traffic finds a dead server before a
    // request does and a server that is back gets requests again without waiting out a cooldown.
    double  health_interval_s  = 5.0;
};

class routing_backend : public backend {
  public:
    routing_backend(std::vector<std::pair<backend *, routing_member>> members, routing_params p = {});
    ~routing_backend() override;

    std::unique_ptr<chat_stream> start(const chat_request & req) override;
    backend_caps                 caps() const override;
    std::vector<backend_metric>  stats() const override;

    struct impl;

  private:
    std::shared_ptr<impl> d;
};

}  // namespace muse
