#include "assistant.h"

#include "safety-door.h"
#include "safety/injection.h"

#include "agents/tools.h"
#include "app/fold-attachments.h"
#include "reasoning/mode.h"

#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>

namespace muse {

std::string scoped_cache_salt(const std::string & user, const std::string & client_salt) {
    // The user's length first: no pair of user and client salt can spell another pair's scope.
    return std::to_string(user.size()) + ":" + user + "\x1f" + client_salt;
}

namespace {

error refuse(ask_refusal * why, std::string field, std::string message) {
    if (why) why->field = std::move(field);
    return { ERROR_INVALID_ARGUMENT, std::move(message) };
}

}  // namespace

assistant::assistant(backend & be, assistant_params p) : be(be), params(p) {}

void assistant::add_input_hook(std::shared_ptr<input_hook> h) {
    in_hooks.push_back(std::move(h));
}

void assistant::add_output_hook(std::shared_ptr<output_hook> h) {
    out_hooks.push_back(std::move(h));
}

error check_ask_rules(ask_request & req, int32_t n, int32_t max_n, ask_refusal * why) {
    ask_options & opt = req.opt;
    if (n < 1 || n > max_n) {
        return refuse(why, "n", "n must be in [1, " + std::to_string(max_n) + "], got " + std::to_string(n));
    }
    // What each mode allows is the registry's (reasoning/mode.h).
    const mode & m = find_mode(opt.mode);
    // A JSON answer is constrained from its first token: one agent.
    if (!opt.json_schema.empty()) {
        if (!m.traits().allows_json_schema) {
            return refuse(why, "json_schema", std::string("a JSON answer comes from one agent: a JSON schema cannot be combined with mode ") + m.name());
        }
        if (m.traits().routes) {
            opt.mode = MODE_INSTANT;  // the schema constrains the whole output, so no reasoning
        }
    }
    if (!opt.client_tools.empty() && !m.traits().allows_client_tools) {
        return refuse(why, "tools", "client tools are answered by one agent: use mode " +
                                        mode_name_list(modes_where([](const mode_traits & t) { return t.allows_client_tools; })) +
                                        ", not " + m.name());
    }
    if (n > 1 && !m.traits().allows_n) {
        return refuse(why, "n", "n > 1 is for " +
                                    mode_name_list(modes_where([](const mode_traits & t) { return t.allows_n && !t.routes; }), " and ") +
                                    "; " + m.name() + " already runs `agents` solvers");
    }
    // A mode without built-in tools (instant: a direct answer) offers none (attachments may still bring theirs).
    if (!find_mode(opt.mode).traits().builtin_tools) {
        opt.tools.clear();
    }
    if (std::string e = validate(opt); !e.empty()) {
        return refuse(why, "", e);
    }
    return {};
}

error assistant::check(ask_input & in, ask_refusal * why) const {
    if (in.request.messages.empty()) {
        return refuse(why, "messages", "the request has no messages");
    }
    if (error e = check_ask_rules(in.request, in.n, params.max_n, why)) return e;
    // A conversation whose text alone proves it cannot fit the context is refused before it is
    // rendered, tokenised or copied for the agents.
    const backend_caps caps = be.caps();
    size_t             text = 0;
    for (const auto & m : in.request.messages) text += m.content.size() + m.reasoning_content.size();
    if (!caps.tools && !in.request.opt.client_tools.empty()) {
        return refuse(why, "tools", "this model's chat template cannot show tools to the model or parse its calls; "
                                    "send the request without tools, or use a model whose template has tool calling");
    }
    if (caps.max_prompt_bytes > 0 && text > caps.max_prompt_bytes) {
        if (why) why->field = "messages";
        return { ERROR_CONTEXT_OVERFLOW, "the messages (" + std::to_string(text) + " bytes of text) cannot fit the model's context of " +
                                             std::to_string(caps.n_ctx) + " tokens: shorten them (or use a larger context)" };
    }
    return {};
}

error assistant::prepare(ask_input in, prepared_ask & p, ask_refusal * why, const cancel_token & cancel) const {
    if (error e = check(in, why)) return e;
    for (const auto & h : in_hooks) {
        if (error e = h->check(in.session, in.request)) {
            if (why) why->field = h->name();
            return e;
        }
    }
    // One user's requests never reuse, nor learn the length of, another's cached prefixes.
    in.request.cache_salt = scoped_cache_salt(in.session.user, in.request.cache_salt);

    // Attachments, within the request's memory budget (an image's from its header, before it
    // is decoded); what they bring is folded into the last user message.
    std::shared_ptr<attachment_set> att = in.read;
    if (!att) {
        att = std::make_shared<attachment_set>(image_limits{}, table_limits{}, params.request_memory);
        for (auto & a : in.attachments) {
            const std::string & bytes = a.shared ? *a.shared : a.bytes;
            error e;
            if (a.kind == attachment_input::IMAGE) {
                e = !a.path.empty() ? att->add_image_file(a.path)
                    : bytes.rfind("data:", 0) == 0 ? att->add_image_data_uri(bytes)
                                                   : att->add_image_bytes(a.name, bytes);
            } else {
                e = !a.path.empty() ? att->add_table_file(a.path) : att->add_table_bytes(a.name, bytes, a.format);
            }
            if (e) {
                if (why) why->field = a.field.empty() ? "attachments" : a.field;
                return { e.code == ERROR_INTERNAL ? ERROR_INTERNAL : ERROR_BAD_INPUT, a.name + ": " + e.message };
            }
            std::string().swap(a.bytes);  // decoded: the encoded copy is not needed any more
            a.shared.reset();
            if (cancel.stop_requested()) {
                if (why) why->field = "attachments";
                return { ERROR_ENGINE_STOPPED, "cancelled while reading the attachments" };
            }
        }
        in.attachments.clear();
    }
    p.tools = std::make_shared<tool_registry>(builtin_tools());
    // With the safety gates, the attachments' text goes between this request's markers.
    const bool        gates  = params.safety && params.safety->policy().enabled;
    const std::string marker = gates && att && !att->empty() ? new_spotlight_marker() : "";
    const std::string block  = fold_attachments(att, in.request, *p.tools, be.caps().vision, marker);
    // The safety gates read the turn with its attachments' text folded in.
    if (params.safety) {
        p.safety = std::make_shared<safety_decision>();
        if (error e = params.safety->check_input(in.request, *p.safety, block, marker)) {
            if (why) why->field = "safety";
            return e;
        }
    }
    p.att = att;
    p.in  = std::move(in);
    return {};
}

void assistant::run(prepared_ask & p, const choice_sink & sink, const cancel_token & cancel, ask_output & out) const {
    if (!p.att->empty()) out.attachments = p.att->to_json(be.caps().vision);
    out.tools = p.in.request.opt.tools;

    // n choices at once, each its own orchestrator run (its own seed when one was given).
    const int n = p.in.n;
    out.results.assign(n, ask_result{});
    const safety_decision * sd   = p.safety.get();
    const safety_door *     door = params.safety.get();
    // The guard model, when there is one, judges the turn beside the answer: each choice's events
    // are held until its verdict, and a veto (unsafe, or a failure when failing closed) stops
    // the answers at once rather than letting them run to their end unseen.
    cancel_source   veto;
    cancel_callback veto_on_cancel(cancel, [&veto] { veto.request_stop(); });
    const cancel_token answer_cancel = veto.get_token();
    std::shared_future<safety_door::guard_outcome> guard_f;  // after veto: its end waits for the task
    if (sd && door && door->guard_backend() && !sd->refuse) {
        const std::string salt = p.in.request.cache_salt;  // the user's scope (prepare set it)
        guard_f = std::async(std::launch::async, [door, sd, salt, cancel, &veto] {
                      safety_door::guard_outcome g = door->run_guard(sd->turn, salt, cancel);
                      if ((g.err && door->policy().fail_closed) || (!g.err && !g.verdict.safe)) veto.request_stop();
                      return g;
                  }).share();
    }
    auto run_choice = [&](int i) {
        std::vector<std::string> blocked;  // calls to withheld tools this choice made
        nlohmann::ordered_json   guard_trace;
        try {
            ask_request r = p.in.request;
            if (n > 1 && r.opt.sampling.seed != 0xFFFFFFFF) r.opt.sampling.seed += (uint32_t) i;
            auto refuse_with = [&](const std::string & text, const std::string & reason) {
                ask_result & res   = out.results[i];
                res.mode_requested = r.opt.mode;
                res.mode           = MODE_INSTANT;
                res.mode_reason    = reason;
                res.answer         = text;
                res.reasoning.clear();
                res.tool_calls.clear();
                res.aggregation = "none";
                res.finish      = FINISH_STOP;
                if (sink) {
                    ask_event ev;
                    ev.type  = ask_event::AGENT_DELTA;
                    ev.agent = 0;
                    ev.kind  = AGENT_ANSWER;
                    ev.delta = chat_event::CONTENT;
                    ev.text  = text;
                    sink(i, ev);
                }
            };
            if (sd && sd->refuse) {
                // Refused by the policy: the refusal is the answer, and nothing runs.
                refuse_with(sd->refusal, "refused by the safety policy (" + sd->refused_by + ")");
                if (door) out.results[i].safety_json = safety_door::trace_json(*sd, door->policy());
                return;
            }
            orchestrator orch(be, *p.tools);
            ask_sink s;
            // While the guard has not spoken, everything this choice would show is held.
            std::vector<ask_event> held;
            bool                   holding = guard_f.valid(), vetoed = false;
            auto emit = [&](const ask_event & ev) {
                if (holding && guard_f.wait_for(std::chrono::seconds(0)) == std::future_status::ready) {
                    const auto & g = guard_f.get();
                    holding        = false;
                    vetoed         = (g.err && door->policy().fail_closed) || (!g.err && !g.verdict.safe);
                    if (!vetoed) {
                        for (const auto & h : held) sink(i, h);
                    }
                    held.clear();
                }
                if (vetoed) return;
                if (holding) held.push_back(ev);
                else sink(i, ev);
            };
            // gate_stream: the answering agent's content passes the safety gate (guidance before
            // the first word, sentences held while they are checked); the rest goes as it is.
            std::unique_ptr<stream_gate> gate;
            bool                         started = false;
            ask_event                    answer_ev;
            if (sd && door) gate = std::make_unique<stream_gate>(*sd, door->pii());
            if (sink) {
                s = [&](const ask_event & ev) {
                    if (!gate || ev.type != ask_event::AGENT_DELTA || ev.kind != AGENT_ANSWER || ev.delta != chat_event::CONTENT) {
                        emit(ev);
                        return;
                    }
                    ask_event out_ev = ev;
                    if (!started) {
                        started   = true;
                        answer_ev = ev;
                        if (!sd->prefix.empty()) {
                            out_ev.text = sd->prefix;
                            emit(out_ev);
                        }
                    }
                    out_ev.text = gate->push(ev.text);
                    if (!out_ev.text.empty()) emit(out_ev);
                };
            }
            out.results[i] = orch.run(r, s, guard_f.valid() ? answer_cancel : cancel);
            if (guard_f.valid()) {
                const auto & g = guard_f.get();  // waits for the verdict
                guard_trace    = { { "verdict", g.err ? "error" : g.verdict.safe ? "safe" : "unsafe" }, { "categories", g.verdict.categories },
                                   { "ms", g.ms }, { "output", g.raw }, { "prompt", guard_style_name(door->guard_style()) },
                                   { "windows", g.windows } };
                if (g.err) guard_trace["error"] = g.err.message;
                const bool fail = g.err && door->policy().fail_closed;
                if (fail) {
                    // Failing closed: nothing of the answer is shown or kept.
                    const ask_mode mode = out.results[i].mode;
                    out.results[i]      = ask_result{};
                    out.results[i].mode = mode;
                    out.results[i].err  = { ERROR_INTERNAL, "the guard model failed (" + g.err.message +
                                                               "), so the answer was withheld; the server's --safety-fail open lets it through" };
                    holding = false;
                    held.clear();
                } else if (!g.err && !g.verdict.safe) {
                    holding = false;
                    held.clear();
                    const ask_usage use = out.results[i].use;  // what the stopped answer computed
                    out.results[i]      = ask_result{};
                    out.results[i].use  = use;
                    std::string cats;
                    for (const auto & c : g.verdict.categories) cats += (cats.empty() ? "" : ",") + c;
                    refuse_with(refusal_text(door->policy()), "refused by the guard model (" + cats + ")");
                    vetoed = true;
                } else if (holding) {
                    holding = false;  // safe, or failing open: what was held goes now
                    if (sink) {
                        for (const auto & h : held) sink(i, h);
                    }
                    held.clear();
                }
                if (g.err && !fail) guard_trace["failed_open"] = true;
            }
            if (sd && door && !vetoed && !out.results[i].err) {
                if (started && sink) {
                    ask_event tail = answer_ev;
                    tail.text      = gate->flush();
                    if (!tail.text.empty()) sink(i, tail);
                    const ask_result & res = out.results[i];
                    if (!sd->suffix.empty() && !(res.answer.empty() && !res.tool_calls.empty())) {
                        tail.text = sd->suffix;
                        sink(i, tail);
                    }
                }
                door->check_output(*sd, out.results[i], &blocked);
            }
        } catch (const std::exception & e) {
            out.results[i].err = { ERROR_INTERNAL, std::string("internal error: ") + e.what() };
        }
        if (sd && door) {
            out.results[i].safety_json = safety_door::trace_json(*sd, door->policy(), blocked);
            if (!guard_trace.is_null()) {
                auto j     = nlohmann::ordered_json::parse(out.results[i].safety_json);
                j["guard"] = guard_trace;
                out.results[i].safety_json = j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
            }
        }
    };
    std::vector<std::thread> runs;
    for (int i = 1; i < n; ++i) runs.emplace_back(run_choice, i);
    run_choice(0);
    for (auto & t : runs) t.join();

    for (const auto & h : out_hooks) h->check(p.in.session, p.in.request, out.results);
    // Traces are redacted (one redactor: the same value keeps its placeholder across choices).
    if (door && door->policy().enabled && door->policy().redact_traces) {
        pii_redactor red;
        for (auto & r : out.results) door->redact_trace(r, red);
    }
}

error assistant::ask(ask_input in, const choice_sink & sink, const cancel_token & cancel, ask_output & out, ask_refusal * why) const {
    prepared_ask p;
    if (error e = prepare(std::move(in), p, why, cancel)) return e;
    run(p, sink, cancel, out);
    return {};
}

}  // namespace muse
