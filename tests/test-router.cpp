#include "reasoning/router.h"

#include <gtest/gtest.h>

using namespace muse;

namespace {

route_decision route(const std::string & text, int attachments = 0) {
    route_decision d = route_request(text, attachments);
    EXPECT_FALSE(d.reason.empty()) << text;
    EXPECT_EQ(d.reason.find('\n'), std::string::npos);
    EXPECT_NE(d.mode, MODE_AUTO);
    return d;
}

}  // namespace

TEST(router, mode_names) {
    for (ask_mode m : { MODE_AUTO, MODE_INSTANT, MODE_THINKING, MODE_CONTEMPLATING }) {
        ask_mode parsed = MODE_AUTO;
        ASSERT_TRUE(parse_ask_mode(ask_mode_name(m), parsed)) << ask_mode_name(m);
        EXPECT_EQ(parsed, m);
    }
    EXPECT_STREQ(ask_mode_name(MODE_CONTEMPLATING), "contemplating");
    ask_mode m = MODE_THINKING;
    EXPECT_TRUE(parse_ask_mode("Instant", m));
    EXPECT_EQ(m, MODE_INSTANT);
    EXPECT_TRUE(parse_ask_mode("CONTEMPLATING", m));
    EXPECT_EQ(m, MODE_CONTEMPLATING);
    EXPECT_TRUE(parse_ask_mode(" thinking\n", m));
    EXPECT_EQ(m, MODE_THINKING);

    m = MODE_THINKING;
    EXPECT_FALSE(parse_ask_mode("fast", m));
    EXPECT_FALSE(parse_ask_mode("", m));
    EXPECT_FALSE(parse_ask_mode("think", m));
    EXPECT_EQ(m, MODE_THINKING) << "untouched on failure";
}

TEST(router, features) {
    const auto f = route_extract_features("Is 15% of 80 more than 3*4? Or not?", 2);
    EXPECT_EQ(f.words, 9);
    EXPECT_EQ(f.questions, 2);
    EXPECT_EQ(f.attachments, 2);
    EXPECT_TRUE(f.math);
    EXPECT_FALSE(f.code);
    EXPECT_FALSE(f.casual);

    EXPECT_EQ(route_extract_features("caf\xc3\xa9", 0).chars, 4);
    EXPECT_EQ(route_extract_features("", -3).attachments, 0);

    EXPECT_TRUE(route_extract_features("```\nint main() {}\n```", 0).code);
    EXPECT_TRUE(route_extract_features("Why won't my C++ template compile", 0).code);
    EXPECT_TRUE(route_extract_features("1. buy milk\n2. fix the roof", 0).multi_step);
    EXPECT_TRUE(route_extract_features("What is the probability of two sixes", 0).math);
    EXPECT_TRUE(route_extract_features("thanks!", 0).casual);
    EXPECT_TRUE(route_extract_features("That helped, thank you", 0).casual);
    EXPECT_FALSE(route_extract_features("Translate 'good morning' into Spanish", 0).casual);

    // Not math: hyphenated words, dates, version-like text.
    EXPECT_FALSE(route_extract_features("a step-by-step e-mail about covid-19", 0).math);
    EXPECT_FALSE(route_extract_features("What happened on 2024-05-01 or 05/01/2024", 0).math);
    // Keywords match whole words: "planet" is not "plan", "hip" is not "hi".
    const auto g = route_extract_features("Which planet is a hip place", 0);
    EXPECT_FALSE(g.multi_step);
    EXPECT_FALSE(g.casual);
}

TEST(router, instant) {
    auto d = route("hi there!");
    EXPECT_EQ(d.mode, MODE_INSTANT) << d.reason;
    EXPECT_TRUE(d.features.casual);
    EXPECT_NE(d.reason.find("casual"), std::string::npos) << d.reason;

    d = route("What is the capital of France?");
    EXPECT_EQ(d.mode, MODE_INSTANT) << d.reason;
    EXPECT_FALSE(d.features.casual);

    d = route("Thanks, how are you?");
    EXPECT_EQ(d.mode, MODE_INSTANT) << d.reason;

    // Attachments alone do not raise the mode.
    d = route("What is in this picture?", 1);
    EXPECT_EQ(d.mode, MODE_INSTANT) << d.reason;
}

TEST(router, thinking) {
    auto d = route("Solve 3x + 5 = 20 step by step");
    EXPECT_EQ(d.mode, MODE_THINKING) << d.reason;
    EXPECT_TRUE(d.features.math);
    EXPECT_NE(d.reason.find("math ('solve')"), std::string::npos) << d.reason;
    EXPECT_NE(d.reason.find("'step by step'"), std::string::npos) << d.reason;

    d = route("Why does my Python script crash with a KeyError?");
    EXPECT_EQ(d.mode, MODE_THINKING) << d.reason;
    EXPECT_NE(d.reason.find("code"), std::string::npos) << d.reason;

    d = route("Tell me a story about a lighthouse keeper who befriends a seagull during a long winter storm");
    EXPECT_EQ(d.mode, MODE_THINKING) << d.reason;
    EXPECT_NE(d.reason.find("medium"), std::string::npos) << d.reason;

    // Greeting words do not make a real request casual.
    d = route("Hi, can you calculate 17 * 23?");
    EXPECT_EQ(d.mode, MODE_THINKING) << d.reason;
    EXPECT_FALSE(d.features.casual);
}

TEST(router, contemplating) {
    auto d = route(
        "I need to design a caching layer for our API. 1. Write a C++ function that estimates the hit rate given "
        "a Zipf distribution with exponent 1.2 over 10^6 keys. 2. Calculate the expected memory use for a cache of "
        "50,000 entries of 2 KB each, and compare LRU versus LFU eviction. Which would you pick and why?");
    EXPECT_EQ(d.mode, MODE_CONTEMPLATING) << d.reason;
    EXPECT_TRUE(d.features.math);
    EXPECT_TRUE(d.features.code);
    EXPECT_TRUE(d.features.multi_step);
    EXPECT_NE(d.reason.find("math"), std::string::npos) << d.reason;
    EXPECT_NE(d.reason.find("code"), std::string::npos) << d.reason;

    d = route("Please analyze this table and compare the sales of each region over the year", 1);
    EXPECT_EQ(d.mode, MODE_CONTEMPLATING) << d.reason;
    EXPECT_NE(d.reason.find("attachment"), std::string::npos) << d.reason;
    EXPECT_NE(d.reason.find("'analyze'"), std::string::npos) << d.reason;

    d = route("Summarize the trends in this spreadsheet", 1);
    EXPECT_EQ(d.mode, MODE_CONTEMPLATING) << d.reason;

    // Long with a question.
    std::string text;
    for (int i = 0; i < 160; ++i) {
        text += "word ";
    }
    d = route(text + "what now?");
    EXPECT_EQ(d.mode, MODE_CONTEMPLATING) << d.reason;
    EXPECT_NE(d.reason.find("long"), std::string::npos) << d.reason;
    // Long without a question is only thinking.
    EXPECT_EQ(route(text).mode, MODE_THINKING);
}

TEST(router, deterministic) {
    const std::string text = "Compare merge sort and quicksort, and prove the lower bound for comparison sorts";
    const auto        a    = route(text);
    const auto        b    = route(text);
    EXPECT_EQ(a.mode, b.mode);
    EXPECT_EQ(a.reason, b.reason);
    EXPECT_NE(route("").reason, "");
}
