// Chat formatting, reasoning on/off, budget forcing and constrained output, through the
// local backend, for both generated model families.

#include "test-models.h"

#include "backend/local-backend.h"
#include "engine/engine.h"
#include "engine/model.h"
#include "engine/render-memo.h"

#include "json.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <iostream>
#include <regex>

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

// Tool calls that follow their schemas. The tool has two required parameters, a string and a
// bounded integer, and an optional enum; maxLength keeps random weights' strings short (they
// seldom close one by chance).
const char * k_weather_parameters = R"({"type": "object", "properties": {
    "city": {"type": "string", "maxLength": 12},
    "days": {"type": "integer", "minimum": 1, "maximum": 14},
    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
    "required": ["city", "days"]})";

chat_tool weather_tool(const std::string & name) {
    return { name, "Weather forecast for a city", k_weather_parameters };
}

// Why a call's arguments break k_weather_parameters; empty when they fit.
std::string weather_arguments_error(const std::string & arguments) {
    const common_json j = common_json::parse_no_throw(arguments);
    if (j.is_discarded() || !j.is_object()) {
        return "arguments are not a JSON object: " + arguments;
    }
    if (!j.contains("city") || !j.at("city").is_string()) {
        return "no string city: " + arguments;
    }
    if (!j.contains("days") || !j.at("days").is_number_integer() || j.at("days").get<int64_t>() < 1 ||
        j.at("days").get<int64_t>() > 14) {
        return "no integer days in 1..14: " + arguments;
    }
    if (j.contains("unit") && j.at("unit") != "celsius" && j.at("unit") != "fahrenheit") {
        return "unit outside its enum: " + arguments;
    }
    for (const auto & [key, value] : j.items()) {
        if (key != "city" && key != "days" && key != "unit") {
            return "unknown argument " + key + ": " + arguments;
        }
    }
    return "";
}

// A run of a request that must end in one call to one of `names`.
struct call_run {
    chat_request             req;
    std::vector<std::string> names;
};

// How the runs ended: those that ended in exactly one call, to one of their names, and of those
// the ones whose arguments fit k_weather_parameters.
struct call_tally {
    int         calls = 0, valid = 0;
    std::string failures;
};

// The runs go to the engine together, to share its decoding steps: each samples about a hundred
// tokens through a grammar that llama.cpp checks against the whole vocabulary.
call_tally run_calls(backend & be, const std::vector<call_run> & runs) {
    std::vector<std::unique_ptr<chat_stream>> streams;
    for (const auto & run : runs) {
        streams.push_back(be.start(run.req));
    }
    call_tally t;
    for (size_t i = 0; i < runs.size(); ++i) {
        const chat_result r = collect(*streams[i]);
        const auto &      names = runs[i].names;
        std::string       why;
        if (r.err) {
            why = r.err.message;
        } else if (r.tool_calls.size() != 1) {
            why = std::to_string(r.tool_calls.size()) + " calls, finish " + finish_reason_name(r.finish) + ", content '" +
                  r.content + "'";
        } else if (std::find(names.begin(), names.end(), r.tool_calls[0].name) == names.end()) {
            why = "a call to '" + r.tool_calls[0].name + "'";
        } else {
            t.calls++;
            why = weather_arguments_error(r.tool_calls[0].arguments);
            t.valid += why.empty();
        }
        if (!why.empty()) {
            t.failures += "\n  run " + std::to_string(i) + " (seed " + std::to_string(runs[i].req.sampling.seed) + "): " + why;
        }
    }
    return t;
}

chat_request weather_request(const chat_request & base, reasoning_mode mode, const std::string & tool_choice, uint32_t seed) {
    chat_request req         = base;
    req.tools                = { weather_tool("get_weather") };
    req.tool_choice          = tool_choice;
    req.reasoning            = mode;
    // Random weights seldom end their reasoning themselves: the budget ends it.
    req.reasoning_budget     = mode == REASONING_ON ? 8 : -1;
    req.max_tokens           = 256;
    req.sampling.temperature = 1.0f;
    req.sampling.seed        = seed;
    return req;
}

const char * mode_name(reasoning_mode mode) {
    return mode == REASONING_ON ? "thinking" : "instant";
}

TEST_P(chat_test, required_tool_choice_always_calls_with_arguments_that_fit_the_schema) {
    const int n = 8;
    for (auto mode : { REASONING_OFF, REASONING_ON }) {
        std::vector<call_run> runs;
        for (int seed = 1; seed <= n; ++seed) {
            runs.push_back({ weather_request(ask("What will the weather be in Paris for the next 3 days?"), mode, "required", seed),
                             { "get_weather" } });
        }
        const call_tally t = run_calls(*be, runs);
        std::cout << "[required, " << mode_name(mode) << "] calls " << t.calls << "/" << n << ", valid arguments " << t.valid
                  << "/" << n << "\n";
        EXPECT_EQ(t.calls, n) << mode_name(mode) << t.failures;
        EXPECT_EQ(t.valid, n) << mode_name(mode) << t.failures;
    }
}

// Two tools and required: a call to either. A named tool_choice reaches the backend as
// required with that tool alone (the API keeps only the named one).
TEST_P(chat_test, required_call_goes_to_an_offered_tool_and_a_named_one_to_that_tool) {
    std::vector<call_run> runs;
    for (uint32_t seed = 1; seed <= 4; ++seed) {
        auto both  = weather_request(ask("Weather or forecast for Oslo?"), REASONING_OFF, "required", seed);
        both.tools = { weather_tool("get_weather"), weather_tool("get_forecast") };
        runs.push_back({ both, { "get_weather", "get_forecast" } });
        auto named  = weather_request(ask("Weather or forecast for Oslo?"), REASONING_ON, "required", seed);
        named.tools = { weather_tool("get_forecast") };
        runs.push_back({ named, { "get_forecast" } });
    }
    const call_tally t = run_calls(*be, runs);
    EXPECT_EQ(t.valid, (int) runs.size()) << t.failures;
}

// With auto the model may answer in text; a call it makes follows the schema.
TEST_P(chat_test, auto_tool_choice_answers_in_text_or_calls_with_arguments_that_fit) {
    std::vector<std::unique_ptr<chat_stream>> streams;
    for (auto mode : { REASONING_OFF, REASONING_ON }) {
        for (uint32_t seed = 1; seed <= 4; ++seed) {
            auto req       = weather_request(ask("What will the weather be in Paris?"), mode, "auto", seed);
            req.max_tokens = 48;
            streams.push_back(be->start(req));
        }
    }
    for (auto & s : streams) {
        const chat_result r = collect(*s);
        ASSERT_FALSE(r.err) << r.err.message;
        for (const auto & call : r.tool_calls) {
            EXPECT_EQ(call.name, "get_weather");
            EXPECT_EQ(weather_arguments_error(call.arguments), "");
        }
        EXPECT_TRUE(!r.tool_calls.empty() || !r.content.empty() || !r.reasoning.empty());
    }
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

// Contemplating renders one conversation for each of its agents: the second render comes from
// the model's memo, and anything that changes the render renders anew.
TEST(render_memo, a_conversation_rendered_again_comes_from_the_memo_and_any_change_renders_anew) {
    const model &       m = test::shared_model(test::QWEN);
    chat_prompt_options opts;
    opts.messages  = { { "user", "Render memo check: what is 17 + 25?" } };
    opts.reasoning = REASONING_ON;
    chat_prompt first, again;
    const uint64_t h0 = m.renders().hits();
    ASSERT_FALSE(format_chat(m, opts, first));
    ASSERT_FALSE(format_chat(m, opts, again));
    EXPECT_EQ(m.renders().hits(), h0 + 1);
    EXPECT_EQ(again.prompt, first.prompt);
    EXPECT_EQ(again.generation_prompt, first.generation_prompt);
    EXPECT_EQ(again.syntax.forced, first.syntax.forced);

    // An agent's own opening is Muse's, after the render: still one render.
    opts.assistant_prefix = "Agent 2:";
    chat_prompt agent;
    ASSERT_FALSE(format_chat(m, opts, agent));
    EXPECT_EQ(m.renders().hits(), h0 + 2);
    EXPECT_TRUE(agent.prompt.size() > first.prompt.size() && agent.prompt.ends_with("Agent 2:")) << agent.prompt;

    // Each of these changes the render.
    auto changed = [&](const char * what, std::function<void(chat_prompt_options &)> change, const char * expect) {
        chat_prompt_options o = opts;
        o.assistant_prefix.clear();
        change(o);
        chat_prompt   p;
        const uint64_t before = m.renders().hits();
        ASSERT_FALSE(format_chat(m, o, p)) << what;
        EXPECT_EQ(m.renders().hits(), before) << what << ": rendered anew";
        EXPECT_NE(p.prompt, first.prompt) << what;
        if (expect) EXPECT_NE(p.prompt.find(expect), std::string::npos) << what << ": " << p.prompt;
    };
    changed("another question", [](chat_prompt_options & o) { o.messages[0].content = "Render memo check: what is 17 + 26?"; }, "17 + 26");
    changed("reasoning off", [](chat_prompt_options & o) { o.reasoning = REASONING_OFF; }, nullptr);
    changed("a system message", [](chat_prompt_options & o) { o.messages.insert(o.messages.begin(), { "system", "Be brief." }); }, "Be brief.");
    changed("the role", [](chat_prompt_options & o) { o.messages.insert(o.messages.begin(), { "user", "Render memo check:" }); o.messages[1].role = "assistant"; }, nullptr);

    // Another sharing scope (another user's cache salt) renders the same conversation anew:
    // the memo's speed tells it nothing of this one's requests.
    chat_prompt_options other = opts;
    other.assistant_prefix.clear();
    other.cache_salt = "another user";
    chat_prompt o;
    const uint64_t before = m.renders().hits();
    ASSERT_FALSE(format_chat(m, other, o));
    EXPECT_EQ(m.renders().hits(), before) << "no hit across scopes";
    EXPECT_EQ(o.prompt, first.prompt) << "the same render";
    ASSERT_FALSE(format_chat(m, other, o));
    EXPECT_EQ(m.renders().hits(), before + 1) << "a hit within the scope";
}

TEST(render_memo, keys_expiry_and_size) {
    // Fields are length-prefixed: moving text across a boundary is another key.
    common_chat_templates_inputs a, b;
    a.messages = { common_chat_msg{} , common_chat_msg{} };
    b.messages = a.messages;
    a.messages[0].content = "ab";
    a.messages[1].content = "c";
    b.messages[0].content = "a";
    b.messages[1].content = "bc";
    EXPECT_NE(render_memo::key(a), render_memo::key(b));
    b = a;
    b.enable_thinking = !a.enable_thinking;
    EXPECT_NE(render_memo::key(a), render_memo::key(b));
    b = a;
    EXPECT_EQ(render_memo::key(a), render_memo::key(b));
    // Too large to keep: no key, never stored.
    b.messages[0].content.assign(render_memo::k_max_key_bytes + 1, 'x');
    EXPECT_TRUE(render_memo::key(b).empty());

    common_chat_params v, out;
    v.prompt = "P";
    render_memo expired(std::chrono::milliseconds(0));
    expired.put("k", v);
    EXPECT_FALSE(expired.get("k", out)) << "a zero lifetime keeps nothing";

    render_memo memo;
    for (size_t i = 0; i <= render_memo::k_entries; ++i) {
        v.prompt = "P" + std::to_string(i);
        memo.put("k" + std::to_string(i), v);
    }
    EXPECT_FALSE(memo.get("k0", out)) << "the oldest of k_entries + 1 is gone";
    ASSERT_TRUE(memo.get("k1", out));
    EXPECT_EQ(out.prompt, "P1");
    EXPECT_FALSE(memo.get("", out));
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
        if (family == test::QWEN) {
            // Where Qwen's template starts reasoning text: after "<think>\n".
            EXPECT_NE(cp.prompt.find("<think>\nI am agent 1."), std::string::npos) << cp.prompt;
        }

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


namespace {

// Whether a required call's grammar (not lazy) lets the model write `text` after its prompt,
// token by token, and end there.
bool grammar_accepts(const chat_prompt & cp, test::test_family family, const std::string & text) {
    const llama_vocab * vocab = llama_model_get_vocab(test::shared_model(family).get());
    llama_sampler *     g     = llama_sampler_init_grammar(vocab, cp.grammar.grammar.c_str(), "root");
    if (!g) {
        return false;
    }
    auto allowed = [&](llama_token t) {
        llama_token_data       d = { t, 0.0f, 0.0f };
        llama_token_data_array a = { &d, 1, -1, false };
        llama_sampler_apply(g, &a);
        return d.logit != -INFINITY;
    };
    bool ok = true;
    for (llama_token t : common_tokenize(vocab, text, false, true)) {
        if (!(ok = allowed(t))) {
            break;
        }
        llama_sampler_accept(g, t);
    }
    ok = ok && allowed(llama_vocab_eot(vocab));
    llama_sampler_free(g);
    return ok;
}

struct call_syntax {
    test::test_family family;
    std::string       open;       // how the model opens its reasoning when the prompt left it to it
    std::string       reasoning;  // reasoning that ends and leads to the call, after an opened reasoning block
    std::function<std::string(const std::string & args)> call;
    std::function<std::string(const std::string & name, const std::string & value, bool json)> arg;
    std::string       sep;    // between arguments
    std::string       again;  // between two calls
};

std::vector<call_syntax> call_syntaxes() {
    return {
        { test::GLIMMER, " to=self<|message|>", "Paris, 3 days.<|eom|><|start|>assistant",
          [](const std::string & args) {
              return " to=get_weather<|message|><atem:function_calls>\n<atem:invoke name=\"get_weather\">\n" + args +
                     "</atem:invoke>\n</atem:function_calls>";
          },
          [](const std::string & name, const std::string & value, bool) {
              return "<atem:parameter name=\"" + name + "\">" + value + "</atem:parameter>\n";
          },
          "", "<|eom|><|start|>assistant" },
        { test::QWEN, "<think>", "Paris, 3 days.\n</think>\n\n",
          [](const std::string & args) {
              return "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {" + args + "}}\n</tool_call>";
          },
          [](const std::string & name, const std::string & value, bool json) {
              return "\"" + name + "\": " + (json ? value : "\"" + value + "\"");
          },
          ", ", "\n" },
    };
}

// The grammar of a required call, on texts written out: a call that fits the schema passes and
// parses to arguments that fit; a missing required parameter, a value outside its schema,
// another recipient or text instead of the call do not pass.
TEST(chat_tool_grammar, a_required_call_follows_the_schema) {
    for (const auto & s : call_syntaxes()) {
        for (auto mode : { REASONING_OFF, REASONING_ON, REASONING_AUTO }) {
            chat_prompt_options opts;
            opts.messages    = { { "user", "Weather in Paris for 3 days?" } };
            opts.tools       = { weather_tool("get_weather") };
            opts.tool_choice = "required";
            opts.reasoning   = mode;
            chat_prompt cp;
            ASSERT_FALSE(format_chat(test::shared_model(s.family), opts, cp));
            ASSERT_FALSE(cp.grammar_lazy);
            const std::string lead = mode == REASONING_ON ? s.reasoning : mode == REASONING_AUTO ? s.open + s.reasoning : "";
            const std::string city = s.arg("city", "Paris", false), days = s.arg("days", "3", true);
            const std::string good = lead + s.call(city + s.sep + days);
            const std::string what = std::to_string(s.family) + "/" + std::to_string(mode) + ": ";
            EXPECT_TRUE(grammar_accepts(cp, s.family, good)) << what << good;
            EXPECT_TRUE(grammar_accepts(cp, s.family, lead + s.call(city + s.sep + days + s.sep + s.arg("unit", "celsius", false))))
                << what;
            EXPECT_EQ(grammar_accepts(cp, s.family, s.call(city + s.sep + days)), mode != REASONING_ON)
                << what << "a call without reasoning";
            EXPECT_FALSE(grammar_accepts(cp, s.family, lead + s.call(city))) << what << "days is required";
            EXPECT_FALSE(grammar_accepts(cp, s.family, lead + s.call(city + s.sep + s.arg("days", "15", true)))) << what;
            EXPECT_FALSE(grammar_accepts(cp, s.family, lead + s.call(city + s.sep + days + s.sep + s.arg("unit", "kelvin", false))))
                << what;
            EXPECT_FALSE(grammar_accepts(cp, s.family, lead + "Sunny. " + s.call(city + s.sep + days))) << what;
            EXPECT_FALSE(grammar_accepts(cp, s.family, good + s.again + s.call(city + s.sep + days))) << what << "one call";
            if (s.family == test::GLIMMER) {
                std::string other = good;
                other.replace(other.find(" to=get_weather"), 15, " to=weather");
                EXPECT_FALSE(grammar_accepts(cp, s.family, other)) << what << "the recipient is the tool";
                EXPECT_FALSE(grammar_accepts(cp, s.family, lead + " to=user<|message|>Sunny.")) << what;
            }

            chat_output_parser      p(cp.parser);
            std::vector<chat_delta> deltas;
            p.update(good, true, deltas);
            ASSERT_EQ(p.message().tool_calls.size(), 1u) << what << good;
            EXPECT_EQ(p.message().tool_calls[0].name, "get_weather");
            EXPECT_EQ(weather_arguments_error(p.message().tool_calls[0].arguments), "") << what;
        }
    }
}

// Glimmer with tool_choice auto: a lazy grammar that a complete recipient naming a tool starts,
// after the reasoning or the answer, and that then holds the call to its schema.
TEST(chat_tool_grammar, glimmer_auto_call_starts_the_grammar_at_a_tool_recipient) {
    chat_prompt_options opts;
    opts.messages = { { "user", "Weather in Paris for 3 days?" } };
    opts.tools    = { weather_tool("get_weather") };
    chat_prompt cp;
    ASSERT_FALSE(format_chat(test::shared_model(test::GLIMMER), opts, cp));
    ASSERT_TRUE(cp.grammar_lazy);
    auto triggered = [&](const std::string & text) {
        for (const auto & t : cp.grammar_triggers) {
            if (std::regex_search(text, std::regex(t.value))) {
                return true;
            }
        }
        return false;
    };
    EXPECT_TRUE(triggered("Hmm.<|eom|><|start|>assistant to=get_weather<|message|>"));
    EXPECT_FALSE(triggered("Hmm.<|eom|><|start|>assistant to=user<|message|>"));
    EXPECT_FALSE(triggered("Hmm.<|eom|><|start|>assistant to=get_weather2<|message|>"));

    const call_syntax s    = call_syntaxes()[0];
    const std::string city = s.arg("city", "Paris", false);
    EXPECT_TRUE(grammar_accepts(cp, test::GLIMMER, s.call(city + s.arg("days", "3", true))));
    EXPECT_FALSE(grammar_accepts(cp, test::GLIMMER, s.call(city)));
}

TEST(chat_tool_grammar, required_without_tools_is_an_error) {
    chat_prompt_options opts;
    opts.messages    = { { "user", "hi" } };
    opts.tool_choice = "required";
    chat_prompt cp;
    const error err = format_chat(test::shared_model(test::QWEN), opts, cp);
    EXPECT_EQ(err.code, ERROR_INVALID_ARGUMENT);
}

}  // namespace
