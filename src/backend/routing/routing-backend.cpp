#include "routing-backend.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <list>
#include <mutex>
#include <unordered_map>
#include <thread>

#include <nlohmann/json.hpp>

namespace muse {

namespace {

using steady = std::chrono::steady_clock;

struct member_state {
    backend *      be = nullptr;
    routing_member cfg;

    std::atomic<int32_t> in_flight{ 0 };
    std::atomic<int64_t> requests{ 0 }, errors{ 0 }, failovers{ 0 }, completed{ 0 };
    std::atomic<int64_t> first_token_us{ 0 }, request_us{ 0 };  // sums over completed requests
    std::mutex           mu;                 // guards the breaker's fields
    int32_t              failures_in_row = 0;
    steady::time_point   open_until{};       // the breaker is open before this
    bool                 probing = false;    // half-open: one request is trying the member
};

}  // namespace

struct routing_backend::impl {
    std::vector<std::unique_ptr<member_state>> members;
    routing_params                             params;
    std::atomic<uint64_t>                      next_id{ 1 };
    std::atomic<uint64_t>                      turn{ 0 };  // breaks ties between equally loaded members

    // Affinity: which member served each request start last (an LRU of hashes).
    std::mutex                                                           aff_mu;
    std::list<size_t>                                                    aff_order;  // most recent first
    std::unordered_map<size_t, std::pair<size_t, std::list<size_t>::iterator>> aff;
    std::atomic<int64_t> aff_hits{ 0 }, aff_misses{ 0 }, aff_moves{ 0 };

    bool recall(size_t key, size_t & member) {
        std::lock_guard<std::mutex> lk(aff_mu);
        auto                        it = aff.find(key);
        if (it == aff.end()) return false;
        aff_order.splice(aff_order.begin(), aff_order, it->second.second);
        member = it->second.first;
        return true;
    }
    void remember(size_t key, size_t member) {
        if (params.policy != routing_policy::affinity || params.affinity_entries <= 0) return;
        std::lock_guard<std::mutex> lk(aff_mu);
        auto                        it = aff.find(key);
        if (it != aff.end()) {
            it->second.first = member;
            aff_order.splice(aff_order.begin(), aff_order, it->second.second);
            return;
        }
        aff_order.push_front(key);
        aff[key] = { member, aff_order.begin() };
        while (aff.size() > (size_t) params.affinity_entries) {
            aff.erase(aff_order.back());
            aff_order.pop_back();
        }
    }

    // The health checker: a thread that asks every member's health() each interval.
    std::thread             checker;
    std::mutex              stop_mu;
    std::condition_variable stop_cv;
    bool                    stopping = false;
    std::atomic<int64_t>    checks{ 0 };

    void check_health() {
        const auto every = std::chrono::milliseconds(std::max<int64_t>(1, (int64_t) (params.health_interval_s * 1000)));
        for (;;) {
            for (size_t i = 0; i < members.size(); ++i) {
                const error e = members[i]->be->health();
                member_state & m = *members[i];
                {
                    std::lock_guard<std::mutex> lk(m.mu);
                    if (e) {
                        m.failures_in_row = std::max(m.failures_in_row, params.breaker_failures);
                        m.open_until      = steady::now() + std::chrono::milliseconds((int64_t) (params.breaker_cooldown_s * 1000));
                    } else if (m.failures_in_row >= params.breaker_failures) {
                        m.failures_in_row = 0;
                        m.probing         = false;
                    }
                }
            }
            checks++;
            std::unique_lock<std::mutex> lk(stop_mu);
            if (stop_cv.wait_for(lk, every, [&] { return stopping; })) return;
        }
    }

    // May member i take a request now? Reserves the half-open probe when it is the one.
    bool available(size_t i, bool reserve) {
        member_state &              m = *members[i];
        std::lock_guard<std::mutex> lk(m.mu);
        if (m.failures_in_row < params.breaker_failures) return true;
        if (steady::now() < m.open_until || m.probing) return false;
        if (reserve) m.probing = true;
        return true;
    }
    bool saturated(size_t i) const {
        const member_state & m = *members[i];
        return m.cfg.max_in_flight > 0 && m.in_flight.load() >= m.cfg.max_in_flight;
    }
    void succeeded(size_t i) {
        member_state &              m = *members[i];
        std::lock_guard<std::mutex> lk(m.mu);
        m.failures_in_row = 0;
        m.probing         = false;
    }
    void failed(size_t i) {
        member_state &              m = *members[i];
        std::lock_guard<std::mutex> lk(m.mu);
        m.probing = false;
        if (++m.failures_in_row >= params.breaker_failures) {
            m.open_until = steady::now() + std::chrono::milliseconds((int64_t) (params.breaker_cooldown_s * 1000));
        }
    }

    static size_t start_key(const chat_request & req) {
        std::string key = req.cache_salt;
        if (!req.messages.empty()) key += '\x1f' + req.messages.front().role + '\x1f' + req.messages.front().content;
        if (req.messages.size() > 1 && req.messages.front().role == "system") key += '\x1f' + req.messages[1].content;
        return std::hash<std::string>{}(key);
    }

    // The members to try, best first: the affinity member when it can take the request and is
    // not clearly busier than the least loaded, then the rest by requests in flight per weight
    // (ties in turn). Members behind an open breaker come last, so that a request still has
    // somewhere to go when every member looks down.
    std::vector<size_t> order(size_t key) {
        const size_t        n = members.size();
        std::vector<size_t> up, down;
        for (size_t i = 0; i < n; ++i) (available(i, false) ? up : down).push_back(i);
        if (!up.empty()) std::rotate(up.begin(), up.begin() + (long) (turn++ % up.size()), up.end());
        auto load = [&](size_t i) { return (double) members[i]->in_flight.load() / std::max(1, members[i]->cfg.weight); };
        if (params.policy == routing_policy::round_robin) {
            std::stable_partition(up.begin(), up.end(), [&](size_t i) { return !saturated(i); });
        } else {
            std::stable_sort(up.begin(), up.end(), [&](size_t a, size_t b) {
                if (saturated(a) != saturated(b)) return !saturated(a);
                return load(a) < load(b);
            });
        }
        size_t home = 0;
        if (params.policy == routing_policy::affinity && !up.empty()) {
            if (!recall(key, home)) {
                aff_misses++;
            } else if (auto it = std::find(up.begin(), up.end(), home); it != up.end() && !saturated(home)) {
                const double best = load(up.front()), mine = load(home);
                if (home != up.front() && mine - best > params.balance_abs && mine > best * params.balance_rel) {
                    aff_moves++;  // its member is clearly busier: the prefix is recomputed elsewhere
                } else {
                    aff_hits++;
                    up.erase(it);
                    up.insert(up.begin(), home);
                }
            } else {
                aff_moves++;
            }
        }
        up.insert(up.end(), down.begin(), down.end());
        return up;
    }
};

namespace {

// A stream on one member that moves to the next one while nothing has been streamed and the
// member is unavailable.
class routed_stream : public chat_stream {
  public:
    routed_stream(std::shared_ptr<routing_backend::impl> b, uint64_t id, chat_request r) :
        d(std::move(b)),
        sid(id),
        req(std::move(r)),
        key(routing_backend::impl::start_key(req)),
        candidates(d->order(key)) {
        open_next();
    }
    ~routed_stream() override { release(); }

    uint64_t id() const override { return sid; }

    bool next(chat_event & ev) override {
        for (;;) {
            chat_stream * s;
            {
                std::lock_guard<std::mutex> lk(inner_mu);
                s = inner.get();
            }
            if (!s || !s->next(ev)) return false;
            if (ev.type != chat_event::DONE) {
                if (!streamed) first_at = steady::now();
                streamed = true;
                return true;
            }
            if (!ev.err) {
                const auto now = steady::now();
                auto us = [](steady::duration x) { return (int64_t) std::chrono::duration_cast<std::chrono::microseconds>(x).count(); };
                member_state & m = *d->members[cur];
                m.completed++;
                m.request_us += us(now - started_at);
                m.first_token_us += us((streamed ? first_at : now) - started_at);
            }
            const bool down = ev.err.code == ERROR_UNAVAILABLE;
            if (down) {
                d->failed(cur);
                d->members[cur]->errors++;
            } else {
                d->succeeded(cur);
                if (ev.err) d->members[cur]->errors++;
            }
            if (down && !streamed && !cancelled && tried < candidates.size()) {
                d->members[cur]->failovers++;
                last_err = ev.err;
                release();
                if (open_next()) continue;
                ev.err = last_err;  // every member failed: the last one's error
            }
            release();
            return true;
        }
    }

    // From any thread: the stream the reader is on now (next() swaps it under the same lock,
    // and a cancelled stream is never swapped for another).
    void cancel() override {
        std::lock_guard<std::mutex> lk(inner_mu);
        cancelled = true;
        if (inner) inner->cancel();
    }

  private:
    // Starts the request on the next candidate; false when none is left.
    bool open_next() {
        while (tried < candidates.size()) {
            const size_t i = candidates[tried++];
            if (!d->available(i, true) && tried < candidates.size()) continue;
            auto s = d->members[i]->be->start(req);
            std::lock_guard<std::mutex> lk(inner_mu);
            cur        = i;
            started_at = steady::now();
            d->remember(key, i);
            d->members[i]->in_flight++;
            d->members[i]->requests++;
            holding = true;
            inner   = std::move(s);
            if (cancelled) inner->cancel();  // cancelled while it was starting
            return true;
        }
        return false;
    }
    void release() {
        if (holding) {
            d->members[cur]->in_flight--;
            holding = false;
        }
    }

    std::shared_ptr<routing_backend::impl> d;
    uint64_t                               sid;
    chat_request                           req;
    size_t                                 key;
    steady::time_point                     started_at{}, first_at{};
    std::vector<size_t>                    candidates;
    size_t                                 tried = 0, cur = 0;
    bool                                   holding = false, streamed = false;
    std::mutex                             inner_mu;  // guards `inner` against cancel() from another thread
    std::atomic<bool>                      cancelled{ false };
    error                                  last_err;
    std::unique_ptr<chat_stream>           inner;
};

// A request refused before any member saw it.
class refused_stream : public chat_stream {
  public:
    refused_stream(uint64_t id, error e) : sid(id), err(std::move(e)) {}
    uint64_t id() const override { return sid; }
    bool next(chat_event & ev) override {
        if (done) return false;
        done      = true;
        ev        = chat_event{};
        ev.type   = chat_event::DONE;
        ev.finish = FINISH_ERROR;
        ev.err    = err;
        return true;
    }
    void cancel() override {}

  private:
    uint64_t sid;
    error    err;
    bool     done = false;
};

}  // namespace

bool parse_routing_policy(const std::string & name, routing_policy & out) {
    std::string n = name;
    std::replace(n.begin(), n.end(), '_', '-');
    if (n == "affinity") out = routing_policy::affinity;
    else if (n == "least-loaded") out = routing_policy::least_loaded;
    else if (n == "round-robin") out = routing_policy::round_robin;
    else return false;
    return true;
}

const char * routing_policy_name(routing_policy p) {
    switch (p) {
        case routing_policy::affinity: return "affinity";
        case routing_policy::least_loaded: return "least-loaded";
        case routing_policy::round_robin: return "round-robin";
    }
    return "affinity";
}

routing_backend::routing_backend(std::vector<std::pair<backend *, routing_member>> members, routing_params p) :
    d(std::make_shared<impl>()) {
    d->params = p;
    d->params.breaker_failures = std::max(1, p.breaker_failures);
    for (size_t i = 0; i < members.size(); ++i) {
        auto m = std::make_unique<member_state>();
        m->be  = members[i].first;
        m->cfg = members[i].second;
        m->cfg.weight = std::clamp(m->cfg.weight, 1, 1000);
        if (m->cfg.name.empty()) m->cfg.name = "backend " + std::to_string(i + 1);
        d->members.push_back(std::move(m));
    }
    if (p.health_interval_s > 0 && !d->members.empty()) {
        d->checker = std::thread([dd = d.get()] { dd->check_health(); });
    }
}

routing_backend::~routing_backend() {
    if (d->checker.joinable()) {
        {
            std::lock_guard<std::mutex> lk(d->stop_mu);
            d->stopping = true;
        }
        d->stop_cv.notify_all();
        d->checker.join();
    }
}

std::unique_ptr<chat_stream> routing_backend::start(const chat_request & req) {
    const uint64_t id = d->next_id++;
    if (d->members.empty()) return std::make_unique<refused_stream>(id, error{ ERROR_UNAVAILABLE, "the routing backend has no backends" });
    if (error e = check_request(req, false)) return std::make_unique<refused_stream>(id, std::move(e));
    return std::make_unique<routed_stream>(d, id, req);
}

backend_caps routing_backend::caps() const {
    backend_caps c;
    c.name = "routing";
    if (d->members.empty()) return c;
    c            = d->members.front()->be->caps();
    c.name       = "routing";
    c.fork       = false;
    nlohmann::json list = nlohmann::json::array();
    std::string    models;
    for (const auto & m : d->members) {
        const backend_caps mc = m->be->caps();
        // What every member can do.
        c.reasoning = c.reasoning && mc.reasoning;
        c.vision    = c.vision && mc.vision;
        c.grammar   = c.grammar && mc.grammar;
        c.logprobs  = c.logprobs && mc.logprobs;
        c.tools     = c.tools && mc.tools;
        c.n_ctx     = std::min(c.n_ctx, mc.n_ctx);
        if (mc.max_prompt_bytes) c.max_prompt_bytes = c.max_prompt_bytes ? std::min(c.max_prompt_bytes, mc.max_prompt_bytes) : mc.max_prompt_bytes;
        models += (models.empty() ? "" : ", ") + m->cfg.name + ": " + mc.model;
        bool open;
        {
            std::lock_guard<std::mutex> lk(m->mu);
            open = m->failures_in_row >= d->params.breaker_failures && steady::now() < m->open_until;
        }
        list.push_back({ { "name", m->cfg.name }, { "model", mc.model }, { "weight", m->cfg.weight }, { "max_in_flight", m->cfg.max_in_flight },
                         { "in_flight", m->in_flight.load() }, { "available", !open },
                         { "meta", nlohmann::json::parse(mc.meta_json, nullptr, false) } });
    }
    c.model     = models;
    c.meta_json = nlohmann::json({ { "backend", "routing" }, { "policy", routing_policy_name(d->params.policy) }, { "n_ctx", c.n_ctx }, { "members", list } }).dump();
    return c;
}

std::vector<backend_metric> routing_backend::stats() const {
    std::vector<backend_metric> out;
    out.push_back({ "muse_routing_health_checks_total", "counter", "Rounds of health checks over every backend", (double) d->checks });
    out.push_back({ "muse_routing_affinity_hits_total", "counter", "Requests sent to the backend that served their start last", (double) d->aff_hits });
    out.push_back({ "muse_routing_affinity_misses_total", "counter", "Requests whose start no backend had served (new conversations)", (double) d->aff_misses });
    out.push_back({ "muse_routing_affinity_moves_total", "counter", "Requests moved off their affinity backend (busy, saturated or down)", (double) d->aff_moves });
    for (const auto & m : d->members) {
        const std::string l = "{backend=\"" + m->cfg.name + "\"}";
        bool              open;
        {
            std::lock_guard<std::mutex> lk(m->mu);
            open = m->failures_in_row >= d->params.breaker_failures && steady::now() < m->open_until;
        }
        out.push_back({ "muse_routing_requests_total" + l, "counter", "Requests sent to each backend", (double) m->requests });
        out.push_back({ "muse_routing_errors_total" + l, "counter", "Requests that ended in an error, per backend", (double) m->errors });
        out.push_back({ "muse_routing_failovers_total" + l, "counter", "Requests moved from this backend to another before a token", (double) m->failovers });
        out.push_back({ "muse_routing_in_flight" + l, "gauge", "Requests running on each backend", (double) m->in_flight });
        out.push_back({ "muse_routing_completed_total" + l, "counter", "Requests answered without error, per backend", (double) m->completed });
        out.push_back({ "muse_routing_first_token_seconds_total" + l, "counter", "Seconds to the first token, summed over completed requests",
                        (double) m->first_token_us / 1e6 });
        out.push_back({ "muse_routing_request_seconds_total" + l, "counter", "Seconds per request, summed over completed requests",
                        (double) m->request_us / 1e6 });
        out.push_back({ "muse_routing_breaker_open" + l, "gauge", "1 while the backend's circuit breaker is open", open ? 1.0 : 0.0 });
    }
    return out;
}

}  // namespace muse
