#pragma once
// muse-train's parts: a new model from a shape and a vocabulary file (init.cpp), the training
// text as token windows (data.cpp) and the loop on libllama's training API with its schedule,
// progress and checkpoints (trainer.cpp).
//
//   muse::train::shape s{ .n_layer = 4, .n_embd = 128, .n_head = 4, .n_ff = 512, .n_ctx = 256 };
//   muse::train::write_initial_model(s, vocab_text, template_text, 1, "init.gguf", err);
//   muse::train::run(opts, err);   // trains, checkpoints, writes opts.out_path
//
// Thread safety: one run per process (libllama's backend is process-wide).

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

struct llama_model;
struct llama_vocab;

namespace muse::train {

struct shape {
    int n_layer = 4;
    int n_embd  = 128;
    int n_head  = 4;
    int n_ff    = 512;
    int n_ctx   = 256;
};

// A SentencePiece vocabulary built from a muse-train vocabulary file (see models/muse-tiny.vocab):
// <unk> <s> </s>, the 256 byte tokens, printable ASCII and U+2581, then the file's tokens.
struct spm_vocab {
    std::vector<std::string> tokens;
    std::vector<float>       scores;
    std::vector<int32_t>     types;  // llama_token_type values
    int32_t                  eos = 2;
};

bool parse_vocab(const std::string & text, spm_vocab & v, std::string & err);

// Writes an untrained llama-architecture model (F32) with the shape, vocabulary and chat
// template; weights from a seeded generator.
bool write_initial_model(const shape & s, const spm_vocab & v, const std::string & chat_template, uint64_t seed,
                         const std::string & name, const std::string & path, std::string & err);

// Where training text comes from: a file, or the arithmetic task family.
struct data_spec {
    std::string file;             // plain text, or .jsonl of {"messages": [...]} chats
    bool        arith = false;    // the generator (muse-tasks' family) instead of a file
    int         digits_min = 1, digits_max = 4;
    double      p_reasoning = 0.5;   // share of examples with the scratchpad as reasoning
    double      p_harness   = 0.25;  // share of reasoning examples in contemplating's prompt shape
    double      p_verify    = 0.0;   // share of reasoning examples that check a candidate (a verifier's)
    double      p_hard      = 0.0;   // share of problems from the hard cases (tasks::generator_params)
    double      p_sub       = 0.5;   // share of subtractions
    uint64_t    seed        = 1;
};

// Fills windows of n_ctx tokens, each starting at an example's start (examples never straddle a
// window start; one cut by a window's end starts the next window again). Deterministic in
// (spec, position): `skip` windows are produced and dropped first (resume).
class window_source {
  public:
    virtual ~window_source() = default;
    // Next window (n_ctx + 1 tokens: inputs and the label of the last one); false at the end of
    // a file (the caller starts a new pass).
    virtual bool next(std::vector<int32_t> & window, std::string & err) = 0;
};

std::unique_ptr<window_source> make_source(const data_spec & spec, const llama_model * model, int n_ctx,
                                           std::string & err);

struct run_options {
    std::string model_path;   // start from here (a new model or a checkpoint)
    std::string out_path;     // the trained model
    data_spec   data;
    int64_t     steps         = 1000;  // optimizer steps (one window each)
    float       lr            = 1e-3f;
    float       lr_min_ratio  = 0.1f;  // cosine decays to lr * this
    int64_t     warmup        = 100;
    float       weight_decay  = 0.0f;
    int         threads       = 0;     // 0: all cores
    int64_t     checkpoint_every = 0;  // steps; 0: only at the end
    bool        resume        = false; // model_path is a checkpoint: continue its schedule and data
    bool        quiet         = false;
    int64_t     log_every     = 0;     // a progress line every this many steps (0: every 10 s, 1 s on a terminal)
    int64_t     stop_after    = 0;     // steps in this run, then a checkpoint and stop (0: until `steps`)
    int         show          = 0;     // print this many windows as text (after any resume skip) and stop
    bool        train_embeddings = false;  // token_embd trains too (patches/0003 offers it)
    std::function<bool()> stop;        // polled between steps: true stops after a checkpoint
};

struct run_report {
    int64_t steps = 0;       // optimizer steps done in total (including a resumed run's)
    int64_t tokens = 0;
    double  loss = 0, accuracy = 0;  // over the last progress interval
    double  seconds = 0;
    bool    stopped = false;
};

bool run(const run_options & opt, run_report & rep, std::string & err);

}  // namespace muse::train
