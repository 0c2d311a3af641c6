#pragma once
// Limits on untrusted input, one definition each: the table of request limits (every number a
// client may set or send, with its range, default, unit and the front ends that expose it),
// the engine's own caps that those ranges sit inside, and the caps on untrusted structure.
//
// The API parser (server/openai-api), `muse ask`'s flags (cli/), the orchestrator's
// validate() and the engine read the table; README's "Request limits" table is generated
// from it (tests/test-limits checks README against it).
//
//   if (std::string e = limit_problem(k_limit_agents, v); !e.empty()) ...  // "agents must be in [1, 16], got 17"
//   opt.budget = (int32_t) k_limit_thinking_budget.def;
//
// Thread safety: constants and pure functions.

#include <cstddef>
#include <cstdint>
#include <string>

namespace muse {

// Which front ends let a user set a limit.
enum limit_front : unsigned {
    FRONT_API = 1u << 0,  // POST /v1/chat/completions
    FRONT_CLI = 1u << 1,  // muse ask
};

struct limit {
    const char * name;           // the API field (or what is counted); errors and README use it
    const char * flag = "";      // the `muse ask` flag, "" when the CLI has none
    const char * api  = nullptr; // README's API column when the field is not `name`
    double       min  = 0;       // inclusive (exclusive when min_open)
    double       max  = 0;       // inclusive
    double       def  = 0;       // what a request gets when it leaves the field out
    const char * unit = "";
    unsigned     fronts = 0;     // FRONT_API | FRONT_CLI
    bool         integer  = true;
    bool         min_open = false;        // the range is (min, max]
    bool         count    = false;        // how many (or how long) something a request carries: no default
    const char * def_text = nullptr;      // README's default when it is not a number ("random")
    const char * special  = nullptr;      // the meaning of special_value, a value outside the range
    double       special_value = 0;
    const char * serve_flag    = "";      // the `muse serve` flag that lowers the API's maximum
    double       serve_default = 0;       // ... and that flag's default

    // Whether v lies in the range. Non-integer values are kept as float, so they are compared
    // as floats: 0.01 is 0.01f, a hair below the double 0.01, and must still pass.
    constexpr bool contains(double v) const {
        if (!integer) {
            const float f = (float) v;
            return (min_open ? f > (float) min : f >= (float) min) && f <= (float) max;
        }
        return (min_open ? v > min : v >= min) && v <= max;
    }
    constexpr bool accepts(double v) const { return contains(v) || (special && v == special_value); }
    constexpr bool in(limit_front f) const { return (fronts & f) != 0; }
};

// ---- the request limits ---------------------------------------------------------------------

// Sampling (every agent of a request; contemplating spreads the temperature within [0, 2]).
inline constexpr limit k_limit_temperature{ .name = "temperature", .flag = "--temp", .min = 0, .max = 2, .def = 0.7,
                                            .fronts = FRONT_API | FRONT_CLI, .integer = false };
inline constexpr limit k_limit_top_p{ .name = "top_p", .flag = "--top-p", .min = 0, .max = 1, .def = 0.95,
                                      .fronts = FRONT_API | FRONT_CLI, .integer = false, .min_open = true };
inline constexpr limit k_limit_top_k{ .name = "top_k", .flag = "--top-k", .min = 0, .max = 1000000, .def = 40,
                                      .unit = "tokens", .fronts = FRONT_API | FRONT_CLI };
inline constexpr limit k_limit_min_p{ .name = "min_p", .flag = "--min-p", .min = 0, .max = 1, .def = 0.05,
                                      .fronts = FRONT_API | FRONT_CLI, .integer = false };
inline constexpr limit k_limit_repeat_penalty{ .name = "repeat_penalty", .flag = "--repeat-penalty", .min = 0.01, .max = 10,
                                               .def = 1, .fronts = FRONT_API | FRONT_CLI, .integer = false };
inline constexpr limit k_limit_frequency_penalty{ .name = "frequency_penalty", .flag = "--frequency-penalty", .min = -2,
                                                  .max = 2, .def = 0, .fronts = FRONT_API | FRONT_CLI, .integer = false };
inline constexpr limit k_limit_presence_penalty{ .name = "presence_penalty", .flag = "--presence-penalty", .min = -2,
                                                 .max = 2, .def = 0, .fronts = FRONT_API | FRONT_CLI, .integer = false };
// 4294967295 (0xFFFFFFFF) is the engine's "random"; -1 says it as llama.cpp does.
inline constexpr limit k_limit_seed{ .name = "seed", .flag = "--seed", .min = 0, .max = 4294967294.0, .def = -1,
                                     .fronts = FRONT_API | FRONT_CLI, .def_text = "random", .special = "random",
                                     .special_value = -1 };

// Lengths, per agent. max_tokens is the answer after reasoning (API also max_completion_tokens).
inline constexpr limit k_limit_max_tokens{ .name = "max_tokens", .flag = "--max-tokens",
                                           .api = "`max_tokens`, `max_completion_tokens`", .min = 1, .max = 1 << 20,
                                           .def = 1024, .unit = "tokens", .fronts = FRONT_API | FRONT_CLI,
                                           .special = "the maximum", .special_value = -1,
                                           .serve_flag = "--max-tokens", .serve_default = 4096 };
inline constexpr limit k_limit_thinking_budget{ .name = "thinking_budget", .flag = "--budget", .min = 0, .max = 65536,
                                                .def = 2048, .unit = "tokens", .fronts = FRONT_API | FRONT_CLI };

// Modes.
inline constexpr limit k_limit_agents{ .name = "agents", .flag = "--agents", .min = 1, .max = 16, .def = 4,
                                       .unit = "agents", .fronts = FRONT_API | FRONT_CLI,
                                       .serve_flag = "--max-agents", .serve_default = 8 };
inline constexpr limit k_limit_n{ .name = "n", .min = 1, .max = 4, .def = 1, .unit = "choices", .fronts = FRONT_API };
// The planner's whole output (contemplating): its JSON plan, all of its steps together. A plan
// that does not fit is cut and the request runs as one task.
inline constexpr limit k_limit_planner_budget{ .name = "planner_budget", .flag = "--planner-budget", .min = 16, .max = 8192,
                                               .def = 512, .unit = "tokens", .fronts = FRONT_API | FRONT_CLI };
inline constexpr limit k_limit_max_plan_tasks{ .name = "max_plan_tasks", .flag = "--max-plan-tasks", .min = 1, .max = 16,
                                               .def = 6, .unit = "tasks", .fronts = FRONT_CLI };
inline constexpr limit k_limit_max_tool_steps{ .name = "max_tool_steps", .flag = "--max-tool-steps", .min = 0, .max = 32,
                                               .def = 4, .unit = "calls per agent", .fronts = FRONT_CLI };
inline constexpr limit k_limit_prune_threshold{ .name = "prune_threshold", .flag = "--prune-threshold", .min = -100,
                                                .max = 0, .def = -5, .unit = "nats", .fronts = FRONT_CLI, .integer = false };

// Stop strings: the request's own. A chat template adds its stops after these are checked
// (k_max_template_stops), so a request with the maximum still runs on every template.
inline constexpr limit k_limit_stop{ .name = "stop", .flag = "--stop", .min = 0, .max = 16, .unit = "strings",
                                     .fronts = FRONT_API | FRONT_CLI, .count = true };
inline constexpr limit k_limit_stop_bytes{ .name = "stop string", .flag = "--stop", .api = "each of `stop`", .min = 1, .max = 256, .unit = "bytes",
                                           .fronts = FRONT_API | FRONT_CLI, .count = true };

// What one request carries.
inline constexpr limit k_limit_messages{ .name = "messages", .min = 1, .max = 1024, .unit = "messages",
                                         .fronts = FRONT_API, .count = true };
inline constexpr limit k_limit_tools{ .name = "tools", .min = 0, .max = 64, .unit = "tools", .fronts = FRONT_API,
                                      .count = true };
inline constexpr limit k_limit_images{ .name = "images", .flag = "--image", .api = "`image_url` parts", .min = 0, .max = 16, .unit = "images",
                                       .fronts = FRONT_API | FRONT_CLI, .count = true,
                                       .serve_flag = "--max-images", .serve_default = 8 };
inline constexpr limit k_limit_attachments{ .name = "attachments", .min = 0, .max = 8, .unit = "files",
                                            .fronts = FRONT_API, .count = true };
inline constexpr limit k_limit_tables{ .name = "tables", .flag = "--data", .min = 0, .max = 16, .unit = "tables",
                                       .fronts = FRONT_CLI, .count = true };
inline constexpr limit k_limit_cache_salt{ .name = "cache_salt", .min = 0, .max = 256, .unit = "bytes",
                                           .fronts = FRONT_API, .count = true };

// Every request limit, in README's order.
inline constexpr const limit * k_request_limits[] = {
    &k_limit_temperature,   &k_limit_top_p,          &k_limit_top_k,          &k_limit_min_p,
    &k_limit_repeat_penalty, &k_limit_frequency_penalty, &k_limit_presence_penalty, &k_limit_seed,
    &k_limit_max_tokens,    &k_limit_thinking_budget, &k_limit_agents,        &k_limit_n,
    &k_limit_planner_budget, &k_limit_max_plan_tasks, &k_limit_max_tool_steps, &k_limit_prune_threshold, &k_limit_stop,
    &k_limit_stop_bytes,    &k_limit_messages,       &k_limit_tools,          &k_limit_images,
    &k_limit_attachments,   &k_limit_tables,         &k_limit_cache_salt,
};

// "" when v is a value l accepts, else one line naming `as` (empty: l.name):
// "agents must be an integer in [1, 16], got 17". A special value is the front ends' syntax
// (-1 for a random seed): below them, where it was already translated, pass special_ok = false.
std::string limit_problem(const limit & l, double v, const std::string & as = "", bool special_ok = true);

// "[1, 16]", "(0, 1]", "[0, 4294967294] or -1 (random)".
std::string limit_range_text(const limit & l);

// README's "Request limits" table, from k_request_limits.
std::string limits_markdown();

// ---- the engine's own caps ------------------------------------------------------------------
// What one sequence may ask of the engine, whoever asks: a mode adds its assistant prefix to
// the thinking budget and the budget to the answer's tokens, and the local backend adds the
// chat template's stop strings to the request's. The request limits sit inside them.

inline constexpr size_t  k_max_template_stops   = 16;
inline constexpr size_t  k_engine_max_stops     = (size_t) k_limit_stop.max + k_max_template_stops;
inline constexpr size_t  k_engine_max_stop_bytes = (size_t) k_limit_stop_bytes.max;
inline constexpr int32_t k_engine_max_budget    = 1 << 20;
inline constexpr int32_t k_engine_max_tokens    = 1 << 22;

static_assert(k_limit_thinking_budget.max < k_engine_max_budget, "room for a mode's assistant prefix");
static_assert(k_limit_max_tokens.max + k_limit_thinking_budget.max < k_engine_max_tokens);
static_assert(k_limit_seed.max < 4294967295.0, "0xFFFFFFFF is the engine's random seed");
static_assert(k_limit_max_tokens.serve_default <= k_limit_max_tokens.max && k_limit_agents.serve_default <= k_limit_agents.max &&
              k_limit_images.serve_default <= k_limit_images.max);

// ---- untrusted structure --------------------------------------------------------------------

// JSON schemas (response_format, tool parameters, --json-schema): llama.cpp's
// json_schema_to_grammar recurses once or twice per level.
constexpr int    k_max_schema_depth = 64;
constexpr size_t k_max_schema_bytes = 64u << 10;
constexpr int    k_max_schema_items = 1024;  // array elements and object members, all levels

// Any other JSON from outside: request bodies, uploaded tables, model-written plans and tool
// arguments. Values are copied and dumped recursively, so nesting is capped before parsing.
constexpr int k_max_json_depth = 128;

// A prompt's text: far beyond any context, it bounds the tokenizer's work and memory. (Prompts
// that the context cannot hold are refused from their size before tokenizing when the bytes
// prove it: see engine::submit.)
constexpr size_t k_max_prompt_bytes = 64u << 20;

}  // namespace muse
