#pragma once
// A one-producer, one-consumer queue of sequence events: the engine thread pushes, the
// sequence handle's owner pops.

#include "sequence.h"

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>

namespace muse {

struct event_channel {
    std::mutex                 mu;
    std::condition_variable    cv;
    std::deque<sequence_event> q;
    seq_handle_id              id = 0;  // set when the engine queues the sequence

    // The engine thread's own bookkeeping of quiet pushes (engine_params::stream_interval_ms).
    std::chrono::steady_clock::time_point last_wake{};
    bool                                  woken  = false;  // the reader was woken at least once
    bool                                  urgent = false;  // a quiet push that must not wait (the end)
    bool                                  held   = false;  // in engine_core::held

    // notify = false queues quietly: the engine wakes readers once per step (notify()),
    // after every sequence was sampled, so a woken reader does not contend with sampling.
    void push(sequence_event && ev, bool notify_reader = true) {
        {
            std::lock_guard<std::mutex> lk(mu);
            q.push_back(std::move(ev));
        }
        if (notify_reader) {
            cv.notify_one();
        }
    }

    void notify() {
        { std::lock_guard<std::mutex> lk(mu); }  // pairs with the reader's predicate check
        cv.notify_one();
    }

    // Blocks until an event is there.
    void pop(sequence_event & ev) {
        std::unique_lock<std::mutex> lk(mu);
        cv.wait(lk, [&] { return !q.empty(); });
        ev = std::move(q.front());
        q.pop_front();
    }
};

}  // namespace muse
