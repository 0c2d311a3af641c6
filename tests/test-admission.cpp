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

TEST(admission, a_user_with_many_queued_requests_does_not_starve_one_with_one) {
    admission         adm(1, 64, 64);
    admission::result why;
    cancel_source     never;
    // A's first request runs; 19 more of A's wait, then one of B's.
    auto running = adm.reserve("a", why);
    ASSERT_EQ(adm.wait(*running, never.get_token()), admission::ADMITTED);

    std::mutex               mu;
    std::vector<std::string> order;  // who got each turn
    std::vector<uint64_t>    ran;    // which ticket
    std::atomic<int>         done{ 0 };
    std::vector<std::thread> ts;
    std::vector<std::shared_ptr<admission::ticket>> tickets;
    auto queue_one = [&](const std::string & user) {
        auto t = adm.reserve(user, why);
        ASSERT_TRUE(t);
        tickets.push_back(t);
        admission::ticket * tp = t.get();  // the test's reset() alone ends the request
        ts.emplace_back([&, tp, user] {
            cancel_source s;
            if (adm.wait(*tp, s.get_token()) == admission::ADMITTED) {
                std::lock_guard<std::mutex> lk(mu);
                order.push_back(user);
                ran.push_back(tp->id);
            }
            done++;
        });
    };
    for (int i = 0; i < 19; ++i) queue_one("a");
    ASSERT_TRUE(eventually([&] { return adm.waiting() == 19; }));
    queue_one("b");
    ASSERT_TRUE(eventually([&] { return adm.waiting() == 20; }));

    // Free the slot turn after turn: each time, one waiting request runs.
    running.reset();
    for (int turn = 1; turn <= 20; ++turn) {
        ASSERT_TRUE(eventually([&] { std::lock_guard<std::mutex> lk(mu); return (int) order.size() == turn; })) << turn;
        uint64_t id;
        {
            std::lock_guard<std::mutex> lk(mu);
            id = ran.back();
        }
        // The request that got the turn ends: its ticket goes.
        for (auto & t : tickets) {
            if (t && t->id == id) {
                t.reset();
                break;
            }
        }
    }
    for (auto & t : ts) t.join();
    ASSERT_EQ(order.size(), 20u);
    EXPECT_EQ(order[0], "b") << "A just ran: B, waiting with one request, goes first";
    EXPECT_EQ(std::count(order.begin(), order.end(), "a"), 19);
}

TEST(admission, turns_alternate_between_users_that_both_wait) {
    admission         adm(1, 64, 64);
    admission::result why;
    cancel_source     never;
    auto running = adm.reserve("x", why);
    ASSERT_EQ(adm.wait(*running, never.get_token()), admission::ADMITTED);
    std::mutex               mu;
    std::vector<std::string> order;
    std::vector<uint64_t>    ran;
    std::vector<std::thread> ts;
    std::vector<std::shared_ptr<admission::ticket>> tickets;
    for (const char * u : { "a", "a", "a", "b", "b", "b" }) {
        auto t = adm.reserve(u, why);
        ASSERT_TRUE(t);
        tickets.push_back(t);
        const int queued = (int) tickets.size();
        admission::ticket * tp = t.get();  // the test's reset() alone ends the request
        ts.emplace_back([&, tp, u] {
            cancel_source s;
            if (adm.wait(*tp, s.get_token()) == admission::ADMITTED) {
                std::lock_guard<std::mutex> lk(mu);
                order.push_back(u);
                ran.push_back(tp->id);
            }
        });
        ASSERT_TRUE(eventually([&] { return adm.waiting() == queued; })) << "queued in this order";
    }
    running.reset();
    for (size_t turn = 1; turn <= 6; ++turn) {
        ASSERT_TRUE(eventually([&] { std::lock_guard<std::mutex> lk(mu); return order.size() == turn; }));
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
    for (auto & t : ts) t.join();
    EXPECT_EQ(order, (std::vector<std::string>{ "a", "b", "a", "b", "a", "b" }));
}
