#include "engine-core.h"

#include "logging.h"
#include "model.h"

#include "common.h"

#include "core/limits.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string_view>
#include <unordered_map>

namespace muse {

// A sequence's caps are the engine's own in core/limits.h (k_engine_*), which the request
// limits sit inside. The cache salt is the server's (a user id and a client's salt).
static constexpr size_t k_max_cache_salt = 4096;

// Prompt-lookup drafts (engine_params::draft_max).
// How far back a lookup searches: a sequence's own recent text and its prompt's end are where
// the repeats are, and a bound keeps the search cheap next to a step.
static constexpr int32_t k_draft_window = 1024;
// The length of context from which one earlier occurrence is evidence enough.
static constexpr int32_t k_draft_sure_ngram = 3;
// A draft token is worth decoding while the chance that it and the drafts before it are all
// kept (the product of their draft_table chances) is at least what it costs against what it
// saves (draft_threshold): with decode calls of n tokens costing a + b * n, a kept draft saves
// its sequence's share of a step, a / N + b for N sequences, and costs b, so the bar is
// b / (a / N + b), kept within these bounds (fitted to calls of up to 64 tokens, where the
// line holds). Until the costs are known, one step in k_draft_explore_every drafts at the bar
// k_draft_explore_chance. A token drafted for the first time has chance 1/2, so it is tried
// only where a call's fixed cost is at least N times a token's, and a kind of draft that keeps
// missing stops. Where tokens cost nearly all of a call (a compute-bound CPU) the bar passes
// the highest chance a draft can have: nothing is drafted.
static constexpr double  k_draft_explore_chance = 0.5;
static constexpr int32_t k_draft_explore_every  = 8;
static constexpr double  k_draft_lowest_chance  = 0.3;
static constexpr double k_draft_highest_chance = 0.95;
// Drafted tokens in one step, all sequences together, at most this share of the batch (the
// rest is left to prompts being prefilled).
static constexpr int32_t k_draft_batch_share = 4;
// Steps without drafts after drafts found the KV cache full: near a full cache the cells go to
// the sequences' own tokens.
static constexpr int32_t k_draft_pause_steps = 64;

static double ms_since(clock_type::time_point t) {
    return std::chrono::duration<double, std::milli>(clock_type::now() - t).count();
}

engine_core::~engine_core() {
    if (batch.token) {
        llama_batch_free(batch);
    }
    if (embd_batch.embd) {
        llama_batch_free(embd_batch);
    }
    ctx.reset();
    if (threadpool) {
        threadpool_free(threadpool);
    }
}

void engine_core::post(engine_command && c) {
    {
        std::lock_guard<std::mutex> lk(mu);
        commands.push_back(std::move(c));
    }
    cv.notify_one();
}

void engine_core::post(std::vector<engine_command> && cs) {
    {
        std::lock_guard<std::mutex> lk(mu);
        for (auto & c : cs) {
            if (c.type == engine_command::SUBMIT) {
                c.id = next_id++;
                c.chan->id = c.id;
            }
            commands.push_back(std::move(c));
        }
    }
    cv.notify_one();
}

void engine_core::warmup() {
    llama_token t = llama_vocab_bos(vocab);
    if (t == LLAMA_TOKEN_NULL) {
        t = 0;
    }
    llama_set_warmup(ctx.get(), true);
    llama_decode(ctx.get(), llama_batch_get_one(&t, 1));
    llama_set_warmup(ctx.get(), false);
    llama_synchronize(ctx.get());
    llama_memory_clear(mem, true);
}

void engine_core::run() {
    if (params.warmup) {
        warmup();
    }
    for (;;) {
        std::deque<engine_command> todo;
        {
            std::unique_lock<std::mutex> lk(mu);
            cv.wait(lk, [&] { return stopping || !commands.empty() || has_work(); });
            if (stopping) {
                break;
            }
            todo.swap(commands);
        }
        // Nothing may escape this thread (that would end the process): a command that throws
        // fails its sequence; a step that throws fails the sequences it was running.
        for (auto & c : todo) {
            auto chan = c.chan;  // submit() moves the command's own
            try {
                handle(c);
            } catch (const std::exception & e) {
                fail_command(c, chan, e.what());
            }
        }
        try {
            admit_waiting();
            if (has_work()) {
                step();
                // A step that finished a parent's prefill lets its waiting forks in now; without
                // this they would wait for the next command while the loop sleeps.
                admit_waiting();
            }
        } catch (const std::exception & e) {
            fail_all(e.what());
        }
        if (!has_work()) {
            wake_readers(true);  // no step is coming to wake them: nothing may wait for one
        }
        publish_stats();
    }
    for (auto & [id, s] : seqs) {
        if (s->state != SEQ_RETAINED) {
            fail(*s, { ERROR_ENGINE_STOPPED, "the engine was shut down" }, false);
        }
    }
    wake_readers(true);
    seqs.clear();
}

bool engine_core::has_work() const {
    for (const auto & [id, s] : seqs) {
        if (s->state == SEQ_PREFILL || s->state == SEQ_GENERATE) {
            return true;
        }
    }
    return false;
}

void engine_core::fail_command(engine_command & c, const std::shared_ptr<event_channel> & chan, const std::string & what) {
    fprintf(stderr, "muse: engine: a command failed: %s\n", what.c_str());
    if (c.type != engine_command::SUBMIT || !chan) {
        return;
    }
    error err{ ERROR_INTERNAL, "internal error: " + what };
    auto it = seqs.find(c.id);
    if (it != seqs.end()) {
        fail(*it->second, std::move(err), true);
        return;
    }
    sequence_event ev;
    ev.type   = sequence_event::DONE;
    ev.finish = FINISH_ERROR;
    ev.err    = std::move(err);
    chan->push(std::move(ev));
}

void engine_core::fail_all(const std::string & what) {
    fprintf(stderr, "muse: engine: a step failed: %s\n", what.c_str());
    std::vector<seq_handle_id> ids;
    for (const auto & [id, s] : seqs) {
        if (s->state != SEQ_RETAINED) ids.push_back(id);
    }
    for (auto id : ids) {
        auto it = seqs.find(id);
        if (it != seqs.end()) fail(*it->second, { ERROR_INTERNAL, "internal error: " + what }, true);
    }
}

void engine_core::handle(engine_command & c) {
    switch (c.type) {
        case engine_command::SUBMIT:  submit(c); break;
        case engine_command::CANCEL:  cancel(c.id); break;
    }
}

void engine_core::send_done(engine_sequence & s, finish_reason r, error err) {
    sequence_event ev;
    ev.type   = sequence_event::DONE;
    ev.finish = r;
    ev.err    = std::move(err);
    ev.use    = s.use;
    if (s.n_generated > 0) {
        ev.use.generate_ms = ms_since(s.t_first);
    }
    if (in_step) {
        // Readers wake at the step's end, when the engine stats already count this step.
        s.chan->push(std::move(ev), false);
        s.chan->urgent = true;
        to_notify.push_back(s.chan);
    } else {
        s.chan->push(std::move(ev));
    }
}

void engine_core::free_seq(engine_sequence & s) {
    if (s.seq < 0) {
        return;
    }
    llama_memory_seq_rm(mem, s.seq, -1, -1);
    free_ids.push_back(s.seq);
    s.seq = -1;
    // llama.cpp places new cells after the last ones it used, and attention spans every cell
    // up to the highest one in use: without this, an idle engine's next prompt lands ever
    // further into a large cache and prefill slows down (pp512 with 4096 cells: -20%).
    // With nothing left in the cache, start again from its first cell.
    for (const auto & [id, o] : seqs) {
        if (o->seq >= 0) {
            return;
        }
    }
    if (!pcache.empty()) {
        return;
    }
    llama_memory_clear(mem, false);
}

bool engine_core::cache_prompt(engine_sequence & s) {
    const int32_t budget = params.prompt_cache_tokens > 0 ? params.prompt_cache_tokens : params.n_ctx / 4;
    const int32_t n      = s.n_past;
    if (params.prompt_cache <= 0 || s.seq < 0 || !s.req.embeddings.empty() || n < params.prompt_cache_min || n > budget) {
        return false;
    }
    const std::string & salt = s.req.cache_salt;
    // An entry that this one extends (an earlier turn of the same chat) is superseded; only
    // within the salt, or a user could learn that another's prompt starts with theirs by
    // watching their own entry vanish.
    for (size_t i = 0; i < pcache.size();) {
        const auto & e = pcache[i].tokens;
        if (pcache[i].salt == salt && (int32_t) e.size() <= n && std::equal(e.begin(), e.end(), s.tokens.begin())) {
            drop_cached(i);
        } else {
            ++i;
        }
    }
    while (!pcache.empty() && ((int32_t) pcache.size() >= params.prompt_cache || pcache_cells + n > budget)) {
        evict_cached(&salt, n);
    }
    cached_prompt c;
    c.salt   = salt;
    c.n_public = std::min(s.req.n_public, n);
    c.seq    = s.seq;
    c.tokens.assign(s.tokens.begin(), s.tokens.begin() + n);
    c.used   = ++pcache_tick;
    pcache.push_back(std::move(c));
    pcache_cells += n;
    s.seq = -1;  // the cells now belong to the cache
    return true;
}

void engine_core::drop_cached(size_t i) {
    cached_prompt & c = pcache[i];
    llama_memory_seq_rm(mem, c.seq, -1, -1);
    free_ids.push_back(c.seq);
    pcache_cells -= (int32_t) c.tokens.size();
    pcache.erase(pcache.begin() + (ptrdiff_t) i);
}

bool engine_core::evict_cached(const std::string * to, int32_t incoming) {
    if (pcache.empty()) {
        return false;
    }
    std::unordered_map<std::string_view, int32_t> held;  // cells per salt
    for (const auto & c : pcache) {
        held[c.salt] += (int32_t) c.tokens.size();
    }
    if (to) {
        held[*to] += incoming;
    }
    size_t victim = 0;
    for (size_t i = 1; i < pcache.size(); ++i) {
        const int32_t h = held[pcache[i].salt];
        const int32_t v = held[pcache[victim].salt];
        if (h > v || (h == v && pcache[i].used < pcache[victim].used)) {
            victim = i;
        }
    }
    drop_cached(victim);
    return true;
}

void engine_core::reuse_cached(engine_sequence & s) {
    if (pcache.empty() || !s.req.embeddings.empty()) {
        return;
    }
    const int32_t limit = s.n_prompt - 1;  // the last prompt token is decoded for its logits
    size_t        best  = 0;
    int32_t       best_n = 0;
    for (size_t i = 0; i < pcache.size(); ++i) {
        // Another salt's prompt is invisible, not even as a miss, except for the start that
        // both declared public.
        const int32_t visible = pcache[i].salt == s.req.cache_salt ? (int32_t) pcache[i].tokens.size()
                                                                   : std::min(pcache[i].n_public, s.req.n_public);
        const auto &  e = pcache[i].tokens;
        const int32_t m = std::min<int32_t>(visible, limit);
        int32_t       n = 0;
        while (n < m && e[n] == s.tokens[n]) {
            n++;
        }
        if (n > best_n) {
            best_n = n;
            best   = i;
        }
    }
    if (best_n < params.prompt_cache_min) {
        return;
    }
    llama_memory_seq_cp(mem, pcache[best].seq, s.seq, 0, best_n);
    pcache[best].used          = ++pcache_tick;
    s.n_past                   = best_n;
    s.use.prompt_tokens_reused = best_n;
    std::lock_guard<std::mutex> lk(stats_mu);
    st.prompt_cache_hits++;
    st.prompt_cache_tokens_reused += (uint64_t) best_n;
}

void engine_core::fail(engine_sequence & s, error err, bool erase) {
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

void engine_core::finish(engine_sequence & s, finish_reason r) {
    drop_draft_cells(s);  // the cells kept or cached must be the tokens' own
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
    if (!cache_prompt(s)) {
        free_seq(s);
    }
    seqs.erase(s.id);
}

void engine_core::cancel(seq_handle_id id) {
    auto it = seqs.find(id);
    if (it == seqs.end()) {
        return;
    }
    engine_sequence & s = *it->second;
    if (s.state != SEQ_RETAINED) {
        send_done(s, FINISH_CANCELLED);
        free_seq(s);
    } else if (!cache_prompt(s)) {  // a released sequence that ended normally: its prompt may serve again
        free_seq(s);
    }
    seqs.erase(it);
}

// Placeholder ids at an embedding block's positions: negative, so never a vocabulary token,
// and equal for equal content, so that forks match a shared image like shared text.
static llama_token embedding_placeholder(const std::string & id) {
    uint32_t h = 2166136261u;
    for (unsigned char c : id) {
        h = (h ^ c) * 16777619u;
    }
    return -1 - (llama_token) (h & 0x3FFFFFFF);
}

// The embedding block covering position pos, or nullptr.
static const prompt_embedding * block_at(const sequence_request & r, int32_t pos) {
    for (const auto & e : r.embeddings) {
        if (pos >= e.at && pos < e.at + e.block->n_tokens) {
            return &e;
        }
        if (e.at > pos) {
            break;
        }
    }
    return nullptr;
}

// Where the next embedding block at or after pos starts (end if none).
static int32_t next_block_start(const sequence_request & r, int32_t pos, int32_t end) {
    for (const auto & e : r.embeddings) {
        if (e.at >= pos) {
            return std::min(e.at, end);
        }
    }
    return end;
}

error engine_core::check_request(const sequence_request & r) const {
    if (std::string msg = validate(r.sampling); !msg.empty()) {
        return { ERROR_INVALID_ARGUMENT, msg };
    }
    if (r.max_tokens < -1 || r.max_tokens > k_engine_max_tokens) {
        return { ERROR_INVALID_ARGUMENT, "max_tokens must be in [-1, " + std::to_string(k_engine_max_tokens) + "] (-1 = until the context is full)" };
    }
    if (r.stop.size() > k_engine_max_stops) {
        return { ERROR_INVALID_ARGUMENT, "at most " + std::to_string(k_engine_max_stops) + " stop strings are allowed (" +
                                             std::to_string((int) k_limit_stop.max) + " of the request's and " +
                                             std::to_string(k_max_template_stops) + " of the chat template's)" };
    }
    for (const auto & s : r.stop) {
        if (s.empty() || s.size() > k_engine_max_stop_bytes) {
            return { ERROR_INVALID_ARGUMENT, "stop strings must be 1 to " + std::to_string(k_engine_max_stop_bytes) + " bytes long" };
        }
    }
    if (r.reasoning_budget < -1 || r.reasoning_budget > k_engine_max_budget) {
        return { ERROR_INVALID_ARGUMENT, "reasoning budget must be in [-1, " + std::to_string(k_engine_max_budget) + "] (-1 = unlimited)" };
    }
    if (r.prompt.size() > k_max_prompt_bytes) {
        return { ERROR_INVALID_ARGUMENT, "the prompt is larger than " + std::to_string(k_max_prompt_bytes >> 20) + " MiB" };
    }
    if (r.cache_salt.size() > k_max_cache_salt) {
        return { ERROR_INVALID_ARGUMENT,
                 "the cache salt is longer than " + std::to_string(k_max_cache_salt) + " bytes" };
    }
    if (r.prompt.empty() && r.prompt_tokens.empty()) {
        return { ERROR_INVALID_ARGUMENT, "the prompt is empty" };
    }
    const int32_t n_vocab = llama_vocab_n_tokens(vocab);
    if (!r.embeddings.empty()) {
        if (r.prompt_tokens.empty()) {
            return { ERROR_INVALID_ARGUMENT, "embedding blocks need the prompt as tokens (prompt_tokens)" };
        }
        const int32_t n_embd = llama_model_n_embd_inp(mdl->get());
        int32_t       end    = 0;
        for (const auto & e : r.embeddings) {
            if (!e.block || e.block->n_tokens <= 0 || e.block->n_embd != n_embd ||
                e.block->data.size() != (size_t) e.block->n_tokens * e.block->n_embd) {
                return { ERROR_INVALID_ARGUMENT, "an embedding block does not match the model (n_embd " + std::to_string(n_embd) +
                                                     "): is the projector made for this model?" };
            }
            if (e.at < end || (int64_t) e.at + e.block->n_tokens > (int64_t) r.prompt_tokens.size()) {
                return { ERROR_INVALID_ARGUMENT, "embedding blocks must lie inside the prompt, in order, without overlap" };
            }
            if (e.block->non_causal && e.block->n_tokens > params.n_ubatch) {
                return { ERROR_INVALID_ARGUMENT, "an image of " + std::to_string(e.block->n_tokens) + " positions needs a batch of at least as many (--ubatch)" };
            }
            end = e.at + e.block->n_tokens;
        }
    }
    for (size_t i = 0; i < r.prompt_tokens.size(); ++i) {
        const llama_token t = r.prompt_tokens[i];
        if ((t < 0 || t >= n_vocab) && !block_at(r, (int32_t) i)) {
            return { ERROR_INVALID_ARGUMENT, "prompt token " + std::to_string(t) + " is outside the vocabulary [0, " + std::to_string(n_vocab) + ")" };
        }
    }
    return {};
}

common_params_sampling engine_core::sampling_for(const sequence_request & r) const {
    common_params_sampling sp;
    sp.seed           = r.sampling.seed;
    sp.temp           = r.sampling.temperature;
    sp.top_k          = r.sampling.top_k;
    sp.top_p          = r.sampling.top_p;
    sp.min_p          = r.sampling.min_p;
    sp.penalty_repeat = r.sampling.repeat_penalty;
    sp.penalty_freq    = r.sampling.frequency_penalty;
    sp.penalty_present = r.sampling.presence_penalty;
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
    return sp;
}

void engine_core::submit(engine_command & c) {
    auto s     = std::make_unique<engine_sequence>();
    s->id      = c.id;
    s->req     = std::move(c.req);
    s->chan    = std::move(c.chan);
    s->t_admit = clock_type::now();

    if (error err = check_request(s->req)) {
        fail(*s, std::move(err), false);
        return;
    }
    if (c.over_context) {
        fail(*s, { ERROR_CONTEXT_OVERFLOW, "the prompt (" + std::to_string(s->req.prompt.size()) + " bytes) cannot fit the context of " +
                                               std::to_string(n_ctx_seq) + " tokens; shorten it or raise --ctx" }, false);
        return;
    }
    s->tokens   = s->req.prompt_tokens.empty() ? common_tokenize(vocab, s->req.prompt, true, true) : s->req.prompt_tokens;
    for (const auto & e : s->req.embeddings) {
        std::fill(s->tokens.begin() + e.at, s->tokens.begin() + e.at + e.block->n_tokens, embedding_placeholder(e.block->id));
    }
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
    // A parent of another salt reads as a missing one: its cells are not this sequence's to
    // share, and the error must not tell that the id exists.
    if (s->req.parent != 0) {
        auto p = seqs.find(s->req.parent);
        if (p == seqs.end() || p->second->req.cache_salt != s->req.cache_salt) {
            const std::string msg = "fork parent " + std::to_string(s->req.parent) + " is not live or retained";
            fail(*s, { ERROR_PARENT_NOT_FOUND, msg }, false);
            return;
        }
    }
    common_params_sampling sp = sampling_for(s->req);
    int32_t                n_suppress = 0;
    llama_vocab_get_suppress_tokens(vocab, &n_suppress);
    try {
        if (params.fast_sampling && fast_sampler::supports(sp, n_suppress)) {
            s->fast = std::make_unique<fast_sampler>(vocab, llama_vocab_n_tokens(vocab), sp);
        } else {
            s->smpl.reset(common_sampler_init(mdl->get(), sp));
            if (!s->smpl) {
                fail(*s, { ERROR_INVALID_ARGUMENT, "the grammar could not be parsed" }, false);
                return;
            }
        }
    } catch (const std::exception & e) {
        fail(*s, { ERROR_INVALID_ARGUMENT, std::string("sampler: ") + e.what() }, false);
        return;
    }
    s->text.set_stops(s->req.stop);
    s->salt_hash = std::hash<std::string>{}(s->req.cache_salt);
    {
        std::lock_guard<std::mutex> lk(stats_mu);
        st.sequences_started++;
        st.sequences_fast_sampled += s->fast ? 1 : 0;
    }
    s->state = SEQ_WAIT_SLOT;
    const seq_handle_id id = s->id;
    seqs.emplace(id, std::move(s));
}

void engine_core::admit_waiting() {
    for (auto & [id, sp] : seqs) {  // id order is admission order
        engine_sequence * s = sp.get();
        if (s->state != SEQ_WAIT_SLOT && s->state != SEQ_WAIT_PARENT) {
            continue;
        }
        if (s->state == SEQ_WAIT_SLOT) {
            if (free_ids.empty() && !evict_cached()) {  // cached prompts give way to live sequences
                break;
            }
            s->seq = free_ids.back();
            free_ids.pop_back();
            s->state = s->req.parent != 0 ? SEQ_WAIT_PARENT : SEQ_PREFILL;
            if (s->state == SEQ_PREFILL) {
                reuse_cached(*s);
            }
        }
        if (s->state == SEQ_WAIT_PARENT) {
            resolve_fork(*s);
        }
    }
}

void engine_core::resolve_fork(engine_sequence & s) {
    auto it = seqs.find(s.req.parent);
    if (it == seqs.end() || it->second->req.cache_salt != s.req.cache_salt) {
        // The parent ended before its prefix could be shared: compute it all. (A parent of
        // another salt was refused at submit; this keeps any path from sharing its cells.)
        s.state = SEQ_PREFILL;
        return;
    }
    engine_sequence & p = *it->second;
    if (p.state == SEQ_WAIT_SLOT || p.state == SEQ_WAIT_PARENT || p.state == SEQ_PREFILL) {
        return;  // the prefix is not in the cache yet
    }
    int32_t n = 0;
    const int32_t limit = std::min(p.n_past, s.n_prompt - 1);  // the last prompt token must be decoded for logits
    while (n < limit && p.tokens[n] == s.tokens[n]) {
        if (s.tokens[n] < 0) {
            // An embedding position: the same block, at the same place, in both.
            const prompt_embedding * a = block_at(p.req, n);
            const prompt_embedding * b = block_at(s.req, n);
            if (!a || !b || a->at != b->at || a->block->id != b->block->id) {
                break;
            }
        }
        n++;
    }
    // A non-causal block is decoded whole: the fork shares all of it or none.
    if (const prompt_embedding * e = block_at(s.req, n); e && e->at < n && e->block->non_causal) {
        n = e->at;
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

void engine_core::step() {
    const auto t_step = clock_type::now();
    common_batch_clear(batch);
    std::vector<engine_sequence *> active;
    for (auto & [id, s] : seqs) {
        if (s->state == SEQ_PREFILL || s->state == SEQ_GENERATE) {
            active.push_back(s.get());
        }
    }

    std::vector<engine_sequence *> in_batch;
    int32_t draft_budget = params.n_batch / k_draft_batch_share;
    double  draft_bar    = 1.0;
    const bool drafting  = can_draft && draft_pause == 0;
    draft_pause          = std::max(0, draft_pause - 1);
    if (drafting) {
        int32_t n_generating = 0;
        for (engine_sequence * s : active) {
            n_generating += s->state == SEQ_GENERATE;
        }
        draft_bar = draft_threshold(n_generating);
    }
    for (engine_sequence * s : active) {
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
        if (drafting) {
            add_draft(*s, draft_budget, draft_bar);  // its rows follow the pending token's
        }
    }
    const int32_t n_decoding = (int32_t) in_batch.size();
    std::vector<engine_sequence *> at_embedding;  // prefill an embedding block this step
    for (engine_sequence * s : active) {
        const int32_t room = params.n_batch - batch.n_tokens;
        if (s->state != SEQ_PREFILL) {
            continue;
        }
        if (block_at(s->req, s->n_past)) {
            at_embedding.push_back(s);
            continue;
        }
        if (room <= 0) {
            continue;
        }
        s->chunk     = std::min(room, next_block_start(s->req, s->n_past, s->n_prompt) - s->n_past);
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
        if (!at_embedding.empty()) {
            int32_t n_sampled = 0;
            in_step           = true;
            for (engine_sequence * s : at_embedding) {
                prefill_embedding(*s, n_sampled);
            }
            in_step = false;
            {
                std::lock_guard<std::mutex> lk(stats_mu);
                st.generated_tokens += n_sampled;
            }
            wake_readers();
        }
        return;
    }

    const int32_t n_threads = use_threads_for(batch.n_tokens);
    const auto    t_decode = clock_type::now();
    const int32_t rc       = llama_decode(ctx.get(), batch);
    const auto    decode_us = std::chrono::duration_cast<std::chrono::microseconds>(clock_type::now() - t_decode).count();
    if (rc == 0) {
        threads.record(batch.n_tokens, n_threads, decode_us);
    }
    if (rc != 0) {
        on_decode_error(rc, in_batch);
        return;
    }

    int32_t n_sampled      = 0;  // tokens
    int32_t n_seqs_sampled = 0;
    int32_t n_prefill      = 0;
    in_step                = true;
    for (engine_sequence * s : in_batch) {
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
            s->n_draft_cells = (int32_t) s->draft.size();
        }
        n_sampled++;
        n_seqs_sampled++;
        if (sample_or_fail(*s) && !s->draft.empty()) {
            n_sampled += check_drafts(*s);
        }
    }
    // Images are decoded in calls of their own (a batch holds tokens or embeddings, not both),
    // after the tokens of this step were sampled.
    for (engine_sequence * s : at_embedding) {
        if (s->state == SEQ_PREFILL) {
            prefill_embedding(*s, n_sampled);
        }
    }
    in_step = false;
    {
        std::lock_guard<std::mutex> lk(stats_mu);
        update_stats(n_decoding, n_prefill, n_sampled, n_seqs_sampled, decode_us, t_step);
    }
    wake_readers();
}

// --- prompt-lookup drafts (engine_params::draft_max) -------------------------------------

uint64_t draft_table::key(uint64_t salt, llama_token prev, llama_token tok) {
    uint64_t h = salt ^ 0x9E3779B97F4A7C15ull;
    h = (h ^ (uint32_t) prev) * 0x100000001B3ull;
    h = (h ^ ((uint64_t) (uint32_t) tok << 17)) * 0x100000001B3ull;
    return h ^ (h >> 29);
}

float draft_table::chance(uint64_t salt, llama_token prev, llama_token tok) const {
    auto it = m.find(key(salt, prev, tok));
    const counts c = it == m.end() ? counts{} : it->second;
    return (float) (c.kept + 1) / (float) (c.tried + 2);
}

void draft_table::record(uint64_t salt, llama_token prev, llama_token tok, bool kept) {
    if (m.size() >= k_entries) {
        m.clear();
    }
    counts & c = m[key(salt, prev, tok)];
    c.kept += kept ? 1 : 0;
    c.tried++;
    if (c.tried >= k_window) {
        c.kept /= 2;
        c.tried /= 2;
    }
}

double engine_core::draft_threshold(int32_t n_seqs) const {
    if (params.draft_min_chance > 0) {
        return params.draft_min_chance;
    }
    double a = 0, b = 0;
    if (!threads.cost(n_threads_set, a, b)) {
        // Until the costs are known, one step in k_draft_explore_every may draft (at the
        // default bar): the calls of varied sizes that this makes are what tells them.
        return ++draft_explore % k_draft_explore_every == 0 ? k_draft_explore_chance : 1.0;
    }
    a = std::max(a, 0.0);
    if (b <= 0) {
        return k_draft_lowest_chance;  // tokens measured free: only the chance of a hit counts
    }
    const double bar = b / (a / std::max(n_seqs, 1) + b);
    return bar >= k_draft_highest_chance ? 1.0 : std::max(bar, k_draft_lowest_chance);
}

void engine_core::find_draft(engine_sequence & s, int32_t most, double min_chance) const {
    s.draft.clear();
    const int32_t nmax = params.draft_ngram;
    // The text so far: the window's end of the cached tokens, the pending token, then each
    // token drafted, as it is drafted.
    const int32_t from = std::max<int32_t>(0, (int32_t) s.tokens.size() - k_draft_window);
    std::vector<llama_token> & h = draft_ctx;
    h.assign(s.tokens.begin() + from, s.tokens.end());
    h.push_back(s.pending);
    std::vector<draft_follower> (&seen)[k_draft_max_ngram + 1] = draft_seen;  // [n]: what followed the last n tokens
    float                 reach = 1.0f;
    while ((int32_t) s.draft.size() < most) {
        const int32_t len = (int32_t) h.size();
        for (int32_t n = 1; n <= nmax; ++n) {
            seen[n].clear();
        }
        // Every earlier place j whose preceding tokens end as the text does: for each n up to
        // the length of that common end, h[j] followed the last n tokens once.
        int32_t longest = 0;
        for (int32_t j = 1; j < len; ++j) {
            if (h[j] < 0) {
                continue;  // an embedding position is no token to draft
            }
            int32_t m = 0;
            while (m < nmax && m < j && h[j - 1 - m] == h[len - 1 - m]) {
                m++;
            }
            for (int32_t n = 1; n <= m; ++n) {
                auto it = std::find_if(seen[n].begin(), seen[n].end(), [&](const draft_follower & f) { return f.tok == h[j]; });
                if (it == seen[n].end()) {
                    seen[n].push_back({ h[j], 1 });
                } else {
                    it->count++;
                }
            }
            longest = std::max(longest, m);
        }
        if (longest == 0) {
            break;
        }
        // The longest context decides: its most frequent follower is drafted when it follows it
        // mostly, and either has done so more than once or the context is long enough to be a
        // repeat rather than chance.
        const auto & f     = seen[longest];
        int32_t      total = 0;
        const draft_follower * top = &f[0];
        for (const auto & x : f) {
            total += x.count;
            top = x.count > top->count ? &x : top;
        }
        if (4 * top->count < 3 * total || (top->count < 2 && longest < k_draft_sure_ngram)) {
            break;
        }
        // How often such a draft was kept before: the chance that this one and those before it
        // are all kept must stay worth a decoded token.
        reach *= draft_stats.chance(s.salt_hash, h.back(), top->tok);
        if (reach < min_chance) {
            break;
        }
        s.draft.push_back(top->tok);
        h.push_back(top->tok);
    }
}

void engine_core::add_draft(engine_sequence & s, int32_t & budget, double min_chance) {
    s.draft.clear();
    // The pending token is decoded at n_past; drafts follow it inside the context, and one is
    // worth decoding only if the sequence could still take it.
    int32_t most = std::min({ params.draft_max, n_ctx_seq - 1 - s.n_past, budget, params.n_batch - batch.n_tokens });
    if (s.req.max_tokens > 0) {
        most = std::min(most, s.req.max_tokens - s.n_generated - 1);
    }
    if (most <= 0 || min_chance >= 1.0) {
        return;  // nothing could be drafted: no lookup
    }
    find_draft(s, most, min_chance);
    for (size_t i = 0; i < s.draft.size(); ++i) {
        common_batch_add(batch, s.draft[i], s.n_past + 1 + (int32_t) i, { s.seq }, true);
    }
    budget -= (int32_t) s.draft.size();
}

int32_t engine_core::check_drafts(engine_sequence & s) {
    const std::vector<llama_token> draft = std::move(s.draft);  // s may be erased by a sample
    s.draft.clear();
    const uint64_t salt    = s.salt_hash;
    int32_t        kept    = 0;
    int32_t        sampled = 0;
    bool           alive   = true;
    for (llama_token d : draft) {
        const bool hit = s.pending == d;
        draft_stats.record(salt, s.tokens.back(), d, hit);
        if (!hit) {
            break;
        }
        // The draft, decoded at n_past, is the token drawn there: its cell is kept and its
        // logits give the next token.
        s.tokens.push_back(d);
        s.n_past++;
        s.n_draft_cells--;
        s.batch_idx++;
        kept++;
        sampled++;
        if (!sample_or_fail(s)) {
            alive = false;
            break;
        }
    }
    if (alive) {
        drop_draft_cells(s);
    }
    step_drafted += (int32_t) draft.size();
    step_kept += kept;
    return sampled;
}

void engine_core::drop_draft_cells(engine_sequence & s) {
    if (s.n_draft_cells > 0 && s.seq >= 0) {
        llama_memory_seq_rm(mem, s.seq, s.n_past, -1);
    }
    s.n_draft_cells = 0;
}

int32_t engine_core::use_threads_for(int32_t n_tokens) {
    const int32_t n = threads.pick(n_tokens);
    if (n != n_threads_set) {
        llama_set_n_threads(ctx.get(), n, n);
        n_threads_set = n;
    }
    return n;
}

void engine_core::wake_readers(bool all) {
    for (auto & ch : to_notify) {
        if (!ch->held) {
            ch->held = true;
            held.push_back(std::move(ch));
        }
    }
    to_notify.clear();
    if (held.empty()) {
        return;
    }
    const auto now      = clock_type::now();
    const auto interval = std::chrono::milliseconds(params.stream_interval_ms);
    size_t     kept     = 0;
    for (auto & ch : held) {
        if (all || ch->urgent || !ch->woken || now - ch->last_wake >= interval) {
            ch->held      = false;
            ch->urgent    = false;
            ch->woken     = true;
            ch->last_wake = now;
            ch->notify();
        } else {
            held[kept++] = std::move(ch);
        }
    }
    held.resize(kept);
}

void engine_core::prefill_embedding(engine_sequence & s, int32_t & n_sampled) {
    const prompt_embedding * e = block_at(s.req, s.n_past);
    if (!e) {
        return;
    }
    const embedding_block & b      = *e->block;
    const int32_t           n_embd = b.n_embd;
    if (!embd_batch.embd) {
        embd_batch = llama_batch_init(std::max(params.n_batch, params.n_ubatch), n_embd, 1);
    }
    const int32_t off = s.n_past - e->at;
    const int32_t n   = b.non_causal ? b.n_tokens - off : std::min(b.n_tokens - off, params.n_batch);
    embd_batch.n_tokens = n;
    std::memcpy(embd_batch.embd, b.data.data() + (size_t) off * n_embd, (size_t) n * n_embd * sizeof(float));
    for (int32_t i = 0; i < n; ++i) {
        embd_batch.pos[i]       = s.n_past + i;
        embd_batch.n_seq_id[i]  = 1;
        embd_batch.seq_id[i][0] = s.seq;
        embd_batch.logits[i]    = s.n_past + i == s.n_prompt - 1;
    }
    const int32_t n_threads = use_threads_for(n);
    const auto t0 = clock_type::now();
    if (b.non_causal) {
        llama_set_causal_attn(ctx.get(), false);
    }
    const int32_t rc = llama_decode(ctx.get(), embd_batch);
    if (b.non_causal) {
        llama_set_causal_attn(ctx.get(), true);
    }
    const int64_t us = std::chrono::duration_cast<std::chrono::microseconds>(clock_type::now() - t0).count();
    if (rc == 0) {
        threads.record(n, n_threads, us);
    }
    {
        std::lock_guard<std::mutex> lk(stats_mu);
        st.decode_calls++;
        st.decode_us += (uint64_t) us;
        st.batch_tokens += n;
        if (rc == 0) {
            st.prefill_tokens += n;
            st.embedding_tokens += n;
        }
    }
    if (rc != 0) {
        on_decode_error(rc, { &s });
        return;
    }
    s.n_past += n;
    s.use.prompt_tokens_prefilled += n;
    if (s.n_past < s.n_prompt) {
        return;
    }
    // The prompt ended inside the image: its last row's logits give the first token.
    s.use.prefill_ms = ms_since(s.t_admit);
    s.state          = SEQ_GENERATE;
    if (s.req.max_tokens == 0) {
        finish(s, FINISH_LENGTH);
        return;
    }
    s.batch_idx = n - 1;
    n_sampled++;
    sample_or_fail(s);
}

bool engine_core::sample_or_fail(engine_sequence & s) {
    try {
        return sample(s);
    } catch (const std::exception & e) {
        // A sampler that throws (e.g. a grammar with no way forward) ends its own sequence;
        // the loop goes on.
        fail(s, { ERROR_INTERNAL, std::string("sampling failed: ") + e.what() });
        return false;
    }
}

void engine_core::update_stats(int32_t n_decoding, int32_t n_prefill, int32_t n_sampled, int32_t n_seqs_sampled,
                               int64_t decode_us, clock_type::time_point t_step) {
    st.decode_us += (uint64_t) decode_us;
    st.step_us += (uint64_t) std::chrono::duration_cast<std::chrono::microseconds>(clock_type::now() - t_step).count();
    st.decode_calls++;
    st.batch_tokens += batch.n_tokens;
    st.prefill_tokens += n_prefill;
    st.generated_tokens += n_sampled;
    st.max_batch_tokens = std::max<uint64_t>(st.max_batch_tokens, batch.n_tokens);
    st.max_batch_seqs   = std::max<uint64_t>(st.max_batch_seqs, n_seqs_sampled);
    st.draft_tokens += (uint64_t) step_drafted;
    st.draft_accepted += (uint64_t) step_kept;
    step_drafted = step_kept = 0;
    if (n_decoding > 0 && n_prefill > 0) {
        st.mixed_calls++;
    }
    if (n_seqs_sampled >= 2) {
        st.multi_seq_calls++;
    }
}

bool engine_core::sample(engine_sequence & s) {
    llama_token tok;
    if (s.fast) {
        tok = s.fast->sample(llama_get_logits_ith(ctx.get(), s.batch_idx));  // accepts it too
    } else {
        tok = common_sampler_sample(s.smpl.get(), ctx.get(), s.batch_idx);
    }
    const float logprob = s.req.logprobs ? token_logprob(s.batch_idx, tok) : 0.0f;
    if (!s.fast) {
        common_sampler_accept(s.smpl.get(), tok, true);
    }
    if (s.n_generated == 0) {
        s.t_first = clock_type::now();
    }
    s.n_generated++;
    s.use.completion_tokens = s.n_generated;

    if (llama_vocab_is_eog(vocab, tok)) {
        sequence_event ev;
        ev.token   = tok;
        ev.logprob = logprob;
        s.chan->push(std::move(ev), false);
        to_notify.push_back(s.chan);
        finish(s, FINISH_STOP);
        return false;
    }
    bool stopped = false;
    sequence_event ev;
    ev.token   = tok;
    ev.logprob = logprob;
    ev.text    = s.text.add(common_token_to_piece(vocab, tok, true), stopped);
    s.chan->push(std::move(ev), false);
    to_notify.push_back(s.chan);
    if (stopped) {
        finish(s, FINISH_STOP);
        return false;
    }
    if (s.req.max_tokens > 0 && s.n_generated >= s.req.max_tokens) {
        finish(s, FINISH_LENGTH);
        return false;
    }
    s.pending = tok;
    return true;
}

// exp(x) for x <= 0, to ~4e-6 relative error, in plain float arithmetic that the compiler
// vectorises: a log-softmax over a 150k vocabulary per token and agent must cost far less
// than the decode step it rides on (std::exp costs ~1.4 ms there, this ~0.2 ms).
static inline float exp_nonpositive(float x) {
    x              = x < -87.0f ? -87.0f : x;
    const float t  = x * 1.44269504089f;  // log2(e)
    const float fi = std::floor(t);
    const float f  = t - fi;
    float       p  = 1.8775767e-3f;  // 2^f on [0, 1)
    p              = p * f + 8.9893397e-3f;
    p              = p * f + 5.5826318e-2f;
    p              = p * f + 2.4015361e-1f;
    p              = p * f + 6.9315308e-1f;
    p              = p * f + 9.9999994e-1f;
    const int32_t bits = ((int32_t) fi + 127) << 23;
    float         scale;
    std::memcpy(&scale, &bits, sizeof(scale));
    return p * scale;
}

float engine_core::token_logprob(int32_t batch_idx, llama_token tok) const {
    const float * logits  = llama_get_logits_ith(ctx.get(), batch_idx);
    const int32_t n_vocab = llama_vocab_n_tokens(vocab);
    const float   m       = max_logit(logits, n_vocab);
    constexpr int k_lanes = 16;  // independent accumulators let the loop vectorise
    float         sum[k_lanes] = {};
    int32_t       i            = 0;
    for (; i + k_lanes <= n_vocab; i += k_lanes) {
        for (int k = 0; k < k_lanes; ++k) {
            sum[k] += exp_nonpositive(logits[i + k] - m);
        }
    }
    double total = 0;
    for (int k = 0; k < k_lanes; ++k) {
        total += sum[k];
    }
    for (; i < n_vocab; ++i) {
        total += exp_nonpositive(logits[i] - m);
    }
    return (float) ((double) (logits[tok] - m) - std::log(total));
}

void engine_core::on_decode_error(int32_t rc, const std::vector<engine_sequence *> & in_batch) {
    if (rc == 1) {
        {
            std::lock_guard<std::mutex> lk(stats_mu);
            st.kv_full_events++;
        }
        // No KV slot: drafts give way first (the next steps retry without any), then cached
        // prompts give their cells; the next step retries the batch.
        bool drafted = false;
        for (engine_sequence * s : in_batch) {
            drafted = drafted || !s->draft.empty();
            s->draft.clear();
        }
        if (drafted) {
            draft_pause = k_draft_pause_steps;
            return;
        }
        if (!pcache.empty()) {
            while (evict_cached()) {
            }
            return;
        }
        // Else the youngest sequence in the batch gives way so that older ones, which
        // already hold cells, can finish. The next step retries without it.
        engine_sequence * victim = *std::max_element(in_batch.begin(), in_batch.end(),
                                                     [](auto * a, auto * b) { return a->id < b->id; });
        fail(*victim, { ERROR_NO_KV_SLOT, "the KV cache is full (" + std::to_string(params.n_ctx) +
                                              " cells shared by all sequences); retry later or raise --ctx" });
        return;
    }
    // Invalid batch or a fatal backend error: the sequences of this batch cannot trust
    // their cache state any more. End them; the loop keeps serving others.
    const std::string what = rc == 2 ? "decoding was aborted" : "llama_decode failed with code " + std::to_string(rc);
    std::vector<seq_handle_id> ids;
    for (engine_sequence * s : in_batch) {
        ids.push_back(s->id);
    }
    for (seq_handle_id id : ids) {
        auto it = seqs.find(id);
        if (it != seqs.end()) {
            fail(*it->second, { ERROR_DECODE, what });
        }
    }
}

void engine_core::publish_stats() {
    int32_t live = 0;
    for (auto & [id, s] : seqs) {
        live += s->state != SEQ_RETAINED;
    }
    std::lock_guard<std::mutex> lk(stats_mu);
    st.live_sequences       = live;
    st.prompt_cache_entries = (int32_t) pcache.size();
    st.prompt_cache_cells   = pcache_cells;
}

}  // namespace muse
