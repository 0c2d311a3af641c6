#include "agent.h"

#include "core/random.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <mutex>

namespace muse {

double agent_env::now_ms() const {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

void confidence_window::add(float lp) {
    sum_all += lp;
    n_all++;
    if ((int32_t)vals.size() < w) {
        vals.push_back(lp);
        sum += lp;
        if ((int32_t) vals.size() == w) {
            note_full();
        }
        return;
    }
    sum += lp - vals[next];
    vals[next] = lp;
    next       = (next + 1) % vals.size();
    note_full();
}

void confidence_window::note_full() {
    if (!any_full || sum < min_sum) {
        min_sum  = sum;
        any_full = true;
    }
}

double confidence_window::weakest() const {
    if (any_full) {
        return min_sum;
    }
    return n_all > 0 ? mean_all() * (double) w : 0.0;
}

double confidence_window::mean() const {
    return vals.empty() ? 0.0 : sum / (double)vals.size();
}

namespace {

// The stream an agent is reading now, which a cancel reaches through the callback.
class live_stream {
  public:
    explicit live_stream(const cancel_token & tok) : cb(tok, [this] { cancel(); }) {}
    ~live_stream() { set(nullptr); }

    // The stream cancel() reaches from now on; cancelled at once when the request already is.
    void set(chat_stream * s) {
        std::lock_guard<std::mutex> lk(mu);
        cur = s;
        if (cur && stopped)
            cur->cancel();
    }

  private:
    void cancel() {
        std::lock_guard<std::mutex> lk(mu);
        stopped = true;
        if (cur)
            cur->cancel();
    }

    std::mutex      mu;
    chat_stream *   cur     = nullptr;
    bool            stopped = false;
    cancel_callback cb;  // last: registered once the members it touches exist
};

bool contains(const std::vector<std::string> & v, const std::string & x) {
    return std::find(v.begin(), v.end(), x) != v.end();
}

}  // namespace

static agent_trace run_agent_steps(const agent_env & env, const agent_spec & spec);

// Agents run on their own threads: an exception (out of memory, a bug) fails this agent with
// an error the caller sees, instead of terminating the process.
agent_trace run_agent(const agent_env & env, const agent_spec & spec) {
    const double start = env.now_ms();
    std::string  what;
    try {
        return run_agent_steps(env, spec);
    } catch (const std::exception & e) {
        what = e.what();
    } catch (...) {
        what = "unknown exception";
    }
    fprintf(stderr, "muse: agent %s failed: %s\n", spec.role.c_str(), what.c_str());
    agent_trace t;
    t.role     = spec.role;
    t.err      = { ERROR_INTERNAL, "internal error: " + what };
    t.start_ms = start;
    t.end_ms   = env.now_ms();
    return t;
}

static agent_trace run_agent_steps(const agent_env & env, const agent_spec & spec) {
    chat_request rq      = spec.request;
    rq.retain            = true;  // a tool step's continuation forks this step's cache
    rq.logprobs          = rq.logprobs || spec.prune;
    rq.cache_salt        = env.cache_salt;
    const int32_t budget = rq.reasoning_budget;

    agent_trace t;
    t.role        = spec.role;
    t.start_ms    = env.now_ms();
    t.temperature = rq.sampling.temperature;
    t.seed        = rq.sampling.seed;

    auto emit = [&](const agent_event & ev) {
        if (env.on_event)
            env.on_event(ev);
    };

    confidence_window            win(spec.prune_window);
    int32_t                      n_reason_tokens = 0;
    int32_t                      tool_steps      = 0;
    std::unique_ptr<chat_stream> cur;
    std::unique_ptr<chat_stream> prev;              // the previous step, kept until its continuation has forked it
    live_stream                  live(env.cancel);  // after the streams: its callback is gone before they are

    for (;;) {
        if (env.cancel.stop_requested()) {
            t.finish = FINISH_CANCELLED;
            break;
        }
        cur = env.be.start(rq);
        live.set(cur.get());
        chat_result r;
        chat_event  ev;
        bool        pruned = false;
        while (cur->next(ev)) {
            prev.reset();  // the continuation is admitted: its fork has been resolved
            r.add(ev);
            const bool reasoning = ev.type == chat_event::REASONING;
            for (float lp : ev.logprobs) {
                win.add(lp);
                n_reason_tokens += reasoning ? 1 : 0;
            }
            if (spec.prune && reasoning && !pruned && win.full() && win.mean() < spec.prune_threshold) {
                pruned = true;
                cur->cancel();
            }
            if (ev.type == chat_event::REASONING || ev.type == chat_event::CONTENT) {
                agent_event ae;
                ae.type   = agent_event::DELTA;
                ae.delta  = ev.type;
                ae.text   = ev.text;
                ae.tokens = t.tokens + (int32_t)r.logprobs.size();
                emit(ae);
            }
        }
        prev.reset();
        t.tokens += r.use.completion_tokens;
        t.prompt_tokens_prefilled += r.use.prompt_tokens_prefilled;
        t.prompt_tokens_reused += r.use.prompt_tokens_reused;
        t.reasoning += r.reasoning;
        t.answer = r.content;
        t.finish = r.finish;
        if (pruned) {
            t.pruned       = true;
            t.finish       = FINISH_CANCELLED;
            t.tokens_saved = budget >= 0 ? std::max(0, budget - n_reason_tokens) : 0;
            live.set(nullptr);
            break;
        }
        if (r.err) {
            t.err = r.err;
            live.set(nullptr);
            break;
        }
        if (r.tool_calls.empty() || r.finish != FINISH_STOP) {
            live.set(nullptr);
            break;
        }
        if (spec.client_tools) {
            // The caller runs these: hand them over with ids it can answer to.
            for (size_t i = 0; i < r.tool_calls.size(); ++i) {
                chat_tool_call tc = r.tool_calls[i];
                if (tc.id.empty()) {
                    tc.id = "call_" + random_hex(16);
                }
                t.client_calls.push_back(std::move(tc));
            }
            t.finish = FINISH_TOOL_CALLS;
            live.set(nullptr);
            break;
        }

        // A tool step: run the calls, show the results as delimited data, and continue in a
        // sequence that forks this one, so the conversation so far is not computed again.
        chat_message assistant;
        assistant.role              = "assistant";
        assistant.content           = r.content;
        assistant.reasoning_content = r.reasoning;
        assistant.tool_calls        = r.tool_calls;
        rq.messages.push_back(assistant);
        for (size_t i = 0; i < r.tool_calls.size(); ++i) {
            auto & tc = r.tool_calls[i];
            if (tc.id.empty()) {
                tc.id = spec.call_id_prefix + "_" + std::to_string(tool_steps) + "_" + std::to_string(i);
                rq.messages.back().tool_calls[i].id = tc.id;
            }
            tool_output out;
            if (tool_steps >= spec.max_tool_steps) {
                out = { false, "tool step limit reached (" + std::to_string(spec.max_tool_steps) +
                                   "): answer with what you have" };
            } else if (!contains(spec.allowed_tools, tc.name)) {
                out = { false, "the tool '" + tc.name + "' is not available to this agent" };
            } else {
                out = env.tools.call(tc.name, tc.arguments);
            }
            t.tool_calls.push_back({ tc.name, tc.arguments, out.text, out.ok });
            agent_event ae;
            ae.type = agent_event::TOOL;
            ae.text = tc.name + "(" + tc.arguments + ") -> " + out.text;
            emit(ae);
            chat_message tm;
            tm.role         = "tool";
            tm.name         = tc.name;
            tm.tool_call_id = tc.id;
            tm.content      = tool_result_block(tc.name, out);
            rq.messages.push_back(tm);
        }
        const bool over_limit = tool_steps >= spec.max_tool_steps;
        tool_steps++;
        if (over_limit) {
            rq.tool_choice = "none";  // the model answers now
        }
        if (budget >= 0) {
            rq.reasoning_budget = std::max(0, budget - t.tokens);
        }
        if (rq.max_tokens > 0) {
            // max_tokens is the whole agent's, every step together: spent, it ends here.
            const int32_t left = rq.max_tokens - r.use.completion_tokens;
            if (left <= 0) {
                t.finish = FINISH_LENGTH;
                live.set(nullptr);
                break;
            }
            rq.max_tokens = left;
        }
        rq.fork_from = cur->id();
        live.set(nullptr);
        prev = std::move(cur);
    }

    t.confidence      = win.mean_all();
    t.weakest_logprob = win.weakest();
    t.scored_tokens   = (int32_t) std::min<int64_t>(win.count(), INT32_MAX);
    t.end_ms     = env.now_ms();
    return t;
}

std::unique_ptr<chat_stream> submit_prefix(const agent_env & env, chat_request req) {
    req.max_tokens = 0;
    req.retain     = true;
    req.cache_salt = env.cache_salt;
    return env.be.start(req);
}

chat_result await_prefix(chat_stream & s) {
    return collect(s);
}

}  // namespace muse
