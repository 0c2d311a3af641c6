// Training text as windows of tokens: chats rendered with the model's own chat template (the
// arithmetic family, or a JSONL file of chats) or a plain text file.
#include "train.h"

#include "arith.h"
#include "reasoning/contemplating/prompts.h"
#include "reasoning/modes.h"

#include "chat.h"
#include "llama.h"

#include <nlohmann/json.hpp>

#include <fstream>
#include <random>
#include <sstream>

namespace muse::train {

namespace {

std::vector<int32_t> tokenize(const llama_vocab * vocab, const std::string & text, bool add_bos) {
    std::vector<int32_t> out(text.size() + 8);
    int n = llama_tokenize(vocab, text.c_str(), (int32_t) text.size(), out.data(), (int32_t) out.size(), add_bos,
                           /*parse_special=*/true);
    if (n < 0) {
        out.resize((size_t) -n);
        n = llama_tokenize(vocab, text.c_str(), (int32_t) text.size(), out.data(), (int32_t) out.size(), add_bos, true);
    }
    out.resize(n > 0 ? (size_t) n : 0);
    return out;
}

// Examples (token lists) -> windows. An example cut by a window's end starts the next window.
class packer : public window_source {
  public:
    packer(int n_ctx) : n(n_ctx + 1) {}

    bool next(std::vector<int32_t> & w, std::string & err) override {
        w.clear();
        while ((int) w.size() < n) {
            if (pending.empty()) {
                if (!next_example(pending, err)) {
                    if (!err.empty() || w.empty()) {
                        return false;
                    }
                    // End of the data: pad the last window by repeating it from its start.
                    for (size_t i = 0; (int) w.size() < n; ++i) w.push_back(w[i]);
                    return true;
                }
                if ((int) pending.size() > n) {
                    if (!warned) {
                        fprintf(stderr, "muse-train: an example of %zu tokens is longer than the context (%d); it is cut\n",
                                pending.size(), n - 1);
                        warned = true;
                    }
                    pending.resize((size_t) n);
                }
            }
            const size_t room = (size_t) n - w.size();
            if (pending.size() <= room) {
                w.insert(w.end(), pending.begin(), pending.end());
                pending.clear();
            } else {
                w.insert(w.end(), pending.begin(), pending.begin() + room);
                if (w.size() == room) {  // the window began with it: it fits nowhere whole
                    pending.clear();
                }
                // otherwise it stays pending and opens the next window
            }
        }
        return true;
    }

  protected:
    virtual bool next_example(std::vector<int32_t> & tokens, std::string & err) = 0;

  private:
    int                  n;
    std::vector<int32_t> pending;
    bool                 warned     = false;
};

class chat_renderer {
  public:
    explicit chat_renderer(const llama_model * model) : model(model), tmpls(common_chat_templates_init(model, "")) {}

    bool render(const std::vector<common_chat_msg> & msgs, std::vector<int32_t> & tokens, std::string & err) {
        common_chat_templates_inputs in;
        in.messages              = msgs;
        in.add_generation_prompt = false;
        in.use_jinja             = true;
        in.enable_thinking       = true;
        try {
            const common_chat_params p = common_chat_templates_apply(tmpls.get(), in);
            tokens = tokenize(llama_model_get_vocab(model), p.prompt, true);
        } catch (const std::exception & e) {
            err = std::string("the chat template cannot render a training example: ") + e.what();
            return false;
        }
        return true;
    }

  private:
    const llama_model *       model;
    common_chat_templates_ptr tmpls;
};

class arith_source : public packer {
  public:
    arith_source(const data_spec & s, const llama_model * model, int n_ctx) :
        packer(n_ctx),
        spec(s),
        gen({ .digits_min = s.digits_min, .digits_max = s.digits_max, .add = true, .sub = true, .seed = s.seed,
               .p_hard = s.p_hard, .p_sub = s.p_sub }),
        rng(s.seed ^ 0x5eed5eedULL),
        chat(model) {}

  protected:
    bool next_example(std::vector<int32_t> & tokens, std::string & err) override {
        const tasks::problem p = gen.next(tasks::SPLIT_TRAIN);
        std::uniform_real_distribution<double> u(0.0, 1.0);
        const bool reason  = u(rng) < spec.p_reasoning;
        const bool verify  = reason && spec.p_verify > 0 && u(rng) < spec.p_verify;
        const bool harness = reason && !verify && u(rng) < spec.p_harness;
        const int  agent   = (int) (rng() % 8);
        common_chat_msg user, assistant;
        user.role      = "user";
        user.content   = p.question;
        assistant.role = "assistant";
        if (verify) {
            // Contemplating's verifier prompt: one candidate, right or a solver's kind of slip.
            const uint64_t cand = rng() % 2 ? std::stoull(p.answer) : gen.slip(p);
            bool           right = false;
            chat_message   q;
            q.role    = "user";
            q.content = p.question;
            user.content = with_suffix({ q }, contemplating::verifier_suffix(std::to_string(cand))).back().content;
            assistant.reasoning_content = tasks::check_reasoning(p, cand, right);
            assistant.content           = std::string("Verdict: ") + (right ? "right" : "wrong");
        } else if (harness) {
            // Contemplating's solver prompt: the answer format after the question, the agent's
            // role opening its reasoning (reasoning/contemplating/prompts.h).
            chat_message q;
            q.role    = "user";
            q.content = p.question;
            user.content = with_suffix({ q }, contemplating::solver_shared_suffix({}, {})).back().content;
            assistant.reasoning_content = contemplating::solver_opening(agent) + " " + p.reasoning;
            assistant.content           = "Final answer: " + p.answer;
        } else {
            assistant.reasoning_content = reason ? p.reasoning : "";
            assistant.content           = p.answer;
        }
        return chat.render({ user, assistant }, tokens, err);
    }

  private:
    data_spec        spec;
    tasks::generator gen;
    std::mt19937_64  rng;
    chat_renderer    chat;
};

class chats_file_source : public packer {
  public:
    chats_file_source(const std::string & path, const llama_model * model, int n_ctx) :
        packer(n_ctx), path(path), in(path), chat(model) {}
    bool ok() const { return (bool) in; }

  protected:
    bool next_example(std::vector<int32_t> & tokens, std::string & err) override {
        std::string line;
        while (std::getline(in, line)) {
            ++lineno;
            if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
            const std::string where = path + ":" + std::to_string(lineno) + ": ";
            nlohmann::json j = nlohmann::json::parse(line, nullptr, false, true);
            if (j.is_discarded() || !j.is_object() || !j.contains("messages") || !j["messages"].is_array() ||
                j["messages"].empty() || j["messages"].size() > 256) {
                err = where + "expected {\"messages\": [...]} with 1..256 messages";
                return false;
            }
            std::vector<common_chat_msg> msgs;
            for (const auto & m : j["messages"]) {
                if (!m.is_object() || !m.contains("role") || !m["role"].is_string() ||
                    !m.contains("content") || !m["content"].is_string()) {
                    err = where + "every message needs a string role and a string content";
                    return false;
                }
                common_chat_msg c;
                c.role    = m["role"].get<std::string>();
                c.content = m["content"].get<std::string>();
                if (m.contains("reasoning_content") && m["reasoning_content"].is_string()) {
                    c.reasoning_content = m["reasoning_content"].get<std::string>();
                }
                msgs.push_back(std::move(c));
            }
            return chat.render(msgs, tokens, err);
        }
        return false;
    }

  private:
    std::string   path;
    std::ifstream in;
    chat_renderer chat;
    int64_t       lineno = 0;
};

// Plain text: the whole file tokenized once, cut into consecutive windows.
class text_source : public window_source {
  public:
    text_source(std::vector<int32_t> toks, int n_ctx) : toks(std::move(toks)), n(n_ctx + 1) {}
    bool next(std::vector<int32_t> & w, std::string &) override {
        if (pos + (size_t) n > toks.size()) return false;
        w.assign(toks.begin() + (long) pos, toks.begin() + (long) (pos + n));
        pos += (size_t) n - 1;
        return true;
    }

  private:
    std::vector<int32_t> toks;
    int                  n;
    size_t               pos       = 0;
};

}  // namespace

std::unique_ptr<window_source> make_source(const data_spec & spec, const llama_model * model, int n_ctx,
                                           std::string & err) {
    if (spec.arith) {
        try {
            return std::make_unique<arith_source>(spec, model, n_ctx);
        } catch (const std::exception & e) {
            err = std::string("arithmetic data: ") + e.what();
            return nullptr;
        }
    }
    const std::string & f = spec.file;
    if (f.size() > 6 && f.compare(f.size() - 6, 6, ".jsonl") == 0) {
        auto s = std::make_unique<chats_file_source>(f, model, n_ctx);
        if (!s->ok()) {
            err = "cannot read " + f;
            return nullptr;
        }
        return s;
    }
    std::ifstream in(f, std::ios::binary);
    if (!in) {
        err = "cannot read " + f;
        return nullptr;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    std::vector<int32_t> toks = tokenize(llama_model_get_vocab(model), ss.str(), true);
    if ((int) toks.size() < n_ctx + 1) {
        err = f + " has " + std::to_string(toks.size()) + " tokens; training needs at least one window of " +
              std::to_string(n_ctx + 1);
        return nullptr;
    }
    return std::make_unique<text_source>(std::move(toks), n_ctx);
}

}  // namespace muse::train
