// The arithmetic task family (tools/tasks): every answer and every scratchpad line is right,
// the held-out split is disjoint from any training set, generation is fixed by its seed, and
// the test files parse as muse eval's tasks.

#include "arith.h"

#include "app/eval.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <regex>
#include <set>
#include <tuple>

using namespace muse::tasks;

namespace {

TEST(tasks, scratchpad_of_a_known_problem) {
    problem p = make_problem(OP_ADD, 487, 356, 3);
    EXPECT_EQ(p.question, "What is 487 + 356?");
    EXPECT_EQ(p.answer, "843");
    EXPECT_EQ(p.reasoning,
              "Pad to 3 digits: 487 + 356. Ones: 7 + 6 = 13, write 3, carry 1. Tens: 8 + 5 + 1 = 14, write 4, "
              "carry 1. Hundreds: 4 + 3 + 1 = 8, write 8, carry 0. So 487 + 356 = 843.");
    p = make_problem(OP_SUB, 502, 47, 3);
    EXPECT_EQ(p.answer, "455");
    EXPECT_EQ(p.reasoning,
              "Pad to 3 digits: 502 - 047. Ones: 2 - 7, borrow: 12 - 7 = 5, write 5, borrow 1. Tens: 0 - 4 - 1, "
              "borrow: 10 - 4 - 1 = 5, write 5, borrow 1. Hundreds: 5 - 0 - 1 = 4, write 4, borrow 0. So 502 - 47 = 455.");
    p = make_problem(OP_ADD, 999, 1, 3);
    EXPECT_EQ(p.answer, "1000");
    EXPECT_NE(p.reasoning.find("The last carry 1 leads."), std::string::npos);
    EXPECT_EQ(make_problem(OP_SUB, 5, 5, 1).answer, "0");
    EXPECT_THROW(make_problem(OP_SUB, 1, 2, 1), std::invalid_argument);
}

// Every column line of every scratchpad is recomputed from its own numbers.
TEST(tasks, every_answer_and_column_is_right) {
    generator       g({ .digits_min = 1, .digits_max = 9, .seed = 42 });
    const std::regex add_col(R"((\d) \+ (\d)( \+ 1)? = (\d+), write (\d), carry (\d)\.)");
    const std::regex sub_col(R"((\d) - (\d)( - 1)?(, borrow: (\d+) - \d( - 1)?)? = (\d), write (\d), borrow (\d)\.)");
    for (int i = 0; i < 5000; ++i) {
        const problem p = g.next(i % 2 ? SPLIT_TRAIN : SPLIT_TEST);
        const uint64_t want = p.op == OP_ADD ? p.a + p.b : p.a - p.b;
        ASSERT_EQ(p.answer, std::to_string(want)) << p.question;
        int columns = 0;
        if (p.op == OP_ADD) {
            for (std::sregex_iterator it(p.reasoning.begin(), p.reasoning.end(), add_col), end; it != end; ++it) {
                const auto & m = *it;
                const int    s = std::stoi(m[1]) + std::stoi(m[2]) + (m[3].matched ? 1 : 0);
                ASSERT_EQ(std::stoi(m[4]), s) << p.reasoning;
                ASSERT_EQ(std::stoi(m[5]), s % 10) << p.reasoning;
                ASSERT_EQ(std::stoi(m[6]), s / 10) << p.reasoning;
                columns++;
            }
        } else {
            for (std::sregex_iterator it(p.reasoning.begin(), p.reasoning.end(), sub_col), end; it != end; ++it) {
                const auto & m = *it;
                int          d = std::stoi(m[1]) - std::stoi(m[2]) - (m[3].matched ? 1 : 0);
                const int    borrow = d < 0;
                ASSERT_EQ(m[4].matched, borrow == 1) << p.reasoning;
                if (borrow) d += 10;
                ASSERT_EQ(std::stoi(m[7]), d) << p.reasoning;
                ASSERT_EQ(std::stoi(m[8]), d) << p.reasoning;
                ASSERT_EQ(std::stoi(m[9]), borrow) << p.reasoning;
                columns++;
            }
        }
        EXPECT_GE(columns, (int) std::to_string(std::max(p.a, p.b)).size()) << p.reasoning;
        EXPECT_NE(p.reasoning.find("= " + p.answer + "."), std::string::npos) << p.reasoning;
    }
}

TEST(tasks, the_test_split_never_meets_a_training_set) {
    // Every 1- and 2-digit problem: the split is a property of the problem.
    int held = 0, total = 0;
    for (uint64_t a = 0; a < 100; ++a) {
        for (uint64_t b = 0; b < 100; ++b) {
            held += held_out(OP_ADD, a, b) ? 1 : 0;
            total++;
        }
    }
    EXPECT_GT(held, total / 20);
    EXPECT_LT(held, total / 5);
    std::set<std::tuple<int, uint64_t, uint64_t>> test;
    for (uint64_t seed : { 1, 2 }) {
        generator g({ .digits_min = 2, .digits_max = 2, .seed = seed });
        for (int i = 0; i < 300; ++i) {
            const problem p = g.next(SPLIT_TEST);
            EXPECT_TRUE(held_out(p.op, p.a, p.b));
            test.insert({ (int) p.op, p.a, p.b });
        }
    }
    for (uint64_t seed : { 1, 3, 99 }) {
        generator g({ .digits_min = 2, .digits_max = 2, .seed = seed });
        for (int i = 0; i < 3000; ++i) {
            const problem p = g.next(SPLIT_TRAIN);
            ASSERT_EQ(test.count({ (int) p.op, p.a, p.b }), 0u) << p.question;
        }
    }
}

TEST(tasks, the_seed_fixes_the_problems) {
    generator a({ .digits_min = 3, .digits_max = 5, .seed = 7 }), b({ .digits_min = 3, .digits_max = 5, .seed = 7 }),
        c({ .digits_min = 3, .digits_max = 5, .seed = 8 });
    int differ = 0;
    for (int i = 0; i < 50; ++i) {
        const problem x = a.next(SPLIT_TRAIN), y = b.next(SPLIT_TRAIN), z = c.next(SPLIT_TRAIN);
        EXPECT_EQ(x.question, y.question);
        differ += x.question != z.question;
    }
    EXPECT_GT(differ, 40);
    EXPECT_THROW(generator({ .digits_min = 0 }), std::invalid_argument);
    EXPECT_THROW(generator({ .digits_min = 3, .digits_max = 19 }), std::invalid_argument);
}

TEST(tasks, test_sets_are_muse_eval_task_files) {
    generator   g({ .digits_min = 3, .digits_max = 3, .seed = 5 });
    std::string text;
    for (int i = 0; i < 20; ++i) {
        const problem p = g.next(SPLIT_TEST);
        text += "{\"question\": \"" + p.question + "\", \"answer\": \"" + p.answer + "\"}\n";
    }
    std::vector<muse::eval_task> tasks;
    ASSERT_FALSE(muse::parse_eval_tasks(text, "t", 0, tasks));
    ASSERT_EQ(tasks.size(), 20u);
    // The answer channel (the bare answer) and the scratchpad's last sentence both score right.
    generator g2({ .digits_min = 3, .digits_max = 3, .seed = 5 });
    for (const auto & t : tasks) {
        const problem p = g2.next(SPLIT_TEST);
        EXPECT_EQ(muse::eval_answer_key(p.answer), t.expected);
        const std::string last = p.reasoning.substr(p.reasoning.rfind(" So ") + 1);
        EXPECT_EQ(muse::eval_answer_key(last), t.expected) << last;
    }
}

}  // namespace
