// The server's pieces that need no model: the OpenAI request parser and range checks, the
// response and chunk shapes, API keys, and the file store's caps.

#include "app/assistant.h"
#include "server/api-keys.h"
#include "server/file-store.h"
#include "server/openai-api.h"
#include "server/responses-api.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

using namespace muse;
using json = nlohmann::json;

namespace {

json body(const std::string & extra = "") {
    return json::parse(R"({"messages":[{"role":"user","content":"What is 6 * 7?"}])" + extra + "}");
}

api_error parse(const json & b, chat_api_request & out, api_limits lim = {}) {
    return parse_chat_request(b, lim, out);
}

bool has(const std::string & s, const std::string & sub) {
    return s.find(sub) != std::string::npos;
}

}  // namespace

TEST(server_api, minimal_request_defaults) {
    chat_api_request r;
    ASSERT_FALSE(parse(body(), r));
    EXPECT_EQ(r.ask.messages.size(), 1u);
    EXPECT_EQ(r.ask.opt.mode, MODE_AUTO);
    EXPECT_EQ(r.n, 1);
    EXPECT_FALSE(r.stream);
    EXPECT_EQ(r.ask.opt.answer_tokens, api_limits{}.default_max_tokens);
    EXPECT_EQ(r.ask.opt.vote, VOTE_WEIGHTED);
    ASSERT_FALSE(parse(body(R"(,"mode":"contemplating","vote":"majority")"), r));
    EXPECT_EQ(r.ask.opt.vote, VOTE_MAJORITY);
}

TEST(server_api, every_numeric_field_is_range_checked_and_named) {
    struct tc { const char * extra; const char * param; };
    for (const tc & t : std::vector<tc>{
             { R"(,"temperature":2.5)", "temperature" },
             { R"(,"temperature":-0.1)", "temperature" },
             { R"(,"temperature":"hot")", "temperature" },
             { R"(,"top_p":0)", "top_p" },
             { R"(,"top_p":1.5)", "top_p" },
             { R"(,"top_k":-1)", "top_k" },
             { R"(,"min_p":2)", "min_p" },
             { R"(,"max_tokens":0)", "max_tokens" },
             { R"(,"max_tokens":100000000)", "max_tokens" },
             { R"(,"max_tokens":1.5)", "max_tokens" },
             { R"(,"max_completion_tokens":-3)", "max_completion_tokens" },
             { R"(,"n":0)", "n" },
             { R"(,"n":99)", "n" },
             { R"(,"seed":-2)", "seed" },
             { R"(,"seed":99999999999)", "seed" },
             { R"(,"frequency_penalty":3)", "frequency_penalty" },
             { R"(,"presence_penalty":-2.5)", "presence_penalty" },
             { R"(,"agents":0)", "agents" },
             { R"(,"agents":17)", "agents" },
             { R"(,"thinking_budget":-5)", "thinking_budget" },
             { R"(,"thinking_budget":10000000)", "thinking_budget" },
             { R"(,"repeat_penalty":0)", "repeat_penalty" },
         }) {
        chat_api_request r;
        api_error        e = parse(body(t.extra), r);
        ASSERT_TRUE(e) << t.extra;
        EXPECT_EQ(e.status, 400) << t.extra;
        EXPECT_EQ(e.param, t.param) << t.extra;
        EXPECT_TRUE(has(e.message, t.param)) << e.message;
    }
}

TEST(server_api, sampling_fields_reach_the_agents) {
    chat_api_request r;
    ASSERT_FALSE(parse(body(R"(,"temperature":0.3,"top_k":12,"frequency_penalty":0.5,"presence_penalty":-1.25,"repeat_penalty":1.1)"), r));
    EXPECT_FLOAT_EQ(r.ask.opt.sampling.temperature, 0.3f);
    EXPECT_EQ(r.ask.opt.sampling.top_k, 12);
    EXPECT_FLOAT_EQ(r.ask.opt.sampling.frequency_penalty, 0.5f);
    EXPECT_FLOAT_EQ(r.ask.opt.sampling.presence_penalty, -1.25f);
    EXPECT_FLOAT_EQ(r.ask.opt.sampling.repeat_penalty, 1.1f);
}

TEST(server_api, bad_shapes_are_named) {
    chat_api_request r;
    EXPECT_EQ(parse(json::parse(R"({"messages":[]})"), r).param, "messages");
    EXPECT_EQ(parse(json::parse(R"({"messages":"hi"})"), r).param, "messages");
    EXPECT_EQ(parse(json::parse(R"({"messages":[{"role":"wizard","content":"x"}]})"), r).param, "messages[0].role");
    EXPECT_EQ(parse(json::parse(R"({"messages":[{"role":"user","content":[{"type":"audio"}]}]})"), r).param,
              "messages[0].content[0].type");
    EXPECT_EQ(parse(json::parse(R"({"messages":[{"role":"system","content":"only a system"}]})"), r).param, "messages");
    EXPECT_EQ(parse(body(R"(,"mode":"turbo")"), r).param, "mode");
    EXPECT_EQ(parse(body(R"(,"reasoning_effort":"extreme")"), r).param, "reasoning_effort");
    EXPECT_EQ(parse(body(R"(,"vote":"loudest")"), r).param, "vote");
    EXPECT_EQ(parse(body(R"(,"vote":1)"), r).param, "vote");
    EXPECT_EQ(parse(body(R"(,"stop":[1,2])"), r).param, "stop");
    EXPECT_EQ(parse(body(R"(,"response_format":{"type":"yaml"})"), r).param, "response_format.type");
    EXPECT_EQ(parse(body(R"(,"tools":[{"type":"function","function":{"name":"bad name!"}}])"), r).param, "tools[0].function.name");
    EXPECT_EQ(parse(body(R"(,"tool_choice":"required")"), r).param, "tool_choice");
    EXPECT_EQ(parse(body(R"(,"logprobs":true)"), r).param, "logprobs");
    EXPECT_EQ(parse(body(R"(,"attachments":[42])"), r).param, "attachments");
    EXPECT_EQ(parse(json::parse("[1,2]"), r).status, 400);
}

TEST(server_api, content_parts_and_images) {
    chat_api_request r;
    ASSERT_FALSE(parse(json::parse(R"({"messages":[{"role":"user","content":[
        {"type":"text","text":"What is in"},{"type":"text","text":"this picture?"},
        {"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]}]})"), r));
    EXPECT_EQ(r.ask.messages[0].content, "What is in\nthis picture?");
    ASSERT_EQ(r.image_urls.size(), 1u);
    EXPECT_EQ(r.image_urls[0], "data:image/png;base64,AAAA");

    api_limits lim;
    lim.max_images = 1;
    api_error e = parse(json::parse(R"({"messages":[{"role":"user","content":[{"type":"text","text":"x"},
        {"type":"image_url","image_url":{"url":"data:a"}},{"type":"image_url","image_url":{"url":"data:b"}}]}]})"), r, lim);
    ASSERT_TRUE(e);
    EXPECT_TRUE(has(e.message, "too many images")) << e.message;

    e = parse(json::parse(R"({"messages":[{"role":"user","content":"x"},{"role":"assistant","content":[
        {"type":"image_url","image_url":{"url":"data:a"}}]}]})"), r);
    ASSERT_TRUE(e);
    EXPECT_TRUE(has(e.message, "user messages only")) << e.message;
}

TEST(server_api, reasoning_effort_maps_to_modes_and_budgets) {
    struct tc { const char * effort; ask_mode mode; int32_t budget; };
    for (const tc & t : std::vector<tc>{ { "none", MODE_INSTANT, 0 },
                                         { "minimal", MODE_THINKING, 256 },
                                         { "low", MODE_THINKING, 1024 },
                                         { "medium", MODE_THINKING, 2048 },
                                         { "high", MODE_THINKING, 8192 },
                                         { "xhigh", MODE_CONTEMPLATING, 8192 } }) {
        chat_api_request r;
        ASSERT_FALSE(parse(body(std::string(R"(,"reasoning_effort":")") + t.effort + "\""), r)) << t.effort;
        EXPECT_EQ(r.ask.opt.mode, t.mode) << t.effort;
        EXPECT_EQ(r.ask.opt.budget, t.budget) << t.effort;
    }
    // An explicit mode wins; the effort still sets the budget, thinking_budget wins over both.
    chat_api_request r;
    ASSERT_FALSE(parse(body(R"(,"reasoning_effort":"high","mode":"contemplating","agents":3)"), r));
    EXPECT_EQ(r.ask.opt.mode, MODE_CONTEMPLATING);
    EXPECT_EQ(r.ask.opt.budget, 8192);
    EXPECT_EQ(r.ask.opt.agents, 3);
    ASSERT_FALSE(parse(body(R"(,"reasoning_effort":"high","thinking_budget":100)"), r));
    EXPECT_EQ(r.ask.opt.budget, 100);
}

TEST(server_api, instant_has_no_builtin_tool_steps) {
    chat_api_request r;
    ASSERT_FALSE(parse(body(R"(,"mode":"instant")"), r));
    EXPECT_TRUE(r.ask.opt.tools.empty());
    ASSERT_FALSE(parse(body(R"(,"mode":"thinking")"), r));
    EXPECT_FALSE(r.ask.opt.tools.empty());
}

TEST(server_api, client_tools_and_tool_choice) {
    chat_api_request r;
    const std::string tools = R"(,"tools":[{"type":"function","function":{"name":"get_weather","description":"w",
        "parameters":{"type":"object","properties":{"city":{"type":"string"}}}}},{"type":"function","function":{"name":"other"}}])";
    ASSERT_FALSE(parse(body(tools), r));
    ASSERT_EQ(r.ask.opt.client_tools.size(), 2u);
    EXPECT_EQ(r.ask.opt.client_tools[0].name, "get_weather");
    EXPECT_TRUE(has(r.ask.opt.client_tools[0].parameters, "city"));
    EXPECT_EQ(r.ask.opt.client_tool_choice, "auto");

    ASSERT_FALSE(parse(body(tools + R"(,"tool_choice":{"type":"function","function":{"name":"other"}})"), r));
    ASSERT_EQ(r.ask.opt.client_tools.size(), 1u);
    EXPECT_EQ(r.ask.opt.client_tools[0].name, "other");
    EXPECT_EQ(r.ask.opt.client_tool_choice, "required");

    EXPECT_EQ(parse(body(tools + R"(,"tool_choice":{"type":"function","function":{"name":"nope"}})"), r).param, "tool_choice");
    EXPECT_EQ(parse(body(tools + R"(,"mode":"contemplating")"), r).param, "tools");

    // A conversation that carries a call and its result parses into the chat messages.
    ASSERT_FALSE(parse(json::parse(R"({"messages":[{"role":"user","content":"weather?"},
        {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Oslo\"}"}}]},
        {"role":"tool","tool_call_id":"call_1","content":"sunny"}]})"), r));
    ASSERT_EQ(r.ask.messages.size(), 3u);
    EXPECT_EQ(r.ask.messages[1].tool_calls.at(0).name, "get_weather");
    EXPECT_EQ(r.ask.messages[2].tool_call_id, "call_1");
    EXPECT_EQ(parse(json::parse(R"({"messages":[{"role":"user","content":"x"},{"role":"tool","content":"y"}]})"), r).param,
              "messages[1].tool_call_id");
}

TEST(server_api, json_schema_needs_one_agent) {
    chat_api_request r;
    const std::string rf = R"(,"response_format":{"type":"json_schema","json_schema":{"name":"a","schema":{"type":"object","properties":{"x":{"type":"integer"}}}}})";
    ASSERT_FALSE(parse(body(rf), r));
    EXPECT_EQ(r.ask.opt.mode, MODE_INSTANT);
    EXPECT_TRUE(has(r.ask.opt.json_schema, "\"x\""));
    EXPECT_EQ(parse(body(rf + R"(,"mode":"contemplating")"), r).param, "response_format");
    ASSERT_FALSE(parse(body(R"(,"response_format":{"type":"json_object"})"), r));
    EXPECT_EQ(r.ask.opt.json_schema, R"({"type":"object"})");
    EXPECT_EQ(parse(body(R"(,"n":2,"mode":"contemplating")"), r).param, "n");
}

TEST(server_api, completion_and_chunk_shapes) {
    ask_result res;
    res.answer    = "42";
    res.reasoning = "6*7";
    res.mode      = MODE_THINKING;
    res.finish    = FINISH_STOP;
    res.use.prompt_tokens_prefilled = 10;
    res.use.prompt_tokens_reused    = 5;
    res.use.completion_tokens       = 7;
    ojson j = completion_json("chatcmpl-x", 1, "m", { res });
    EXPECT_EQ(j["object"], "chat.completion");
    EXPECT_EQ(j["choices"][0]["message"]["content"], "42");
    EXPECT_EQ(j["choices"][0]["message"]["reasoning_content"], "6*7");
    EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
    EXPECT_EQ(j["usage"]["prompt_tokens"], 15);
    EXPECT_EQ(j["usage"]["completion_tokens"], 7);
    EXPECT_EQ(j["usage"]["total_tokens"], 22);
    EXPECT_EQ(j["usage"]["prompt_tokens_details"]["cached_tokens"], 5);
    EXPECT_EQ(j["muse"]["mode"], "thinking");

    ask_result tc;
    tc.finish     = FINISH_TOOL_CALLS;
    tc.tool_calls = { { "call_1", "get_weather", R"({"city":"Oslo"})" } };
    j             = completion_json("c", 1, "m", { tc });
    EXPECT_EQ(j["choices"][0]["finish_reason"], "tool_calls");
    EXPECT_TRUE(j["choices"][0]["message"]["content"].is_null());
    EXPECT_EQ(j["choices"][0]["message"]["tool_calls"][0]["function"]["name"], "get_weather");

    // Chunks: the answering agent's text is the reply; other agents' text rides in `muse`.
    chunk_builder b("c", 1, "m", 1);
    EXPECT_EQ(b.start()[0]["choices"][0]["delta"]["role"], "assistant");
    ask_event mode;
    mode.type = ask_event::MODE;
    mode.text = "contemplating";
    EXPECT_EQ(b.event(0, mode)[0]["muse"]["event"], "mode");
    ask_event d;
    d.type  = ask_event::AGENT_DELTA;
    d.agent = 2;
    d.kind  = AGENT_SOLVER;
    d.delta = chat_event::REASONING;
    d.text  = "hmm";
    ojson c = b.event(0, d)[0];
    EXPECT_EQ(c["muse"]["agent"], 2);
    EXPECT_EQ(c["muse"]["kind"], "solver");
    EXPECT_EQ(c["muse"]["text"], "hmm");
    EXPECT_TRUE(c["choices"][0]["delta"].empty());
    res.mode = MODE_CONTEMPLATING;
    auto fin = b.finish(0, res);
    ASSERT_EQ(fin.size(), 2u);
    EXPECT_EQ(fin[0]["choices"][0]["delta"]["content"], "42") << "a voted answer is sent at the end";
    EXPECT_EQ(fin[1]["choices"][0]["finish_reason"], "stop");
    EXPECT_EQ(fin[1]["muse"]["event"], "done");
    EXPECT_EQ(fin[1]["muse"]["result"]["content"], "42");

    chunk_builder b2("c", 1, "m", 1);
    d.kind  = AGENT_ANSWER;
    d.delta = chat_event::CONTENT;
    d.text  = "4";
    c       = b2.event(0, d)[0];
    EXPECT_EQ(c["choices"][0]["delta"]["content"], "4");
    EXPECT_EQ(c["muse"]["agent"], 2);
    d.text = "2";
    b2.event(0, d);
    EXPECT_EQ(b2.finish(0, res).size(), 1u) << "a streamed answer is not sent twice";
}

TEST(responses_api, request_translation_and_errors) {
    responses_request rq;
    const ojson history = ojson::array({ { { "role", "user" }, { "content", "earlier" } } });
    ASSERT_FALSE(parse_responses_request(ojson::parse(R"({"input":"hi","instructions":"be brief","max_output_tokens":9,
        "reasoning":{"effort":"low"},"text":{"format":{"type":"json_schema","name":"r","schema":{"type":"object"}}},
        "tools":[{"type":"function","name":"f","parameters":{"type":"object"}}],"truncation":"auto","stream":true})"), history, rq));
    EXPECT_TRUE(rq.stream);
    EXPECT_TRUE(rq.store);
    EXPECT_TRUE(rq.truncate);
    EXPECT_EQ(rq.offset, 2u) << "instructions, then the history, then the input";
    EXPECT_EQ(rq.chat["messages"][0]["role"], "system");
    EXPECT_EQ(rq.chat["messages"][1]["content"], "earlier");
    EXPECT_EQ(rq.chat["messages"][2]["content"], "hi");
    EXPECT_EQ(rq.chat["max_tokens"], 9);
    EXPECT_EQ(rq.chat["reasoning_effort"], "low");
    EXPECT_EQ(rq.chat["response_format"]["json_schema"]["name"], "r");
    EXPECT_EQ(rq.chat["tools"][0]["function"]["name"], "f");

    ojson fc = ojson::parse(R"({"input":[{"type":"function_call","call_id":"c1","name":"f","arguments":"{}"},
        {"type":"function_call_output","call_id":"c1","output":"7"},{"type":"reasoning","summary":[]},
        {"type":"message","role":"user","content":[{"type":"input_text","text":"a"},{"type":"input_file","file_id":"file-1"}]}]})");
    ASSERT_FALSE(parse_responses_request(fc, ojson::array(), rq));
    ASSERT_EQ(rq.chat["messages"].size(), 3u) << "reasoning items are not replayed";
    EXPECT_EQ(rq.chat["messages"][0]["tool_calls"][0]["id"], "c1");
    EXPECT_EQ(rq.chat["messages"][1]["role"], "tool");
    EXPECT_EQ(rq.chat["attachments"][0], "file-1");

    struct tc { const char * body; const char * param; };
    for (const tc & t : std::vector<tc>{ { R"({})", "input" }, { R"({"input":7})", "input" },
                                         { R"({"input":[{"type":"message","role":"user","content":[{"type":"video"}]}]})", "input[0].content[0].type" },
                                         { R"({"input":[{"type":"shell_call"}]})", "input[0].type" },
                                         { R"({"input":[{"type":5}]})", "input[0].type" },
                                         { R"({"input":[{"type":"function_call_output","call_id":"c"}]})", "input[0].output" },
                                         { R"({"input":"x","truncation":"sometimes"})", "truncation" },
                                         { R"({"input":"x","stream":"yes"})", "stream" },
                                         { R"({"input":"x","store":1})", "store" },
                                         { R"({"input":"x","reasoning":"high"})", "reasoning" },
                                         { R"({"input":"x","text":{"format":{"type":3}}})", "text.format.type" },
                                         { R"({"input":"x","tools":[{"type":"web_search"}]})", "tools[0].type" },
                                         { R"({"input":"x","stream_options":{"muse_events":"on"}})", "stream_options.muse_events" },
                                         { R"({"input":"x","attachments":"file-1"})", "attachments" } }) {
        responses_request r;
        api_error         e = parse_responses_request(ojson::parse(t.body), ojson::array(), r);
        EXPECT_EQ(e.status, 400) << t.body;
        EXPECT_EQ(e.param, t.param) << t.body;
    }
    api_error e = bad_request("messages[7].content", "messages[7].content must be a string");
    rename_chat_error(e, 5);
    EXPECT_EQ(e.param, "input[2].content");
    EXPECT_EQ(e.message, "input[2].content must be a string");
    e = bad_request("max_tokens", "max_tokens must be an integer");
    rename_chat_error(e, 0);
    EXPECT_EQ(e.param, "max_output_tokens");
}

TEST(responses_api, stream_events_build_the_final_response) {
    ojson            skeleton = { { "id", "resp_1" }, { "object", "response" }, { "status", "in_progress" }, { "output", ojson::array() },
                                  { "usage", nullptr }, { "muse", { { "truncated_messages", 4 } } } };
    response_builder b(skeleton, false);
    std::vector<ojson> all = b.start();
    ask_event d;
    d.type  = ask_event::AGENT_DELTA;
    d.kind  = AGENT_ANSWER;
    d.delta = chat_event::REASONING;
    for (const char * t : { "let me ", "think" }) {
        d.text = t;
        for (auto & e : b.event(d)) all.push_back(e);
    }
    d.delta = chat_event::CONTENT;
    for (const char * t : { "4", "2" }) {
        d.text = t;
        for (auto & e : b.event(d)) all.push_back(e);
    }
    ask_event other = d;
    other.kind      = AGENT_SOLVER;
    EXPECT_TRUE(b.event(other).empty()) << "no muse.event unless asked";
    ask_result r;
    r.answer    = "42";
    r.reasoning = "let me think";
    r.finish    = FINISH_STOP;
    r.use.prompt_tokens_prefilled = 5;
    r.use.prompt_tokens_reused    = 7;
    r.use.completion_tokens       = 3;
    ojson final;
    for (auto & e : b.finish(r, final)) all.push_back(e);
    std::vector<std::string> types;
    for (size_t i = 0; i < all.size(); ++i) {
        EXPECT_EQ(all[i]["sequence_number"], (int64_t) i);
        types.push_back(all[i]["type"]);
    }
    const std::vector<std::string> want = { "response.created", "response.in_progress", "response.output_item.added",
                                            "response.content_part.added", "response.reasoning_text.delta", "response.reasoning_text.delta",
                                            "response.reasoning_text.done", "response.content_part.done", "response.output_item.done",
                                            "response.output_item.added", "response.content_part.added", "response.output_text.delta",
                                            "response.output_text.delta", "response.output_text.done", "response.content_part.done",
                                            "response.output_item.done", "response.completed" };
    EXPECT_EQ(types, want);
    EXPECT_EQ(final["status"], "completed");
    EXPECT_EQ(final["output"][0]["type"], "reasoning");
    EXPECT_EQ(final["output"][0]["content"][0]["text"], "let me think");
    EXPECT_EQ(final["output"][1]["content"][0]["text"], "42");
    EXPECT_EQ(final["output"][1]["id"], all[9]["item"]["id"]) << "the streamed item is the stored item";
    EXPECT_EQ(final["usage"]["input_tokens"], 12);
    EXPECT_EQ(final["usage"]["input_tokens_details"]["cached_tokens"], 7);
    EXPECT_EQ(final["muse"]["truncated_messages"], 4) << "the route's additions survive the trace";
    EXPECT_EQ(all.back()["response"], final);

    // A vote: nothing streamed, the answer arrives whole; a tool call becomes a function_call item.
    response_builder v(skeleton, true);
    v.start();
    EXPECT_EQ(v.event(other).at(0)["type"], "muse.event");
    ask_result tc;
    tc.finish     = FINISH_TOOL_CALLS;
    tc.tool_calls = { { "call_1", "get_weather", R"({"city":"Oslo"})" } };
    auto tail     = v.finish(tc, final);
    EXPECT_EQ(final["output"].size(), 1u);
    EXPECT_EQ(final["output"][0]["type"], "function_call");
    EXPECT_EQ(final["output"][0]["arguments"], R"({"city":"Oslo"})");
    bool args_delta = false;
    for (auto & e : tail) args_delta |= e["type"] == "response.function_call_arguments.delta";
    EXPECT_TRUE(args_delta);

    response_builder w(skeleton, false);
    w.start();
    ask_result len;
    len.answer = "partial";
    len.finish = FINISH_LENGTH;
    EXPECT_EQ(w.finish(len, final).back()["type"], "response.incomplete");
    EXPECT_EQ(final["incomplete_details"]["reason"], "max_output_tokens");

    response_builder f(skeleton, false);
    f.start();
    auto failed = f.fail(bad_request("", "no"));
    EXPECT_EQ(failed[0]["type"], "error");
    EXPECT_EQ(failed[1]["type"], "response.failed");
    EXPECT_EQ(failed[1]["response"]["status"], "failed");
}

TEST(server_api, error_shape) {
    ojson j = error_json(bad_request("temperature", "temperature must be in [0, 2], got 3"));
    EXPECT_EQ(j["error"]["param"], "temperature");
    EXPECT_EQ(j["error"]["type"], "invalid_request_error");
    EXPECT_TRUE(j["error"]["code"].is_null());
    EXPECT_EQ(result_error({ ERROR_CONTEXT_OVERFLOW, "too long" }).code, "context_length_exceeded");
    EXPECT_EQ(result_error({ ERROR_NO_KV_SLOT, "full" }).status, 503);
    EXPECT_EQ(result_error({ ERROR_INTERNAL, "x" }).status, 500);
}

TEST(api_keys, hashed_constant_time_and_users) {
    api_keys k;
    ASSERT_FALSE(k.add("sk-alpha", "alice"));
    ASSERT_FALSE(k.add("sk-beta"));
    std::string user;
    EXPECT_TRUE(k.check("sk-alpha", user));
    EXPECT_EQ(user, "alice");
    EXPECT_TRUE(k.check("sk-beta", user));
    EXPECT_EQ(user.rfind("key-", 0), 0u);
    EXPECT_FALSE(k.check("sk-alph", user));
    EXPECT_FALSE(k.check("", user));
    EXPECT_TRUE(k.add("sk-alpha", "bob")) << "the same key twice is refused";
    EXPECT_TRUE(k.add("has space"));
    EXPECT_TRUE(k.add("sha256:1234"));
}

TEST(api_keys, key_file_with_users_and_hashes) {
    const std::string path = testing::TempDir() + "/muse-keys.txt";
    {
        std::ofstream f(path);
        // sha256("sk-hashed")
        f << "# Muse keys\n\nalice sk-one\nsk-two\nbob sha256:"
          << "3f1c8a7a3d1fb5b7a3ecb8e4c9a4fb0b4a3e5f2c8b0e6d5a4c3b2a1908f7e6d5" << "\n";
    }
    api_keys k;
    ASSERT_FALSE(k.load_file(path));
    EXPECT_EQ(k.size(), 3u);
    std::string user;
    EXPECT_TRUE(k.check("sk-one", user));
    EXPECT_EQ(user, "alice");
    EXPECT_TRUE(k.check("sk-two", user));
    {
        std::ofstream f(path);
        f << "alice sk-one extra\n";
    }
    api_keys bad;
    error    e = bad.load_file(path);
    ASSERT_TRUE(e);
    EXPECT_TRUE(has(e.message, "line 1")) << e.message;
    EXPECT_TRUE(bad.load_file(testing::TempDir() + "/no-such-keys.txt"));
    std::remove(path.c_str());
}

TEST(file_store, caps_and_isolation) {
    file_store_limits lim;
    lim.max_file_bytes     = 100;
    lim.max_files_per_user = 2;
    lim.max_total_bytes    = 250;
    file_store fs(lim);
    auto mk = [](const std::string & user, size_t n) {
        stored_file f;
        f.user     = user;
        f.filename = "t.csv";
        f.bytes    = std::make_shared<const std::string>(n, 'x');
        return f;
    };
    stored_file a = mk("alice", 90), b = mk("alice", 90), c = mk("alice", 10), big = mk("bob", 101), d = mk("bob", 90);
    ASSERT_FALSE(fs.put(a));
    ASSERT_FALSE(fs.put(b));
    EXPECT_NE(a.id, b.id);
    EXPECT_EQ(a.id.rfind("file-", 0), 0u);
    error e = fs.put(c);
    ASSERT_TRUE(e);
    EXPECT_TRUE(has(e.message, "limit")) << e.message;
    EXPECT_TRUE(fs.put(big));
    e = fs.put(d);
    ASSERT_TRUE(e) << "250 bytes in all";
    EXPECT_TRUE(has(e.message, "full")) << e.message;
    stored_file got;
    EXPECT_TRUE(fs.get("alice", a.id, got));
    EXPECT_FALSE(fs.get("bob", a.id, got)) << "files are visible to their owner only";
    EXPECT_FALSE(fs.remove("bob", a.id));
    EXPECT_TRUE(fs.remove("alice", a.id));
    EXPECT_FALSE(fs.put(d)) << "space was freed";
    EXPECT_EQ(fs.list("alice").size(), 1u);
    EXPECT_EQ(fs.total_bytes(), 180u);
}

// Untrusted nesting is measured before anything recurses over it, and the 400 names where.
// vLLM's cache_salt: a string of at most 256 bytes, kept for the server to scope under the user.
TEST(server_api, cache_salt_is_parsed_checked_and_scoped_per_user) {
    chat_api_request r;
    ASSERT_FALSE(parse(body(), r));
    EXPECT_EQ(r.ask.cache_salt, "");
    ASSERT_FALSE(parse(body(R"(,"cache_salt":"tenant-7")"), r));
    EXPECT_EQ(r.ask.cache_salt, "tenant-7");
    ASSERT_FALSE(parse(body(R"(,"cache_salt":null)"), r));
    EXPECT_EQ(r.ask.cache_salt, "");
    for (const std::string & bad : { std::string(R"(,"cache_salt":7)"), std::string(R"(,"cache_salt":["a"])"),
                                     std::string(R"(,"cache_salt":")") + std::string(257, 'x') + "\"" }) {
        api_error e = parse(body(bad), r);
        EXPECT_EQ(e.status, 400) << bad.substr(0, 40);
        EXPECT_EQ(e.param, "cache_salt") << e.message;
    }
    ASSERT_FALSE(parse(body(R"(,"cache_salt":")" + std::string(256, 'x') + "\""), r));

    // One user's scopes never equal another's, whatever the client salts say.
    EXPECT_NE(scoped_cache_salt("alice", ""), scoped_cache_salt("bob", ""));
    EXPECT_NE(scoped_cache_salt("alice", "x"), scoped_cache_salt("alice", ""));
    EXPECT_NE(scoped_cache_salt("a", "b\x1f" "c"), scoped_cache_salt("a\x1f" "b", "c"));
    EXPECT_NE(scoped_cache_salt("a", "1:b"), scoped_cache_salt("a\x1f" "1:b", ""));
    EXPECT_EQ(scoped_cache_salt("alice", "x"), scoped_cache_salt("alice", "x"));
}

TEST(server_api, deep_nesting_is_refused_with_the_field) {
    auto nest = [](int n, const std::string & inner) {
        std::string s;
        for (int i = 0; i < n; ++i) s += R"({"type":"object","properties":{"a":)";
        s += inner;
        for (int i = 0; i < n; ++i) s += "}}";
        return s;
    };
    const std::string msgs = R"({"messages":[{"role":"user","content":"Hi"}])";
    struct tc { std::string body; std::string param; };
    for (const tc & t : std::vector<tc>{
             // 5,000 levels (the reproduction): caught by the body's depth cap, with its path.
             { msgs + R"(,"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":)" +
                   nest(2500, "{}") + "}}}", "response_format.json_schema.schema.properties.a.properties..." },
             { msgs + R"(,"tools":[{"type":"function","function":{"name":"f","parameters":)" + nest(2500, "{}") + "}}]}",
               "tools[0].function.parameters.properties.a..." },
             // Under the body's cap but over the schema's: the schema check names the field.
             { msgs + R"(,"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":)" +
                   nest(40, "{}") + "}}}", "response_format.json_schema.schema" },
             { msgs + R"(,"tools":[{"type":"function","function":{"name":"f","parameters":)" + nest(40, "{}") + "}}]}",
               "tools[0].function.parameters" },
             { R"({"messages":[{"role":"user","content":"Hi"}],"x":)" + std::string(200000, '[') + std::string(200000, ']') + "}",
               "x[0][0][0][0][0]..." },
         }) {
        chat_api_request r;
        api_error        e = parse_chat_body(t.body, {}, r);
        EXPECT_EQ(e.status, 400) << t.param;
        EXPECT_EQ(e.param, t.param) << e.message;
        EXPECT_TRUE(has(e.message, "levels")) << e.message;
    }
    {
        std::string en = R"({"enum":[)";  // 100,000 alternatives: over a minute per token before the cap
        for (int i = 0; i < 100000; ++i) en += (i ? ",\"v" : "\"v") + std::to_string(i) + "\"";
        chat_api_request r;
        api_error e = parse_chat_body(msgs + R"(,"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"x":)" +
                                          en + "]}}}}}]}", {}, r);
        EXPECT_EQ(e.status, 400);
        EXPECT_EQ(e.param, "tools[0].function.parameters") << e.message;
    }
    chat_api_request r;  // a modest schema still passes
    EXPECT_FALSE(parse_chat_body(msgs + R"(,"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":)" +
                                     nest(10, "{}") + "}}}", {}, r));
}

// A field of the wrong type is the client's error (400), never an exception (500).
TEST(server_api, wrong_types_anywhere_are_400s) {
    for (const char * extra : { R"(,"response_format":{"type":5})", R"(,"tools":[{"type":7,"function":{"name":"f"}}])",
                                R"(,"tool_choice":{"type":["function"],"function":{"name":"f"}})",
                                R"(,"stream_options":"yes")", R"(,"stop":[1,2])", R"(,"mode":{})" }) {
        chat_api_request r;
        api_error        e = parse_chat_body(std::string(R"({"messages":[{"role":"user","content":"Hi"}])") + extra + "}", {}, r);
        EXPECT_EQ(e.status, 400) << extra << ": " << e.message;
    }
    chat_api_request r;
    api_error        e = parse_chat_body(R"({"messages":[{"role":"assistant","content":"x","tool_calls":[{"id":5,"function":{"name":"f"}}]},{"role":"user","content":"Hi"}]})", {}, r);
    EXPECT_TRUE(!e || e.status == 400) << e.message;
    for (const char * bad : { "", "{", "[1,2]", "\"x\"", "{\"messages\":[{\"role\":\"user\",\"content\":\"\xff\"}]}" }) {
        EXPECT_EQ(parse_chat_body(bad, {}, r).status, 400) << bad;
    }
}

// Upload names are stored as valid UTF-8 without directories or control characters, cut on a
// character boundary: a hostile name can never make listing or serialising the file fail.
TEST(server_api, upload_names_are_normalised_before_storing) {
    EXPECT_EQ(normalize_file_name("sales.csv"), "sales.csv");
    EXPECT_EQ(normalize_file_name("../../etc/passwd"), "passwd");
    EXPECT_EQ(normalize_file_name("C:\\Users\\me\\data.csv"), "data.csv");
    EXPECT_EQ(normalize_file_name("a\nb\r\x01.csv"), "ab.csv");
    EXPECT_EQ(normalize_file_name(""), "upload");
    EXPECT_EQ(normalize_file_name("   "), "upload");
    const std::string bad = std::string(300, 'x') + "\xff\xfe.csv";
    EXPECT_LE(normalize_file_name(bad).size(), 255u);
    EXPECT_NO_THROW((void) nlohmann::json(normalize_file_name("caf\xe9\xff.csv")).dump()) << "valid UTF-8, so it serialises";
    const std::string accents = std::string(254, 'a') + "\xc3\xa9\xc3\xa9";  // 'é' straddles byte 255
    const std::string cut     = normalize_file_name(accents);
    EXPECT_EQ(cut, std::string(254, 'a')) << "cut before the character, not inside it";
}
