#pragma once
// What the command line shows while an answer comes: the answering agent's text (reasoning
// dimmed on a terminal), or a contemplating request's live agent view on stderr. Shared by
// `muse ask` and `muse chat`.

#include "ask-flags.h"
#include "cli.h"

#include "app/assistant.h"

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

namespace muse::cli {

// The live view of a contemplating request: one line per agent on stderr, redrawn in place
// on a terminal, or one line per change otherwise.
class agent_view {
  public:
    agent_view(bool tty, bool enabled) : tty(tty), enabled(enabled) {}

    void on(const ask_event & ev) {
        if (!enabled) {
            return;
        }
        switch (ev.type) {
            case ask_event::AGENT_START:
                rows.push_back({ ev.agent, agent_kind_name(ev.kind), ev.role, 0, "thinking" });
                if (!tty) {
                    fprintf(stderr, "[agent %d] %s: %s started\n", ev.agent, agent_kind_name(ev.kind), ev.role.c_str());
                }
                break;
            case ask_event::AGENT_DELTA:
                if (row * r = find(ev.agent)) {
                    r->tokens = ev.tokens;
                    r->state  = ev.delta == chat_event::REASONING ? "thinking" : "answering";
                }
                break;
            case ask_event::AGENT_TOOL:
                if (!tty) {
                    fprintf(stderr, "[agent %d] tool: %s\n", ev.agent, ev.text.c_str());
                }
                break;
            case ask_event::AGENT_END:
                if (row * r = find(ev.agent)) {
                    r->tokens = ev.tokens;
                    r->state  = ev.detail;
                }
                if (!tty) {
                    fprintf(stderr, "[agent %d] %s after %d tokens\n", ev.agent, ev.detail.c_str(), ev.tokens);
                }
                break;
            case ask_event::PLAN:
                fprintf(stderr, "%splan: %s\n", tty ? clear_lines().c_str() : "", ev.text.c_str());
                drawn = 0;
                break;
            case ask_event::AGGREGATE:
                redraw(true);
                fprintf(stderr, "%s\n", ev.text.c_str());
                return;
            case ask_event::MODE:
                return;
        }
        redraw(false);
    }

  private:
    struct row {
        int         agent;
        std::string kind, role;
        int32_t     tokens;
        std::string state;
    };
    row * find(int agent) {
        for (auto & r : rows) {
            if (r.agent == agent) {
                return &r;
            }
        }
        return nullptr;
    }
    std::string clear_lines() {
        std::string s;
        for (int i = 0; i < drawn; ++i) {
            s += "\033[1A\033[2K";
        }
        return s;
    }
    void redraw(bool force) {
        if (!tty) {
            return;
        }
        const auto now = std::chrono::steady_clock::now();
        if (!force && now - last < std::chrono::milliseconds(100)) {
            return;
        }
        last          = now;
        std::string s = clear_lines();
        for (const auto & r : rows) {
            char line[256];
            snprintf(line, sizeof(line), "  [%d] %-11s %-26.26s %6d tok  %s\n", r.agent, r.kind.c_str(), r.role.c_str(),
                     r.tokens, r.state.c_str());
            s += line;
        }
        drawn = (int) rows.size();
        fputs(s.c_str(), stderr);
        fflush(stderr);
    }

    bool                                  tty, enabled;
    std::vector<row>                      rows;
    int                                   drawn = 0;
    std::chrono::steady_clock::time_point last;
};

// What `muse ask` prints while the answer comes: the answering agent's text (reasoning dimmed
// on a terminal), or the contemplating agents' live view on stderr.
class answer_printer {
  public:
    answer_printer(const ask_flags & f, ask_mode requested) :
        f(f), requested(requested), mode_used(requested), show_reasoning(!f.hide_reasoning && !f.as_json && stdout_is_tty()),
        view(stderr_is_tty(), !f.as_json && (f.show_agents || stderr_is_tty())) {}

    void on(const ask_event & ev) {
        if (ev.type == ask_event::MODE) {
            parse_ask_mode(ev.text, mode_used);
            if (!f.as_json && requested == MODE_AUTO) fprintf(stderr, "mode: %s (%s)\n", ev.text.c_str(), ev.detail.c_str());
            return;
        }
        if (mode_used == MODE_CONTEMPLATING) return view.on(ev);
        // Instant and thinking: stream the answering agent.
        if (f.as_json || ev.type != ask_event::AGENT_DELTA || ev.kind != AGENT_ANSWER) return;
        if (ev.delta == chat_event::REASONING) {
            if (show_reasoning) {
                fputs(in_reasoning ? "" : "\033[2m", stdout);
                in_reasoning = true;
                fputs(ev.text.c_str(), stdout);
                fflush(stdout);
            }
            return;
        }
        if (in_reasoning) {
            fputs("\033[0m\n\n", stdout);
            in_reasoning = false;
        }
        fputs(ev.text.c_str(), stdout);
        fflush(stdout);
        streamed = true;
    }

    // After the run: the contemplating answer (and agents with --show-agents), the last newline.
    void finish(const ask_result & r) {
        if (in_reasoning) fputs("\033[0m", stdout);
        if (r.mode == MODE_CONTEMPLATING) {
            if (f.show_agents) {
                for (const auto & t : r.agents) {
                    printf("--- agent %d (%s, %s)%s\n%s\n", t.index, agent_kind_name(t.kind), t.role.c_str(), t.pruned ? " [pruned]" : "",
                           t.answer.c_str());
                }
                printf("--- answer\n");
            }
            fputs(r.answer.c_str(), stdout);
            streamed = true;
        }
        if (streamed || !r.reasoning.empty()) fputs("\n", stdout);
        fflush(stdout);
    }

  private:
    const ask_flags & f;
    const ask_mode    requested;
    ask_mode          mode_used;
    const bool        show_reasoning;
    bool              in_reasoning = false;
    bool              streamed     = false;
    agent_view        view;
};

}  // namespace muse::cli
