#pragma once
// Admission for `muse serve`: which requests run, which wait, which are refused (429).
//
//   admission adm(parallel, queue, user_cap);
//   admission::result why;
//   auto t = adm.reserve(user, why);           // from the headers; nullptr: refused (why)
//   ...                                        // the body arrives
//   if (adm.wait(*t, stop_token) == admission::ADMITTED) { ... run ... }  // GONE once stopped
//   t.reset();                                 // the turn is free
//
// Thread safety: every method may be called from any thread.

#include "core/cancel.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace muse {

// Requests running and waiting. A request reserves its place from its headers (a ticket): at
// most parallel + queue tickets exist, and one user holds at most `user_cap`; beyond that it is
// refused before its body is read. Once its body is in, the ticket joins the queue for one of
// `parallel` running slots (so a client that trickles its body holds a reservation, never a
// running slot). Turns are fair between users: a free slot goes to the waiting user served
// least recently (first the one never served), and within a user to its oldest request, so a
// user with 20 requests queued does not starve one with 1. The ticket is released when the
// request ends, however it ends.
class admission {
    using clock_type = std::chrono::steady_clock;


  public:
    admission(int parallel, int queue, int user_cap) : parallel(parallel), queue_cap(queue), user_cap(user_cap) {}

    enum result { ADMITTED, FULL, USER_FULL, GONE, DRAINING };

    struct ticket {
        admission * a = nullptr;
        std::string user;
        uint64_t    id = 0;
        bool        queued  = false;
        bool        running = false;
        clock_type::time_point t_run;
        ~ticket() {
            if (a) a->leave(*this);
        }
    };

    std::shared_ptr<ticket> reserve(const std::string & user, result & why) {
        std::lock_guard<std::mutex> lk(mu);
        if (draining) {
            why = DRAINING;
            return nullptr;
        }
        if (reserved >= parallel + queue_cap) {
            why = FULL;
            return nullptr;
        }
        if (auto it = per_user.find(user); it != per_user.end() && it->second >= user_cap) {
            why = USER_FULL;
            return nullptr;
        }
        auto t  = std::make_shared<ticket>();
        t->a    = this;
        t->user = user;
        t->id   = next_ticket++;
        reserved++;
        per_user[user]++;
        why = ADMITTED;
        return t;
    }

    // Queues the ticket (its request has fully arrived) and blocks until its turn to run; GONE
    // when `stop` is stopped first (the client left, the server is shutting down). It sleeps
    // until a turn frees or the stop comes: nothing is polled.
    result wait(ticket & t, const cancel_token & stop) {
        std::unique_lock<std::mutex> lk(mu);
        if (!t.queued && !t.running) {
            queues[t.user].push_back(t.id);
            n_queued++;
            t.queued = true;
        }
        const bool turn = cv.wait(lk, stop, [&] {
            if (t.running) return true;
            if (active < parallel && next_to_run() == t.id) {
                auto & q = queues[t.user];
                q.pop_front();
                if (q.empty()) queues.erase(t.user);
                n_queued--;
                last_served[t.user] = ++serve_count;
                t.queued  = false;
                t.running = true;
                t.t_run   = clock_type::now();
                active++;
                cv.notify_all();
                return true;
            }
            return false;
        });
        return turn ? ADMITTED : GONE;
    }

    // Seconds until a turn is likely free: the queue ahead times the mean request time.
    int retry_after() const {
        std::lock_guard<std::mutex> lk(mu);
        const double s = std::max(1.0, avg_s) * (1.0 + (double) n_queued / parallel);
        return (int) std::clamp(std::ceil(s), 1.0, 120.0);
    }

    void start_draining() {
        std::lock_guard<std::mutex> lk(mu);
        draining = true;
    }

    int running() const { std::lock_guard<std::mutex> lk(mu); return active; }
    int waiting() const { std::lock_guard<std::mutex> lk(mu); return n_queued; }

  private:
    // The ticket whose turn is next: the oldest of the waiting user served least recently.
    uint64_t next_to_run() const {
        uint64_t best = 0, best_served = 0;
        bool     any  = false;
        for (const auto & [user, q] : queues) {
            const auto     it     = last_served.find(user);
            const uint64_t served = it == last_served.end() ? 0 : it->second;
            if (!any || served < best_served || (served == best_served && q.front() < best)) {
                best        = q.front();
                best_served = served;
                any         = true;
            }
        }
        return best;
    }

    void leave(ticket & t) {
        std::lock_guard<std::mutex> lk(mu);
        if (t.running) {
            active--;
            const double secs = std::chrono::duration<double>(clock_type::now() - t.t_run).count();
            avg_s = avg_s <= 0 ? secs : 0.8 * avg_s + 0.2 * secs;
        } else if (t.queued) {
            auto & q = queues[t.user];
            q.remove(t.id);
            if (q.empty()) queues.erase(t.user);
            n_queued--;
        }
        reserved--;
        if (--per_user[t.user] <= 0) {
            per_user.erase(t.user);
            last_served.erase(t.user);  // a user with nothing left starts afresh (the map stays small)
        }
        cv.notify_all();
    }

    const int                  parallel, queue_cap, user_cap;
    mutable std::mutex         mu;
    std::condition_variable_any cv;
    int                        active   = 0;  // running
    int                        reserved = 0;  // tickets alive: arriving, queued or running
    std::map<std::string, std::list<uint64_t>> queues;  // queued tickets per user, oldest first
    int                        n_queued = 0;
    std::map<std::string, uint64_t> last_served;     // user -> serve_count when it last got a turn
    uint64_t                   serve_count = 0;
    std::map<std::string, int> per_user;
    uint64_t                   next_ticket = 0;
    double                     avg_s = 0;
    bool                       draining = false;
};

}  // namespace muse
