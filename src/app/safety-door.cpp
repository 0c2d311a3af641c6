// The safety gates wired into a request (see safety-door.h).

#include "safety-door.h"

#include <algorithm>
#include <chrono>

#include "core/utf8.h"
#include "safety/injection.h"

namespace muse {

safety_door::safety_door(safety_policy p) : pol(std::move(p)), detector(pii_options{ .phone_regions = pol.phone_regions }) {}

error safety_door::check_input(ask_request & req, safety_decision & d, const std::string & untrusted, const std::string & marker) const {
    d = safety_decision{};
    if (!pol.enabled) return {};
    checks++;
    // The user's turn: the last user message (attachments' text included), and the one before
    // it for context when the turn is short ("and tonight?").
    std::string text;
    int         seen = 0;
    for (auto m = req.messages.rbegin(); m != req.messages.rend() && seen < 2; ++m) {
        if (m->role != "user") continue;
        text = m->content + (text.empty() ? "" : "\n" + text);
        if (++seen == 1 && m->content.size() > 200) break;
    }
    d.turn = text;
    classification c;
    try {
        c = test_classify ? test_classify(text) : cls.classify(text);
    } catch (const std::exception & e) {
        failures++;
        if (pol.fail_closed) {
            return { ERROR_INTERNAL, std::string("the safety check failed (") + e.what() +
                                         "), so the request was not run; the server's --safety-fail open lets such requests through" };
        }
        d.actions.push_back("failed_open");
        return {};
    }
    d      = decide(c, pol);
    d.turn = text;
    // Untrusted content: data between the request's markers; instruction-like text in it turns
    // side-effecting client tools off for this request.
    // The client's tool results: untrusted, between this request's markers.
    std::string mark = marker, all = untrusted;
    for (auto & m : req.messages) {
        if (m.role != "tool" || m.content.empty()) continue;
        if (mark.empty()) mark = new_spotlight_marker();
        all += "\n" + m.content;
        m.content = spotlight(m.content, mark);
    }
    std::string extra;
    if (!mark.empty()) extra = spotlight_instruction(mark);
    if (!all.empty()) {
        const injection_scan inj = scan_untrusted(all);
        d.injection              = inj.signals;
        if (inj.flagged) {
            injections++;
            d.actions.push_back("injection_flagged");
            auto & tools = req.opt.client_tools;
            for (auto t = tools.begin(); t != tools.end();) {
                if (t->side_effects) {
                    d.tools_withheld.push_back(t->name);
                    t = tools.erase(t);
                } else {
                    ++t;
                }
            }
            if (!d.tools_withheld.empty()) {
                withheld++;
                d.actions.push_back("tools_withheld");
            }
        }
    }
    if (!extra.empty()) d.instruction = d.instruction.empty() ? extra : d.instruction + " " + extra;
    for (const auto & h : d.input.hazards) by_hazard[(int) h.category]++;
    for (const auto & f : d.input.red_flags) by_flag[f.flag]++;
    if (d.refuse) refusals++;
    for (const auto & a : d.actions) {
        if (a == "emergency_first") emergency++;
        if (a == "crisis_first") crisis++;
        if (a == "disclaimer") disclaimers++;
    }
    if (!d.instruction.empty() && !d.refuse) {
        if (!req.messages.empty() && req.messages.front().role == "system") {
            req.messages.front().content += "\n\n" + d.instruction;
        } else {
            chat_message sys;
            sys.role    = "system";
            sys.content = d.instruction;
            req.messages.insert(req.messages.begin(), sys);
        }
    }
    return {};
}

void safety_door::check_output(const safety_decision & d, ask_result & r, std::vector<std::string> * blocked) const {
    if (d.refuse) return;
    // A call to a withheld tool does not reach the client (a backend that ignored the tool list).
    if (!d.tools_withheld.empty() && !r.tool_calls.empty()) {
        for (auto c = r.tool_calls.begin(); c != r.tool_calls.end();) {
            if (std::find(d.tools_withheld.begin(), d.tools_withheld.end(), c->name) != d.tools_withheld.end()) {
                blocked_calls++;
                if (blocked) blocked->push_back(c->name);
                c = r.tool_calls.erase(c);
            } else {
                ++c;
            }
        }
        if (r.tool_calls.empty() && r.finish == FINISH_TOOL_CALLS) r.finish = FINISH_STOP;
    }
    if (r.answer.empty() && !r.tool_calls.empty()) return;  // a tool call: no text to frame
    stream_gate g(d, detector);
    r.answer = d.prefix + g.check_whole(r.answer) + (r.answer.empty() && d.prefix.empty() ? "" : d.suffix);
}

std::string safety_door::trace_json(const safety_decision & d, const safety_policy & p, const std::vector<std::string> & blocked) {
    nlohmann::ordered_json hz = nlohmann::ordered_json::array(), fl = nlohmann::ordered_json::array();
    for (const auto & h : d.input.hazards) {
        hz.push_back({ { "category", hazard_code(h.category) }, { "name", hazard_name(h.category) }, { "score", h.score }, { "rule", h.rule } });
    }
    for (const auto & f : d.input.red_flags) fl.push_back({ { "flag", red_flag_name(f.flag) }, { "rule", f.rule } });
    nlohmann::ordered_json j = { { "decided_by", "rules" }, { "categories", hz }, { "red_flags", fl },
                                 { "advice", advice_name(d.input.advice) }, { "personal_dosing", d.input.personal_dosing },
                                 { "actions", d.actions }, { "locale", p.locale } };
    if (d.refuse) j["refused_by"] = d.refused_by;
    if (!d.injection.empty()) j["injection"] = d.injection;
    if (!d.tools_withheld.empty()) j["tools_withheld"] = d.tools_withheld;
    if (!blocked.empty()) j["tool_calls_blocked"] = blocked;
    for (const auto & a : d.actions) {
        if (a == "emergency_first" || a == "crisis_first") {
            j["emergency_number"] = emergency_number_for(p);
            j["crisis_line"]      = crisis_line_for(p);
        }
    }
    return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

void safety_door::redact_json(nlohmann::ordered_json & j, pii_redactor & r) const {
    if (j.is_string()) {
        const std::string s = j.get<std::string>();
        const std::string t = r.redact(s, detector);
        if (t != s) j = t;
    } else if (j.is_array() || j.is_object()) {
        for (auto & v : j) redact_json(v, r);
    }
}

void safety_door::redact_trace(ask_result & r, pii_redactor & red) const {
    for (auto & a : r.agents) {
        a.reasoning = red.redact(a.reasoning, detector);
        a.answer    = red.redact(a.answer, detector);
        for (auto & c : a.tool_calls) {
            c.arguments = red.redact(c.arguments, detector);
            c.result    = red.redact(c.result, detector);
        }
    }
}

std::string safety_door::for_log(const std::string & text) const {
    if (!pol.enabled || !pol.redact_logs) return text;
    pii_redactor r;
    return r.redact(text, detector);
}

void safety_door::set_guard(backend * g) {
    guard = g;
    style = GUARD_PROMPT_LLAMA_GUARD;
    if (!g) return;
    const auto meta = nlohmann::json::parse(g->caps().meta_json, nullptr, false);
    if (meta.is_object()) style = guard_style_for(meta.value("chat_template", std::string()), meta.value("name", std::string()));
}

safety_door::guard_outcome safety_door::run_guard(const std::string & turn, const std::string & cache_salt, const cancel_token & cancel) const {
    guard_runs++;
    guard_outcome out = ask_guard(turn, cache_salt, cancel);
    if (out.err) guard_failures++;
    else if (!out.verdict.safe) guard_unsafe++;
    return out;
}

void safety_door::warm_guard() const {
    if (guard) (void) ask_guard("Hello.", "warm-up", cancel_token{});
}

safety_door::guard_outcome safety_door::ask_guard(const std::string & turn, const std::string & cache_salt, const cancel_token & cancel) const {
    guard_outcome out;
    if (!guard) {
        out.err = { ERROR_INTERNAL, "no guard model" };
        return out;
    }
    const auto         t0   = std::chrono::steady_clock::now();
    const backend_caps caps = guard->caps();
    // A turn longer than the guard's context is judged in overlapping windows, side by side
    // (a token is at least a byte, so a window of n_ctx - 640 bytes always fits beside the
    // ~250-token task prompt); unsafe anywhere is unsafe.
    std::vector<std::string> windows;
    constexpr size_t         k_max_windows = 64;
    const size_t             w = caps.n_ctx > 1152 ? std::min<size_t>((size_t) caps.n_ctx - 640, 32 * 1024) : 32 * 1024;
    if (turn.size() <= w) {
        windows.push_back(turn);
    } else {
        const size_t overlap = std::min<size_t>(256, w / 4);
        for (size_t at = 0; at < turn.size();) {
            const size_t end = at + w >= turn.size() ? turn.size() : utf8_floor(turn, at + w);
            windows.push_back(turn.substr(at, end - at));
            if (end == turn.size()) break;
            at = std::max(at + 1, utf8_floor(turn, end - overlap));
        }
        if (windows.size() > k_max_windows) {
            out.err = { ERROR_INVALID_ARGUMENT, "the turn is too long for the guard model: " + std::to_string(windows.size()) +
                                                    " windows of its context, at most " + std::to_string(k_max_windows) };
            return out;
        }
    }
    std::vector<std::unique_ptr<chat_stream>> streams;
    for (const auto & text : windows) {
        chat_request r;
        chat_message m;
        m.role    = "user";
        m.content = guard_prompt(text, style);
        r.messages.push_back(m);
        r.max_tokens = guard_max_tokens;
        if (caps.grammar) r.grammar = guard_grammar();
        r.reasoning            = REASONING_OFF;
        r.sampling.temperature = 0;
        r.cache_salt           = "guard:" + cache_salt;
        r.public_until         = text.substr(0, 256);  // the task prompt before it is the same for every user
        streams.push_back(guard->start(r));
    }
    cancel_callback on_cancel(cancel, [&streams] {
        for (auto & s : streams) s->cancel();
    });
    for (auto & stream : streams) {
        chat_result res;
        chat_event  ev;
        while (stream->next(ev)) res.add(ev);
        if (!out.raw.empty()) out.raw += " | ";
        out.raw += utf8_head(res.content, 200);
        if (out.err) continue;
        if (res.err) {
            out.err = res.err;
            continue;
        }
        const guard_verdict v = parse_guard_output(res.content);
        if (!v.ok) {
            out.err = { ERROR_INTERNAL, "the guard model's answer is not 'safe' or 'unsafe' and categories" };
            continue;
        }
        out.verdict.ok = true;
        if (v.safe) continue;
        out.verdict.safe = false;
        for (const auto & c : v.categories) {
            if (std::find(out.verdict.categories.begin(), out.verdict.categories.end(), c) == out.verdict.categories.end()) {
                out.verdict.categories.push_back(c);
            }
        }
    }
    out.windows = (int) windows.size();
    out.ms      = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    return out;
}

std::vector<backend_metric> safety_door::stats() const {
    std::vector<backend_metric> m = {
        { "muse_safety_checks_total", "counter", "Requests the safety gates classified.", (double) checks.load() },
        { "muse_safety_refusals_total", "counter", "Requests refused by the safety policy.", (double) refusals.load() },
        { "muse_safety_failures_total", "counter", "Safety checks that failed (refused when failing closed).", (double) failures.load() },
        { "muse_safety_emergency_first_total", "counter", "Answers that put emergency guidance first.", (double) emergency.load() },
        { "muse_safety_crisis_first_total", "counter", "Answers that put crisis-line guidance first.", (double) crisis.load() },
        { "muse_safety_disclaimers_total", "counter", "Answers given a health, legal or financial disclaimer.", (double) disclaimers.load() },
        { "muse_safety_guard_runs_total", "counter", "Verdicts asked of the guard model.", (double) guard_runs.load() },
        { "muse_safety_guard_unsafe_total", "counter", "Turns the guard model called unsafe.", (double) guard_unsafe.load() },
        { "muse_safety_guard_failures_total", "counter", "Guard model runs that failed or answered out of format.", (double) guard_failures.load() },
        { "muse_safety_injections_total", "counter", "Requests whose untrusted content looked like instructions.", (double) injections.load() },
        { "muse_safety_tools_withheld_total", "counter", "Requests whose side-effecting tools were withheld.", (double) withheld.load() },
        { "muse_safety_tool_calls_blocked_total", "counter", "Calls to withheld tools dropped.", (double) blocked_calls.load() },
    };
    for (int h = 1; h <= 14; ++h) {
        m.push_back({ std::string("muse_safety_hazard_") + hazard_code((hazard) h) + "_total", "counter",
                      std::string("Requests classified as ") + hazard_code((hazard) h) + " (" + hazard_name((hazard) h) + ").",
                      (double) by_hazard[h].load() });
    }
    for (int f = 0; f < RF_COUNT; ++f) {
        m.push_back({ std::string("muse_safety_red_flag_") + red_flag_name((red_flag) f) + "_total", "counter",
                      std::string("Requests with the medical red flag ") + red_flag_name((red_flag) f) + ".", (double) by_flag[f].load() });
    }
    for (auto & x : m) {
        for (char & c : x.name) c = (char) std::tolower((unsigned char) c);
    }
    return m;
}

}  // namespace muse
