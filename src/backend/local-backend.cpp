#include "local-backend.h"

#include <algorithm>

#include "core/limits.h"

#include "engine/engine.h"
#include "engine/model.h"
#include "engine/vision.h"

#include <nlohmann/json.hpp>

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

local_backend::local_backend(engine & e) : eng(e) {
    if (eng.get_model().projector()) {
        vision = std::make_unique<vision_encoder>(eng.get_model());
    }
    // The control and added special tokens written as markup (<...>, [...]): the texts that
    // message content must never turn into tokens.
    const llama_vocab * vocab = llama_model_get_vocab(eng.get_model().get());
    const int32_t       n     = llama_vocab_n_tokens(vocab);
    for (llama_token t = 0; t < n; ++t) {
        const llama_token_attr a = llama_vocab_get_attr(vocab, t);
        if (!(a & (LLAMA_TOKEN_ATTR_CONTROL | LLAMA_TOKEN_ATTR_USER_DEFINED))) continue;
        const char * text = llama_vocab_get_text(vocab, t);
        if (!text) continue;
        const std::string s = text;
        if (s.size() < 3 || s.size() > 64) continue;
        const bool markup = (s.front() == '<' && s.back() == '>') || (s.front() == '[' && s.back() == ']');
        if (markup && s != media_marker()) controls.push_back(s);
    }
    // Longest first, so that a longer token is broken before a shorter one inside it.
    std::sort(controls.begin(), controls.end(), [](const std::string & a, const std::string & b) { return a.size() > b.size(); });
}

local_backend::~local_backend() = default;

vision_stats local_backend::vision_counters() const {
    return vision ? vision->stats() : vision_stats{};
}

namespace {

size_t count_markers(const std::string & s, const std::string & marker) {
    size_t n = 0;
    for (size_t p = s.find(marker); p != std::string::npos; p = s.find(marker, p + marker.size())) {
        n++;
    }
    return n;
}

}  // namespace

error local_backend::build(const chat_request & req, sequence_request & out, chat_prompt & prompt) const {
    // The request's stops are counted before the chat template adds its own (the engine's cap
    // has room for both).
    if (req.stop.size() > (size_t) k_limit_stop.max) {
        return { ERROR_INVALID_ARGUMENT, "stop: at most " + std::to_string((int) k_limit_stop.max) + " stop strings, got " +
                                             std::to_string(req.stop.size()) };
    }
    chat_prompt_options opts;
    opts.messages    = req.messages;
    // Message text stays text: a control token's markup in it is broken with a word joiner
    // (U+2060) after its first character, so the tokenizer reads it as plain characters.
    if (!controls.empty()) {
        static const std::string joiner = "\xE2\x81\xA0";
        auto defuse = [&](std::string & text) {
            if (text.find_first_of("<[") == std::string::npos) return;
            for (const auto & c : controls) {
                for (size_t at = text.find(c); at != std::string::npos; at = text.find(c, at + c.size() + joiner.size())) {
                    text.insert(at + 1, joiner);
                }
            }
        };
        for (auto & m : opts.messages) {
            defuse(m.content);
            defuse(m.reasoning_content);
            for (auto & tc : m.tool_calls) defuse(tc.arguments);
        }
    }
    // Images: each needs its media marker in the rendered prompt; a message without markers
    // gets them before its text.
    std::vector<const media *> imgs;
    const std::string          marker = media_marker();
    for (auto & m : opts.messages) {
        if (m.images.empty()) {
            continue;
        }
        if (!vision) {
            return { ERROR_INVALID_ARGUMENT, "this model has no vision projector: load one (--mmproj) to pass images, "
                                             "or attach them as OCR text" };
        }
        const size_t n = count_markers(m.content, marker);
        if (n == 0) {
            std::string pre;
            for (size_t i = 0; i < m.images.size(); ++i) {
                pre += marker + "\n";
            }
            m.content = pre + m.content;
        } else if (n != m.images.size()) {
            return { ERROR_INVALID_ARGUMENT, "a message has " + std::to_string(n) + " media markers for " +
                                                 std::to_string(m.images.size()) + " images" };
        }
        for (const auto & img : m.images) {
            if (!img) {
                return { ERROR_INVALID_ARGUMENT, "a message carries an empty image" };
            }
            imgs.push_back(img.get());
        }
    }
    opts.tools       = req.tools;
    opts.tool_choice = req.tool_choice;
    opts.reasoning   = req.reasoning;
    opts.json_schema = req.json_schema;
    opts.grammar     = req.grammar;
    opts.reasoning_strength = req.reasoning_strength;
    opts.assistant_prefix   = req.assistant_prefix;
    opts.cache_salt         = req.cache_salt;
    if (error err = format_chat(eng.get_model(), opts, prompt)) {
        return err;
    }
    if (prompt.stops.size() > k_max_template_stops) {
        return { ERROR_INTERNAL, "the chat template adds " + std::to_string(prompt.stops.size()) + " stop strings; at most " +
                                     std::to_string(k_max_template_stops) + " are supported" };
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
    out.cache_salt = req.cache_salt;
    if (!req.public_until.empty()) {
        const size_t at = prompt.prompt.find(req.public_until);
        if (at != std::string::npos && at > 0) out.public_prefix = prompt.prompt.substr(0, at);
    }
    if (!imgs.empty()) {
        return vision->tokenize(prompt.prompt, imgs, out);
    }
    return {};
}

error local_backend::count_prompt_tokens(const chat_request & req, int32_t & n) const {
    n = 0;
    chat_request text = req;
    for (auto & m : text.messages) m.images.clear();
    sequence_request sr;
    chat_prompt      prompt;
    if (error err = build(text, sr, prompt)) return err;
    n = (int32_t) eng.tokenize(sr.prompt).size();
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

backend_caps local_backend::caps() const {
    const auto & mi = eng.get_model().info();
    backend_caps c;
    c.name             = "local";
    c.model            = mi.description;
    c.fork             = true;
    c.reasoning        = mi.supports_reasoning;
    c.vision           = mi.has_projector && mi.projector_vision;
    c.grammar          = true;
    c.logprobs         = true;
    c.tools            = mi.supports_tools;
    c.n_ctx            = eng.n_ctx();
    c.n_ctx_train      = mi.n_ctx_train;
    c.max_prompt_bytes = eng.max_prompt_bytes();
    c.meta_json = nlohmann::ordered_json{ { "architecture", mi.architecture }, { "name", mi.name }, { "description", mi.description },
                                          { "n_params", mi.n_params }, { "n_ctx_train", mi.n_ctx_train }, { "n_ctx", eng.n_ctx() },
                                          { "chat_template", mi.template_family }, { "reasoning", mi.supports_reasoning }, { "tools", mi.supports_tools },
                                          { "vision", c.vision } }.dump();
    return c;
}

std::vector<backend_metric> local_backend::stats() const {
    const engine_stats st = eng.stats();
    return {
        { "muse_engine_generated_tokens_total", "counter", "Tokens sampled by the engine.", (double) st.generated_tokens },
        { "muse_engine_prefill_tokens_total", "counter", "Prompt tokens decoded by the engine.", (double) st.prefill_tokens },
        { "muse_engine_decode_calls_total", "counter", "llama_decode calls.", (double) st.decode_calls },
        { "muse_engine_batch_tokens_total", "counter", "Tokens passed to llama_decode, all calls (batch size = this / calls).", (double) st.batch_tokens },
        { "muse_engine_batch_tokens_max", "gauge", "Most tokens in one llama_decode call.", (double) st.max_batch_tokens },
        { "muse_engine_batch_sequences_max", "gauge", "Most sequences sampled in one call.", (double) st.max_batch_seqs },
        { "muse_engine_multi_sequence_calls_total", "counter", "Calls that sampled two or more sequences.", (double) st.multi_seq_calls },
        { "muse_engine_fast_sampled_sequences_total", "counter", "Sequences sampled by the fast top-k sampler.", (double) st.sequences_fast_sampled },
        { "muse_engine_decode_seconds_total", "counter", "Time inside llama_decode.", st.decode_us / 1e6 },
        { "muse_engine_step_seconds_total", "counter", "Time of whole engine steps: batch building, decode, sampling, events.", st.step_us / 1e6 },
        { "muse_engine_live_sequences", "gauge", "Sequences alive in the engine.", (double) st.live_sequences },
        { "muse_engine_kv_full_total", "counter", "llama_decode calls that found the KV cache full.", (double) st.kv_full_events },
        { "muse_engine_draft_tokens_total", "counter", "Tokens decoded as prompt-lookup drafts.", (double) st.draft_tokens },
        { "muse_engine_draft_accepted_total", "counter", "Drafted tokens kept (the sampler drew the same token there).", (double) st.draft_accepted },
        { "muse_prompt_cache_hits_total", "counter", "Sequences that started from a cached prompt.", (double) st.prompt_cache_hits },
        { "muse_prompt_cache_tokens_reused_total", "counter", "Prompt tokens taken from the prompt cache.", (double) st.prompt_cache_tokens_reused },
        { "muse_prompt_cache_entries", "gauge", "Finished prompts kept for reuse.", (double) st.prompt_cache_entries },
        { "muse_prompt_cache_cells", "gauge", "KV cells the prompt cache holds.", (double) st.prompt_cache_cells },
    };
}

}  // namespace muse
