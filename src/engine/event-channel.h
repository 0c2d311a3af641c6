#pragma once
// A one-producer, one-consumer queue of sequence events: the engine thread pushes, the
// sequence handle's owner pops.

#include "sequence.h"

#include <condition_variable>
#include <deque>
#include <mutex>

namespace muse {

struct event_channel {
    std::mutex                 mu;
    std::condition_variable    cv;
    std::deque<sequence_event> q;

    void push(sequence_event && ev) {
        {
            std::lock_guard<std::mutex> lk(mu);
            q.push_back(std::move(ev));
        }
        cv.notify_one();
    }

    bool pop(sequence_event & ev, bool block) {
        std::unique_lock<std::mutex> lk(mu);
        if (block) {
            cv.wait(lk, [&] { return !q.empty(); });
        } else if (q.empty()) {
            return false;
        }
        ev = std::move(q.front());
        q.pop_front();
        return true;
    }
};

}  // namespace muse
