#pragma once
// A backend over several others (remote servers, the local engine): each request goes to one
// of them.
//   - Affinity: requests that start alike (the same cache scope and first message: one
//     conversation, the agents of one contemplating request) go to the member that served
//     that start last, whose prompt cache holds their prefix, unless it is saturated or holds
//     clearly more requests than the least loaded (balance_abs and balance_rel).
//   - A new start goes to the member with the fewest requests in flight for its weight (ties
//     in turn), so a slow member that piles up requests gets fewer new conversations.
//   - Policies least_loaded and round_robin leave affinity out (for comparison: bench/run-cluster).
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

enum class routing_policy { affinity, least_loaded, round_robin };

// "affinity", "least-loaded", "round-robin" (also with '_'); false when unknown.
bool parse_routing_policy(const std::string & name, routing_policy & out);
const char * routing_policy_name(routing_policy p);

struct routing_params {
    routing_policy policy = routing_policy::affinity;
    // Affinity yields to balance when its member holds more than balance_abs requests more
    // than the least loaded one and more than balance_rel times as many (loads per weight).
    double  balance_abs      = 4;
    double  balance_rel      = 1.5;
    int32_t affinity_entries = 65536;  // request starts remembered (least recently used go first)
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
