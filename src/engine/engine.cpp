#include "engine.h"

#include "event-channel.h"
#include "logging.h"
#include "model.h"
#include "text-stream.h"

#include "common.h"
#include "llama-cpp.h"
#include "sampling.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

namespace muse {

using clock_type = std::chrono::steady_clock;

static double ms_since(clock_type::time_point t) {
    return std::chrono::duration<double, std::milli>(clock_type::now() - t).count();
}

const char * finish_reason_name(finish_reason r) {
    switch (r) {
        case FINISH_NONE:      return "none";
        case FINISH_STOP:      return "stop";
        case FINISH_LENGTH:    return "length";
        case FINISH_CANCELLED: return "cancelled";
        case FINISH_ERROR:     return "error";
    }
    return "unknown";
}

std::string validate(const sampling_params & s) {
    if (!(s.temperature >= 0.0f && s.temperature <= 100.0f)) {
        return "temperature must be in [0, 100]";
    }
    if (s.top_k < 0 || s.top_k > 1000000) {
        return "top_k must be in [0, 1000000]";
    }
    if (!(s.top_p > 0.0f && s.top_p <= 1.0f)) {
        return "top_p must be in (0, 1]";
    }
    if (!(s.min_p >= 0.0f && s.min_p <= 1.0f)) {
        return "min_p must be in [0, 1]";
    }
    if (!(s.repeat_penalty > 0.0f && s.repeat_penalty <= 10.0f)) {
        return "repeat_penalty must be in (0, 10]";
    }
    if (s.repeat_last_n < -1 || s.repeat_last_n > 1000000) {
        return "repeat_last_n must be in [-1, 1000000]";
    }
    return {};
}

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
    if (p.n_threads < 0 || p.n_threads > 1024) {
        return "threads must be in [0, 1024] (0 = all)";
    }
    return {};
}

static constexpr size_t  k_max_stops     = 16;
static constexpr size_t  k_max_stop_len  = 256;
static constexpr int32_t k_max_budget    = 1 << 20;
static constexpr int32_t k_max_tokens    = 1 << 22;

namespace {

enum seq_state {
    SEQ_WAIT_SLOT,    // admitted, waiting for a free llama seq id
    SEQ_WAIT_PARENT,  // fork waiting for its parent's prompt to be in the KV cache
    SEQ_PREFILL,
    SEQ_GENERATE,
    SEQ_RETAINED,     // finished; KV kept for forks until released
};

struct sequence {
    seq_handle_id                  id    = 0;
    uint64_t                       order = 0;  // admission order; older sequences win KV space
    seq_state                      state = SEQ_WAIT_SLOT;
    llama_seq_id                   seq   = -1;
    sequence_request               req;
    std::shared_ptr<event_channel> chan;

    std::vector<llama_token> tokens;  // prompt, then generated; [0, n_past) is in the KV cache
    int32_t                  n_prompt    = 0;
    int32_t                  n_past      = 0;
    int32_t                  n_generated = 0;
    int32_t                  chunk       = 0;   // prompt tokens in the current batch
    int32_t                  batch_idx   = -1;  // output row in the current batch
    llama_token              pending     = LLAMA_TOKEN_NULL;  // sampled, not yet decoded

    common_sampler_ptr smpl;
    text_stream        text;

    usage                  use;
    clock_type::time_point t_admit;
    clock_type::time_point t_first;
};

struct command {
    enum type_t { SUBMIT, CANCEL, RELEASE } type = SUBMIT;
    seq_handle_id                  id = 0;
    sequence_request               req;
    std::shared_ptr<event_channel> chan;
};

}  // namespace

struct engine_core {
    const model *      mdl   = nullptr;
    const llama_vocab * vocab = nullptr;
    engine_params      params;
    llama_context_ptr  ctx;
    llama_memory_t     mem = nullptr;
    int32_t            n_ctx_seq = 0;

    std::mutex              mu;
    std::condition_variable cv;
    std::deque<command>     commands;
    bool                    stopping = false;
    std::atomic<uint64_t>   next_id{ 1 };

    mutable std::mutex stats_mu;
    engine_stats       st;

    // engine thread only
    std::map<seq_handle_id, std::unique_ptr<sequence>> seqs;
    std::vector<llama_seq_id>                          free_ids;
    uint64_t                                           next_order = 0;
    llama_batch                                        batch{};

    std::thread thread;

    ~engine_core() {
        if (batch.token) {
            llama_batch_free(batch);
        }
    }

    void post(command && c) {
        {
            std::lock_guard<std::mutex> lk(mu);
            commands.push_back(std::move(c));
        }
        cv.notify_one();
    }

    void post(std::vector<command> && cs) {
        {
            std::lock_guard<std::mutex> lk(mu);
            for (auto & c : cs) {
                commands.push_back(std::move(c));
            }
        }
        cv.notify_one();
    }

    // --- engine thread ---------------------------------------------------------------

    void run() {
        for (;;) {
            std::deque<command> todo;
            {
                std::unique_lock<std::mutex> lk(mu);
                cv.wait(lk, [&] { return stopping || !commands.empty() || has_work(); });
                if (stopping) {
                    break;
                }
                todo.swap(commands);
            }
            for (auto & c : todo) {
                handle(c);
            }
            admit_waiting();
            if (has_work()) {
                step();
            }
            publish_stats();
        }
        for (auto & [id, s] : seqs) {
            if (s->state != SEQ_RETAINED) {
                fail(*s, { ERROR_ENGINE_STOPPED, "the engine was shut down" }, false);
            }
        }
        seqs.clear();
    }

    bool has_work() const {
        for (const auto & [id, s] : seqs) {
            if (s->state == SEQ_PREFILL || s->state == SEQ_GENERATE) {
                return true;
            }
        }
        return false;
    }

    void handle(command & c) {
        switch (c.type) {
            case command::SUBMIT:  submit(c); break;
            case command::CANCEL:  cancel(c.id, FINISH_CANCELLED); break;
            case command::RELEASE: cancel(c.id, FINISH_NONE); break;
        }
    }

    void send_done(sequence & s, finish_reason r, error err = {}) {
        sequence_event ev;
        ev.type   = sequence_event::DONE;
        ev.finish = r;
        ev.err    = std::move(err);
        ev.use    = s.use;
        if (s.n_generated > 0) {
            ev.use.generate_ms = ms_since(s.t_first);
        }
        s.chan->push(std::move(ev));
    }

    void free_seq(sequence & s) {
        if (s.seq >= 0) {
            llama_memory_seq_rm(mem, s.seq, -1, -1);
            free_ids.push_back(s.seq);
            s.seq = -1;
        }
    }

    // Ends a sequence with an error; its KV cells are freed at once.
    void fail(sequence & s, error err, bool erase = true) {
        {
            std::lock_guard<std::mutex> lk(stats_mu);
            st.sequences_failed++;
        }
        free_seq(s);
        send_done(s, FINISH_ERROR, std::move(err));
        if (erase) {
            seqs.erase(s.id);
        }
    }

    void finish(sequence & s, finish_reason r) {
        std::string tail = s.text.flush();
        if (!tail.empty()) {
            sequence_event ev;
            ev.text = std::move(tail);
            s.chan->push(std::move(ev));
        }
        send_done(s, r);
        if (s.req.retain) {
            s.state = SEQ_RETAINED;
            s.pending = LLAMA_TOKEN_NULL;
            return;
        }
        free_seq(s);
        seqs.erase(s.id);
    }

    void cancel(seq_handle_id id, finish_reason r) {
        auto it = seqs.find(id);
        if (it == seqs.end()) {
            return;
        }
        sequence & s = *it->second;
        if (s.state != SEQ_RETAINED && r != FINISH_NONE) {
            send_done(s, r);
        } else if (s.state != SEQ_RETAINED) {
            send_done(s, FINISH_CANCELLED);
        }
        free_seq(s);
        seqs.erase(it);
    }

    error check_request(const sequence_request & r) const {
        if (std::string msg = validate(r.sampling); !msg.empty()) {
            return { ERROR_INVALID_ARGUMENT, msg };
        }
        if (r.max_tokens < -1 || r.max_tokens > k_max_tokens) {
            return { ERROR_INVALID_ARGUMENT, "max_tokens must be in [-1, " + std::to_string(k_max_tokens) + "] (-1 = until the context is full)" };
        }
        if (r.stop.size() > k_max_stops) {
            return { ERROR_INVALID_ARGUMENT, "at most " + std::to_string(k_max_stops) + " stop strings are allowed" };
        }
        for (const auto & s : r.stop) {
            if (s.empty() || s.size() > k_max_stop_len) {
                return { ERROR_INVALID_ARGUMENT, "stop strings must be 1 to " + std::to_string(k_max_stop_len) + " bytes long" };
            }
        }
        if (r.reasoning_budget < -1 || r.reasoning_budget > k_max_budget) {
            return { ERROR_INVALID_ARGUMENT, "reasoning budget must be in [-1, " + std::to_string(k_max_budget) + "] (-1 = unlimited)" };
        }
        if (r.prompt.empty() && r.prompt_tokens.empty()) {
            return { ERROR_INVALID_ARGUMENT, "the prompt is empty" };
        }
        const int32_t n_vocab = llama_vocab_n_tokens(vocab);
        for (llama_token t : r.prompt_tokens) {
            if (t < 0 || t >= n_vocab) {
                return { ERROR_INVALID_ARGUMENT, "prompt token " + std::to_string(t) + " is outside the vocabulary [0, " + std::to_string(n_vocab) + ")" };
            }
        }
        return {};
    }

    common_sampler * make_sampler(const sequence_request & r) const {
        common_params_sampling sp;
        sp.seed           = r.sampling.seed;
        sp.temp           = r.sampling.temperature;
        sp.top_k          = r.sampling.top_k;
        sp.top_p          = r.sampling.top_p;
        sp.min_p          = r.sampling.min_p;
        sp.penalty_repeat = r.sampling.repeat_penalty;
        sp.penalty_last_n = r.sampling.repeat_last_n;
        sp.no_perf        = true;
        sp.grammar        = r.grammar;
        sp.grammar_lazy   = r.grammar_lazy;
        sp.grammar_triggers = r.grammar_triggers;
        sp.generation_prompt = r.generation_prompt;
        for (const auto & t : r.preserved_tokens) {
            auto ids = common_tokenize(vocab, t, false, true);
            if (ids.size() == 1) {
                sp.preserved_tokens.insert(ids[0]);
            }
        }
        if (!r.reasoning_start.empty() && !r.reasoning_ends.empty() && r.reasoning_budget >= 0) {
            sp.reasoning_budget_tokens = r.reasoning_budget;
            sp.reasoning_budget_start  = common_tokenize(vocab, r.reasoning_start, false, true);
            for (const auto & e : r.reasoning_ends) {
                sp.reasoning_budget_end.push_back(common_tokenize(vocab, e, false, true));
            }
            sp.reasoning_budget_forced = common_tokenize(vocab, r.reasoning_forced.empty() ? r.reasoning_ends.front() : r.reasoning_forced, false, true);
        }
        return common_sampler_init(mdl->get(), sp);
    }

    void submit(command & c) {
        auto s     = std::make_unique<sequence>();
        s->id      = c.id;
        s->order   = next_order++;
        s->req     = std::move(c.req);
        s->chan    = std::move(c.chan);
        s->t_admit = clock_type::now();

        if (error err = check_request(s->req)) {
            fail(*s, std::move(err), false);
            return;
        }
        s->tokens   = s->req.prompt_tokens.empty() ? common_tokenize(vocab, s->req.prompt, true, true) : s->req.prompt_tokens;
        s->n_prompt = (int32_t) s->tokens.size();
        s->use.prompt_tokens = s->n_prompt;
        if (s->n_prompt == 0) {
            fail(*s, { ERROR_INVALID_ARGUMENT, "the prompt has no tokens" }, false);
            return;
        }
        if (s->n_prompt >= n_ctx_seq) {
            fail(*s, { ERROR_CONTEXT_OVERFLOW, "the prompt has " + std::to_string(s->n_prompt) + " tokens but the context holds " +
                                                   std::to_string(n_ctx_seq) + "; shorten it or raise --ctx" }, false);
            return;
        }
        if (s->req.parent != 0 && seqs.find(s->req.parent) == seqs.end()) {
            fail(*s, { ERROR_PARENT_NOT_FOUND, "fork parent " + std::to_string(s->req.parent) + " is not live or retained" }, false);
            return;
        }
        try {
            s->smpl.reset(make_sampler(s->req));
        } catch (const std::exception & e) {
            fail(*s, { ERROR_INVALID_ARGUMENT, std::string("sampler: ") + e.what() }, false);
            return;
        }
        if (!s->smpl) {
            fail(*s, { ERROR_INVALID_ARGUMENT, "the grammar could not be parsed" }, false);
            return;
        }
        s->text.set_stops(s->req.stop);
        {
            std::lock_guard<std::mutex> lk(stats_mu);
            st.sequences_started++;
        }
        s->state = SEQ_WAIT_SLOT;
        const seq_handle_id id = s->id;
        seqs.emplace(id, std::move(s));
    }

    // Gives waiting sequences a llama seq id and resolves forks whose parents are ready.
    void admit_waiting() {
        std::vector<sequence *> order;
        for (auto & [id, s] : seqs) {
            if (s->state == SEQ_WAIT_SLOT || s->state == SEQ_WAIT_PARENT) {
                order.push_back(s.get());
            }
        }
        std::sort(order.begin(), order.end(), [](auto * a, auto * b) { return a->order < b->order; });
        for (sequence * s : order) {
            if (s->state == SEQ_WAIT_SLOT) {
                if (free_ids.empty()) {
                    break;
                }
                s->seq = free_ids.back();
                free_ids.pop_back();
                s->state = s->req.parent != 0 ? SEQ_WAIT_PARENT : SEQ_PREFILL;
            }
            if (s->state == SEQ_WAIT_PARENT) {
                resolve_fork(*s);
            }
        }
    }

    void resolve_fork(sequence & s) {
        auto it = seqs.find(s.req.parent);
        if (it == seqs.end()) {
            // The parent ended before its prefix could be shared: compute it all.
            s.state = SEQ_PREFILL;
            return;
        }
        sequence & p = *it->second;
        if (p.state == SEQ_WAIT_SLOT || p.state == SEQ_WAIT_PARENT || p.state == SEQ_PREFILL) {
            return;  // the prefix is not in the cache yet
        }
        int32_t n = 0;
        const int32_t limit = std::min(p.n_past, s.n_prompt - 1);  // the last prompt token must be decoded for logits
        while (n < limit && p.tokens[n] == s.tokens[n]) {
            n++;
        }
        if (n > 0) {
            llama_memory_seq_cp(mem, p.seq, s.seq, 0, n);
            s.n_past                   = n;
            s.use.prompt_tokens_reused = n;
            std::lock_guard<std::mutex> lk(stats_mu);
            st.sequences_forked++;
        }
        s.state = SEQ_PREFILL;
    }

    void step() {
        common_batch_clear(batch);
        std::vector<sequence *> active;
        for (auto & [id, s] : seqs) {
            if (s->state == SEQ_PREFILL || s->state == SEQ_GENERATE) {
                active.push_back(s.get());
            }
        }
        std::sort(active.begin(), active.end(), [](auto * a, auto * b) { return a->order < b->order; });

        std::vector<sequence *> in_batch;
        for (sequence * s : active) {
            if (s->state != SEQ_GENERATE) {
                continue;
            }
            if (s->n_past >= n_ctx_seq) {
                finish(*s, FINISH_LENGTH);
                continue;
            }
            s->batch_idx = batch.n_tokens;
            s->chunk     = 0;
            common_batch_add(batch, s->pending, s->n_past, { s->seq }, true);
            in_batch.push_back(s);
        }
        for (sequence * s : active) {
            const int32_t room = params.n_batch - batch.n_tokens;
            if (s->state != SEQ_PREFILL || room <= 0) {
                continue;
            }
            s->chunk     = std::min(room, s->n_prompt - s->n_past);
            s->batch_idx = -1;
            for (int32_t i = 0; i < s->chunk; ++i) {
                const int32_t pos  = s->n_past + i;
                const bool    last = pos == s->n_prompt - 1;
                if (last) {
                    s->batch_idx = batch.n_tokens;
                }
                common_batch_add(batch, s->tokens[pos], pos, { s->seq }, last);
            }
            in_batch.push_back(s);
        }
        if (batch.n_tokens == 0) {
            return;
        }

        const int32_t rc = llama_decode(ctx.get(), batch);
        if (rc != 0) {
            on_decode_error(rc, in_batch);
            return;
        }

        int32_t n_sampled = 0;
        int32_t n_prefill = 0;
        for (sequence * s : in_batch) {
            if (s->state == SEQ_PREFILL) {
                s->n_past += s->chunk;
                n_prefill += s->chunk;
                s->use.prompt_tokens_prefilled += s->chunk;
                if (s->n_past < s->n_prompt) {
                    continue;
                }
                s->use.prefill_ms = ms_since(s->t_admit);
                s->state          = SEQ_GENERATE;
                if (s->req.max_tokens == 0) {
                    finish(*s, FINISH_LENGTH);
                    continue;
                }
            } else {
                s->tokens.push_back(s->pending);
                s->n_past++;
            }
            n_sampled++;
            sample(*s);
        }

        std::lock_guard<std::mutex> lk(stats_mu);
        st.decode_calls++;
        st.batch_tokens += batch.n_tokens;
        st.prefill_tokens += n_prefill;
        st.generated_tokens += n_sampled;
        st.max_batch_tokens = std::max<uint64_t>(st.max_batch_tokens, batch.n_tokens);
        st.max_batch_seqs   = std::max<uint64_t>(st.max_batch_seqs, n_sampled);
        if (n_sampled >= 2) {
            st.multi_seq_calls++;
        }
    }

    void sample(sequence & s) {
        const llama_token tok = common_sampler_sample(s.smpl.get(), ctx.get(), s.batch_idx);
        common_sampler_accept(s.smpl.get(), tok, true);
        if (s.n_generated == 0) {
            s.t_first = clock_type::now();
        }
        s.n_generated++;
        s.use.completion_tokens = s.n_generated;

        if (llama_vocab_is_eog(vocab, tok)) {
            sequence_event ev;
            ev.token = tok;
            s.chan->push(std::move(ev));
            finish(s, FINISH_STOP);
            return;
        }
        bool stopped = false;
        sequence_event ev;
        ev.token = tok;
        ev.text  = s.text.add(common_token_to_piece(vocab, tok, true), stopped);
        s.chan->push(std::move(ev));
        if (stopped) {
            finish(s, FINISH_STOP);
        } else if (s.req.max_tokens > 0 && s.n_generated >= s.req.max_tokens) {
            finish(s, FINISH_LENGTH);
        } else {
            s.pending = tok;
        }
    }

    void on_decode_error(int32_t rc, const std::vector<sequence *> & in_batch) {
        if (rc == 1) {
            // No KV slot: the youngest sequence in the batch gives way so that older ones,
            // which already hold cells, can finish. The next step retries without it.
            {
                std::lock_guard<std::mutex> lk(stats_mu);
                st.kv_full_events++;
            }
            sequence * victim = *std::max_element(in_batch.begin(), in_batch.end(),
                                                  [](auto * a, auto * b) { return a->order < b->order; });
            fail(*victim, { ERROR_NO_KV_SLOT, "the KV cache is full (" + std::to_string(params.n_ctx) +
                                                  " cells shared by all sequences); retry later or raise --ctx" });
            return;
        }
        // Invalid batch or a fatal backend error: the sequences of this batch cannot trust
        // their cache state any more. End them; the loop keeps serving others.
        const std::string what = rc == 2 ? "decoding was aborted" : "llama_decode failed with code " + std::to_string(rc);
        std::vector<seq_handle_id> ids;
        for (sequence * s : in_batch) {
            ids.push_back(s->id);
        }
        for (seq_handle_id id : ids) {
            auto it = seqs.find(id);
            if (it != seqs.end()) {
                fail(*it->second, { ERROR_DECODE, what });
            }
        }
    }

    void publish_stats() {
        int32_t live = 0;
        for (auto & [id, s] : seqs) {
            live += s->state != SEQ_RETAINED;
        }
        std::lock_guard<std::mutex> lk(stats_mu);
        st.live_sequences = live;
    }
};

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
    chan->pop(ev, true);
    done = ev.type == sequence_event::DONE;
    return true;
}

bool sequence_handle::try_next(sequence_event & ev) {
    if (!chan || done || !chan->pop(ev, false)) {
        return false;
    }
    done = ev.type == sequence_event::DONE;
    return true;
}

void sequence_handle::cancel() {
    if (auto c = core.lock(); c && sid != 0) {
        c->post({ command::CANCEL, sid, {}, nullptr });
    }
}

void sequence_handle::release() {
    if (auto c = core.lock(); c && sid != 0) {
        c->post({ command::RELEASE, sid, {}, nullptr });
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

std::unique_ptr<engine> engine::create(const model & m, const engine_params & params, error & err) {
    if (std::string msg = validate(params); !msg.empty()) {
        err = { ERROR_INVALID_ARGUMENT, msg };
        return nullptr;
    }
    auto c    = std::make_shared<engine_core>();
    c->mdl    = &m;
    c->vocab  = llama_model_get_vocab(m.get());
    c->params = params;

    const int32_t n_threads = params.n_threads > 0 ? params.n_threads : (int32_t) std::max(1u, std::thread::hardware_concurrency());

    llama_context_params cp = llama_context_default_params();
    cp.n_ctx           = params.n_ctx;
    cp.n_batch         = params.n_batch;
    cp.n_ubatch        = params.n_ubatch;
    cp.n_seq_max       = params.n_seq_max;
    cp.n_threads       = n_threads;
    cp.n_threads_batch = n_threads;
    cp.kv_unified      = true;  // forks share prefix cells; every sequence may use the whole context
    cp.flash_attn_type = params.flash_attn ? LLAMA_FLASH_ATTN_TYPE_ENABLED : LLAMA_FLASH_ATTN_TYPE_DISABLED;
    cp.no_perf         = true;

    log_take_last_error();
    c->ctx.reset(llama_init_from_model(m.get(), cp));
    if (!c->ctx) {
        const std::string detail = log_take_last_error();
        err = { ERROR_MODEL_LOAD, "failed to create a context of " + std::to_string(params.n_ctx) + " tokens" +
                                      (detail.empty() ? std::string() : ": " + detail) };
        return nullptr;
    }
    c->mem       = llama_get_memory(c->ctx.get());
    c->n_ctx_seq = (int32_t) llama_n_ctx_seq(c->ctx.get());
    c->batch     = llama_batch_init(params.n_batch, 0, 1);
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

std::vector<sequence_handle> engine::submit(const std::vector<sequence_request> & reqs) {
    std::vector<sequence_handle> hs(reqs.size());
    std::vector<command>         cs;
    for (size_t i = 0; i < reqs.size(); ++i) {
        hs[i].core = core;
        hs[i].chan = std::make_shared<event_channel>();
        hs[i].sid  = core->next_id++;
        cs.push_back({ command::SUBMIT, hs[i].sid, reqs[i], hs[i].chan });
    }
    core->post(std::move(cs));
    return hs;
}

void engine::cancel(seq_handle_id id) { core->post({ command::CANCEL, id, {}, nullptr }); }

engine_stats engine::stats() const {
    std::lock_guard<std::mutex> lk(core->stats_mu);
    return core->st;
}

const model & engine::get_model() const { return *core->mdl; }

int32_t engine::n_ctx() const { return core->n_ctx_seq; }

std::vector<llama_token> engine::tokenize(const std::string & text) const {
    return common_tokenize(core->vocab, text, true, true);
}

std::string engine::detokenize(const std::vector<llama_token> & tokens) const {
    std::string out;
    for (llama_token t : tokens) {
        out += common_token_to_piece(core->vocab, t, true);
    }
    return out;
}

}  // namespace muse
