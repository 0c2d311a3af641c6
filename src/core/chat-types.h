#pragma once
// The plain chat types that the backend interface, the engine's chat format and everything
// above them share: messages (with media references), tools, tool calls, reasoning mode,
// sampling, finish reasons and usage. Plain structs over the standard library, so that neither
// side includes the other (or llama.cpp) to speak of a conversation.
//
//   muse::chat_message user{ "user", "What is in this picture?" };
//   user.images.push_back(picture);                   // std::shared_ptr<const muse::media>
//   muse::sampling_params s;  s.temperature = 0;      // greedy
//   if (std::string e = muse::validate(s); !e.empty()) { ... }
//
// Thread safety: plain data; the functions are reentrant.

#include "core/media.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace muse {

struct chat_tool_call {
    std::string id;
    std::string name;
    std::string arguments;  // JSON text
};

struct chat_message {
    std::string                 role;  // system, user, assistant, tool
    std::string                 content;
    // Images for a model with a vision projector: each stands where a media marker
    // (engine/vision.h: media_marker(), "<__media__>") is in the content, or, without markers,
    // all of them go before the content.
    std::vector<std::shared_ptr<const media>> images;
    std::string                 reasoning_content;
    std::vector<chat_tool_call> tool_calls;
    std::string                 tool_call_id;
    std::string                 name;
};

struct chat_tool {
    std::string name;
    std::string description;
    std::string parameters;  // JSON schema text; empty = no parameters
    // Calling it changes something outside the conversation (sends, writes, pays, remembers):
    // the safety gates withhold it while untrusted content looks like an injection.
    bool side_effects = false;
};

enum reasoning_mode {
    REASONING_AUTO,  // the template's default
    REASONING_ON,    // open the reasoning block in the prompt so the model always reasons
    REASONING_OFF,
};

struct sampling_params {
    float    temperature    = 0.8f;   // <= 0: greedy
    int32_t  top_k          = 40;     // <= 0: whole vocabulary
    float    top_p          = 0.95f;  // 1: off
    float    min_p          = 0.05f;  // 0: off
    float    repeat_penalty = 1.0f;   // 1: off
    float    frequency_penalty = 0.0f;  // -2..2, OpenAI's: minus this times the token's count
    float    presence_penalty  = 0.0f;  // -2..2, OpenAI's: minus this once a token occurred
    int32_t  repeat_last_n  = 64;       // the window of the three penalties, in tokens
    uint32_t seed           = 0xFFFFFFFF;  // 0xFFFFFFFF: random
};

// Empty when every field is in range (core/limits.h), else a message naming the field.
std::string validate(const sampling_params & s);

enum finish_reason {
    FINISH_NONE,
    FINISH_STOP,       // end-of-generation token or stop string
    FINISH_LENGTH,     // max_tokens reached, or the context is full
    FINISH_CANCELLED,
    FINISH_ERROR,
    FINISH_TOOL_CALLS,  // the answer is a call of a tool the caller runs (orchestrator: client tools)
};

const char * finish_reason_name(finish_reason r);

struct usage {
    int32_t prompt_tokens           = 0;  // tokens in the prompt
    int32_t prompt_tokens_prefilled = 0;  // computed by this request
    int32_t prompt_tokens_reused    = 0;  // shared with the parent through fork, or from the prompt cache (same salt)
    int32_t completion_tokens       = 0;
    double  prefill_ms              = 0;  // first admission to first token sampled
    double  generate_ms             = 0;  // first token to finish
};

}  // namespace muse
