#include "logging.h"

#include "llama.h"
#include "log.h"
#include "mtmd-helper.h"

#include <atomic>
#include <cstdio>
#include <mutex>

namespace muse {

static std::atomic<int>        g_verbosity{ 0 };
static thread_local std::string t_last_error;

static void log_callback(ggml_log_level level, const char * text, void * /*user*/) {
    if (level == GGML_LOG_LEVEL_ERROR) {
        t_last_error += text;
    }
    const int v = g_verbosity.load(std::memory_order_relaxed);
    const bool show = v >= 2 || (v == 1 && (level == GGML_LOG_LEVEL_ERROR || level == GGML_LOG_LEVEL_WARN));
    if (show) {
        fputs(text, stderr);
    }
}

void log_init(int verbosity) {
    g_verbosity = verbosity;
    // common/ logs through its own logger (parser and template warnings); same policy.
    common_log_set_verbosity_thold(verbosity >= 2 ? LOG_LEVEL_DEBUG : verbosity == 1 ? LOG_LEVEL_WARN : -1);
    static std::once_flag once;
    std::call_once(once, [] {
        llama_log_set(log_callback, nullptr);
        mtmd_helper_log_set(log_callback, nullptr);
    });
}

std::string log_take_last_error() {
    std::string s;
    s.swap(t_last_error);
    // Callers put this in one-line messages: join llama.cpp's lines.
    std::string out;
    for (char c : s) {
        if (c == '\n') {
            if (!out.empty() && out.back() != ' ') {
                out += "; ";
            }
        } else {
            out += c;
        }
    }
    while (!out.empty() && (out.back() == ' ' || out.back() == ';')) {
        out.pop_back();
    }
    return out;
}

}  // namespace muse
