#include "reasoning/answer.h"

#include <gtest/gtest.h>

#include <cmath>

#include <string>
#include <vector>

using muse::ballot;
using muse::extract_answer;
using muse::extracted_answer;
using muse::majority_vote;
using muse::vote_result;

namespace {

ballot make_ballot(int agent, const std::string & text, double confidence = 0) {
    ballot b;
    b.agent      = agent;
    b.answer     = extract_answer(text);
    b.confidence = confidence;
    return b;
}

}  // namespace

TEST(extract_answer, final_answer_marker_with_thousands) {
    extracted_answer a = extract_answer("Let me add them up.\nFinal answer: 1,000");
    EXPECT_EQ(a.kind, muse::ANSWER_NUMBER);
    EXPECT_EQ(a.normalized, "1000");
    EXPECT_EQ(a.display, "1,000");
}

TEST(extract_answer, answer_is_bold) {
    extracted_answer a = extract_answer("After checking twice, the answer is **42**.");
    EXPECT_EQ(a.kind, muse::ANSWER_NUMBER);
    EXPECT_EQ(a.normalized, "42");
    EXPECT_EQ(a.display, "42");
}

TEST(extract_answer, boxed_fraction) {
    extracted_answer a = extract_answer("\\boxed{3/4}");
    EXPECT_EQ(a.kind, muse::ANSWER_NUMBER);
    EXPECT_EQ(a.normalized, "0.75");
    EXPECT_EQ(extract_answer("so we get $\\boxed{\\frac{3}{4}}$.").normalized, "0.75");
    EXPECT_EQ(extract_answer("The total is \\boxed{\\$1,200}").normalized, "1200");
}

TEST(extract_answer, marker_priority) {
    // \boxed beats "answer:", and the last "answer is" wins over an earlier one
    EXPECT_EQ(extract_answer("Answer: 5\nActually \\boxed{6}").normalized, "6");
    EXPECT_EQ(extract_answer("First I thought the answer is 5. Then I saw the answer is 7.").normalized, "7");
    EXPECT_EQ(extract_answer("**Final Answer:** 12 apples").normalized, "12");
    EXPECT_EQ(extract_answer("## Final answer\n\n**x = 9**").normalized, "9");
    EXPECT_EQ(extract_answer("We compute 3 + 4.\n\nSo it is **7**").normalized, "7");
    EXPECT_EQ(extract_answer("The answer is 42, because 6 * 7 = 42 and not 41.").normalized, "42");
    EXPECT_EQ(extract_answer("So x = 5.").normalized, "5");
    EXPECT_EQ(extract_answer("Final Answer: The final answer is $12$. I hope it is correct.").normalized, "12");
}

TEST(extract_answer, options) {
    for (const char * text : { "(C)", "C)", "C.", "C", "option C", "Option (c)", "**C**" }) {
        extracted_answer a = extract_answer(text);
        EXPECT_EQ(a.kind, muse::ANSWER_OPTION) << text;
        EXPECT_EQ(a.normalized, "C") << text;
    }
    extracted_answer a = extract_answer("(C)");
    EXPECT_EQ(a.display, "(C)");
    EXPECT_EQ(extract_answer("The answer is (B) Paris, since ...").normalized, "B");
}

TEST(extract_answer, short_span) {
    extracted_answer a = extract_answer("Paris");
    extracted_answer b = extract_answer("paris.");
    EXPECT_EQ(a.kind, muse::ANSWER_SPAN);
    EXPECT_EQ(b.kind, muse::ANSWER_SPAN);
    EXPECT_EQ(a.normalized, "paris");
    EXPECT_EQ(a.normalized, b.normalized);
    EXPECT_EQ(a.display, "Paris");
    EXPECT_EQ(extract_answer("The Eiffel Tower!").normalized, "eiffel tower");
    EXPECT_EQ(extract_answer("Answer: the Nile").normalized, "nile");
}

TEST(extract_answer, short_number_text) {
    EXPECT_EQ(extract_answer("1000.0").normalized, "1000");
    EXPECT_EQ(extract_answer("  $1,000  ").normalized, "1000");
    EXPECT_EQ(extract_answer("-3").normalized, "-3");
}

TEST(extract_answer, last_number_in_medium_text) {
    extracted_answer a = extract_answer(
        "We have 3 boxes with 4 apples each, so in total there are 12 apples in the boxes altogether now.");
    EXPECT_EQ(a.kind, muse::ANSWER_NUMBER);
    EXPECT_EQ(a.normalized, "12");
    EXPECT_EQ(a.display, "12");
}

TEST(extract_answer, long_essay_without_marker_is_none) {
    std::string essay;
    for (int i = 0; i < 20; ++i) {
        essay += "This paragraph discusses the history of the problem in some depth, year " + std::to_string(1900 + i) +
                 ", without ever committing to a result. ";
    }
    EXPECT_EQ(extract_answer(essay).kind, muse::ANSWER_NONE);
    EXPECT_EQ(extract_answer("").kind, muse::ANSWER_NONE);
    EXPECT_EQ(extract_answer("   \n ").kind, muse::ANSWER_NONE);
    EXPECT_EQ(extract_answer("...").kind, muse::ANSWER_NONE);
}

TEST(majority_vote, clear_majority) {
    std::vector<ballot> ballots = { make_ballot(0, "Final answer: 12"), make_ballot(1, "Final answer: 12"),
                                    make_ballot(2, "Final answer: 13"), make_ballot(3, "Final answer: 12") };
    vote_result         v       = majority_vote(ballots);
    EXPECT_TRUE(v.decided);
    EXPECT_EQ(v.normalized, "12");
    EXPECT_EQ(v.votes, 3);
    EXPECT_EQ(v.voters, 4);
    EXPECT_FALSE(v.tie);
    EXPECT_TRUE(v.tie_break.empty());
    EXPECT_DOUBLE_EQ(v.agreement, 0.75);
    ASSERT_EQ(v.tally.size(), 2u);
    EXPECT_EQ(v.tally[0].agents, (std::vector<int>{ 0, 1, 3 }));
    EXPECT_EQ(v.tally[1].normalized, "13");
    EXPECT_EQ(v.tally[1].votes, 1);
}

TEST(majority_vote, equivalent_numbers_are_one_answer) {
    // ballots out of agent order: the display still comes from the lowest agent index
    std::vector<ballot> ballots = { make_ballot(2, "1000.0"), make_ballot(0, "Answer: 1,000"), make_ballot(1, "1000"),
                                    make_ballot(3, "999") };
    vote_result         v       = majority_vote(ballots);
    EXPECT_EQ(v.normalized, "1000");
    EXPECT_EQ(v.display, "1,000");
    EXPECT_EQ(v.votes, 3);
    EXPECT_EQ(v.tally[0].agents, (std::vector<int>{ 0, 1, 2 }));
}

TEST(majority_vote, tie_broken_by_confidence) {
    std::vector<ballot> ballots = { make_ballot(0, "A", -0.9), make_ballot(1, "B", -0.2), make_ballot(2, "A", -0.8),
                                    make_ballot(3, "B", -0.3) };
    vote_result         v       = majority_vote(ballots);
    EXPECT_TRUE(v.tie);
    EXPECT_EQ(v.tie_break, "confidence");
    EXPECT_EQ(v.normalized, "B");
    EXPECT_EQ(v.votes, 2);
    EXPECT_DOUBLE_EQ(v.agreement, 0.5);
    EXPECT_EQ(v.tally[0].normalized, "B");
    EXPECT_EQ(v.tally[1].normalized, "A");
}

TEST(majority_vote, tie_with_equal_confidence_goes_to_first_agent) {
    std::vector<ballot> ballots = { make_ballot(0, "7"), make_ballot(1, "8"), make_ballot(2, "8"),
                                    make_ballot(3, "7") };
    vote_result         v       = majority_vote(ballots);
    EXPECT_TRUE(v.tie);
    EXPECT_EQ(v.tie_break, "first agent");
    EXPECT_EQ(v.normalized, "7");

    ballots = { make_ballot(0, "8", -0.5), make_ballot(1, "7", -0.5) };
    v       = majority_vote(ballots);
    EXPECT_EQ(v.tie_break, "first agent");
    EXPECT_EQ(v.normalized, "8");

    // unknown confidence (0) on one side must not count as "surest"
    ballots = { make_ballot(0, "8", -0.5), make_ballot(1, "7", 0) };
    v       = majority_vote(ballots);
    EXPECT_EQ(v.tie_break, "first agent");
    EXPECT_EQ(v.normalized, "8");
}

TEST(majority_vote, no_ballots_and_none_answers) {
    vote_result v = majority_vote({});
    EXPECT_FALSE(v.decided);
    EXPECT_EQ(v.voters, 0);
    EXPECT_TRUE(v.tally.empty());

    std::string essay(500, 'x');
    for (size_t i = 0; i < essay.size(); i += 5) {
        essay[i] = ' ';
    }
    std::vector<ballot> ballots = { make_ballot(0, essay), make_ballot(1, "Final answer: 5"), make_ballot(2, essay),
                                    make_ballot(3, "5") };
    ASSERT_EQ(ballots[0].answer.kind, muse::ANSWER_NONE);
    v = majority_vote(ballots);
    EXPECT_TRUE(v.decided);
    EXPECT_EQ(v.voters, 2);
    EXPECT_EQ(v.votes, 2);
    EXPECT_DOUBLE_EQ(v.agreement, 1.0);
    EXPECT_EQ(v.tally[0].agents, (std::vector<int>{ 1, 3 }));

    v = majority_vote({ make_ballot(0, essay) });
    EXPECT_FALSE(v.decided);
    EXPECT_EQ(v.voters, 0);
}

namespace {

ballot weighted_ballot(int agent, const std::string & text, double log_weight) {
    ballot b     = make_ballot(agent, text);
    b.has_weight = true;
    b.log_weight = log_weight;
    return b;
}

}  // namespace

TEST(weighted_vote, a_sure_minority_outweighs_agents_that_slipped) {
    // Two agents agree on 13762, each through a stretch of unlikely tokens (log-probability
    // -9 and -8); two agree on 9682 with no slip (-0.5, -1): the sure answer wins, the count
    // does not decide.
    std::vector<ballot> ballots = { weighted_ballot(0, "Final answer: 13762", -9), weighted_ballot(1, "9682", -0.5),
                                    weighted_ballot(2, "13762", -8), weighted_ballot(3, "Final answer: 9682", -1),
                                    weighted_ballot(4, "13762", -7) };
    vote_result v = majority_vote(ballots, muse::VOTE_WEIGHTED);
    EXPECT_TRUE(v.weighted);
    EXPECT_EQ(v.normalized, "9682");
    EXPECT_EQ(v.votes, 2);
    EXPECT_DOUBLE_EQ(v.agreement, 0.4);
    EXPECT_GT(v.weight, 0.99);
    ASSERT_EQ(v.tally.size(), 2u);
    EXPECT_EQ(v.tally[0].agents, (std::vector<int>{ 1, 3 }));
    EXPECT_NEAR(v.tally[0].weight + v.tally[1].weight, 1.0, 1e-12);
    EXPECT_EQ(v.tally[1].votes, 3);

    // The same ballots counted one each: the three win.
    v = majority_vote(ballots, muse::VOTE_MAJORITY);
    EXPECT_FALSE(v.weighted);
    EXPECT_EQ(v.normalized, "13762");
    EXPECT_DOUBLE_EQ(v.weight, 0.6);
}

TEST(weighted_vote, weights_far_below_exp_range_still_compare) {
    // exp(-2000) underflows to 0; the vote works on log weights shifted by the largest.
    std::vector<ballot> ballots = { weighted_ballot(0, "1", -2000), weighted_ballot(1, "2", -1990),
                                    weighted_ballot(2, "1", -2001) };
    vote_result v = majority_vote(ballots, muse::VOTE_WEIGHTED);
    EXPECT_TRUE(v.weighted);
    EXPECT_EQ(v.normalized, "2");
    EXPECT_FALSE(v.tie);
    EXPECT_GT(v.weight, 0.99);
}

TEST(weighted_vote, equal_weights_fall_back_to_the_count_then_the_tie_rules) {
    std::vector<ballot> ballots = { weighted_ballot(0, "5", -1), weighted_ballot(1, "6", -1) };
    vote_result v = majority_vote(ballots, muse::VOTE_WEIGHTED);
    EXPECT_TRUE(v.tie);
    EXPECT_EQ(v.tie_break, "first agent");
    EXPECT_EQ(v.normalized, "5");
    EXPECT_DOUBLE_EQ(v.weight, 0.5);
}

TEST(weighted_vote, an_unknown_or_broken_weight_makes_it_a_plain_count) {
    for (double bad : { std::nan(""), -(double) INFINITY, (double) INFINITY }) {
        std::vector<ballot> ballots = { weighted_ballot(0, "5", -0.1), weighted_ballot(1, "6", bad),
                                        weighted_ballot(2, "6", -50) };
        vote_result v = majority_vote(ballots, muse::VOTE_WEIGHTED);
        EXPECT_FALSE(v.weighted) << bad;
        EXPECT_EQ(v.normalized, "6") << bad;
    }
    std::vector<ballot> ballots = { weighted_ballot(0, "5", -0.1), make_ballot(1, "6"), weighted_ballot(2, "6", -50) };
    vote_result v = majority_vote(ballots, muse::VOTE_WEIGHTED);
    EXPECT_FALSE(v.weighted);
    EXPECT_EQ(v.normalized, "6");
}

TEST(vote_rule, names_round_trip_and_others_are_refused) {
    muse::vote_rule r = muse::VOTE_MAJORITY;
    EXPECT_TRUE(muse::parse_vote_rule("weighted", r));
    EXPECT_EQ(r, muse::VOTE_WEIGHTED);
    EXPECT_STREQ(muse::vote_rule_name(r), "weighted");
    EXPECT_TRUE(muse::parse_vote_rule("majority", r));
    EXPECT_EQ(r, muse::VOTE_MAJORITY);
    EXPECT_FALSE(muse::parse_vote_rule("Weighted", r));
    EXPECT_FALSE(muse::parse_vote_rule("", r));
    EXPECT_EQ(r, muse::VOTE_MAJORITY);
}
