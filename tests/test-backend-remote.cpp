// The remote backend against a real llama-server built from the pinned source, on loopback,
// serving the generated Qwen-template model: the backend contract, then what only a remote has
// (connection errors, the server's context, its prompt cache, cancellation that reaches it,
// contemplating as K requests).

#include "backend-contract.h"
#include "test-models.h"

#include "backend/remote/remote-backend.h"
#include "reasoning/orchestrator.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fcntl.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

extern char ** environ;

namespace muse::test {

namespace {

// A port no one listens on now (the kernel's pick for a socket bound to port 0).
int free_port() {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family      = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port        = 0;
    socklen_t n       = sizeof a;
    if (bind(fd, (sockaddr *) &a, sizeof a) != 0 || getsockname(fd, (sockaddr *) &a, &n) != 0) {
        close(fd);
        return 0;
    }
    close(fd);
    return ntohs(a.sin_port);
}

// GET path on 127.0.0.1:port with a plain socket: the status, or 0 when nothing answers.
int http_status(int port, const std::string & path, std::string * body = nullptr) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family      = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port        = htons((uint16_t) port);
    if (connect(fd, (sockaddr *) &a, sizeof a) != 0) {
        close(fd);
        return 0;
    }
    timeval tv{ 10, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    const std::string req = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if (write(fd, req.data(), req.size()) != (ssize_t) req.size()) {
        close(fd);
        return 0;
    }
    std::string got;
    char        buf[4096];
    for (ssize_t k; (k = read(fd, buf, sizeof buf)) > 0;) got.append(buf, (size_t) k);
    close(fd);
    int status = 0;
    std::sscanf(got.c_str(), "HTTP/1.%*d %d", &status);
    if (body) {
        const size_t h = got.find("\r\n\r\n");
        *body          = h == std::string::npos ? "" : got.substr(h + 4);
    }
    return status;
}

// One llama-server for the whole binary, stopped at exit.
struct llama_server {
    pid_t pid  = 0;
    int   port = 0;
    std::string error;

    llama_server() {
        const std::string model = model_path(QWEN);
        for (int attempt = 0; attempt < 3 && !pid; ++attempt) {
            port = free_port();
            const std::string port_s = std::to_string(port);
            std::vector<std::string> args = { MUSE_LLAMA_SERVER, "-m", model, "--host", "127.0.0.1", "--port", port_s, "-c", "4096",
                                              "-np", "4", "-t", "2", "--jinja", "--metrics", "--no-webui" };
            std::vector<char *> argv;
            for (auto & a : args) argv.push_back(a.data());
            argv.push_back(nullptr);
            posix_spawn_file_actions_t fa;
            posix_spawn_file_actions_init(&fa);
            const std::string log = scratch_dir() + "/llama-server.log";
            posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
            posix_spawn_file_actions_adddup2(&fa, 1, 2);
            if (posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ) != 0) {
                pid   = 0;
                error = std::string("cannot start ") + MUSE_LLAMA_SERVER;
                posix_spawn_file_actions_destroy(&fa);
                return;
            }
            posix_spawn_file_actions_destroy(&fa);
            // Ready when /health answers 200 (the model is loaded); bounded, and a server that
            // exited (its port taken after all) is started again on another.
            const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(180);
            while (std::chrono::steady_clock::now() < until) {
                int st = 0;
                if (waitpid(pid, &st, WNOHANG) == pid) {
                    pid = 0;
                    break;
                }
                if (http_status(port, "/health") == 200) return;
                std::this_thread::sleep_for(std::chrono::milliseconds(50));
            }
            if (pid) {
                kill(pid, SIGKILL);
                waitpid(pid, nullptr, 0);
                pid = 0;
            }
        }
        error = "llama-server did not become ready; see " + scratch_dir() + "/llama-server.log";
    }
    ~llama_server() {
        if (pid) {
            kill(pid, SIGTERM);
            waitpid(pid, nullptr, 0);
        }
    }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port); }
};

llama_server & server() {
    static llama_server s;
    return s;
}

remote_params params() {
    remote_params p;
    p.url = server().url();
    return p;
}

}  // namespace

struct remote_contract : contract_backend {
    std::unique_ptr<remote_backend> be;
    remote_contract() {
        if (!server().error.empty()) throw std::runtime_error(server().error);
        error err;
        be = remote_backend::connect(params(), err);
        if (!be) throw std::runtime_error(err.message);
    }
    backend & get() override { return *be; }
};

std::unique_ptr<contract_backend> make_contract_backend() { return std::make_unique<remote_contract>(); }

TEST(remote_backend, bad_urls_and_unreachable_servers_are_clear_errors) {
    error         err;
    remote_params p;
    p.url = "ftp://example.com";
    EXPECT_FALSE(remote_backend::connect(p, err));
    EXPECT_EQ(err.code, ERROR_INVALID_ARGUMENT);
    EXPECT_NE(err.message.find("http://"), std::string::npos) << err.message;
    p.url = "https://example.com";
    EXPECT_FALSE(remote_backend::connect(p, err));
    EXPECT_NE(err.message.find("TLS"), std::string::npos) << err.message;
    p.url = "http://127.0.0.1:" + std::to_string(free_port());
    EXPECT_FALSE(remote_backend::connect(p, err));
    EXPECT_EQ(err.code, ERROR_UNAVAILABLE);
    EXPECT_NE(err.message.find("cannot be reached"), std::string::npos) << err.message;
    p                   = params();
    p.model             = "no-such-model";
    EXPECT_FALSE(remote_backend::connect(p, err));
    EXPECT_EQ(err.code, ERROR_INVALID_ARGUMENT);
    EXPECT_NE(err.message.find("does not serve 'no-such-model'"), std::string::npos) << err.message;
    p                   = params();
    p.connect_timeout_s = 0;
    EXPECT_FALSE(remote_backend::connect(p, err));
    EXPECT_NE(err.message.find("connect timeout"), std::string::npos) << err.message;
}

TEST(remote_backend, caps_come_from_the_server) {
    ASSERT_TRUE(server().error.empty()) << server().error;
    error err;
    auto  be = remote_backend::connect(params(), err);
    ASSERT_TRUE(be) << err.message;
    const backend_caps c = be->caps();
    EXPECT_EQ(c.name, "remote");
    EXPECT_FALSE(c.fork);
    EXPECT_EQ(c.n_ctx, 1024) << "llama-server's context per slot (-c 4096 over -np 4), from /props";
    const auto meta = nlohmann::json::parse(c.meta_json);
    EXPECT_EQ(meta["backend"], "remote");
    EXPECT_EQ(meta["url"], server().url());
}

// The second request of a conversation finds its prefix in llama-server's prompt cache, and
// the usage says how much (llama-server's cache_n).
TEST(remote_backend, the_servers_prompt_cache_shows_in_the_usage) {
    error err;
    auto  be = remote_backend::connect(params(), err);
    ASSERT_TRUE(be) << err.message;
    chat_request r;
    r.messages             = { { "system", "You are a careful assistant who answers briefly and checks every step twice." },
                               { "user", "Here is a long question about the weather in Lisbon in the spring." } };
    r.sampling.temperature = 0;
    r.max_tokens           = 4;
    const chat_result a    = collect(*be->start(r));
    ASSERT_FALSE(a.err) << a.err.message;
    r.messages.push_back({ "assistant", a.content });
    r.messages.push_back({ "user", "And in the autumn?" });
    const chat_result b = collect(*be->start(r));
    ASSERT_FALSE(b.err) << b.err.message;
    EXPECT_GT(b.use.prompt_tokens_reused, 0);
    EXPECT_EQ(b.use.prompt_tokens, b.use.prompt_tokens_prefilled + b.use.prompt_tokens_reused);
}

// Cancelling closes the connection, and llama-server stops generating: its own metrics show
// nothing in progress soon after, and the next request runs at once.
TEST(remote_backend, cancel_stops_the_generation_upstream) {
    error err;
    auto  be = remote_backend::connect(params(), err);
    ASSERT_TRUE(be) << err.message;
    chat_request r;
    r.messages             = { { "user", "Write a very long essay about the sea." } };
    r.sampling.temperature = 1;
    r.sampling.seed        = 3;
    r.max_tokens           = 100000;
    r.stop                 = {};
    auto       s           = be->start(r);
    chat_event ev;
    ASSERT_TRUE(s->next(ev));
    s->cancel();
    finish_reason fin = FINISH_NONE;
    while (s->next(ev)) {
        if (ev.type == chat_event::DONE) fin = ev.finish;
    }
    EXPECT_EQ(fin, FINISH_CANCELLED);
    bool idle = false;
    for (int i = 0; i < 600 && !idle; ++i) {  // up to 30 s for the server to notice the closed socket
        std::string body;
        if (http_status(server().port, "/metrics", &body) == 200 && body.find("llamacpp:requests_processing 0") != std::string::npos) {
            idle = true;
        } else {
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
    }
    EXPECT_TRUE(idle) << "llama-server still generating after the stream was cancelled";
    for (const backend_metric & m : be->stats()) {
        if (m.name == "muse_remote_cancelled_total") EXPECT_EQ(m.value, 1);
        if (m.name == "muse_remote_in_flight") EXPECT_EQ(m.value, 0);
    }
}

// Contemplating on a backend without fork: K solver requests, each with the whole
// conversation, answered by llama-server in parallel slots. llama-server refuses some outputs
// of the random-weight model mid-stream ("does not match the expected ... format"); such a
// refusal must come back as Muse's ERROR_UNAVAILABLE naming the backend, never as a hang or a
// crash, and the other agents' answers stand.
TEST(remote_backend, contemplating_runs_as_k_requests) {
    error err;
    auto  be = remote_backend::connect(params(), err);
    ASSERT_TRUE(be) << err.message;
    orchestrator orch(*be, builtin_tools());
    ask_request  req;
    req.messages                 = { { "user", "What is 3 + 4? Think it through." } };
    req.opt.mode                 = MODE_CONTEMPLATING;
    req.opt.agents               = 3;
    req.opt.planner              = false;
    req.opt.prune                = false;
    req.opt.budget               = 16;
    req.opt.answer_tokens        = 8;  // the built-in tools stay: llama-server refuses logprobs beside them, once
    req.opt.sampling.temperature = 0.7f;
    req.opt.sampling.seed        = 25;
    const ask_result r           = orch.run(req);
    auto upstream_refusal = [&](const error & e) {
        return e.code == ERROR_UNAVAILABLE && e.message.find(server().url()) != std::string::npos &&
               e.message.find("failed mid-answer") != std::string::npos;
    };
    if (r.err) EXPECT_TRUE(upstream_refusal(r.err)) << r.err.message;
    int solvers = 0, answered = 0;
    for (const auto & t : r.agents) {
        if (t.kind != AGENT_SOLVER) continue;
        solvers++;
        EXPECT_GT(t.tokens, 0);
        EXPECT_EQ(t.prompt_tokens_reused + t.prompt_tokens_prefilled > 0, true);
        if (t.err) EXPECT_TRUE(upstream_refusal(t.err)) << t.err.message;
        answered += !t.err;
    }
    EXPECT_EQ(solvers, 3);
    EXPECT_GT(answered, 0);
    for (const backend_metric & m : be->stats()) {
        if (m.name == "muse_remote_in_flight") EXPECT_EQ(m.value, 0) << "every request ended";
        if (m.name == "muse_remote_requests_total") EXPECT_GE(m.value, 3);
    }
}

// The request body: OpenAI's fields, llama.cpp's extensions, nothing a server would misread.
TEST(remote_backend, request_body_maps_every_field) {
    chat_request r;
    r.messages = { { "user", "hi" } };
    chat_message call;
    call.role       = "assistant";
    call.tool_calls = { { "call_1", "calculator", "{\"expression\":\"1+1\"}" } };
    r.messages.push_back(call);
    chat_message result;
    result.role         = "tool";
    result.content      = "2";
    result.tool_call_id = "call_1";
    r.messages.push_back(result);
    r.tools                = { { "calculator", "adds", "{\"type\":\"object\"}" } };
    r.sampling.temperature = 0.3f;
    r.sampling.seed        = 7;
    r.max_tokens           = 12;
    r.stop                 = { "END" };
    r.reasoning            = REASONING_OFF;
    r.json_schema          = "{\"type\":\"object\"}";
    r.logprobs             = true;
    error err;
    const auto b = nlohmann::json::parse(remote_request_body(r, "m", err));
    ASSERT_FALSE(err) << err.message;
    EXPECT_EQ(b["model"], "m");
    EXPECT_EQ(b["stream"], true);
    EXPECT_EQ(b["stream_options"]["include_usage"], true);
    EXPECT_EQ(b["messages"][1]["tool_calls"][0]["function"]["name"], "calculator");
    EXPECT_EQ(b["messages"][2]["tool_call_id"], "call_1");
    EXPECT_EQ(b["tools"][0]["function"]["parameters"]["type"], "object");
    EXPECT_EQ(b["seed"], 7);
    EXPECT_EQ(b["max_tokens"], 12);
    EXPECT_EQ(b["stop"][0], "END");
    EXPECT_EQ(b["chat_template_kwargs"]["enable_thinking"], false);
    EXPECT_EQ(b["response_format"]["type"], "json_schema");
    EXPECT_EQ(b["logprobs"], true);
    EXPECT_FALSE(b.contains("grammar"));
    r.tools[0].parameters = "{not json";
    EXPECT_TRUE(remote_request_body(r, "m", err).empty());
    EXPECT_NE(err.message.find("calculator"), std::string::npos) << err.message;
}

}  // namespace muse::test
