// Chat formatting, reasoning on/off, budget forcing and constrained output, through the
// local backend, for both generated model families.

#include "test-models.h"

#include "backend/local-backend.h"
#include "engine/engine.h"

#include "json.h"

#include <gtest/gtest.h>

#include <algorithm>

using namespace muse;

namespace {

class chat_test : public ::testing::TestWithParam<test::test_family> {
  protected:
    void SetUp() override {
        engine_params p;
        p.n_ctx     = 4096;
        p.n_seq_max = 4;
        p.n_threads = 2;
        error err;
        eng = engine::create(test::shared_model(GetParam()), p, err);
        ASSERT_TRUE(eng) << err.message;
        be = std::make_unique<local_backend>(*eng);
    }

    chat_request ask(const std::string & text) {
        chat_request r;
        r.messages             = { { "system", "You are Muse." }, { "user", text } };
        r.sampling.temperature = 0;
        r.max_tokens           = 48;
        return r;
    }

    std::unique_ptr<engine>        eng;
    std::unique_ptr<local_backend> be;
};

TEST_P(chat_test, prompt_uses_the_model_template) {
    sequence_request sr;
    chat_prompt      cp;
    ASSERT_FALSE(be->build(ask("Hello"), sr, cp));
    if (GetParam() == test::GLIMMER) {
        EXPECT_NE(sr.prompt.find("<|start|>user<|message|>Hello"), std::string::npos) << sr.prompt;
        EXPECT_NE(sr.prompt.rfind("<|start|>assistant"), std::string::npos);
    } else {
        EXPECT_NE(sr.prompt.find("<|im_start|>user\nHello<|im_end|>"), std::string::npos) << sr.prompt;
        EXPECT_NE(sr.prompt.rfind("<|im_start|>assistant\n"), std::string::npos);
    }
}

TEST_P(chat_test, reasoning_off_answers_directly) {
    auto req      = ask("What is 2+2?");
    req.reasoning = REASONING_OFF;
    auto r        = collect(*be->start(req));
    ASSERT_FALSE(r.err) << r.err.message;
    EXPECT_TRUE(r.reasoning.empty()) << r.reasoning;
    EXPECT_FALSE(r.content.empty());
}

TEST_P(chat_test, budget_forcing_ends_reasoning_at_the_budget_and_the_answer_follows) {
    const int32_t budget = 12;
    auto          req    = ask("Think about the meaning of life.");
    req.reasoning        = REASONING_ON;
    req.reasoning_budget = budget;
    req.max_tokens       = 64;

    // Run it at the engine level to see the tokens, then parse the text like the backend.
    sequence_request sr;
    chat_prompt      cp;
    ASSERT_FALSE(be->build(req, sr, cp));
    ASSERT_FALSE(sr.reasoning_forced.empty());
    auto                     h = eng->submit(sr);
    sequence_event           ev;
    std::vector<llama_token> tokens;
    std::string              text;
    while (h.next(ev)) {
        if (ev.type == sequence_event::TOKEN) {
            tokens.push_back(ev.token);
            text += ev.text;
        } else {
            ASSERT_FALSE(ev.err) << ev.err.message;
        }
    }
    // The forced closing sequence starts right after `budget` reasoning tokens (a few more
    // only if the budget ended inside a UTF-8 character).
    const auto forced = common_tokenize(llama_model_get_vocab(eng->get_model().get()), sr.reasoning_forced, false, true);
    auto it = std::search(tokens.begin(), tokens.end(), forced.begin(), forced.end());
    ASSERT_NE(it, tokens.end()) << "budget forcing never closed the reasoning: " << text;
    const auto at = it - tokens.begin();
    EXPECT_GE(at, budget);
    EXPECT_LE(at, budget + 3);

    chat_output_parser      parser(cp.parser);
    std::vector<chat_delta> deltas;
    parser.update(text, true, deltas);
    EXPECT_FALSE(parser.message().reasoning_content.empty()) << text;
    EXPECT_FALSE(parser.message().content.empty()) << "the answer must follow the forced end: " << text;

    // Through the backend, reasoning events all come before content events.
    auto s = be->start(req);
    chat_event ce;
    bool seen_content = false, reasoning_after_content = false;
    while (s->next(ce)) {
        reasoning_after_content |= seen_content && ce.type == chat_event::REASONING;
        seen_content |= ce.type == chat_event::CONTENT;
    }
    EXPECT_TRUE(seen_content);
    EXPECT_FALSE(reasoning_after_content);
}

// The engine's fast top-k sampler picks exactly the tokens llama.cpp's common sampler picks,
// through a reasoning budget that forces the closing sequence mid-way, at two temperatures and
// greedily (where random weights give equal top logits, broken as llama.cpp breaks them).
TEST_P(chat_test, fast_sampling_picks_the_tokens_of_llama_cpps_sampler) {
    auto req                 = ask("Think about rivers, then answer.");
    req.reasoning            = REASONING_ON;
    req.reasoning_budget     = 10;
    req.max_tokens           = 40;
    req.sampling.temperature = 0.9f;
    req.sampling.seed        = 11;
    sequence_request sr;
    chat_prompt      cp;
    ASSERT_FALSE(be->build(req, sr, cp));

    engine_params p;
    p.n_ctx         = 4096;
    p.n_seq_max     = 4;
    p.n_threads     = 2;
    p.fast_sampling = false;
    error err;
    auto  reference = engine::create(test::shared_model(GetParam()), p, err);
    ASSERT_TRUE(reference) << err.message;

    const uint64_t fast_before = eng->stats().sequences_fast_sampled;
    for (int i = 0; i < 3; ++i) {
        sr.sampling.seed        = 11 + i;
        sr.sampling.temperature = i == 2 ? 0.0f : 0.9f;
        auto hf          = eng->submit(sr);
        auto hs          = reference->submit(sr);
        auto fast        = test::drain(hf);
        auto slow        = test::drain(hs);
        ASSERT_FALSE(fast.err) << fast.err.message;
        ASSERT_FALSE(slow.err) << slow.err.message;
        EXPECT_EQ(fast.tokens.size(), 40u);
        EXPECT_EQ(fast.tokens, slow.tokens) << "seed " << sr.sampling.seed;
        const auto forced = common_tokenize(llama_model_get_vocab(eng->get_model().get()), sr.reasoning_forced, false, true);
        EXPECT_NE(std::search(fast.tokens.begin(), fast.tokens.end(), forced.begin(), forced.end()), fast.tokens.end())
            << "the budget forced the end of the reasoning";
    }
    EXPECT_EQ(eng->stats().sequences_fast_sampled, fast_before + 3) << "the fast sampler picked these tokens";
    EXPECT_EQ(reference->stats().sequences_fast_sampled, 0u) << "llama.cpp's sampler picked the reference's";
}

TEST_P(chat_test, unlimited_reasoning_keeps_going) {
    auto req       = ask("Think.");
    req.reasoning  = REASONING_ON;
    req.max_tokens = 40;
    auto r         = collect(*be->start(req));
    ASSERT_FALSE(r.err) << r.err.message;
    // Random weights rarely close reasoning on their own: without a budget it runs to max_tokens.
    EXPECT_GE(eng->tokenize(r.reasoning).size(), 30u);
}

TEST_P(chat_test, json_schema_output_parses_against_the_schema) {
    const std::string schema = R"({
        "type": "object",
        "properties": {
            "name":  { "type": "string", "maxLength": 12 },
            "age":   { "type": "integer", "minimum": 0, "maximum": 150 },
            "tags":  { "type": "array", "items": { "type": "string", "maxLength": 6 }, "maxItems": 3 },
            "ok":    { "type": "boolean" }
        },
        "required": ["name", "age", "tags", "ok"],
        "additionalProperties": false
    })";
    for (uint32_t seed : { 1u, 2u, 3u }) {
        auto req                 = ask("Describe a person as JSON.");
        req.json_schema          = schema;
        req.max_tokens           = 200;
        req.sampling.temperature = 1.0f;
        req.sampling.seed        = seed;
        auto r                   = collect(*be->start(req));
        ASSERT_FALSE(r.err) << r.err.message;
        EXPECT_TRUE(r.reasoning.empty());
        common_json j = common_json::parse_no_throw(r.content);
        ASSERT_FALSE(j.is_discarded()) << "not JSON: " << r.content;
        ASSERT_TRUE(j.is_object()) << r.content;
        ASSERT_TRUE(j.contains("name") && j.at("name").is_string()) << r.content;
        ASSERT_TRUE(j.contains("age") && j.at("age").is_number_integer()) << r.content;
        EXPECT_GE(j.at("age").get<int64_t>(), 0);
        EXPECT_LE(j.at("age").get<int64_t>(), 150);
        ASSERT_TRUE(j.contains("tags") && j.at("tags").is_array()) << r.content;
        EXPECT_LE(j.at("tags").size(), 3u);
        ASSERT_TRUE(j.contains("ok") && j.at("ok").is_boolean()) << r.content;
        EXPECT_EQ(j.size(), 4u) << r.content;
    }
}

TEST_P(chat_test, invalid_json_schema_is_a_clear_error) {
    auto req        = ask("x");
    req.json_schema = "{not json";
    auto r          = collect(*be->start(req));
    EXPECT_EQ(r.err.code, ERROR_INVALID_ARGUMENT);
    EXPECT_NE(r.err.message.find("json_schema"), std::string::npos);
}

TEST_P(chat_test, bad_role_is_named) {
    auto req     = ask("x");
    req.messages = { { "wizard", "hi" } };
    auto r       = collect(*be->start(req));
    EXPECT_EQ(r.err.code, ERROR_INVALID_ARGUMENT);
    EXPECT_NE(r.err.message.find("wizard"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(families, chat_test, ::testing::Values(test::QWEN, test::GLIMMER),
                         [](const auto & info) { return info.param == test::QWEN ? "qwen" : "glimmer"; });

// Streams pieces through a parser of the prompt's format and returns what it reported.
struct parsed_stream {
    std::string reasoning, content;
};

parsed_stream parse_pieces(chat_output_parser & p, const std::vector<std::string> & pieces) {
    std::vector<chat_delta> deltas;
    for (const auto & piece : pieces) {
        p.update(piece, false, deltas);
    }
    p.update("", true, deltas);
    parsed_stream out;
    for (const auto & d : deltas) {
        out.reasoning += d.reasoning;
        out.content += d.content;
    }
    return out;
}

// The parser side of formats, on text a real model would write.
TEST(chat_parse, glimmer_reasoning_content_and_tool_calls) {
    chat_prompt_options opts;
    opts.messages = { { "user", "weather in Paris?" } };
    opts.tools    = { { "get_weather", "Current weather", R"({"type":"object","properties":{"city":{"type":"string"}},"required":["city"]})" } };
    chat_prompt cp;
    ASSERT_FALSE(format_chat(test::shared_model(test::GLIMMER), opts, cp));

    chat_output_parser      p(cp.parser);
    std::vector<chat_delta> deltas;
    p.update(" to=self<|message|>The user wants weather.<|eom|><|start|>assistant to=get_weather<|message|>"
             "<atem:function_calls>\n<atem:invoke name=\"get_weather\">\n<atem:parameter name=\"city\">Paris</atem:parameter>\n"
             "</atem:invoke>\n</atem:function_calls>",
             true, deltas);
    const auto & msg = p.message();
    EXPECT_EQ(msg.reasoning_content, "The user wants weather.");
    ASSERT_EQ(msg.tool_calls.size(), 1u);
    EXPECT_EQ(msg.tool_calls[0].name, "get_weather");
    EXPECT_NE(msg.tool_calls[0].arguments.find("Paris"), std::string::npos) << msg.tool_calls[0].arguments;
}

// An agent whose reasoning is opened with its own words (an assistant prefix): the words are
// part of its reasoning, and the answer after the forced end is the content.
TEST(chat_parse, assistant_prefix_opens_the_reasoning) {
    for (auto family : { test::GLIMMER, test::QWEN }) {
        chat_prompt_options opts;
        opts.messages         = { { "user", "hi" } };
        opts.reasoning        = REASONING_ON;
        opts.assistant_prefix = "I am agent 1.";
        chat_prompt cp;
        ASSERT_FALSE(format_chat(test::shared_model(family), opts, cp));
        ASSERT_TRUE(cp.reasoning);
        EXPECT_NE(cp.prompt.find("I am agent 1."), std::string::npos);

        chat_output_parser p(cp.parser);
        const parsed_stream out = parse_pieces(p, { " Thinking.", cp.syntax.forced, "Done." });
        EXPECT_NE(out.reasoning.find("Thinking."), std::string::npos) << family << ": " << out.reasoning;
        EXPECT_EQ(out.content, "Done.") << family << " (reasoning: " << out.reasoning << ")";
    }
}

TEST(chat_parse, qwen_reasoning_is_separated_from_content_while_streaming) {
    chat_prompt_options opts;
    opts.messages  = { { "user", "hi" } };
    opts.reasoning = REASONING_ON;
    chat_prompt cp;
    ASSERT_FALSE(format_chat(test::shared_model(test::QWEN), opts, cp));

    chat_output_parser  p(cp.parser);
    const parsed_stream out = parse_pieces(p, { "Let me ", "think.", "\n</think>", "\n\nHello", " there!" });
    // The template's own newline before </think> stays in the reasoning, as llama-server reports it.
    EXPECT_EQ(out.reasoning, "Let me think.\n");
    EXPECT_EQ(out.content, "Hello there!");
}


// Output that leaves the format after reasoning was understood (here: bytes that are not
// UTF-8, which the format's parser rejects) passes through as content from that point on;
// the reasoning already streamed is not repeated in the content.
TEST(chat_parse, qwen_output_leaving_the_format_keeps_what_was_understood) {
    chat_prompt_options opts;
    opts.messages  = { { "user", "hi" } };
    opts.reasoning = REASONING_ON;
    chat_prompt cp;
    ASSERT_FALSE(format_chat(test::shared_model(test::QWEN), opts, cp));

    chat_output_parser  p(cp.parser);
    const parsed_stream out = parse_pieces(p, { "Let me ", "think.", "x\xE1\xB2y", " more" });
    EXPECT_EQ(out.reasoning, "Let me think.");
    EXPECT_EQ(out.content, "x\xE1\xB2y more");
    EXPECT_EQ(p.message().reasoning_content, out.reasoning);
    EXPECT_EQ(p.message().content, out.content);
}

}  // namespace

namespace {

// Instant mode on Muse Glimmer: the lowest reasoning strength in the system prompt and the
// assistant turn opened on its answer channel, so no reasoning is generated.
TEST(chat_glimmer, reasoning_strength_and_answer_channel) {
    engine_params p;
    p.n_ctx     = 1024;
    p.n_seq_max = 2;
    p.n_threads = 2;
    error err;
    auto  eng = engine::create(test::shared_model(test::GLIMMER), p, err);
    ASSERT_TRUE(eng) << err.message;
    local_backend    be(*eng);
    chat_request     req;
    req.messages           = { { "user", "Hi" } };
    req.reasoning          = REASONING_OFF;
    req.reasoning_strength = "low";
    sequence_request sr;
    chat_prompt      cp;
    ASSERT_FALSE(be.build(req, sr, cp));
    EXPECT_NE(sr.prompt.find("Reasoning strength: low."), std::string::npos) << sr.prompt;
    EXPECT_EQ(sr.prompt.substr(sr.prompt.size() - 19), " to=user<|message|>") << sr.prompt;

    req.reasoning          = REASONING_ON;
    req.reasoning_strength = "high";
    ASSERT_FALSE(be.build(req, sr, cp));
    EXPECT_NE(sr.prompt.find("Reasoning strength: high."), std::string::npos);
    EXPECT_EQ(sr.prompt.substr(sr.prompt.size() - 19), " to=self<|message|>") << sr.prompt;

    req.reasoning_strength = "extreme";
    const error bad        = be.build(req, sr, cp);
    ASSERT_TRUE(bad);
    EXPECT_NE(bad.message.find("reasoning_strength"), std::string::npos) << bad.message;

    req.reasoning_strength = "";
    req.tool_choice        = "sometimes";
    const error bad_choice = be.build(req, sr, cp);
    ASSERT_TRUE(bad_choice);
    EXPECT_NE(bad_choice.message.find("tool_choice"), std::string::npos) << bad_choice.message;
}

}  // namespace
