// app::assistant, the one door, on the scripted backend: the shared rules, the hooks' order and
// their power to refuse, the user's prompt-cache scope, attachments within the memory budget,
// and n choices.

#include "app/assistant.h"
#include "backend/scripted-backend.h"

#include <gtest/gtest.h>

#include <mutex>

using namespace muse;

namespace {

scripted_reply reply(std::string content) {
    scripted_reply r;
    r.content = std::move(content);
    return r;
}

ask_input question(std::string text, ask_mode mode = MODE_INSTANT) {
    ask_input in;
    in.request.messages = { { "user", std::move(text) } };
    in.request.opt.mode = mode;
    return in;
}

// Records its name in `log` when it sees a request; refuses requests that contain `refuse_word`.
class named_hook : public input_hook {
  public:
    named_hook(std::string n, std::vector<std::string> & log, std::mutex & mu, std::string refuse_word = "") :
        n(std::move(n)), log(log), mu(mu), word(std::move(refuse_word)) {}
    std::string name() const override { return n; }
    error check(const ask_session & s, ask_request & req) override {
        std::lock_guard<std::mutex> lk(mu);
        log.push_back(n + ":" + s.user);
        if (!word.empty() && req.messages.back().content.find(word) != std::string::npos) {
            return { ERROR_INVALID_ARGUMENT, n + " refuses requests about " + word };
        }
        req.messages.back().content += " [" + n + "]";  // hooks may rewrite, in order
        return {};
    }

  private:
    std::string                n;
    std::vector<std::string> & log;
    std::mutex &               mu;
    std::string                word;
};

class tagging_output : public output_hook {
  public:
    explicit tagging_output(std::string t) : tag(std::move(t)) {}
    std::string name() const override { return tag; }
    void check(const ask_session &, const ask_request &, std::vector<ask_result> & results) override {
        for (auto & r : results) r.answer += "|" + tag;
    }

  private:
    std::string tag;
};

}  // namespace

TEST(assistant, hooks_run_in_order_and_may_rewrite) {
    scripted_backend be;
    be.set_responder([](const chat_request & r) { return reply("seen: " + r.messages.back().content); });
    assistant a(be);
    std::vector<std::string> log;
    std::mutex               mu;
    a.add_input_hook(std::make_shared<named_hook>("first", log, mu));
    a.add_input_hook(std::make_shared<named_hook>("second", log, mu));
    a.add_output_hook(std::make_shared<tagging_output>("A"));
    a.add_output_hook(std::make_shared<tagging_output>("B"));

    ask_input in = question("hello");
    in.session.user = "alice";
    ask_output out;
    ASSERT_FALSE(a.ask(std::move(in), nullptr, {}, out));
    ASSERT_EQ(log, (std::vector<std::string>{ "first:alice", "second:alice" }));
    ASSERT_EQ(out.results.size(), 1u);
    // The backend saw both rewrites in order; the output hooks ran in order after it.
    EXPECT_EQ(out.results[0].answer, "seen: hello [first] [second]|A|B");
}

TEST(assistant, a_hook_refuses_with_its_name_and_message_and_nothing_runs) {
    scripted_backend be;
    be.set_responder([](const chat_request &) { return reply("should not run"); });
    assistant a(be);
    std::vector<std::string> log;
    std::mutex               mu;
    a.add_input_hook(std::make_shared<named_hook>("first", log, mu));
    a.add_input_hook(std::make_shared<named_hook>("policy", log, mu, "forbidden"));
    a.add_input_hook(std::make_shared<named_hook>("third", log, mu));

    ask_output  out;
    ask_refusal why;
    const error e = a.ask(question("tell me the forbidden thing"), nullptr, {}, out, &why);
    ASSERT_TRUE(e);
    EXPECT_EQ(e.message, "policy refuses requests about forbidden");
    EXPECT_EQ(why.field, "policy");
    EXPECT_EQ(log, (std::vector<std::string>{ "first:local", "policy:local" }));  // the third never saw it
    EXPECT_TRUE(be.requests().empty());
    EXPECT_TRUE(out.results.empty());
}

TEST(assistant, rules_are_one_table_for_every_front_end) {
    scripted_backend be;
    assistant        a(be);
    struct row {
        ask_mode    mode;
        bool        schema, tools;
        int         n;
        bool        ok;
        const char * field;
    };
    const row rows[] = {
        { MODE_INSTANT, false, false, 1, true, "" },        { MODE_CONTEMPLATING, true, false, 1, false, "json_schema" },
        { MODE_THINKING, true, false, 1, true, "" },        { MODE_AUTO, true, false, 2, true, "" },
        { MODE_CONTEMPLATING, false, true, 1, false, "tools" }, { MODE_CONTEMPLATING, false, false, 2, false, "n" },
        { MODE_THINKING, false, true, 4, true, "" },        { MODE_INSTANT, false, false, 17, false, "n" },
        { MODE_INSTANT, false, false, 0, false, "n" },
    };
    for (const row & r : rows) {
        ask_input in = question("q", r.mode);
        if (r.schema) in.request.opt.json_schema = R"({"type":"object"})";
        if (r.tools) in.request.opt.client_tools.push_back({ "f", "a tool", R"({"type":"object"})" });
        in.n = r.n;
        ask_refusal why;
        const error e = a.check(in, &why);
        EXPECT_EQ(!e, r.ok) << "mode " << ask_mode_name(r.mode) << " schema " << r.schema << " tools " << r.tools << " n " << r.n << ": "
                            << e.message;
        if (!r.ok) EXPECT_EQ(why.field, r.field) << e.message;
        // A schema without a mode (or with auto) means instant; instant offers no built-in tools.
        if (r.ok && r.schema && r.mode == MODE_AUTO) EXPECT_EQ(in.request.opt.mode, MODE_INSTANT);
        if (r.ok && in.request.opt.mode == MODE_INSTANT) EXPECT_TRUE(in.request.opt.tools.empty());
    }
}

// A model whose template cannot call tools refuses a request that brings its own tools, naming
// the field and what to do; the same request without tools goes through.
TEST(assistant, client_tools_are_refused_for_a_model_without_tool_calling) {
    scripted_backend be;
    backend_caps     caps = be.caps();
    caps.tools            = false;
    be.set_caps(caps);
    assistant   a(be);
    ask_input   in = question("q", MODE_THINKING);
    ask_refusal why;
    EXPECT_FALSE(a.check(in, &why));
    in.request.opt.client_tools.push_back({ "f", "a tool", R"({"type":"object"})" });
    const error e = a.check(in, &why);
    ASSERT_TRUE(e);
    EXPECT_EQ(e.code, ERROR_INVALID_ARGUMENT);
    EXPECT_EQ(why.field, "tools");
    EXPECT_NE(e.message.find("without tools"), std::string::npos) << e.message;
}

TEST(assistant, the_prompt_cache_is_scoped_to_the_user) {
    scripted_backend be;
    be.set_responder([](const chat_request &) { return reply("ok"); });
    assistant a(be);
    for (const char * user : { "alice", "bob" }) {
        ask_input in = question("same words");
        in.session.user = user;
        ask_output out;
        ASSERT_FALSE(a.ask(std::move(in), nullptr, {}, out));
    }
    const auto reqs = be.requests();
    ASSERT_EQ(reqs.size(), 2u);
    EXPECT_EQ(reqs[0].cache_salt, scoped_cache_salt("alice", ""));
    EXPECT_EQ(reqs[1].cache_salt, scoped_cache_salt("bob", ""));
    EXPECT_NE(reqs[0].cache_salt, reqs[1].cache_salt);
}

TEST(assistant, attachments_are_read_within_the_budget_and_named_in_errors) {
    scripted_backend be;
    be.set_responder([](const chat_request & r) { return reply(r.messages.back().content.find("north") != std::string::npos ? "saw the table" : "no table"); });
    assistant_params p;
    p.request_memory = 1u << 20;  // 1 MiB
    assistant a(be, p);

    ask_input in = question("which region?");
    in.attachments.push_back({ attachment_input::TABLE, "sales.csv", "region,amount\nnorth,1\nsouth,2\n" });
    ask_output out;
    ASSERT_FALSE(a.ask(std::move(in), nullptr, {}, out));
    EXPECT_EQ(out.results[0].answer, "saw the table");
    ASSERT_EQ(out.attachments.size(), 1u);
    EXPECT_EQ(out.attachments[0]["type"], "table");

    // A BMP header claiming 2000 x 2000 pixels needs 12 MB decoded: refused from its header.
    std::string bmp(54, '\0');
    bmp[0] = 'B', bmp[1] = 'M';
    auto put32 = [&](size_t at, uint32_t v) { for (int i = 0; i < 4; ++i) bmp[at + i] = (char) (v >> (8 * i)); };
    put32(2, 54 + 2000 * 2000 * 3);
    put32(10, 54);
    put32(14, 40);
    put32(18, 2000);
    put32(22, 2000);
    bmp[26] = 1;
    bmp[28] = 24;
    ask_input big = question("what is it?");
    attachment_input img;
    img.kind  = attachment_input::IMAGE;
    img.name  = "image 1";
    img.bytes = bmp;
    img.field = "image_url";
    big.attachments.push_back(img);
    ask_refusal why;
    const error e = a.ask(std::move(big), nullptr, {}, out, &why);
    ASSERT_TRUE(e);
    EXPECT_EQ(why.field, "image_url");
    EXPECT_NE(e.message.find("image 1:"), std::string::npos) << e.message;
    EXPECT_NE(e.message.find("budget"), std::string::npos) << e.message;
}

TEST(assistant, n_choices_run_at_once_each_with_its_seed) {
    scripted_backend be;
    be.set_responder([](const chat_request & r) { return reply("seed " + std::to_string(r.sampling.seed)); });
    assistant a(be);
    ask_input in = question("pick");
    in.n = 3;
    in.request.opt.sampling.seed = 100;
    ask_output out;
    ASSERT_FALSE(a.ask(std::move(in), nullptr, {}, out));
    ASSERT_EQ(out.results.size(), 3u);
    EXPECT_EQ(out.results[0].answer, "seed 100");
    EXPECT_EQ(out.results[1].answer, "seed 101");
    EXPECT_EQ(out.results[2].answer, "seed 102");
}
