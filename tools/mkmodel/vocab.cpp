#include "vocab.h"

#include <filesystem>
#include <fstream>
#include <sstream>

namespace muse::mkmodel {

static constexpr const char * KEY_TOKENS     = "tokenizer.ggml.tokens";
static constexpr const char * KEY_TOKEN_TYPE = "tokenizer.ggml.token_type";
static constexpr const char * KEY_TEMPLATE   = "tokenizer.chat_template";

int32_t vocab::find(const std::string & text) const {
    for (size_t i = 0; i < tokens.size(); ++i) {
        if (tokens[i] == text) {
            return static_cast<int32_t>(i);
        }
    }
    return -1;
}

bool vocab_load(const std::string & path, vocab & v, std::string & error) {
    // Checked here so that a wrong --vocab-dir gives one clear line, not gguf's log as well.
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) {
        error = "vocabulary file " + path + " not found (see vocab_dir / --vocab-dir)";
        return false;
    }
    gguf_init_params params = { /*no_alloc =*/true, /*ctx =*/nullptr };
    v.file.reset(gguf_init_from_file(path.c_str(), params));
    if (!v.file) {
        error = "cannot read vocabulary file " + path + " (not a GGUF file)";
        return false;
    }
    v.path = path;

    const gguf_context * ctx   = v.file.get();
    const int64_t        k_tok = gguf_find_key(ctx, KEY_TOKENS);
    const int64_t        k_typ = gguf_find_key(ctx, KEY_TOKEN_TYPE);
    if (k_tok < 0 || k_typ < 0 || gguf_get_arr_type(ctx, k_tok) != GGUF_TYPE_STRING ||
        gguf_get_arr_type(ctx, k_typ) != GGUF_TYPE_INT32 || gguf_get_arr_n(ctx, k_tok) != gguf_get_arr_n(ctx, k_typ)) {
        error = path + " has no usable " + KEY_TOKENS + " / " + KEY_TOKEN_TYPE + " arrays";
        return false;
    }

    const size_t n = gguf_get_arr_n(ctx, k_tok);
    v.tokens.resize(n);
    for (size_t i = 0; i < n; ++i) {
        v.tokens[i] = gguf_get_arr_str(ctx, k_tok, i);
    }
    const auto * types = static_cast<const int32_t *>(gguf_get_arr_data(ctx, k_typ));
    v.types.assign(types, types + n);
    return true;
}

bool vocab_put(vocab & v, int32_t id, const special_token & tok, std::string & error) {
    if (id < 0 || static_cast<size_t>(id) >= v.tokens.size()) {
        error = v.path + ": token id " + std::to_string(id) + " is out of range for " + tok.text;
        return false;
    }
    std::string & slot = v.tokens[static_cast<size_t>(id)];
    if (slot != tok.text && slot.rfind("[PAD", 0) != 0) {
        error = v.path + ": expected a [PAD] placeholder at id " + std::to_string(id) + " for " + tok.text +
                ", found '" + slot + "' (unexpected vocabulary file)";
        return false;
    }
    slot                             = tok.text;
    v.types[static_cast<size_t>(id)] = tok.kind;
    return true;
}

int32_t vocab_append(vocab & v, const special_token & tok) {
    v.tokens.push_back(tok.text);
    v.types.push_back(tok.kind);
    return static_cast<int32_t>(v.tokens.size() - 1);
}

void vocab_store(const vocab & v, gguf_context * dst) {
    // gguf_set_kv copies typed values of any kind; copy everything into a scratch context and
    // drop what is not the tokenizer's, so the model's own general.* / arch keys stay authoritative.
    gguf_context_ptr scratch(gguf_init_empty());
    gguf_set_kv(scratch.get(), v.file.get());
    for (int64_t i = gguf_get_n_kv(scratch.get()) - 1; i >= 0; --i) {
        const std::string key = gguf_get_key(scratch.get(), i);
        if (key.rfind("tokenizer.", 0) != 0 || key == KEY_TEMPLATE || key == KEY_TOKENS || key == KEY_TOKEN_TYPE) {
            gguf_remove_key(scratch.get(), key.c_str());
        }
    }

    gguf_set_kv(dst, scratch.get());

    std::vector<const char *> texts(v.tokens.size());
    for (size_t i = 0; i < v.tokens.size(); ++i) {
        texts[i] = v.tokens[i].c_str();
    }
    gguf_set_arr_str(dst, KEY_TOKENS, texts.data(), texts.size());
    gguf_set_arr_data(dst, KEY_TOKEN_TYPE, GGUF_TYPE_INT32, v.types.data(), v.types.size());
}

bool read_text_file(const std::string & path, std::string & text, std::string & error) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        error = "cannot read " + path + " (see vocab_dir / --vocab-dir)";
        return false;
    }
    std::ostringstream ss;
    ss << in.rdbuf();
    text = ss.str();
    if (text.empty()) {
        error = path + " is empty";
        return false;
    }
    return true;
}

}  // namespace muse::mkmodel
