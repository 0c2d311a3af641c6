#pragma once
// The engine's state and loop, owned by its one thread. Private to src/engine: callers use
// engine.h. engine-loop.cpp implements it; engine.cpp only posts commands to it.

#include "engine.h"
#include "event-channel.h"
#include "fast-sampler.h"
#include "text-stream.h"
#include "thread-tuner.h"

#include "llama-cpp.h"
#include "sampling.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>

namespace muse {

class model;

using clock_type = std::chrono::steady_clock;

enum seq_state {
    SEQ_WAIT_SLOT,    // admitted, waiting for a free llama seq id
    SEQ_WAIT_PARENT,  // fork waiting for its parent's prompt to be in the KV cache
    SEQ_PREFILL,
    SEQ_GENERATE,
    SEQ_RETAINED,     // finished; KV kept for forks until released
};

struct engine_sequence {
    seq_handle_id                  id    = 0;
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
    uint64_t                 salt_hash = 0;   // of req.cache_salt: the draft table's scope
    std::vector<llama_token> draft;           // drafted tokens decoded after `pending` this step
    int32_t                  n_draft_cells = 0;  // KV cells past n_past that hold drafts

    common_sampler_ptr            smpl;  // llama.cpp's sampler, unless this one applies:
    std::unique_ptr<fast_sampler> fast;  // top-k sampling without a whole-vocabulary array
    text_stream        text;
    usage                  use;
    clock_type::time_point t_admit;
    clock_type::time_point t_first;
};

// The longest context a draft lookup matches (engine_params::draft_ngram's bound).
constexpr int32_t k_draft_max_ngram = 8;

// How often a drafted token was kept when it followed a given token: what a draft is worth.
// Counts are per cache salt (one user's requests), as the prompt cache is, and recent ones
// weigh most (halved every k_window tries).
class draft_table {
  public:
    // The chance that `tok` drafted after `prev` is kept: (kept + 1) / (tried + 2).
    float chance(uint64_t salt, llama_token prev, llama_token tok) const;
    void  record(uint64_t salt, llama_token prev, llama_token tok, bool kept);

  private:
    static constexpr uint16_t k_window  = 32;
    static constexpr size_t   k_entries = 1 << 16;  // then it starts afresh
    struct counts {
        uint16_t kept  = 0;
        uint16_t tried = 0;
    };
    static uint64_t key(uint64_t salt, llama_token prev, llama_token tok);
    std::unordered_map<uint64_t, counts> m;
};

struct engine_command {
    enum type_t { SUBMIT, CANCEL } type = SUBMIT;  // CANCEL also frees a retained sequence
    seq_handle_id                  id = 0;
    sequence_request               req;
    std::shared_ptr<event_channel> chan;
    bool                           over_context = false;  // the prompt's bytes alone prove it cannot fit
};

struct engine_core {
    const model *      mdl   = nullptr;
    const llama_vocab * vocab = nullptr;
    size_t             max_piece_bytes = 1;  // the longest token's text: a prompt of B bytes has >= B / this tokens
    engine_params      params;
    ggml_threadpool *  threadpool = nullptr;  // persistent CPU workers (freed after ctx)
    void (*threadpool_free)(ggml_threadpool *) = nullptr;
    llama_context_ptr  ctx;
    llama_memory_t     mem = nullptr;
    int32_t            n_ctx_seq = 0;
    bool               can_draft = false;  // params.draft_max > 0 and the memory rolls back by position
    mutable std::vector<llama_token> draft_ctx;  // find_draft's scratch
    struct draft_follower {
        llama_token tok;
        int32_t     count;
    };
    mutable std::vector<draft_follower> draft_seen[k_draft_max_ngram + 1];  // find_draft's scratch: [n] what followed the last n tokens
    int32_t            step_drafted = 0, step_kept = 0;  // this step's drafts, counted into st at its end
    int32_t            draft_pause = 0;  // steps left without drafts (the cache was full)
    mutable uint32_t   draft_explore = 0;  // steps asked for a bar while the costs were unknown
    draft_table        draft_stats;
    thread_tuner       threads;
    int32_t            n_threads_set = 0;  // the context's thread count now
    std::mutex              mu;
    std::condition_variable cv;
    std::deque<engine_command>     commands;
    bool                    stopping = false;
    uint64_t                next_id = 1;  // under mu: ids follow queue order, so the map's key order is admission order
    mutable std::mutex stats_mu;
    engine_stats       st;

    // engine thread only
    std::map<seq_handle_id, std::unique_ptr<engine_sequence>> seqs;
    struct cached_prompt {
        llama_seq_id             seq = -1;
        std::vector<llama_token> tokens;  // in the KV cache at positions [0, size)
        uint64_t                 used = 0;
        std::string              salt;  // the sequence_request::cache_salt that left it; only that salt sees it
        int32_t                  n_public = 0;  // leading tokens every salt may share (sequence_request::n_public)
    };
    std::vector<cached_prompt> pcache;  // the prompt cache (engine_params::prompt_cache)
    uint64_t                   pcache_tick  = 0;
    int32_t                    pcache_cells = 0;
    std::vector<llama_seq_id>                          free_ids;
    llama_batch                                        batch{};
    llama_batch                                        embd_batch{};  // embedding blocks (allocated on first use)
    std::vector<std::shared_ptr<event_channel>>        to_notify;  // channels with quiet pushes this step
    std::vector<std::shared_ptr<event_channel>>        held;       // quiet pushes whose wake-up waits (stream interval)
    bool                                               in_step = false;  // pushes are quiet until the step's end
    std::thread thread;
    ~engine_core();

    void post(engine_command && c);
    void post(std::vector<engine_command> && cs);


    // Everything below runs on the engine thread.

    void run();
    void warmup();
    bool has_work() const;
    void fail_command(engine_command & c, const std::shared_ptr<event_channel> & chan, const std::string & what);
    void fail_all(const std::string & what);
    void handle(engine_command & c);
    void send_done(engine_sequence & s, finish_reason r, error err = {});
    void free_seq(engine_sequence & s);

    // Ends a engine_sequence with an error; its KV cells are freed at once.
    void fail(engine_sequence & s, error err, bool erase = true);
    void finish(engine_sequence & s, finish_reason r);

    // Stops a running engine_sequence, or frees a retained one. A engine_sequence that has not reported
    // DONE yet reports it as cancelled.
    void cancel(seq_handle_id id);
    error check_request(const sequence_request & r) const;
    // Prefills the embedding block at s.n_past (or its next n_batch rows) in a call of its own.
    void  prefill_embedding(engine_sequence & s, int32_t & n_sampled);
    // The request's sampling as llama.cpp's common parameters: what both the common sampler and
    // the fast sampler are built from.
    common_params_sampling sampling_for(const sequence_request & r) const;
    void submit(engine_command & c);

    // Gives waiting sequences a llama seq id and resolves forks whose parents are ready.
    void admit_waiting();
    void resolve_fork(engine_sequence & s);
    void step();
    // Sets the context's threads for a decode call of n_tokens (thread_tuner); returns them.
    int32_t use_threads_for(int32_t n_tokens);
    // Wakes the readers of quiet pushes whose interval has passed (all: every one held, when
    // the engine is about to sleep or stop).
    void wake_readers(bool all = false);
    float token_logprob(int32_t batch_idx, llama_token tok) const;
    void update_stats(int32_t n_decoding, int32_t n_prefill, int32_t n_sampled, int32_t n_seqs_sampled, int64_t decode_us,
                      clock_type::time_point t_step);  // under stats_mu
    // Samples s's next token at s.batch_idx and delivers it; true when s goes on generating
    // (the token is then s.pending), false when it ended (it may have been erased: finished
    // and not retained, or failed).
    bool sample(engine_sequence & s);
    bool sample_or_fail(engine_sequence & s);  // sample(); a sampler that throws fails its sequence
    // Prompt lookup: the tokens that followed the latest earlier occurrence of s's last
    // draft_ngram tokens (with s.pending), at most `most`.
    void find_draft(engine_sequence & s, int32_t most, double min_chance) const;
    // The chance a draft must have of being kept to be worth decoding in a step that decodes
    // n_seqs sequences (from the measured cost of decode calls).
    double draft_threshold(int32_t n_seqs) const;
    // Removes the cells of drafts that were not kept.
    void drop_draft_cells(engine_sequence & s);
    // Adds s's drafts to the batch (right after its pending token), taking them from budget.
    void add_draft(engine_sequence & s, int32_t & budget, double min_chance);
    // After s's pending token was sampled: keeps its drafts while each is the token drawn at
    // its place, sampling the next; returns the tokens sampled (s may be gone after it).
    int32_t check_drafts(engine_sequence & s);
    void on_decode_error(int32_t rc, const std::vector<engine_sequence *> & in_batch);
    void publish_stats();

    // The prompt cache. cache_prompt() moves a finished sequence's cells into it (false: not
    // kept, the caller frees them); reuse_cached() starts a sequence from the longest cached
    // prefix of its own salt; evict_cached() frees the least recently used entry of the salt
    // that holds the most cells, counting `incoming` cells of salt `to` about to be added
    // (false when there is no entry). One salt that churns thus evicts its own entries first,
    // not everyone else's.
    bool cache_prompt(engine_sequence & s);
    void reuse_cached(engine_sequence & s);
    bool evict_cached(const std::string * to = nullptr, int32_t incoming = 0);
    void drop_cached(size_t i);
};

}  // namespace muse
