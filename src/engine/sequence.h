#pragma once
// What one sequence asks of the engine, and what it streams back. (Sampling, finish reasons
// and usage are the neutral chat types of core/chat-types.h.)

#include "core/chat-types.h"
#include "core/error.h"

#include "common.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace muse {

using seq_handle_id = uint64_t;

// A block of input embeddings inside a prompt (an image encoded by a vision projector). It
// takes n_tokens positions; what prompt_tokens holds at those positions is ignored.
struct embedding_block {
    std::string        id;                  // content id (an image's SHA-256): forks share equal blocks
    int32_t            n_tokens   = 0;
    int32_t            n_embd     = 0;      // the model's input embedding size
    bool               non_causal = false;  // decoded in one call with non-causal attention
    std::vector<float> data;                // n_tokens * n_embd
};

struct prompt_embedding {
    int32_t                                at = 0;  // first position in prompt_tokens
    std::shared_ptr<const embedding_block> block;
};

struct sequence_request {
    std::string              prompt;           // rendered prompt text; special tokens are parsed
    std::vector<llama_token> prompt_tokens;    // or the prompt as tokens (used when not empty)
    // Embedding blocks inside prompt_tokens, in order, not overlapping (needs prompt_tokens).
    std::vector<prompt_embedding> embeddings;
    sampling_params          sampling;
    int32_t                  max_tokens = -1;  // -1: until the context is full; 0: prefill only
    std::vector<std::string> stop;             // stop strings (not included in the output)

    common_grammar                      grammar;
    bool                                grammar_lazy = false;
    std::vector<common_grammar_trigger> grammar_triggers;
    std::vector<std::string>            preserved_tokens;
    std::string                         generation_prompt;  // already-generated prefix for grammar/budget state

    // Budget forcing: once `budget` tokens were spent inside reasoning (opened by
    // reasoning_start), the engine forces reasoning_forced to close it; the answer follows.
    int32_t                  reasoning_budget = -1;  // -1: unlimited
    std::string              reasoning_start;
    std::vector<std::string> reasoning_ends;
    std::string              reasoning_forced;

    // Fork: share the longest common token prefix with this live (or retained) sequence;
    // its KV cells are copied, never recomputed.
    seq_handle_id parent = 0;
    // Keep this sequence's KV cells after it finishes, so that later requests can fork it,
    // until its handle is released.
    bool retain = false;
    // Report each generated token's log-probability under the model's raw distribution
    // (before temperature, penalties or truncation): the confidence signal of early pruning.
    bool logprobs = false;
    // The sharing scope of this sequence's KV cells (vLLM's cache_salt): it reuses only cached
    // prompts left by sequences of the same salt and forks only a parent of the same salt, so
    // that prompt_tokens_reused (and the time to first token) tells a caller nothing about
    // prompts sent under other salts. A server sets one per user; empty is one shared scope.
    std::string cache_salt;
    // Text the prompt starts with that is the same for every caller (a fixed task prompt, as a
    // guard model's): cached cells of its tokens are shared with sequences of other salts that
    // declared the same public start, since matching it tells a caller only what it sent
    // itself. Beyond it the salt rules. Ignored unless the prompt's tokens begin with its own.
    std::string public_prefix;
    int32_t     n_public = 0;  // set by engine::submit: the tokens of public_prefix
};

struct sequence_event {
    enum type_t { TOKEN, DONE } type = TOKEN;
    llama_token   token = LLAMA_TOKEN_NULL;  // TOKEN
    std::string   text;                      // TOKEN: new output text (complete UTF-8; may be empty while held back)
    float         logprob = 0;               // TOKEN, when the request asked for logprobs
    finish_reason finish = FINISH_NONE;      // DONE
    usage         use;                       // DONE
    muse::error   err;                       // DONE with FINISH_ERROR
};

}  // namespace muse
