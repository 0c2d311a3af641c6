// The training loop: libllama's llama_opt_init / llama_opt_epoch (ggml-opt's AdamW) over
// windows from a window_source, with warm-up + cosine learning rate, progress lines and
// checkpoints that are ordinary GGUF models carrying their training state.
#include "train.h"

#include "ggml-backend.h"
#include "ggml-cpp.h"
#include "ggml-opt.h"
#include "gguf.h"
#include "llama-cpp.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <thread>

namespace muse::train {

namespace {

constexpr int64_t CHUNK = 8;  // windows per llama_opt_epoch call: progress, stop and checkpoint granularity

struct schedule {
    const run_options * opt  = nullptr;
    int64_t             step = 0;  // optimizer steps done

    float lr_at(int64_t s) const {
        const float lr = opt->lr;
        if (s < opt->warmup) {
            return lr * (float) (s + 1) / (float) opt->warmup;
        }
        const double span = (double) std::max<int64_t>(1, opt->steps - opt->warmup);
        const double t    = std::min(1.0, (double) (s - opt->warmup) / span);
        const double lo   = lr * opt->lr_min_ratio;
        return (float) (lo + 0.5 * (lr - lo) * (1.0 + std::cos(M_PI * t)));
    }
};

ggml_opt_optimizer_params optimizer_params(void * ud) {
    auto &                    sch = *static_cast<schedule *>(ud);
    ggml_opt_optimizer_params p   = ggml_opt_get_default_optimizer_params(nullptr);
    p.adamw.alpha                 = sch.lr_at(sch.step);
    p.adamw.beta2                 = 0.99f;
    p.adamw.wd                    = sch.opt->weight_decay;
    ++sch.step;  // called once per optimizer step, before it
    return p;
}

// The trainable tensors, by name, as llama_opt_init offers them; the token embedding only when
// asked for.
struct param_choice {
    std::map<std::string, const ggml_tensor *> trained;
    bool                                       embeddings = false;
};

bool collect(const ggml_tensor * t, void * ud) {
    auto &            c    = *static_cast<param_choice *>(ud);
    const std::string name = ggml_get_name(t);
    if (name == "token_embd.weight" && !c.embeddings) {
        return false;
    }
    c.trained[name] = t;
    return true;
}

int64_t meta_i64(const gguf_context * g, const char * key, int64_t def) {
    const int64_t k = gguf_find_key(g, key);
    if (k < 0) return def;
    switch (gguf_get_kv_type(g, k)) {
        case GGUF_TYPE_INT64: return gguf_get_val_i64(g, k);
        case GGUF_TYPE_UINT64: return (int64_t) gguf_get_val_u64(g, k);
        case GGUF_TYPE_UINT32: return gguf_get_val_u32(g, k);
        case GGUF_TYPE_INT32: return gguf_get_val_i32(g, k);
        default: return def;
    }
}

double meta_f64(const gguf_context * g, const char * key, double def) {
    const int64_t k = gguf_find_key(g, key);
    if (k < 0) return def;
    if (gguf_get_kv_type(g, k) == GGUF_TYPE_FLOAT64) return gguf_get_val_f64(g, k);
    if (gguf_get_kv_type(g, k) == GGUF_TYPE_FLOAT32) return gguf_get_val_f32(g, k);
    return def;
}

std::string data_desc(const data_spec & d) {
    if (d.arith) {
        char buf[160];
        snprintf(buf, sizeof(buf), "arith digits %d-%d, reasoning %.2f, harness %.2f, seed %llu", d.digits_min,
                 d.digits_max, d.p_reasoning, d.p_harness, (unsigned long long) d.seed);
        std::string s = buf;
        if (d.p_hard > 0) {
            snprintf(buf, sizeof(buf), ", hard %.2f", d.p_hard);
            s += buf;
        }
        if (d.p_sub != 0.5) {
            snprintf(buf, sizeof(buf), ", subtractions %.2f", d.p_sub);
            s += buf;
        }
        return s;
    }
    return "file " + d.file;
}

std::string fmt_duration(double s) {
    char buf[32];
    if (s >= 3600) snprintf(buf, sizeof(buf), "%dh%02dm", (int) (s / 3600), (int) (s / 60) % 60);
    else snprintf(buf, sizeof(buf), "%dm%02ds", (int) (s / 60), (int) s % 60);
    return buf;
}

struct state {
    int64_t step = 0, windows = 0, tokens = 0;
    double  seconds = 0, loss = 0, accuracy = 0;
};

// The source file's metadata and tensors, with the trained tensors' current values, as a new
// GGUF (written to path.tmp, then renamed).
bool save(const std::string & src_path, const std::map<std::string, const ggml_tensor *> & trained,
          const run_options & opt, const state & st, const std::string & path, std::string & err) {
    ggml_context *   raw = nullptr;
    gguf_init_params ip  = { false, &raw };
    gguf_context_ptr src(gguf_init_from_file(src_path.c_str(), ip));
    ggml_context_ptr data(raw);
    if (!src) {
        err = "cannot re-read " + src_path + " to write a checkpoint";
        return false;
    }
    gguf_context_ptr out(gguf_init_empty());
    gguf_set_kv(out.get(), src.get());
    gguf_context * m = out.get();
    gguf_set_val_i64(m, "muse.train.step", st.step);
    gguf_set_val_i64(m, "muse.train.steps", opt.steps);
    gguf_set_val_i64(m, "muse.train.windows", st.windows);
    gguf_set_val_i64(m, "muse.train.tokens", st.tokens);
    gguf_set_val_f64(m, "muse.train.seconds", st.seconds);
    gguf_set_val_f64(m, "muse.train.loss", st.loss);
    gguf_set_val_f64(m, "muse.train.accuracy", st.accuracy);
    gguf_set_val_f32(m, "muse.train.lr", opt.lr);
    gguf_set_val_i64(m, "muse.train.warmup", opt.warmup);
    gguf_set_val_str(m, "muse.train.data", data_desc(opt.data).c_str());
    gguf_set_val_bool(m, "muse.train.embeddings", opt.train_embeddings);
    for (int64_t i = 0; i < gguf_get_n_tensors(src.get()); ++i) {
        ggml_tensor * t  = ggml_get_tensor(data.get(), gguf_get_tensor_name(src.get(), i));
        auto          it = trained.find(ggml_get_name(t));
        if (it != trained.end()) {
            if (ggml_nbytes(it->second) != ggml_nbytes(t)) {
                err = std::string("tensor ") + ggml_get_name(t) + " changed size";
                return false;
            }
            ggml_backend_tensor_get(it->second, t->data, 0, ggml_nbytes(t));
        }
        gguf_add_tensor(m, t);
    }
    const std::string tmp = path + ".tmp";
    if (!gguf_write_to_file(m, tmp.c_str(), false) || std::rename(tmp.c_str(), path.c_str()) != 0) {
        std::remove(tmp.c_str());
        err = "cannot write " + path;
        return false;
    }
    return true;
}

}  // namespace

bool run(const run_options & opt_in, run_report & rep, std::string & err) {
    run_options opt = opt_in;
    if (opt.steps < 1 || opt.steps > 100000000 || !(opt.lr > 0 && opt.lr < 1) || opt.warmup < 0 ||
        !(opt.lr_min_ratio >= 0 && opt.lr_min_ratio <= 1) || opt.weight_decay < 0 || opt.checkpoint_every < 0) {
        err = "bad schedule: steps 1..1e8, 0 < lr < 1, warmup >= 0, 0 <= lr-min-ratio <= 1, weight decay >= 0";
        return false;
    }
    state st;
    {
        gguf_init_params ip = { true, nullptr };
        gguf_context_ptr g(gguf_init_from_file(opt.model_path.c_str(), ip));
        if (!g) {
            err = opt.model_path + " is not a GGUF file";
            return false;
        }
        if (opt.resume) {
            st.step    = meta_i64(g.get(), "muse.train.step", -1);
            st.windows = meta_i64(g.get(), "muse.train.windows", 0);
            st.tokens  = meta_i64(g.get(), "muse.train.tokens", 0);
            st.seconds = meta_f64(g.get(), "muse.train.seconds", 0);
            // A run that trained the embeddings goes on training them (--resume repeats the run).
            const int64_t ke = gguf_find_key(g.get(), "muse.train.embeddings");
            if (ke >= 0 && gguf_get_kv_type(g.get(), ke) == GGUF_TYPE_BOOL && gguf_get_val_bool(g.get(), ke)) {
                opt.train_embeddings = true;
            }
            if (st.step < 0) {
                err = opt.model_path + " is not a muse-train checkpoint (no muse.train.step): train it without --resume";
                return false;
            }
            if (st.step >= opt.steps) {
                err = opt.model_path + " has done " + std::to_string(st.step) + " of " + std::to_string(opt.steps) +
                      " steps already: raise --steps to train further";
                return false;
            }
        }
        const int64_t k = gguf_find_key(g.get(), "general.file_type");
        if (k >= 0 && gguf_get_val_u32(g.get(), k) != 0) {
            err = opt.model_path + " is quantized; libllama trains F32 weights only (train the F32 checkpoint)";
            return false;
        }
    }

    llama_log_set(
        [](ggml_log_level level, const char * text, void *) {
            if (level == GGML_LOG_LEVEL_ERROR || level == GGML_LOG_LEVEL_WARN) fputs(text, stderr);
        },
        nullptr);
    llama_backend_init();
    llama_model_params mp = llama_model_default_params();
    mp.load_mode          = LLAMA_LOAD_MODE_NONE;  // training writes the weights in place
    llama_model_ptr model(llama_model_load_from_file(opt.model_path.c_str(), mp));
    if (!model) {
        err = "cannot load " + opt.model_path;
        return false;
    }
    const int n_ctx = llama_model_n_ctx_train(model.get());
    if (n_ctx % 256 != 0) {
        err = "the model's context (" + std::to_string(n_ctx) + ") must be a multiple of 256 to train";
        return false;
    }
    llama_context_params cp = llama_context_default_params();
    const int threads = opt.threads > 0 ? opt.threads : (int) std::max(1u, std::thread::hardware_concurrency());
    cp.n_ctx            = (uint32_t) n_ctx;
    cp.n_batch          = (uint32_t) n_ctx;
    cp.n_ubatch         = (uint32_t) n_ctx;
    cp.n_threads        = threads;
    cp.n_threads_batch  = threads;
    cp.flash_attn_type  = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    cp.type_k           = GGML_TYPE_F32;
    cp.type_v           = GGML_TYPE_F32;
    llama_context_ptr ctx(llama_init_from_model(model.get(), cp));
    if (!ctx) {
        err = "cannot create a training context";
        return false;
    }

    std::unique_ptr<window_source> src = make_source(opt.data, model.get(), n_ctx, err);
    if (!src) {
        return false;
    }
    std::vector<int32_t> w;
    for (int64_t i = 0; i < st.windows; ++i) {  // resume: the data the checkpoint has seen
        if (!src->next(w, err)) {
            if (!err.empty()) return false;
            src = make_source(opt.data, model.get(), n_ctx, err);
            if (!src || !src->next(w, err)) return false;
        }
    }

    if (opt.show > 0) {
        const llama_vocab * vocab = llama_model_get_vocab(model.get());
        for (int i = 0; i < opt.show && src->next(w, err); ++i) {
            std::string text;
            for (int32_t t : w) {
                char buf[256];
                const int n = llama_token_to_piece(vocab, t, buf, sizeof(buf), 0, /*special=*/true);
                text.append(buf, n > 0 ? (size_t) n : 0);
            }
            printf("--- window %d (%zu tokens)\n%s\n", i + 1, w.size(), text.c_str());
        }
        return err.empty();
    }

    schedule sch;
    sch.opt  = &opt;
    sch.step = st.step;
    param_choice choice;
    choice.embeddings = opt.train_embeddings;
    auto & trained    = choice.trained;
    llama_opt_params op = {
        .n_ctx_train     = 0,
        .param_filter    = collect,
        .param_filter_ud = &choice,
        .get_opt_pars    = optimizer_params,
        .get_opt_pars_ud = &sch,
        .optimizer_type  = GGML_OPT_OPTIMIZER_TYPE_ADAMW,
    };
    llama_opt_init(ctx.get(), model.get(), op);
    if (opt.train_embeddings && !trained.count("token_embd.weight")) {
        err = "this libllama does not offer token_embd to training (patches/0003 is not applied): run scripts/setup";
        return false;
    }

    ggml_opt_dataset_t ds = ggml_opt_dataset_init(GGML_TYPE_I32, GGML_TYPE_I32, n_ctx, n_ctx, CHUNK, 1);
    ggml_opt_result_t  result = ggml_opt_result_init();
    const bool         tty    = isatty(fileno(stderr));
    const auto         t0     = std::chrono::steady_clock::now();
    const double       sec0   = st.seconds;
    auto               t_last = t0;
    int64_t            tok_last = st.tokens, last_ckpt = st.step;
    bool               ok = true;
    if (!opt.quiet) {
        fprintf(stderr, "muse-train: %s, context %d, %s, %lld steps of %d tokens, %d threads%s%s\n",
                opt.model_path.c_str(), n_ctx, data_desc(opt.data).c_str(), (long long) opt.steps, n_ctx, threads,
                opt.train_embeddings ? ", token embeddings trained" : ", token embeddings as initialised",
                opt.resume ? (", resuming at step " + std::to_string(st.step)).c_str() : "");
    }
    const int64_t first_step = st.step;
    const int64_t end_step   = opt.stop_after > 0 ? std::min(opt.steps, first_step + opt.stop_after) : opt.steps;
    while (st.step < end_step) {
        if (opt.stop && opt.stop()) {
            rep.stopped = true;
            break;
        }
        const int64_t n = std::min<int64_t>(CHUNK, end_step - st.step);
        auto *        data  = static_cast<int32_t *>(ggml_opt_dataset_data(ds)->data);
        auto *        label = static_cast<int32_t *>(ggml_opt_dataset_labels(ds)->data);
        for (int64_t i = 0; i < n; ++i) {
            if (!src->next(w, err)) {
                if (!err.empty()) { ok = false; break; }
                src = make_source(opt.data, model.get(), n_ctx, err);  // a new pass over the file
                if (!src || !src->next(w, err)) { ok = false; break; }
            }
            std::memcpy(data + i * n_ctx, w.data(), n_ctx * sizeof(int32_t));
            std::memcpy(label + i * n_ctx, w.data() + 1, n_ctx * sizeof(int32_t));
            ++st.windows;
        }
        if (!ok) break;
        llama_opt_epoch(ctx.get(), ds, result, nullptr, n, nullptr, nullptr);
        st.step = sch.step;
        st.tokens += n * n_ctx;

        const auto   now     = std::chrono::steady_clock::now();
        const double elapsed = std::chrono::duration<double>(now - t0).count();
        st.seconds           = sec0 + elapsed;
        const double since   = std::chrono::duration<double>(now - t_last).count();
        const bool   last    = st.step >= end_step;
        const bool due = opt.log_every > 0 ? (st.step - first_step) % opt.log_every < n : since >= (tty ? 1.0 : 10.0);
        if (due || last) {
            double loss = 0, unc = 0, acc = 0;
            ggml_opt_result_loss(result, &loss, &unc);
            ggml_opt_result_accuracy(result, &acc, &unc);
            st.loss      = loss;
            st.accuracy  = acc;
            const double tps = (double) (st.tokens - tok_last) / since;
            const double eta = tps > 0 ? (double) (opt.steps - st.step) * n_ctx / tps : 0;
            if (!opt.quiet) {
                fprintf(stderr, "%sstep %lld/%lld  loss %.4f  token acc %.1f%%  lr %.2e  %.0f tok/s  %s elapsed  eta %s%s",
                        tty ? "\r" : "", (long long) st.step, (long long) opt.steps, loss, 100 * acc,
                        sch.lr_at(st.step - 1), tps, fmt_duration(st.seconds).c_str(), fmt_duration(eta).c_str(),
                        tty ? "   " : "\n");
            }
            ggml_opt_result_reset(result);
            t_last   = now;
            tok_last = st.tokens;
        }
        if (opt.checkpoint_every > 0 && st.step - last_ckpt >= opt.checkpoint_every && !last) {
            if (!save(opt.model_path, trained, opt, st, opt.out_path, err)) { ok = false; break; }
            last_ckpt = st.step;
        }
    }
    if (tty && !opt.quiet) fprintf(stderr, "\n");
    if (st.step < opt.steps) rep.stopped = true;
    ggml_opt_result_free(result);
    ggml_opt_dataset_free(ds);
    if (ok && !save(opt.model_path, trained, opt, st, opt.out_path, err)) ok = false;
    rep.steps    = st.step;
    rep.tokens   = st.tokens;
    rep.loss     = st.loss;
    rep.accuracy = st.accuracy;
    rep.seconds  = st.seconds;
    return ok;
}

}  // namespace muse::train
