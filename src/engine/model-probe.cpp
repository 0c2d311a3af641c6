#include "model-probe.h"

#include "core/utf8.h"
#include "logging.h"

#include "chat.h"
#include "ggml-backend.h"
#include "ggml.h"
#include "llama-cpp.h"

#include <cerrno>
#include <cmath>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <new>
#include <poll.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

namespace muse {

namespace {

// The child's report, one line each: "loaded" after phase 1, then the outcome.
//   ok | fail <llama.cpp's error> | abort <assertion> | template <exception> |
//   memory <phase> | render-fail <exception>
int g_report_fd = -1;

void report(const std::string & line) {
    // One line of at most ~400 bytes: whitespace runs (template error excerpts are
    // multi-line and indented) become one space; a long message is cut on a UTF-8 boundary.
    std::string s;
    for (char c : line) {
        const bool space = c == '\n' || c == '\r' || c == '\t' || c == ' ';
        if (space && (s.empty() || s.back() == ' ')) {
            continue;
        }
        s += space ? ' ' : c;
    }
    if (s.size() > 400) {
        s = utf8_head(s, 400) + "...";
    }
    while (!s.empty() && s.back() == ' ') {
        s.pop_back();
    }
    s += '\n';
    const char * p = s.data();
    size_t       n = s.size();
    while (n > 0) {
        const ssize_t w = ::write(g_report_fd, p, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return;
        }
        p += w;
        n -= (size_t) w;
    }
}

// GGML_ASSERT / GGML_ABORT in the child: report the message, then leave. Never returns.
void on_ggml_abort(const char * message) {
    report(std::string("abort ") + message);
    _exit(3);
}

uint64_t address_space_now() {
    FILE * f = fopen("/proc/self/statm", "r");
    if (!f) {
        return 0;
    }
    unsigned long long pages = 0;
    if (fscanf(f, "%llu", &pages) != 1) {
        pages = 0;
    }
    fclose(f);
    return pages * (uint64_t) sysconf(_SC_PAGESIZE);
}

double cpu_seconds_now() {
    struct rusage ru = {};
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// Lowers (never raises) the child's limits: address space to what it uses now plus
// `memory`, CPU time to what it used so far plus `cpu_s` (SIGXCPU, then SIGKILL a second later).
void limit_child(uint64_t memory, double cpu_s) {
    struct rlimit as = {};
    getrlimit(RLIMIT_AS, &as);
    const uint64_t want = address_space_now() + memory;
    if (as.rlim_max == RLIM_INFINITY || want < as.rlim_max) {
        as.rlim_cur = as.rlim_max = want;
        setrlimit(RLIMIT_AS, &as);
    }
    struct rlimit cpu = {};
    getrlimit(RLIMIT_CPU, &cpu);
    const rlim_t soft = (rlim_t) std::ceil(cpu_seconds_now() + cpu_s);
    if (cpu.rlim_max == RLIM_INFINITY || soft + 1 <= cpu.rlim_max) {
        cpu.rlim_cur = soft;
        cpu.rlim_max = soft + 1;
        setrlimit(RLIMIT_CPU, &cpu);
    }
}

common_chat_msg message(const char * role, const char * content) {
    common_chat_msg m;
    m.role    = role;
    m.content = content;
    return m;
}

// Renders the templates the ways format_chat() and load() do. Throws what the template throws.
void render_like_muse(const common_chat_templates * tmpls) {
    (void) common_chat_templates_support_enable_thinking(tmpls);

    for (bool thinking : { true, false }) {
        common_chat_templates_inputs in;
        in.messages              = { message("system", "You are a helpful assistant."), message("user", "Hello!") };
        in.reasoning_format      = COMMON_REASONING_FORMAT_DEEPSEEK;
        in.enable_thinking       = thinking;
        in.add_generation_prompt = true;
        (void) common_chat_templates_apply(tmpls, in);
    }

    common_chat_templates_inputs in;
    common_chat_msg              call = message("assistant", "");
    call.tool_calls                   = { { "get_time", "{\"zone\":\"UTC\"}", "call_1" } };
    common_chat_msg result            = message("tool", "12:00");
    result.tool_call_id               = "call_1";
    result.tool_name                  = "get_time";
    in.messages = { message("system", "Use tools when they help."), message("user", "What time is it?"), call, result,
                    message("assistant", "It is noon."), message("user", "Thanks") };
    in.tools    = { { "get_time", "The current time in a time zone.",
                      "{\"type\":\"object\",\"properties\":{\"zone\":{\"type\":\"string\"}},\"required\":[\"zone\"]}" } };
    in.tool_choice                = COMMON_CHAT_TOOL_CHOICE_AUTO;
    in.reasoning_format           = COMMON_REASONING_FORMAT_DEEPSEEK;
    in.enable_thinking            = true;
    in.add_generation_prompt      = true;
    in.chat_template_kwargs["reasoning_strength"] = "\"high\"";
    (void) common_chat_templates_apply(tmpls, in);
}

// llama.cpp's Jinja errors carry a source excerpt, then "Error: <what went wrong>": keep the latter.
std::string jinja_error(const std::string & what) {
    const size_t at = what.rfind("Error: ");
    return at == std::string::npos ? what : what.substr(at + 7);
}

// common_chat_templates_init rethrows a parse error as a plain std::exception ("std::exception");
// parsing the model's templates again recovers the parser's own message.
std::string parse_error(const llama_model * model, const std::string & fallback) {
    for (const char * name : { (const char *) nullptr, "tool_use" }) {
        const char * src = llama_model_chat_template(model, name);
        if (!src) {
            continue;
        }
        try {
            common_chat_template t(src, "", "");
        } catch (const std::exception & e) {
            return e.what();
        }
    }
    return fallback;
}

// The child: never returns.
[[noreturn]] void run_child(const std::string & path, const probe_limits & limits) {
    // Nothing of the parent's runs here: default signals (Ctrl-C ends the child too), no
    // core files (a crash is expected and may be large), llama.cpp quiet.
    for (int sig : { SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL }) {
        signal(sig, SIG_DFL);
    }
    struct rlimit core = { 0, 0 };
    setrlimit(RLIMIT_CORE, &core);
    log_init(0);
    ggml_set_abort_callback(on_ggml_abort);

    limit_child(limits.load_memory, limits.load_cpu_s);

    llama_model_ptr   model;
    llama_context_ptr ctx;
    try {
        llama_model_params mp = llama_model_default_params();
        // No offload devices (the CPU alone): a GPU driver's state belongs to the parent, and
        // no_alloc reads and allocates no weights anyway.
        ggml_backend_dev_t no_devices[] = { nullptr };
        mp.devices                      = no_devices;
        mp.n_gpu_layers              = 0;
        mp.no_alloc                  = true;
        mp.load_mode                 = LLAMA_LOAD_MODE_NONE;
        log_take_last_error();
        model.reset(llama_model_load_from_file(path.c_str(), mp));
        if (!model) {
            report("fail " + log_take_last_error());
            _exit(1);
        }

        // Tokenizing asserts on missing BOS/EOS/SEP tokens the vocabulary promises to add.
        const llama_vocab * vocab = llama_model_get_vocab(model.get());
        const std::string   text  = "Hello, world!\n<|im_start|>user 12:00";
        std::vector<llama_token> toks(text.size() + 16);
        const int32_t n = llama_tokenize(vocab, text.c_str(), (int32_t) text.size(), toks.data(), (int32_t) toks.size(),
                                         /*add_special =*/ true, /*parse_special =*/ true);
        char piece[256];
        for (int32_t i = 0; i < n; ++i) {
            (void) llama_token_to_piece(vocab, toks[i], piece, sizeof(piece), 0, true);
        }

        // Building the compute graphs (no_alloc: planned, not allocated) runs the
        // architecture's graph code and ggml's shape asserts, as the engine's first decode would.
        llama_context_params cp = llama_context_default_params();
        cp.n_ctx                = 512;
        cp.n_batch              = 512;
        cp.n_ubatch             = 512;
        cp.n_seq_max            = 1;
        cp.n_threads            = 1;
        cp.n_threads_batch      = 1;
        cp.kv_unified           = true;
        cp.no_perf              = true;
        // The probe's layers stay on the CPU (n_gpu_layers 0), where the engine's auto keeps
        // flash attention off (engine::context_params).
        cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
        log_take_last_error();
        ctx.reset(llama_init_from_model(model.get(), cp));
        if (!ctx) {
            const std::string detail = log_take_last_error();
            report("fail cannot create a context for it" + (detail.empty() ? std::string() : ": " + detail));
            _exit(1);
        }
    } catch (const std::bad_alloc &) {
        report("memory load");
        _exit(1);
    } catch (const std::exception & e) {
        report(std::string("fail ") + e.what());
        _exit(1);
    }
    report("loaded");

    limit_child(limits.render_memory, limits.render_cpu_s);
    common_chat_templates_ptr tmpls;
    try {
        tmpls = common_chat_templates_init(model.get(), "");
    } catch (const std::bad_alloc &) {
        report("memory render");
        _exit(1);
    } catch (const std::exception & e) {
        report(std::string("template ") + jinja_error(parse_error(model.get(), e.what())));
        _exit(1);
    }
    try {
        render_like_muse(tmpls.get());
    } catch (const std::bad_alloc &) {
        report("memory render");
        _exit(1);
    } catch (const std::exception &) {
        // A template may refuse some conversations (the request then fails with a clear
        // error), but one that cannot render a single user message cannot chat at all.
        try {
            common_chat_templates_inputs in;
            in.messages              = { message("user", "Hello!") };
            in.add_generation_prompt = true;
            (void) common_chat_templates_apply(tmpls.get(), in);
        } catch (const std::bad_alloc &) {
            report("memory render");
            _exit(1);
        } catch (const std::exception & e2) {
            report(std::string("render-fail ") + jinja_error(e2.what()));
            _exit(1);
        }
    }
    report("ok");
    _exit(0);
}

std::string after(const std::string & line, const char * prefix) {
    const size_t n = strlen(prefix);
    return line.size() > n ? line.substr(n + 1) : std::string();
}

// "/long/path/src/llama-model.cpp:1226: GGML_ASSERT(x) failed" -> "llama-model.cpp:1226: GGML_ASSERT(x) failed"
std::string short_assert(const std::string & msg) {
    const size_t colon = msg.find(": ");
    const size_t slash = msg.rfind('/', colon);
    return (colon != std::string::npos && slash != std::string::npos) ? msg.substr(slash + 1) : msg;
}

std::string signal_words(int sig) {
    switch (sig) {
        case SIGSEGV: return "a segmentation fault";
        case SIGBUS:  return "a bus error";
        case SIGFPE:  return "an arithmetic fault";
        case SIGILL:  return "an illegal instruction";
        case SIGABRT: return "an abort";
        default:      return std::string("signal ") + std::to_string(sig);
    }
}

std::string mib(uint64_t bytes) {
    return std::to_string(bytes >> 20) + " MiB";
}

std::string secs(double s) {
    char buf[32];
    snprintf(buf, sizeof(buf), "%g s", s);
    return buf;
}

}  // namespace

error model_load_error(const std::string & path, const std::string & arch, const std::string & detail) {
    if (detail.find("unknown model architecture") != std::string::npos) {
        return { ERROR_UNSUPPORTED_ARCH, path + ": architecture '" + arch + "' is not supported by this llama.cpp build" };
    }
    error err = { ERROR_MODEL_LOAD, "failed to load " + path + (detail.empty() ? std::string() : ": " + detail) };
    // A loader complaint about keys or tensors means the file, not the build, is at fault.
    if (detail.find("tensor") != std::string::npos || detail.find("key") != std::string::npos ||
        detail.find("gguf") != std::string::npos) {
        err.code = ERROR_CORRUPT_MODEL;
    }
    return err;
}

namespace {

error probe_model_impl(const std::string & path, const std::string & arch, const probe_limits & limits) {
    // Where no child can be started (a sandbox without fork, no pipes left) the model is
    // loaded with the metadata checks alone rather than not at all.
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        return {};
    }
    // Buffered output would otherwise be written twice if the child flushed it (ggml_abort does).
    fflush(stdout);
    fflush(stderr);
    const pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return {};
    }
    if (pid == 0) {
        close(fds[0]);
        g_report_fd = fds[1];
        run_child(path, limits);
    }
    close(fds[1]);

    // Read the child's lines until it closes the pipe (exits) or its phase's deadline passes.
    using clock        = std::chrono::steady_clock;
    bool        loaded = false;
    bool        killed = false;
    std::string out;
    auto        deadline = clock::now() + std::chrono::duration<double>(limits.load_wall_s);
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count();
        if (left <= 0) {
            kill(pid, SIGKILL);
            killed = true;
            break;
        }
        struct pollfd p = { fds[0], POLLIN, 0 };
        const int     r = poll(&p, 1, (int) std::min<long long>(left, 1 << 30));
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r == 0) {
            continue;  // the deadline check above ends it
        }
        char          buf[4096];
        const ssize_t n = read(fds[0], buf, sizeof(buf));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        if (out.size() < (1u << 16)) {
            out.append(buf, (size_t) n);
        }
        if (!loaded && out.find("loaded\n") != std::string::npos) {
            loaded   = true;
            deadline = clock::now() + std::chrono::duration<double>(limits.render_wall_s);
        }
    }
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }

    // The outcome is the child's last line.
    std::string last;
    {
        size_t end = out.size();
        while (end > 0 && out[end - 1] == '\n') {
            --end;
        }
        const size_t start = out.rfind('\n', end == 0 ? 0 : end - 1);
        last = out.substr(start == std::string::npos ? 0 : start + 1, end - (start == std::string::npos ? 0 : start + 1));
    }
    const std::string tmpl = path + ": its chat template ";
    if (killed || (WIFSIGNALED(status) && (WTERMSIG(status) == SIGXCPU || WTERMSIG(status) == SIGKILL))) {
        if (!loaded) {
            return { ERROR_MODEL_LOAD, path + ": loading its metadata and vocabulary took longer than " +
                                           secs(killed ? limits.load_wall_s : limits.load_cpu_s) };
        }
        return { ERROR_CORRUPT_MODEL, tmpl + "did not finish rendering within " +
                                          secs(killed ? limits.render_wall_s : limits.render_cpu_s) +
                                          " (an endless or runaway loop)" };
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && last == "ok") {
        return {};
    }
    if (last.rfind("abort", 0) == 0) {
        return { ERROR_CORRUPT_MODEL, path + ": llama.cpp cannot use this model: " + short_assert(after(last, "abort")) };
    }
    if (last.rfind("fail", 0) == 0) {
        return model_load_error(path, arch, after(last, "fail"));
    }
    if (last == "memory load") {
        return { ERROR_MODEL_LOAD, path + ": loading its metadata and vocabulary needs more than " +
                                       mib(limits.load_memory) };
    }
    if (last == "memory render") {
        return { ERROR_CORRUPT_MODEL, tmpl + "needs more than " + mib(limits.render_memory) + " to render" };
    }
    if (last.rfind("template", 0) == 0) {
        return { ERROR_CORRUPT_MODEL, tmpl + "cannot be parsed: " + after(last, "template") };
    }
    if (last.rfind("render-fail", 0) == 0) {
        return { ERROR_CORRUPT_MODEL, tmpl + "cannot render a one-message conversation: " + after(last, "render-fail") };
    }
    if (WIFSIGNALED(status)) {
        const int sig = WTERMSIG(status);
        if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP) {
            return { ERROR_MODEL_LOAD, "loading " + path + " was interrupted" };
        }
        if (loaded) {
            return { ERROR_CORRUPT_MODEL, tmpl + "crashed the template engine with " + signal_words(sig) +
                                              " (runaway recursion or nesting)" };
        }
        return { ERROR_CORRUPT_MODEL, path + ": llama.cpp crashed with " + signal_words(sig) + " while loading it" };
    }
    return { ERROR_MODEL_LOAD, path + ": the check of this model ended unexpectedly (exit " +
                                   std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1) + ")" };
}

}  // namespace

// The message names the file and its architecture, which may hold any bytes: keep it one line.
error probe_model(const std::string & path, const std::string & arch, const probe_limits & limits) {
    error err = probe_model_impl(path, arch, limits);
    for (char & c : err.message) {
        if ((unsigned char) c < 0x20 || c == 0x7f) {
            c = '?';
        }
    }
    return err;
}

}  // namespace muse
