#pragma once
// The Muse engine: one thread owns the llama_context and runs one decode loop that batches
// the next token of every live sequence of every request, plus chunks of pending prompts.
//
//   muse::engine_params p;
//   p.n_ctx = 4096;
//   muse::error err;
//   auto eng = muse::engine::create(model, p, err);
//   muse::sequence_request r;
//   r.prompt = "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n";
//   auto seq = eng->submit(r);
//   muse::sequence_event ev;
//   while (seq.next(ev)) { if (ev.type == muse::sequence_event::TOKEN) fputs(ev.text.c_str(), stdout); }
//
// Thread safety: submit(), cancel(), stats() and sequence handles may be used from any
// thread; only the engine thread touches llama.cpp state. One bad request ends with an
// error event of its own; it never stops the loop.

#include "core/error.h"
#include "sequence.h"

#include "llama.h"

#include <atomic>
#include <memory>
#include <vector>

namespace muse {

class model;
struct event_channel;

struct engine_params {
    int32_t n_ctx     = 4096;  // total KV cells shared by all sequences (unified cache)
    int32_t n_batch   = 512;   // tokens per llama_decode call (decode + prefill chunks)
    int32_t n_ubatch  = 512;
    int32_t n_seq_max = 32;    // sequences alive at once
    int32_t n_threads = 0;     // 0: all hardware threads
    int32_t flash_attn = -1;   // -1: auto (off for a model on this CPU alone, else llama.cpp's choice), 0: off, 1: on
    bool    warmup     = true; // one throw-away decode on the engine thread before the first request
                               // (maps the weights in, starts the workers), as llama.cpp's tools do
    // Top-k sampling straight from the logits (fast-sampler.h) where it applies: the same
    // tokens as llama.cpp's common sampler, without its whole-vocabulary pass per token.
    bool    fast_sampling = true;
    // A sequence's reader is woken at most once per this many milliseconds (at once for its
    // first token and its end), as vLLM's stream interval batches its output: each wake-up is a
    // futex call and a thread switch (about 20 us on a VM), and where a whole decode step takes
    // about a millisecond (a tiny model on a few cores) waking every agent's reader after every
    // step costs several percent of the decode. Where a step takes longer than the interval
    // (any real model), every token is delivered as it comes. 0: after every step.
    int32_t stream_interval_ms = 10;
    // Prompt-lookup speculation (as vLLM's n-gram speculator and llama.cpp's lookup decoding):
    // where a generating sequence's last draft_ngram tokens occurred before in its prompt or
    // output, the tokens that followed them there are decoded with its next token in the same
    // step, and each is kept while it is the token the sampler draws at its place. The sampler
    // draws exactly as without drafts (one draw per kept token, the same random stream), so the
    // output is the one unspeculated decoding would give; the cells of rejected drafts are
    // removed. Text that restates its input (a scratchpad copying the operands, quoted code,
    // a table re-read, JSON keys) then takes fewer steps. A token is drafted only where it
    // followed the same context mostly, and only while drafts of it after the same token were
    // mostly kept (counted per cache salt), so drafts that miss stop costing decode work. Off
    // for recurrent and hybrid models, whose state cannot be rolled back to a position.
    int32_t draft_max   = 4;  // drafted tokens per sequence and step, 0..16 (0: off)
    // Threads per decode call chosen by measurement: for each batch size (in powers of two) the
    // engine times its calls with n_threads, n_threads / 2, ... 1 threads and uses the fastest,
    // trying the others again now and then (the machine's load changes). Where a step is a
    // millisecond or less (a tiny model), ggml's barriers between threads can cost more than
    // the arithmetic they share: on a 2-core VM, Muse-Tiny's 4-agent steps took 1.1 ms with 2
    // threads and 0.45 ms with 1. Never more than n_threads. Off: n_threads always.
    bool    adaptive_threads = true;
    int32_t draft_ngram = 4;  // the longest context a lookup matches, 1..8 tokens
    // The chance of being kept a draft needs: 0 = from the measured cost of decode calls (a
    // draft must save more than it costs), else this fixed bar in (0, 1].
    float   draft_min_chance = 0;

    // Prompt cache: finished sequences keep their KV cells as reusable prefixes (least recently
    // used first out). A new sequence without a fork parent that shares at least
    // prompt_cache_min leading tokens with a cached one copies those cells instead of
    // computing them (a chat's next turn, a common system prompt). Entries are scoped by
    // sequence_request::cache_salt: a sequence sees only those of its own salt. They give way
    // whenever a live sequence needs a seq id or KV cells; the salt holding the most cells
    // gives first (least recently used within it).
    int32_t prompt_cache        = 0;   // entries kept, 0..256 (0: off)
    int32_t prompt_cache_tokens = 0;   // KV cells the entries may hold together; 0: n_ctx / 4
    int32_t prompt_cache_min    = 16;  // shortest common prefix worth reusing, 1..1048576
};

std::string validate(const engine_params & p);

struct engine_stats {
    uint64_t decode_calls        = 0;
    uint64_t batch_tokens        = 0;  // tokens passed to llama_decode, all calls
    uint64_t prefill_tokens      = 0;
    uint64_t embedding_tokens    = 0;  // of those, positions decoded from embedding blocks (images)
    uint64_t generated_tokens    = 0;
    uint64_t max_batch_tokens    = 0;
    uint64_t max_batch_seqs      = 0;  // most sequences sampled in one call
    uint64_t multi_seq_calls     = 0;  // calls that sampled two or more sequences
    uint64_t mixed_calls         = 0;  // calls that carried prompt chunks and generated tokens together
    uint64_t sequences_started   = 0;
    uint64_t sequences_forked    = 0;  // started with a prefix copied from a parent
    uint64_t sequences_fast_sampled = 0;  // sampled by the fast top-k sampler (fast-sampler.h)
    uint64_t sequences_failed    = 0;
    uint64_t kv_full_events      = 0;  // llama_decode returned 1
    uint64_t decode_us           = 0;  // wall time inside llama_decode, all calls
    uint64_t step_us             = 0;  // wall time of whole steps: batch building, decode, sampling, events
    int32_t  n_ctx               = 0;
    int32_t  n_seq_max           = 0;
    int32_t  live_sequences      = 0;
    uint64_t prompt_cache_hits   = 0;  // sequences that started from a cached prompt
    uint64_t prompt_cache_tokens_reused = 0;
    int32_t  prompt_cache_entries = 0;
    int32_t  prompt_cache_cells   = 0;  // KV cells the entries hold
    uint64_t draft_tokens         = 0;  // tokens decoded as drafts (engine_params::draft_max)
    uint64_t draft_accepted       = 0;  // of those, kept: the sampler drew the same token there
};

// The reader end of one sequence's event stream. Destroying it cancels the sequence if it
// still runs and releases its KV cells if it was retained.
class sequence_handle {
  public:
    sequence_handle() = default;
    sequence_handle(sequence_handle &&) noexcept;
    sequence_handle & operator=(sequence_handle &&) noexcept;
    ~sequence_handle();

    seq_handle_id id() const { return sid; }
    bool          valid() const { return sid != 0; }

    // Blocks for the next event; false once DONE was returned (or the handle is empty).
    bool next(sequence_event & ev);
    void cancel();
    // Frees the KV cells of a finished retained sequence now.
    void release();

  private:
    friend class engine;
    std::weak_ptr<struct engine_core> core;
    std::shared_ptr<event_channel> chan;
    seq_handle_id sid = 0;
    bool          done = false;
};

class engine {
  public:
    static std::unique_ptr<engine> create(const model & m, const engine_params & params, error & err);
    ~engine();

    // The llama.cpp context parameters create() uses for params: threads resolved, one unified
    // KV cache, Muse's flash-attention choice. For tools that compare a bare llama.cpp loop
    // with the engine on equal terms.
    static llama_context_params context_params(const engine_params & params, bool offloaded);

    // Queues a sequence. Errors in the request (bad fields, prompt too long) arrive as its
    // DONE event with FINISH_ERROR.
    sequence_handle submit(const sequence_request & req);
    // Queues several sequences at once: they are admitted in the same loop step, so K
    // parallel agents start (and advance) together.
    std::vector<sequence_handle> submit(const std::vector<sequence_request> & reqs);
    void            cancel(seq_handle_id id);

    engine_stats stats() const;
    const model & get_model() const;
    // Prompt bytes past which a prompt certainly cannot fit n_ctx() tokens, so that callers can
    // refuse it without rendering or tokenising it.
    size_t        max_prompt_bytes() const;
    int32_t       n_ctx() const;

    // Tokenizes like the engine does (special tokens parsed); for tests and usage counting.
    std::vector<llama_token> tokenize(const std::string & text) const;

  private:
    engine();
    bool surely_over_context(const std::string & prompt) const;
    std::shared_ptr<engine_core> core;
};

}  // namespace muse
