// One table of requests through both front ends' parsers (the `muse ask` flags and the
// /v1/chat/completions body) and then the assistant: every row must be accepted by both or
// refused by both, at the same step. The front ends differ in spelling only.

#include "app/assistant.h"
#include "ask-flags.h"
#include "backend/scripted-backend.h"
#include "server/openai-api.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

using namespace muse;

namespace {

struct row {
    const char * mode;    // "" = not given
    bool         schema;  // a JSON schema for the answer
    int          budget;  // thinking budget; -1 = not given
    int          agents;  // -1 = not given
    int          stops;   // stop strings
    int          max_tokens;  // -1 = not given
    int          images;  // image attachments (counted by the parsers; not decoded here)
};

// The CLI: `muse ask PROMPT` and the row's flags.
bool cli_accepts(const row & r, ask_request & out, std::string & why) {
    std::vector<std::string> args = { "muse", "ask", "What is 6 x 7?" };
    if (*r.mode) args.insert(args.end(), { "--mode", r.mode });
    if (r.schema) args.insert(args.end(), { "--json-schema", R"({"type":"object","properties":{"n":{"type":"integer"}}})" });
    if (r.budget >= 0) args.insert(args.end(), { "--budget", std::to_string(r.budget) });
    if (r.agents >= 0) args.insert(args.end(), { "--agents", std::to_string(r.agents) });
    for (int i = 0; i < r.stops; ++i) args.insert(args.end(), { "--stop", "END" + std::to_string(i) });
    if (r.max_tokens >= 0) args.insert(args.end(), { "--max-tokens", std::to_string(r.max_tokens) });
    for (int i = 0; i < r.images; ++i) args.insert(args.end(), { "--image", "shot" + std::to_string(i) + ".png" });
    std::vector<char *> argv;
    for (auto & a : args) argv.push_back(a.data());
    cli::ask_flags f;
    why = cli::parse_ask_flags((int) argv.size(), argv.data(), 2, f);
    if (!why.empty()) return false;
    out.messages = { { "user", f.prompt } };
    out.opt      = f.opt;
    return true;
}

// The API: a /v1/chat/completions body with the row's fields.
bool api_accepts(const row & r, ask_request & out, std::string & why) {
    nlohmann::json content = "What is 6 x 7?";
    if (r.images > 0) {
        content = nlohmann::json::array({ { { "type", "text" }, { "text", "What is 6 x 7?" } } });
        for (int i = 0; i < r.images; ++i) {
            content.push_back({ { "type", "image_url" }, { "image_url", { { "url", "data:image/png;base64,iVBORw0KGgo=" } } } });
        }
    }
    nlohmann::json body = { { "messages", { { { "role", "user" }, { "content", content } } } } };
    if (*r.mode) body["mode"] = r.mode;
    if (r.schema) {
        body["response_format"] = { { "type", "json_schema" },
                                    { "json_schema", { { "name", "x" }, { "schema", { { "type", "object" } } } } } };
    }
    if (r.budget >= 0) body["thinking_budget"] = r.budget;
    if (r.agents >= 0) body["agents"] = r.agents;
    if (r.stops > 0) {
        body["stop"] = nlohmann::json::array();
        for (int i = 0; i < r.stops; ++i) body["stop"].push_back("END" + std::to_string(i));
    }
    if (r.max_tokens >= 0) body["max_tokens"] = r.max_tokens;
    api_limits lim;
    lim.max_tokens = 1 << 20;  // the server's cap, opened to the table's range
    lim.max_agents = 16;
    lim.max_images = 16;
    chat_api_request req;
    if (api_error e = parse_chat_body(body.dump(), lim, req)) {
        why = e.message;
        return false;
    }
    out = req.ask;
    return true;
}

}  // namespace

TEST(front_ends, one_table_of_requests_gets_the_same_answer_from_both) {
    std::vector<row> rows;
    for (const char * mode : { "", "instant", "thinking", "contemplating", "auto" }) {
        for (bool schema : { false, true }) {
            rows.push_back({ mode, schema, -1, -1, 0, -1, 0 });
        }
        rows.push_back({ mode, false, 0, -1, 0, -1, 0 });
        rows.push_back({ mode, false, 65536, -1, 0, -1, 0 });
        rows.push_back({ mode, false, 65537, -1, 0, -1, 0 });
        rows.push_back({ mode, false, -1, 16, 0, -1, 0 });
        rows.push_back({ mode, false, -1, 17, 0, -1, 0 });
        rows.push_back({ mode, false, -1, 0, 0, -1, 0 });
        rows.push_back({ mode, true, 2048, 4, 16, 100, 0 });
        rows.push_back({ mode, false, -1, -1, 17, -1, 0 });
        rows.push_back({ mode, false, -1, -1, 0, 0, 0 });
        rows.push_back({ mode, false, -1, -1, 0, 1048576, 0 });
        rows.push_back({ mode, false, -1, -1, 0, 1048577, 0 });
        rows.push_back({ mode, false, -1, -1, 0, -1, 16 });
        rows.push_back({ mode, false, -1, -1, 0, -1, 17 });
    }
    scripted_backend be;
    assistant        door(be);
    int accepted = 0, refused = 0;
    for (const row & r : rows) {
        const std::string label = std::string("mode '") + r.mode + "' schema " + std::to_string(r.schema) + " budget " +
                                  std::to_string(r.budget) + " agents " + std::to_string(r.agents) + " stops " + std::to_string(r.stops) +
                                  " max_tokens " + std::to_string(r.max_tokens) + " images " + std::to_string(r.images);
        ask_request cli_req, api_req;
        std::string cli_why, api_why;
        const bool cli_ok = cli_accepts(r, cli_req, cli_why);
        const bool api_ok = api_accepts(r, api_req, api_why);
        EXPECT_EQ(cli_ok, api_ok) << label << "\n  cli: " << cli_why << "\n  api: " << api_why;
        if (!cli_ok || !api_ok) {
            refused++;
            continue;
        }
        // Past the parsers, the assistant's rules give both the same answer and the same mode.
        ask_input a, b;
        a.request = cli_req;
        b.request = api_req;
        ask_refusal wa, wb;
        const error ea = door.check(a, &wa), eb = door.check(b, &wb);
        EXPECT_EQ((bool) ea, (bool) eb) << label << "\n  cli: " << ea.message << "\n  api: " << eb.message;
        EXPECT_EQ(wa.field, wb.field) << label;
        EXPECT_EQ(a.request.opt.mode, b.request.opt.mode) << label;
        EXPECT_EQ(a.request.opt.json_schema.empty(), b.request.opt.json_schema.empty()) << label;
        (ea ? refused : accepted)++;
    }
    // The table has both outcomes (so the test can fail either way).
    EXPECT_GT(accepted, 20);
    EXPECT_GT(refused, 20);
}
