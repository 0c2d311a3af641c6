// A new model for muse-train: the SentencePiece vocabulary of a vocabulary file, the llama
// architecture at the requested shape, and weights from a seeded generator.
#include "train.h"

#include "ggml-cpp.h"
#include "gguf.h"

#include <cmath>
#include <cstdio>
#include <map>
#include <random>
#include <set>
#include <sstream>

namespace muse::train {

namespace {

// llama_token_type
constexpr int32_t TYPE_NORMAL = 1, TYPE_UNKNOWN = 2, TYPE_CONTROL = 3, TYPE_USER = 4, TYPE_BYTE = 6;
const char *      SPACE       = "\xe2\x96\x81";  // U+2581, SentencePiece's space

// UTF-8 characters of s.
std::vector<std::string> chars_of(const std::string & s) {
    std::vector<std::string> out;
    for (size_t i = 0; i < s.size();) {
        const unsigned char c = (unsigned char) s[i];
        const size_t        n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : 4;
        out.push_back(s.substr(i, n));
        i += n;
    }
    return out;
}

}  // namespace

bool parse_vocab(const std::string & text, spm_vocab & v, std::string & err) {
    v = {};
    std::set<std::string> seen;
    auto add = [&](const std::string & t, float score, int32_t type) {
        if (seen.insert(t).second) {
            v.tokens.push_back(t);
            v.scores.push_back(score);
            v.types.push_back(type);
        }
    };
    add("<unk>", 0, TYPE_UNKNOWN);
    add("<s>", 0, TYPE_CONTROL);
    add("</s>", 0, TYPE_CONTROL);
    for (int b = 0; b < 256; ++b) {
        char buf[8];
        snprintf(buf, sizeof(buf), "<0x%02X>", b);
        add(buf, 0, TYPE_BYTE);
    }
    add(SPACE, 0, TYPE_NORMAL);
    for (int c = 0x21; c < 0x7f; ++c) {
        add(std::string(1, (char) c), 0, TYPE_NORMAL);
    }
    std::istringstream in(text);
    std::string        line;
    int                lineno = 0;
    bool               have_eos = false;
    while (std::getline(in, line)) {
        ++lineno;
        if (line.empty() || line[0] == '#') {
            continue;
        }
        std::istringstream ls(line);
        std::string        kind, tok, flag;
        ls >> kind >> tok >> flag;
        const std::string where = "vocabulary line " + std::to_string(lineno) + ": ";
        if (tok.empty() || tok.size() > 64) {
            err = where + "expected KIND TEXT (TEXT 1..64 bytes), got '" + line + "'";
            return false;
        }
        if (!flag.empty() && flag != "eos") {
            err = where + "the only flag is 'eos', got '" + flag + "'";
            return false;
        }
        if (kind == "control" || kind == "user") {
            if (seen.count(tok)) {
                err = where + "'" + tok + "' is already a token";
                return false;
            }
            add(tok, 0, kind == "control" ? TYPE_CONTROL : TYPE_USER);
        } else if (kind == "word") {
            // Every prefix of two characters or more, scored by length: llama.cpp's tokenizer
            // merges the best-scored pair first, leftmost on ties, so it climbs to the word.
            const auto cs = chars_of(tok);
            std::string prefix;
            for (size_t i = 0; i < cs.size(); ++i) {
                prefix += cs[i];
                if (i > 0) {
                    add(prefix, (float) (i + 1), TYPE_NORMAL);
                }
            }
            for (const auto & c : cs) {
                if (c.size() == 1 && c[0] >= '0' && c[0] <= '9' && cs.size() > 1) {
                    err = where + "'" + tok + "' merges a digit with other characters; digits stay single tokens";
                    return false;
                }
            }
        } else {
            err = where + "KIND is control, user or word, got '" + kind + "'";
            return false;
        }
        if (flag == "eos") {
            if (have_eos) {
                err = where + "a second eos token";
                return false;
            }
            have_eos = true;
            v.eos    = (int32_t) v.tokens.size() - 1;
        }
    }
    if (v.tokens.size() > 65536) {
        err = "the vocabulary has " + std::to_string(v.tokens.size()) + " tokens; muse-train allows 65536";
        return false;
    }
    return true;
}

bool write_initial_model(const shape & s, const spm_vocab & v, const std::string & chat_template, uint64_t seed,
                         const std::string & name, const std::string & path, std::string & err) {
    if (s.n_layer < 1 || s.n_layer > 64 || s.n_embd < 16 || s.n_embd > 4096 || s.n_head < 1 ||
        s.n_embd % s.n_head != 0 || (s.n_embd / s.n_head) % 2 != 0 || s.n_ff < 16 || s.n_ff > 16384 ||
        s.n_ctx < 32 || s.n_ctx > 8192) {
        err = "bad shape: layers 1..64, embd 16..4096 divisible by heads into an even head size, ff 16..16384, "
              "ctx 32..8192";
        return false;
    }
    const char *   arch = "llama";
    gguf_context_ptr meta(gguf_init_empty());
    gguf_context * m = meta.get();
    auto key = [&](const char * k) { return std::string(arch) + "." + k; };
    gguf_set_val_str(m, "general.architecture", arch);
    gguf_set_val_str(m, "general.name", name.c_str());
    gguf_set_val_u32(m, "general.file_type", 0);  // all F32
    gguf_set_val_u32(m, key("context_length").c_str(), (uint32_t) s.n_ctx);
    gguf_set_val_u32(m, key("embedding_length").c_str(), (uint32_t) s.n_embd);
    gguf_set_val_u32(m, key("block_count").c_str(), (uint32_t) s.n_layer);
    gguf_set_val_u32(m, key("feed_forward_length").c_str(), (uint32_t) s.n_ff);
    gguf_set_val_u32(m, key("attention.head_count").c_str(), (uint32_t) s.n_head);
    gguf_set_val_u32(m, key("attention.head_count_kv").c_str(), (uint32_t) s.n_head);
    gguf_set_val_u32(m, key("rope.dimension_count").c_str(), (uint32_t) (s.n_embd / s.n_head));
    gguf_set_val_f32(m, key("rope.freq_base").c_str(), 10000.0f);
    gguf_set_val_f32(m, key("attention.layer_norm_rms_epsilon").c_str(), 1e-5f);
    gguf_set_val_u32(m, key("vocab_size").c_str(), (uint32_t) v.tokens.size());

    std::vector<const char *> toks;
    for (const auto & t : v.tokens) {
        toks.push_back(t.c_str());
    }
    gguf_set_val_str(m, "tokenizer.ggml.model", "llama");
    gguf_set_arr_str(m, "tokenizer.ggml.tokens", toks.data(), toks.size());
    gguf_set_arr_data(m, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, v.scores.data(), v.scores.size());
    gguf_set_arr_data(m, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, v.types.data(), v.types.size());
    gguf_set_val_u32(m, "tokenizer.ggml.unknown_token_id", 0);
    gguf_set_val_u32(m, "tokenizer.ggml.bos_token_id", 1);
    gguf_set_val_u32(m, "tokenizer.ggml.eos_token_id", (uint32_t) v.eos);
    gguf_set_val_u32(m, "tokenizer.ggml.eot_token_id", (uint32_t) v.eos);
    gguf_set_val_u32(m, "tokenizer.ggml.padding_token_id", 0);
    gguf_set_val_bool(m, "tokenizer.ggml.add_bos_token", true);
    gguf_set_val_bool(m, "tokenizer.ggml.add_eos_token", false);
    gguf_set_val_bool(m, "tokenizer.ggml.add_space_prefix", false);
    if (!chat_template.empty()) {
        gguf_set_val_str(m, "tokenizer.chat_template", chat_template.c_str());
    }

    // The tensors, in one context that owns their data.
    const int64_t E = s.n_embd, F = s.n_ff, V = (int64_t) v.tokens.size();
    struct spec {
        std::string          name;
        std::vector<int64_t> ne;
        float                std;  // 0: ones (norms)
    };
    std::vector<spec> specs;
    // Residual projections scaled down by depth (GPT-2), the rest at 0.02. The token embedding
    // is not trained by libllama, so it is drawn at unit scale to keep tokens far apart.
    const float out_std = 0.02f / std::sqrt(2.0f * (float) s.n_layer);
    specs.push_back({ "token_embd.weight", { E, V }, 1.0f });
    specs.push_back({ "output_norm.weight", { E }, 0 });
    specs.push_back({ "output.weight", { E, V }, 0.02f });
    for (int il = 0; il < s.n_layer; ++il) {
        const std::string b = "blk." + std::to_string(il) + ".";
        specs.push_back({ b + "attn_norm.weight", { E }, 0 });
        specs.push_back({ b + "attn_q.weight", { E, E }, 0.02f });
        specs.push_back({ b + "attn_k.weight", { E, E }, 0.02f });
        specs.push_back({ b + "attn_v.weight", { E, E }, 0.02f });
        specs.push_back({ b + "attn_output.weight", { E, E }, out_std });
        specs.push_back({ b + "ffn_norm.weight", { E }, 0 });
        specs.push_back({ b + "ffn_gate.weight", { E, F }, 0.02f });
        specs.push_back({ b + "ffn_up.weight", { E, F }, 0.02f });
        specs.push_back({ b + "ffn_down.weight", { F, E }, out_std });
    }
    size_t bytes = 0;
    for (const auto & sp : specs) {
        int64_t n = 1;
        for (int64_t d : sp.ne) n *= d;
        bytes += (size_t) n * sizeof(float) + 256;
    }
    ggml_init_params ip = { bytes + specs.size() * ggml_tensor_overhead(), nullptr, false };
    ggml_context_ptr ctx(ggml_init(ip));
    if (!ctx) {
        err = "out of memory for the initial weights";
        return false;
    }
    std::mt19937_64 gen(seed);
    for (const auto & sp : specs) {
        ggml_tensor * t = sp.ne.size() == 1 ? ggml_new_tensor_1d(ctx.get(), GGML_TYPE_F32, sp.ne[0])
                                            : ggml_new_tensor_2d(ctx.get(), GGML_TYPE_F32, sp.ne[0], sp.ne[1]);
        ggml_set_name(t, sp.name.c_str());
        float * d = (float *) t->data;
        std::normal_distribution<float> nd(0.0f, sp.std > 0 ? sp.std : 1.0f);
        for (int64_t i = 0; i < ggml_nelements(t); ++i) {
            d[i] = sp.std > 0 ? nd(gen) : 1.0f;
        }
        if (sp.name == "token_embd.weight") {
            // Unit-norm-ish rows: std 1/sqrt(E) per component.
            for (int64_t i = 0; i < ggml_nelements(t); ++i) d[i] /= std::sqrt((float) E);
        }
        gguf_add_tensor(m, t);
    }
    const std::string tmp = path + ".tmp";
    if (!gguf_write_to_file(m, tmp.c_str(), false)) {
        err = "cannot write " + tmp;
        return false;
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
        std::remove(tmp.c_str());
        err = "cannot rename " + tmp + " to " + path;
        return false;
    }
    return true;
}

}  // namespace muse::train
