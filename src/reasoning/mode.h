#pragma once
// The mode registry: every reasoning mode Muse has, with its name, its traits and the effort
// levels that map to it. The API parser, the CLI flags, the shared rules (app/assistant's
// check_ask_rules), the router and the orchestrator all ask it, so a mode is described once.
//
//   const muse::mode & m = muse::find_mode(muse::MODE_CONTEMPLATING);
//   m.name();                           // "contemplating"
//   m.traits().allows_json_schema;      // false: a JSON answer comes from one agent
//   muse::ask_mode mode;
//   muse::parse_ask_mode("Thinking", mode);         // true, MODE_THINKING
//   const muse::effort_level * e = muse::find_effort("high");  // MODE_THINKING, budget 8192
//   muse::mode_name_list(muse::all_modes());       // "instant, thinking, contemplating or auto"
//
// A mode builds the step graph of one request (reasoning/step-graph.h): instant and thinking
// one agent step, contemplating plan → sub-tasks → solvers → [refine] → aggregate, auto a route
// step that picks one of the others and adds its steps.
//
// Thread safety: the registry is built once, on first use, and read-only after; modes are
// stateless, so build() may run for many requests at once.

#include <cstdint>
#include <string>
#include <vector>

namespace muse {

enum ask_mode { MODE_AUTO, MODE_INSTANT, MODE_THINKING, MODE_CONTEMPLATING };

struct mode_traits {
    bool routes              = false;  // picks another mode per request (auto)
    bool reasons             = false;  // its agents reason before answering
    bool needs_fork          = false;  // agents fork a shared prefilled prefix (runs without fork, only slower)
    bool allows_client_tools = false;  // the caller's tools: one agent stops at their calls
    bool allows_json_schema  = false;  // a JSON answer (one agent, constrained from its first token)
    bool allows_n            = false;  // n > 1 independent answers
    bool builtin_tools       = false;  // its agents are offered the built-in tools
};

class ask_context;
class step_graph;

class mode {
  public:
    virtual ~mode()                     = default;
    virtual ask_mode     id() const     = 0;
    virtual const char * name() const   = 0;
    virtual mode_traits  traits() const = 0;
    // What the auto router's model is told the mode is for ("" for a routing mode).
    virtual const char * purpose() const = 0;
    // Adds the mode's steps for the request in ctx to g, after step `after` (-1: none).
    virtual void build(ask_context & ctx, step_graph & g, int after) const = 0;
};

// Every mode, in a stable order: instant, thinking, contemplating, auto.
const std::vector<const mode *> & all_modes();
const mode &                      find_mode(ask_mode m);

// "auto", "instant", "thinking", "contemplating"; "unknown" for a value outside the enum.
const char * ask_mode_name(ask_mode m);

// Accepts exactly those names, ASCII case-insensitive, surrounding whitespace ignored; `out` is untouched on false.
bool parse_ask_mode(const std::string & s, ask_mode & out);

// The names of `modes` as an English list: "instant, thinking or auto".
std::string mode_name_list(const std::vector<const mode *> & modes, const char * last_sep = " or ");

// The modes whose traits pass `keep`, in registry order.
std::vector<const mode *> modes_where(bool (*keep)(const mode_traits &));

// A reasoning effort (OpenAI's reasoning_effort) as a mode and a thinking budget.
struct effort_level {
    const char * name;
    ask_mode     mode;
    int32_t      budget;
};

// none, minimal, low, medium, high, xhigh.
const std::vector<effort_level> & effort_levels();
const effort_level *              find_effort(const std::string & name);  // nullptr when unknown
std::string                       effort_name_list();                     // "none, minimal, low, medium, high or xhigh"

}  // namespace muse
