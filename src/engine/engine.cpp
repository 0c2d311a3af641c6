#include "engine.h"

#include "core/limits.h"
#include "core/utf8.h"

#include "engine-core.h"
#include "logging.h"
#include "model.h"

#include "common.h"
#include "ggml-cpu.h"

#include <thread>

namespace muse {

std::string validate(const engine_params & p) {
    if (p.n_ctx < 16 || p.n_ctx > 1 << 22) {
        return "context size must be in [16, 4194304]";
    }
    if (p.n_batch < 1 || p.n_batch > 1 << 16) {
        return "batch size must be in [1, 65536]";
    }
    if (p.n_ubatch < 1 || p.n_ubatch > p.n_batch) {
        return "ubatch size must be in [1, batch size]";
    }
    if (p.n_seq_max < 1 || p.n_seq_max > (int32_t) llama_max_parallel_sequences()) {
        return "parallel sequences must be in [1, " + std::to_string(llama_max_parallel_sequences()) + "]";
    }
    if (p.flash_attn < -1 || p.flash_attn > 1) {
        return "flash attention must be -1 (auto), 0 (off) or 1 (on)";
    }
    if (p.n_threads < 0 || p.n_threads > 1024) {
        return "threads must be in [0, 1024] (0 = all)";
    }
    if (p.stream_interval_ms < 0 || p.stream_interval_ms > 1000) {
        return "stream interval must be in [0, 1000] ms";
    }
    if (p.draft_max < 0 || p.draft_max > 16) {
        return "drafted tokens per step must be in [0, 16] (0 = off)";
    }
    if (!(p.draft_min_chance >= 0 && p.draft_min_chance <= 1)) {
        return "the drafts' bar must be in [0, 1] (0 = from measured costs)";
    }
    if (p.draft_ngram < 1 || p.draft_ngram > k_draft_max_ngram) {
        return "the draft lookup's n-gram must be 1 to 8 tokens";
    }
    if (p.prompt_cache < 0 || p.prompt_cache > 256) {
        return "prompt cache entries must be in [0, 256]";
    }
    if (p.prompt_cache_tokens < 0 || p.prompt_cache_tokens > p.n_ctx) {
        return "prompt cache tokens must be in [0, context size]";
    }
    if (p.prompt_cache_min < 1 || p.prompt_cache_min > 1 << 20) {
        return "prompt cache minimum prefix must be in [1, 1048576]";
    }
    return {};
}



// --- sequence_handle -----------------------------------------------------------------

sequence_handle::sequence_handle(sequence_handle && o) noexcept { *this = std::move(o); }

sequence_handle & sequence_handle::operator=(sequence_handle && o) noexcept {
    if (this != &o) {
        release();
        core = std::move(o.core);
        chan = std::move(o.chan);
        sid  = o.sid;
        done = o.done;
        o.sid = 0;
        o.chan.reset();
    }
    return *this;
}

sequence_handle::~sequence_handle() { release(); }

bool sequence_handle::next(sequence_event & ev) {
    if (!chan || done) {
        return false;
    }
    chan->pop(ev);
    done = ev.type == sequence_event::DONE;
    return true;
}

void sequence_handle::cancel() {
    if (auto c = core.lock(); c && sid != 0) {
        c->post({ engine_command::CANCEL, sid, {}, nullptr });
    }
}

void sequence_handle::release() {
    if (auto c = core.lock(); c && sid != 0) {
        c->post({ engine_command::CANCEL, sid, {}, nullptr });
    }
    sid = 0;
    chan.reset();
}

// --- engine --------------------------------------------------------------------------

engine::engine() = default;

engine::~engine() {
    if (core) {
        {
            std::lock_guard<std::mutex> lk(core->mu);
            core->stopping = true;
        }
        core->cv.notify_all();
        if (core->thread.joinable()) {
            core->thread.join();
        }
    }
}

llama_context_params engine::context_params(const engine_params & params, bool offloaded) {
    const int32_t n_threads = params.n_threads > 0 ? params.n_threads : (int32_t) std::max(1u, std::thread::hardware_concurrency());

    llama_context_params cp = llama_context_default_params();
    cp.n_ctx           = params.n_ctx;
    cp.n_batch         = params.n_batch;
    cp.n_ubatch        = params.n_ubatch;
    cp.n_seq_max       = params.n_seq_max;
    cp.n_threads       = n_threads;
    cp.n_threads_batch = n_threads;
    cp.kv_unified      = true;  // forks share prefix cells; every sequence may use the whole context
    // llama.cpp's auto turns flash attention on for the CPU too, where (measured with
    // bench/run on a 0.5B Q8_0 model, 2 threads) it slows batched decode with a long shared
    // prefix by up to 2.6x and speeds prefill by ~15%. Parallel agents are decode-heavy, so
    // Muse's auto keeps it off unless a local GPU holds layers, and leaves those to llama.cpp
    // (which checks that the device supports it).
    if (params.flash_attn < 0) {
        cp.flash_attn_type = offloaded ? LLAMA_FLASH_ATTN_TYPE_AUTO : LLAMA_FLASH_ATTN_TYPE_DISABLED;
    } else {
        cp.flash_attn_type = params.flash_attn > 0 ? LLAMA_FLASH_ATTN_TYPE_ENABLED : LLAMA_FLASH_ATTN_TYPE_DISABLED;
    }
    cp.no_perf = true;
    return cp;
}

std::unique_ptr<engine> engine::create(const model & m, const engine_params & params, error & err) {
    if (std::string msg = validate(params); !msg.empty()) {
        err = { ERROR_INVALID_ARGUMENT, msg };
        return nullptr;
    }
    auto c    = std::make_shared<engine_core>();
    c->mdl    = &m;
    c->vocab  = llama_model_get_vocab(m.get());
    c->params = params;

    const llama_context_params cp = context_params(params, m.info().offloaded);
    log_take_last_error();
    c->ctx.reset(llama_init_from_model(m.get(), cp));
    if (!c->ctx) {
        const std::string detail = log_take_last_error();
        err = { ERROR_MODEL_LOAD, "failed to create a context of " + std::to_string(params.n_ctx) + " tokens" +
                                      (detail.empty() ? std::string() : ": " + detail) };
        return nullptr;
    }
    // Without an attached threadpool ggml starts and joins its worker threads on every
    // llama_decode; llama.cpp's own tools keep one pool alive, and so does Muse.
    if (ggml_backend_dev_t cpu = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU)) {
        ggml_backend_reg_t reg    = ggml_backend_dev_backend_reg(cpu);
        auto *             tp_new = (decltype(ggml_threadpool_new) *) ggml_backend_reg_get_proc_address(reg, "ggml_threadpool_new");
        c->threadpool_free        = (decltype(ggml_threadpool_free) *) ggml_backend_reg_get_proc_address(reg, "ggml_threadpool_free");
        if (tp_new && c->threadpool_free) {
            ggml_threadpool_params tpp = ggml_threadpool_params_default(cp.n_threads);
            c->threadpool              = tp_new(&tpp);
            if (c->threadpool) {
                llama_attach_threadpool(c->ctx.get(), c->threadpool, nullptr);
            }
        }
    }
    c->threads.init(cp.n_threads, params.adaptive_threads);
    c->n_threads_set = cp.n_threads;
    c->mem       = llama_get_memory(c->ctx.get());
    // A recurrent state cannot drop the last positions it took in, so drafts could not be
    // taken back.
    c->can_draft = params.draft_max > 0 && !llama_model_is_recurrent(m.get()) && !llama_model_is_hybrid(m.get());
    c->n_ctx_seq = (int32_t) llama_n_ctx_seq(c->ctx.get());
    c->batch     = llama_batch_init(params.n_batch, 0, 1);
    {
        char buf[1024];
        const int32_t n_vocab = llama_vocab_n_tokens(c->vocab);
        for (int32_t t = 0; t < n_vocab; ++t) {
            const int32_t n = llama_token_to_piece(c->vocab, t, buf, sizeof(buf), 0, true);
            c->max_piece_bytes = std::max(c->max_piece_bytes, (size_t) (n < 0 ? -n : n));
        }
    }
    for (int32_t i = params.n_seq_max - 1; i >= 0; --i) {
        c->free_ids.push_back(i);
    }
    c->st.n_ctx     = (int32_t) llama_n_ctx(c->ctx.get());
    c->st.n_seq_max = params.n_seq_max;

    std::unique_ptr<engine> e(new engine());
    e->core         = c;
    c->thread       = std::thread([raw = c.get()] { raw->run(); });
    return e;
}

sequence_handle engine::submit(const sequence_request & req) {
    return std::move(submit(std::vector<sequence_request>{ req }).front());
}

// A long prompt is counted in 64 KiB pieces first: the tokenizer's memory grows with the
// longest run it is given (hundreds of bytes per byte of a 4 MB word), and a prompt that is
// far over the context is refused without tokenising the rest. Pieces can only split merges,
// so their count runs a little over the whole's: the margin keeps prompts near the limit.
bool engine::surely_over_context(const std::string & prompt) const {
    constexpr size_t k_piece = 64u << 10;
    if (prompt.size() <= 4 * k_piece) {
        return false;
    }
    const size_t limit = (size_t) core->n_ctx_seq + core->n_ctx_seq / 4 + 64;
    size_t       count = 0;
    for (size_t at = 0; at < prompt.size();) {
        size_t end = std::min(prompt.size(), at + k_piece);
        if (end < prompt.size()) {
            // End the piece after a space or newline where there is one near, then on a UTF-8
            // character boundary.
            const size_t ws = prompt.find_last_of(" \n", end - 1);
            if (ws != std::string::npos && ws > at + k_piece / 2) {
                end = ws + 1;
            }
            end = std::max(at + 1, utf8_floor(prompt, end));
        }
        count += common_tokenize(core->vocab, prompt.substr(at, end - at), at == 0, true).size();
        if (count > limit) {
            return true;
        }
        at = end;
    }
    return false;
}

// Prompts are tokenised here, on the caller's thread, so that a long one never holds the
// engine thread (and every other request's next token) while it is split. A prompt whose bytes
// alone prove it cannot fit the context is not tokenised at all.
std::vector<sequence_handle> engine::submit(const std::vector<sequence_request> & reqs) {
    std::vector<sequence_handle> hs(reqs.size());
    std::vector<engine_command>         cs;
    for (size_t i = 0; i < reqs.size(); ++i) {
        hs[i].core = core;
        hs[i].chan = std::make_shared<event_channel>();
        cs.push_back({ engine_command::SUBMIT, 0, reqs[i], hs[i].chan });
        sequence_request & r = cs.back().req;
        if (r.prompt_tokens.empty() && !r.prompt.empty() && r.prompt.size() <= k_max_prompt_bytes) {
            if (r.prompt.size() > max_prompt_bytes() || surely_over_context(r.prompt)) {
                cs.back().over_context = true;
            } else {
                r.prompt_tokens = common_tokenize(core->vocab, r.prompt, true, true);
            }
        }
        r.n_public = 0;
        if (!r.public_prefix.empty() && r.public_prefix.size() < r.prompt.size() && r.prompt.compare(0, r.public_prefix.size(), r.public_prefix) == 0 &&
            r.embeddings.empty()) {
            // The tokens the prefix and the prompt start with alike: their text is the prefix's
            // (a token merged across the boundary, as "User: " + "Tell", is not among them), so
            // their cells hold nothing but public text.
            const auto pub = common_tokenize(core->vocab, r.public_prefix, true, true);
            const auto n   = std::min(pub.size(), r.prompt_tokens.size());
            while ((size_t) r.n_public < n && pub[r.n_public] == r.prompt_tokens[r.n_public]) r.n_public++;
        }
    }
    core->post(std::move(cs));
    for (auto & h : hs) {
        h.sid = h.chan->id;
    }
    return hs;
}

void engine::cancel(seq_handle_id id) { core->post({ engine_command::CANCEL, id, {}, nullptr }); }

engine_stats engine::stats() const {
    std::lock_guard<std::mutex> lk(core->stats_mu);
    return core->st;
}

const model & engine::get_model() const { return *core->mdl; }

int32_t engine::n_ctx() const { return core->n_ctx_seq; }

size_t engine::max_prompt_bytes() const {
    // Even if normalisation shrank text 4-fold, B bytes need B / (4 * longest piece) tokens.
    return std::min(k_max_prompt_bytes, 4 * ((size_t) core->n_ctx_seq + 1) * core->max_piece_bytes);
}

std::vector<llama_token> engine::tokenize(const std::string & text) const {
    return common_tokenize(core->vocab, text, true, true);
}

}  // namespace muse
