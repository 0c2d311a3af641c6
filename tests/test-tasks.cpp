// The arithmetic task family (tools/tasks): every answer and every scratchpad line is right,
// the held-out split is disjoint from any training set, generation is fixed by its seed, and
// the test files parse as muse eval's tasks.

#include "arith.h"

#include "app/eval.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <regex>
#include <set>
#include <stdexcept>
#include <tuple>
#include <vector>

using namespace muse::tasks;

namespace {

TEST(tasks, scratchpad_of_a_known_problem) {
    problem p = make_problem(OP_ADD, 487, 356);
    EXPECT_EQ(p.question, "What is 487 + 356?");
    EXPECT_EQ(p.answer, "843");
    EXPECT_EQ(p.reasoning,
              "487 + 356: 7 + 6 + 0 = 13, carry 1, so far 3.\n"
              "48 + 35: 8 + 5 + 1 = 14, carry 1, so far 43.\n"
              "4 + 3: 4 + 3 + 1 = 8, carry 0, so far 843.\n"
              "So the answer is 843.");
    p = make_problem(OP_SUB, 7045, 533);
    EXPECT_EQ(p.answer, "6512");
    EXPECT_EQ(p.reasoning,
              "7045 - 533: 5 - 3 - 0 = 2, borrow 0, so far 2.\n"
              "704 - 53: 4 - 3 - 0 = 1, borrow 0, so far 12.\n"
              "70 - 5: 0 - 5 - 0 < 0, so 10 - 5 - 0 = 5, borrow 1, so far 512.\n"
              "7 - 0: 7 - 0 - 1 = 6, borrow 0, so far 6512.\n"
              "So the answer is 6512.");
    EXPECT_EQ(make_problem(OP_ADD, 9999, 1).answer, "10000");
    p = make_problem(OP_SUB, 1000, 999);
    EXPECT_EQ(p.answer, "1");
    EXPECT_EQ(p.reasoning,
              "1000 - 999: 0 - 9 - 0 < 0, so 10 - 9 - 0 = 1, borrow 1, so far 1.\n"
              "100 - 99: 0 - 9 - 1 < 0, so 10 - 9 - 1 = 0, borrow 1, so far 01.\n"
              "10 - 9: 0 - 9 - 1 < 0, so 10 - 9 - 1 = 0, borrow 1, so far 001.\n"
              "1 - 0: 1 - 0 - 1 = 0, borrow 0, so far 0001.\n"
              "0001 without its leading zeros is 1.\n"
              "So the answer is 1.");
    EXPECT_EQ(make_problem(OP_SUB, 7793, 7031).reasoning.substr(make_problem(OP_SUB, 7793, 7031).reasoning.find("so far 0762")),
              "so far 0762.\n0762 without its leading zero is 762.\nSo the answer is 762.");
    EXPECT_EQ(make_problem(OP_SUB, 5, 5).reasoning, "5 - 5: 5 - 5 - 0 = 0, borrow 0, so far 0.\nSo the answer is 0.");
    EXPECT_EQ(make_problem(OP_SUB, 10, 10).reasoning,
              "10 - 10: 0 - 0 - 0 = 0, borrow 0, so far 0.\n1 - 1: 1 - 1 - 0 = 0, borrow 0, so far 00.\n"
              "00 without its leading zero is 0.\nSo the answer is 0.");
    EXPECT_EQ(make_problem(OP_ADD, 0, 0).reasoning, "0 + 0: 0 + 0 + 0 = 0, carry 0, so far 0.\nSo the answer is 0.");
    EXPECT_THROW(make_problem(OP_SUB, 1, 2), std::invalid_argument);
}

// Every line of every scratchpad is recomputed from its own numbers: the operands left are the
// previous line's without their last digit, the column is right, the carry or borrow goes on,
// the digits so far grow by the column's digit in front, and a result with leading zeros drops
// them on a line of its own before the last.
TEST(tasks, every_answer_and_column_is_right) {
    generator        g({ .digits_min = 1, .digits_max = 9, .seed = 42 });
    const std::regex add_line(R"(^(\d+) \+ (\d+): (\d) \+ (\d) \+ ([01]) = (\d+), carry ([01]), so far (\d+)\.$)");
    // a borrowing column: "3 - 8 - 0 < 0, so 13 - 8 - 0 = 5" (group 4 holds the repeat)
    const std::regex sub_line(
        R"(^(\d+) - (\d+): (\d)( - \d - [01] < 0, so 1\d)? - (\d) - ([01]) = (\d), borrow ([01]), so far (\d+)\.$)");
    for (int i = 0; i < 5000; ++i) {
        const problem  p    = g.next(i % 2 ? SPLIT_TRAIN : SPLIT_TEST);
        const uint64_t want = p.op == OP_ADD ? p.a + p.b : p.a - p.b;
        ASSERT_EQ(p.answer, std::to_string(want)) << p.question;
        std::vector<std::string> lines;
        for (size_t at = 0, nl; at < p.reasoning.size(); at = nl + 1) {
            nl = p.reasoning.find('\n', at);
            if (nl == std::string::npos) nl = p.reasoning.size();
            lines.push_back(p.reasoning.substr(at, nl - at));
        }
        ASSERT_GE(lines.size(), 2u) << p.reasoning;
        uint64_t    x = p.a, y = p.b;
        int         carry = 0;
        std::string so_far;
        // the leading-zeros line, when the digits found start with a 0
        const bool   zeros = p.op == OP_SUB && lines.size() >= 3 && lines[lines.size() - 2].find(" without its leading ") != std::string::npos;
        const size_t n_col = lines.size() - (zeros ? 2 : 1);
        for (size_t k = 0; k < n_col; ++k) {
            std::smatch m;
            const bool  add = p.op == OP_ADD;
            ASSERT_TRUE(std::regex_match(lines[k], m, add ? add_line : sub_line)) << lines[k];
            ASSERT_EQ(std::stoull(m[1]), x) << lines[k];
            ASSERT_EQ(std::stoull(m[2]), y) << lines[k];
            ASSERT_EQ(std::stoi(m[3]), (int) (x % 10)) << lines[k];
            int d = 0;
            if (add) {
                ASSERT_EQ(std::stoi(m[4]), (int) (y % 10)) << lines[k];
                ASSERT_EQ(std::stoi(m[5]), carry) << lines[k];
                const int s = (int) (x % 10 + y % 10) + carry;
                ASSERT_EQ(std::stoi(m[6]), s) << lines[k];
                ASSERT_EQ(std::stoi(m[7]), s / 10) << lines[k];
                d     = s % 10;
                carry = s / 10;
                ASSERT_EQ(m[8].str(), std::to_string(d) + so_far) << lines[k];
            } else {
                ASSERT_EQ(std::stoi(m[5]), (int) (y % 10)) << lines[k];
                ASSERT_EQ(std::stoi(m[6]), carry) << lines[k];
                const int s = (int) (x % 10) - (int) (y % 10) - carry;
                ASSERT_EQ(m[4].matched, s < 0) << lines[k];
                if (s < 0) {  // the repeat restates this column's numbers
                    ASSERT_EQ(m[4].str(), " - " + std::to_string(y % 10) + " - " + std::to_string(carry) + " < 0, so 1" +
                                              std::to_string(x % 10))
                        << lines[k];
                }
                d     = s < 0 ? s + 10 : s;
                carry = s < 0;
                ASSERT_EQ(std::stoi(m[7]), d) << lines[k];
                ASSERT_EQ(std::stoi(m[8]), carry) << lines[k];
                ASSERT_EQ(m[9].str(), std::to_string(d) + so_far) << lines[k];
            }
            so_far = std::to_string(d) + so_far;
            x /= 10;
            y /= 10;
        }
        EXPECT_EQ(x, 0u) << p.reasoning;
        EXPECT_EQ(y, 0u) << p.reasoning;
        const bool has_zeros = so_far.size() > 1 && so_far[0] == '0';
        EXPECT_EQ(zeros, has_zeros && p.op == OP_SUB) << p.reasoning;
        if (zeros) {
            EXPECT_EQ(lines[lines.size() - 2], so_far + " without its leading zero" +
                                                   (so_far.size() - p.answer.size() > 1 ? "s" : "") + " is " + p.answer + ".")
                << p.reasoning;
        }
        EXPECT_EQ(lines.back(), "So the answer is " + p.answer + ".") << p.reasoning;
    }
}

TEST(tasks, check_of_a_known_candidate) {
    bool right = false;
    EXPECT_EQ(check_reasoning(make_problem(OP_ADD, 487, 356), 843, right),
              "Check 843 - 356 against 487.\n" + make_problem(OP_SUB, 843, 356).reasoning +
                  "\n487 against 487: 7 and 7, 8 and 8, 4 and 4, the same.");
    EXPECT_TRUE(right);
    EXPECT_EQ(check_reasoning(make_problem(OP_ADD, 487, 356), 853, right),
              "Check 853 - 356 against 487.\n" + make_problem(OP_SUB, 853, 356).reasoning +
                  "\n497 against 487: 7 and 7, 9 and 8 differ.");
    EXPECT_FALSE(right);
    // A subtraction is checked by adding; a result longer than the first number differs in
    // the digit the first number lacks.
    EXPECT_EQ(check_reasoning(make_problem(OP_SUB, 5593, 657), 14936, right),
              "Check 14936 + 657 against 5593.\n" + make_problem(OP_ADD, 14936, 657).reasoning +
                  "\n15593 against 5593: 3 and 3, 9 and 9, 5 and 5, 5 and 5, 1 and 0 differ.");
    EXPECT_FALSE(right);
    EXPECT_THROW(check_reasoning(make_problem(OP_ADD, 5335, 82), 50, right), std::invalid_argument)
        << "a sum below b cannot be checked by subtracting b";
}

TEST(tasks, checks_find_every_answer_right_and_every_slip_wrong) {
    generator g({ .digits_min = 1, .digits_max = 5, .seed = 11, .p_hard = 0.5 });
    int       kinds[3] = {};  // slips shorter, as long as, longer than the answer
    for (int i = 0; i < 4000; ++i) {
        const problem p     = g.next(SPLIT_TRAIN);
        bool          right = false;
        const std::string ok = check_reasoning(p, std::stoull(p.answer), right);
        ASSERT_TRUE(right) << p.question;
        ASSERT_EQ(ok.substr(ok.size() - 9), "the same.") << ok;
        const uint64_t s = g.slip(p);
        ASSERT_NE(std::to_string(s), p.answer) << p.question;
        if (p.op == OP_ADD) ASSERT_GE(s, p.b) << p.question;
        const std::string bad = check_reasoning(p, s, right);
        ASSERT_FALSE(right) << p.question << " " << s;
        ASSERT_EQ(bad.substr(bad.size() - 7), "differ.") << bad;
        const size_t n = std::to_string(s).size(), m = p.answer.size();
        kinds[n < m ? 0 : n == m ? 1 : 2]++;
    }
    EXPECT_GT(kinds[0], 300) << "dropped digits";
    EXPECT_GT(kinds[1], 1500) << "digits off by one or swapped";
    EXPECT_GT(kinds[2], 300) << "doubled digits";
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

// Hard cases: what uniform operands rarely give comes often, never from the test split, and
// p_hard = 0 leaves the uniform draws exactly as they were.
TEST(tasks, hard_cases_are_frequent_and_stay_in_the_training_split) {
    auto digits = [](uint64_t v) { return (int) std::to_string(v).size(); };
    auto count  = [&](double p_hard, int & unequal, int & leading_zeros, int & carry_runs) {
        generator g({ .digits_min = 1, .digits_max = 4, .seed = 11, .p_hard = p_hard });
        unequal = leading_zeros = carry_runs = 0;
        for (int i = 0; i < 4000; ++i) {
            const problem p = g.next(SPLIT_TRAIN);
            EXPECT_FALSE(held_out(p.op, p.a, p.b)) << p.question;
            EXPECT_EQ(p.answer, std::to_string(p.op == OP_ADD ? p.a + p.b : p.a - p.b)) << p.question;
            unequal += digits(p.a) != digits(p.b);
            if (p.op == OP_SUB && digits(p.a) >= 2 && digits(p.a - p.b) < digits(p.a)) {
                leading_zeros += std::to_string(p.a)[0] == std::to_string(p.b)[0] && digits(p.b) == digits(p.a);
            }
            carry_runs += p.op == OP_ADD && p.a % 100 == 99 && p.b % 10 != 0;
        }
    };
    int u0, z0, c0, u1, z1, c1;
    count(0.0, u0, z0, c0);
    count(1.0, u1, z1, c1);
    EXPECT_GT(u1, 2000) << "lengths differ in most hard cases (" << u0 << " of 4000 uniform)";
    EXPECT_GT(u1, 2 * u0);
    EXPECT_GT(z1, 4 * z0) << "subtractions of numbers that share their leading digit";
    EXPECT_GT(c1, 4 * c0 + 100) << "additions with a run of carries";

    generator a({ .digits_min = 1, .digits_max = 4, .seed = 3 }), b({ .digits_min = 1, .digits_max = 4, .seed = 3, .p_hard = 0.0 });
    for (int i = 0; i < 100; ++i) EXPECT_EQ(a.next(SPLIT_TEST).question, b.next(SPLIT_TEST).question);
    EXPECT_THROW(generator({ .digits_min = 1, .digits_max = 4, .p_hard = 1.5 }), std::invalid_argument);
}

// p_sub sets the share of subtractions; 0.5 is the fair coin of a generator without it.
TEST(tasks, share_of_subtractions) {
    auto subs = [](double p_sub) {
        generator g({ .digits_min = 1, .digits_max = 4, .seed = 7, .p_sub = p_sub });
        int       n = 0;
        for (int i = 0; i < 4000; ++i) {
            const problem p = g.next(SPLIT_TRAIN);
            EXPECT_EQ(p.answer, std::to_string(p.op == OP_ADD ? p.a + p.b : p.a - p.b)) << p.question;
            n += p.op == OP_SUB;
        }
        return n;
    };
    EXPECT_EQ(subs(0.0), 0);
    EXPECT_EQ(subs(1.0), 4000);
    EXPECT_NEAR(subs(0.75), 3000, 150);
    EXPECT_NEAR(subs(0.5), 2000, 150);
    generator a({ .digits_min = 1, .digits_max = 4, .seed = 3 }), b({ .digits_min = 1, .digits_max = 4, .seed = 3, .p_sub = 0.5 });
    for (int i = 0; i < 100; ++i) EXPECT_EQ(a.next(SPLIT_TRAIN).question, b.next(SPLIT_TRAIN).question);
    EXPECT_THROW(generator({ .digits_min = 1, .digits_max = 4, .p_sub = -0.1 }), std::invalid_argument);
    EXPECT_THROW(generator({ .digits_min = 1, .digits_max = 4, .p_sub = 1.01 }), std::invalid_argument);
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
        const std::string last = p.reasoning.substr(p.reasoning.rfind("\nSo ") + 1);
        EXPECT_EQ(muse::eval_answer_key(last), t.expected) << last;
    }
}

}  // namespace
