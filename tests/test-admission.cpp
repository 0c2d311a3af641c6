// muse serve's admission (server/admission.h): caps, and fair turns between users.

#include "server/admission.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

using namespace muse;

namespace {

// Waits (yielding, bounded by a deadline that only a hang reaches) until cond holds.
template <class F> bool eventually(F cond) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!cond()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::yield();
    }
    return true;
}

}  // namespace

TEST(admission, caps_refuse_before_the_body) {
    admission         adm(1, 2, 2);
    admission::result why;
    auto              a1 = adm.reserve("a", why);
    auto              a2 = adm.reserve("a", why);
    ASSERT_TRUE(a1 && a2);
    EXPECT_FALSE(adm.reserve("a", why));
    EXPECT_EQ(why, admission::USER_FULL);
    auto b1 = adm.reserve("b", why);
    ASSERT_TRUE(b1);
    EXPECT_FALSE(adm.reserve("c", why));
    EXPECT_EQ(why, admission::FULL);
    a1.reset();
    EXPECT_TRUE(adm.reserve("c", why)) << "a released ticket frees its place";
}

// One slot held by a first request (of user `first`); the test queues requests (each waits on its own thread)
// and then ends the running one turn after turn, recording who got each turn.
struct turns {
    admission                                        adm{ 1, 64, 64 };
    admission::result                                why = admission::ADMITTED;
    cancel_source                                    never;
    std::shared_ptr<admission::ticket>               running;
    std::mutex                                       mu;
    std::vector<std::string>                         order;  // who got each turn
    std::vector<uint64_t>                            ran;    // which ticket
    std::vector<std::shared_ptr<admission::ticket>>  tickets;
    std::vector<std::thread>                         ts;

    explicit turns(const std::string & first) {
        running = adm.reserve(first, why);
        adm.wait(*running, never.get_token());
    }
    ~turns() {
        tickets.clear();  // a ticket still queued leaves; its thread then gets GONE or its turn
        for (auto & t : ts) t.join();
    }
    // Queues one request of `user` and waits until it is in the queue.
    bool queue(const std::string & user) {
        auto t = adm.reserve(user, why);
        if (!t) return false;
        tickets.push_back(t);
        const int           before = adm.waiting();
        admission::ticket * tp     = t.get();  // the test's reset() alone ends the request
        ts.emplace_back([this, tp, user] {
            cancel_source s;
            if (adm.wait(*tp, s.get_token()) == admission::ADMITTED) {
                std::lock_guard<std::mutex> lk(mu);
                order.push_back(user);
                ran.push_back(tp->id);
            }
        });
        return eventually([&] { return adm.waiting() == before + 1; });
    }
    // Ends the running request n times, each time waiting for the next one to get its turn.
    bool serve(int n) {
        running.reset();
        for (int turn = 1; turn <= n; ++turn) {
            if (!eventually([&] { std::lock_guard<std::mutex> lk(mu); return (int) order.size() == turn; })) return false;
            uint64_t id;
            {
                std::lock_guard<std::mutex> lk(mu);
                id = ran.back();
            }
            for (auto & t : tickets) {
                if (t && t->id == id) {
                    t.reset();
                    break;
                }
            }
        }
        return true;
    }
};

TEST(admission, a_user_with_many_queued_requests_does_not_starve_one_with_one) {
    turns t("a");  // A's first request runs
    for (int i = 0; i < 19; ++i) ASSERT_TRUE(t.queue("a"));
    ASSERT_TRUE(t.queue("b"));
    ASSERT_TRUE(t.serve(20));
    ASSERT_EQ(t.order.size(), 20u);
    EXPECT_EQ(t.order[0], "b") << "A just ran: B, waiting with one request, goes first";
    EXPECT_EQ(std::count(t.order.begin(), t.order.end(), "a"), 19);
}

TEST(admission, turns_alternate_between_users_that_both_wait) {
    turns t("x");
    for (const char * u : { "a", "a", "a", "b", "b", "b" }) ASSERT_TRUE(t.queue(u));
    ASSERT_TRUE(t.serve(6));
    EXPECT_EQ(t.order, (std::vector<std::string>{ "a", "b", "a", "b", "a", "b" }));
}
