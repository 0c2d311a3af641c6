#include "local-backend.h"

#include "engine/engine.h"
#include "engine/model.h"

#include <deque>

namespace muse {

namespace {

class local_stream : public chat_stream {
  public:
    local_stream(sequence_handle h, common_chat_parser_params p, bool logprobs) :
        seq(std::move(h)),
        parser(std::move(p)),
        want_logprobs(logprobs) {}

    // A request that failed before reaching the engine.
    explicit local_stream(error err) : parser(common_chat_parser_params()) {
        chat_event ev;
        ev.type   = chat_event::DONE;
        ev.finish = FINISH_ERROR;
        ev.err    = std::move(err);
        pending.push_back(std::move(ev));
    }

    uint64_t id() const override { return seq.id(); }

    bool next(chat_event & ev) override {
        while (pending.empty()) {
            if (finished) {
                return false;
            }
            sequence_event se;
            if (!seq.next(se)) {
                finished = true;
                return false;
            }
            absorb(se);
        }
        ev = std::move(pending.front());
        pending.pop_front();
        if (ev.type == chat_event::DONE) {
            finished = true;
        }
        return true;
    }

    void cancel() override { seq.cancel(); }

  private:
    void absorb(sequence_event & se) {
        std::vector<chat_delta> deltas;
        const bool   done  = se.type == sequence_event::DONE;
        const size_t first = pending.size();
        if (!done && want_logprobs) {
            held_logprobs.push_back(se.logprob);
        }
        if (!se.text.empty() || done) {
            parser.update(se.text, done, deltas);
        }
        for (auto & d : deltas) {
            if (!d.reasoning.empty()) {
                pending.push_back(chat_event::delta(chat_event::REASONING, std::move(d.reasoning)));
            }
            if (!d.content.empty()) {
                pending.push_back(chat_event::delta(chat_event::CONTENT, std::move(d.content)));
            }
            if (d.tool_call_index >= 0) {
                chat_event ev;
                ev.type            = chat_event::TOOL_CALL;
                ev.tool_call_index = d.tool_call_index;
                ev.tool_call       = std::move(d.tool_call);
                pending.push_back(std::move(ev));
            }
        }
        if (done) {
            chat_event ev;
            ev.type   = chat_event::DONE;
            ev.finish = se.finish;
            ev.use    = se.use;
            ev.err    = std::move(se.err);
            pending.push_back(std::move(ev));
        }
        if (pending.size() > first && !held_logprobs.empty()) {
            pending[first].logprobs = std::move(held_logprobs);
            held_logprobs.clear();
        }
    }

    sequence_handle        seq;
    chat_output_parser     parser;
    bool                   want_logprobs = false;
    std::vector<float>     held_logprobs;
    std::deque<chat_event> pending;
    bool                   finished = false;
};

}  // namespace

local_backend::local_backend(engine & e) : eng(e) {}

error local_backend::build(const chat_request & req, sequence_request & out, chat_prompt & prompt) const {
    chat_prompt_options opts;
    opts.messages    = req.messages;
    opts.tools       = req.tools;
    opts.tool_choice = req.tool_choice;
    opts.reasoning   = req.reasoning;
    opts.json_schema = req.json_schema;
    opts.grammar     = req.grammar;
    opts.reasoning_strength = req.reasoning_strength;
    opts.assistant_prefix   = req.assistant_prefix;
    if (error err = format_chat(eng.get_model(), opts, prompt)) {
        return err;
    }
    out                   = sequence_request{};
    out.prompt            = prompt.prompt;
    out.sampling          = req.sampling;
    out.max_tokens        = req.max_tokens;
    out.stop              = req.stop;
    out.stop.insert(out.stop.end(), prompt.stops.begin(), prompt.stops.end());
    out.grammar           = prompt.grammar;
    out.grammar_lazy      = prompt.grammar_lazy;
    out.grammar_triggers  = prompt.grammar_triggers;
    out.preserved_tokens  = prompt.preserved_tokens;
    out.generation_prompt = prompt.generation_prompt;
    if (prompt.reasoning && !prompt.syntax.empty()) {
        out.reasoning_budget = req.reasoning_budget;
        if (req.reasoning_budget >= 0 && !req.assistant_prefix.empty()) {
            // The sampler counts every token after the reasoning opens, the prompt's own
            // prefix words included; they are not the agent's to spend. (A prefix longer than
            // the budget would also start the forced closing inside the prompt, so that part
            // of it never reached the output.)
            out.reasoning_budget += (int32_t) eng.tokenize(req.assistant_prefix).size();
        }
        out.reasoning_start  = prompt.syntax.start;
        out.reasoning_ends   = prompt.syntax.ends;
        out.reasoning_forced = prompt.syntax.forced;
    }
    out.parent   = req.fork_from;
    out.retain   = req.retain;
    out.logprobs = req.logprobs;
    return {};
}

std::unique_ptr<chat_stream> local_backend::start(const chat_request & req) {
    sequence_request sr;
    chat_prompt      prompt;
    if (error err = build(req, sr, prompt)) {
        return std::make_unique<local_stream>(std::move(err));
    }
    return std::make_unique<local_stream>(eng.submit(sr), prompt.parser, req.logprobs);
}

backend_info local_backend::info() const {
    const auto & mi = eng.get_model().info();
    return { "local", mi.description, mi.supports_reasoning, true, eng.n_ctx() };
}

}  // namespace muse
