// muse-train: trains a small model with libllama's training API (llama_opt_*), from a shape and
// a vocabulary or from an existing F32 model, on a text file, a JSONL file of chats or the
// arithmetic task family. Muse-Tiny's recipe is scripts/train-tiny.
//
//   muse-train --vocab models/muse-tiny.vocab --template models/muse-tiny.jinja
//       --layers 4 --embd 128 --heads 4 --ff 512 --ctx 256 --task arith --digits 1-4
//       --steps 12000 --lr 2e-3 -o muse-tiny-f32.gguf

#include "train.h"

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

static const char * k_help =
    "usage: muse-train [options] -o OUT.gguf\n"
    "\n"
    "Trains a model with llama.cpp's own training code (llama_opt_init / llama_opt_epoch, AdamW).\n"
    "Checkpoints are ordinary GGUF models that also carry their training state (muse.train.*);\n"
    "quantize the result with llama-quantize.\n"
    "\n"
    "A new model (arch llama, F32):\n"
    "  --vocab FILE       vocabulary file (see models/muse-tiny.vocab); required for a new model\n"
    "  --template FILE    chat template (Jinja) stored in the model\n"
    "  --layers N         (default 4)      --embd N  (default 128)   --heads N (default 4)\n"
    "  --ff N             (default 512)    --ctx N   (default 256, a multiple of 256)\n"
    "  --name TEXT        general.name (default muse-train model)\n"
    "Or start from a model:\n"
    "  -m, --model FILE   an F32 GGUF to train further (its schedule starts at step 0)\n"
    "  --resume FILE      a muse-train checkpoint: continue its schedule and data where it stopped\n"
    "                     (give the same data and schedule options as the run that wrote it)\n"
    "Data (one of):\n"
    "  --data FILE        plain text, or .jsonl with {\"messages\": [...]} per line, rendered with\n"
    "                     the model's chat template (assistant messages may carry reasoning_content)\n"
    "  --task arith       multi-digit addition and subtraction (muse-tasks' family, training split)\n"
    "    --digits N|A-B   operand length (default 1-4)\n"
    "    --p-reasoning P  share of answers with the scratchpad as reasoning (default 0.5)\n"
    "    --p-harness P    share of those in Contemplating's solver prompt shape (default 0.25)\n"
    "    --p-verify P     share of those that check a candidate answer, right or slipped, in\n"
    "                     Contemplating's verifier prompt (default 0)\n"
    "    --p-hard P       share of problems drawn from hard cases: operands of different lengths,\n"
    "                     subtractions with leading zeros, runs of carries (default 0)\n"
    "    --p-sub P        share of subtractions (default 0.5)\n"
    "  --data-seed N      (default 1)\n"
    "Schedule:\n"
    "  --steps N          optimizer steps, one context window each (default 1000)\n"
    "  --lr X             peak learning rate (default 1e-3)\n"
    "  --warmup N         linear warm-up steps (default 100), then cosine decay\n"
    "  --lr-min-ratio X   the decay's floor as a fraction of --lr (default 0.1)\n"
    "  --weight-decay X   AdamW weight decay (default 0)\n"
    "  --seed N           weight initialisation seed (default 1)\n"
    "  --checkpoint-every N  write OUT every N steps (default 500; 0: only at the end)\n"
    "  --stop-after N     train N steps in this run, write OUT and stop (--resume continues)\n"
    "  -t, --threads N    (default: all cores)\n"
    "  -o FILE            where the model goes (checkpoints too); required\n"
    "  --train-embeddings train the token embeddings too (default: they stay as initialised)\n"
    "  --show N           print the first N training windows as text and stop (check the data)\n"
    "  --log-every N      a progress line every N steps (default: every 10 s, 1 s on a terminal)\n"
    "  -q, --quiet        no progress lines\n"
    "  -h, --help         this help\n"
    "\n"
    "Ctrl-C writes a checkpoint and stops; --resume continues from it.\n";

static std::atomic<bool> g_stop{ false };

static void on_signal(int) {
    if (g_stop.exchange(true)) {
        _Exit(130);
    }
}

static bool read_file(const std::string & path, std::string & out) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return false;
    std::stringstream ss;
    ss << in.rdbuf();
    out = ss.str();
    return true;
}

int main(int argc, char ** argv) {
    using namespace muse::train;
    shape       sh;
    run_options opt;
    std::string vocab_path, template_path, name = "muse-train model", model_path, resume_path, task;
    uint64_t    seed = 1;
    opt.checkpoint_every = 500;

    auto fail = [](const std::string & msg) {
        fprintf(stderr, "muse-train: %s\n", msg.c_str());
        return 2;
    };
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        std::string       v;
        auto value = [&](const char * flag) {
            if (i + 1 >= argc) {
                fprintf(stderr, "muse-train: %s needs a value\n", flag);
                exit(2);
            }
            v = argv[++i];
            return true;
        };
        auto integer = [&](const char * flag, long long lo, long long hi) -> long long {
            value(flag);
            char * end = nullptr;
            errno      = 0;
            long long x = strtoll(v.c_str(), &end, 10);
            if (errno || end == v.c_str() || *end || x < lo || x > hi) {
                fprintf(stderr, "muse-train: %s takes an integer in %lld..%lld, got '%s'\n", flag, lo, hi, v.c_str());
                exit(2);
            }
            return x;
        };
        auto real = [&](const char * flag, double lo, double hi) -> double {
            value(flag);
            char * end = nullptr;
            double x   = strtod(v.c_str(), &end);
            if (end == v.c_str() || *end || !(x >= lo && x <= hi)) {
                fprintf(stderr, "muse-train: %s takes a number in %g..%g, got '%s'\n", flag, lo, hi, v.c_str());
                exit(2);
            }
            return x;
        };
        if (a == "-h" || a == "--help") { fputs(k_help, stdout); return 0; }
        else if (a == "--vocab") { value("--vocab"); vocab_path = v; }
        else if (a == "--template") { value("--template"); template_path = v; }
        else if (a == "--layers") sh.n_layer = (int) integer("--layers", 1, 64);
        else if (a == "--embd") sh.n_embd = (int) integer("--embd", 16, 4096);
        else if (a == "--heads") sh.n_head = (int) integer("--heads", 1, 128);
        else if (a == "--ff") sh.n_ff = (int) integer("--ff", 16, 16384);
        else if (a == "--ctx") sh.n_ctx = (int) integer("--ctx", 256, 8192);
        else if (a == "--name") { value("--name"); name = v; }
        else if (a == "-m" || a == "--model") { value("--model"); model_path = v; }
        else if (a == "--resume") { value("--resume"); resume_path = v; }
        else if (a == "--data") { value("--data"); opt.data.file = v; }
        else if (a == "--task") { value("--task"); task = v; }
        else if (a == "--digits") {
            value("--digits");
            int lo = 0, hi = 0;
            char c = 0;
            const int n = sscanf(v.c_str(), "%d%c%d", &lo, &c, &hi);
            if (n == 1) hi = lo;
            if (!((n == 1) || (n == 3 && c == '-')) || lo < 1 || hi > 18 || lo > hi) {
                return fail("--digits is N or A-B within 1..18, got '" + v + "'");
            }
            opt.data.digits_min = lo;
            opt.data.digits_max = hi;
        }
        else if (a == "--p-reasoning") opt.data.p_reasoning = real("--p-reasoning", 0, 1);
        else if (a == "--p-harness") opt.data.p_harness = real("--p-harness", 0, 1);
        else if (a == "--p-hard") opt.data.p_hard = real("--p-hard", 0, 1);
        else if (a == "--p-verify") opt.data.p_verify = real("--p-verify", 0, 1);
        else if (a == "--p-sub") opt.data.p_sub = real("--p-sub", 0, 1);
        else if (a == "--data-seed") opt.data.seed = (uint64_t) integer("--data-seed", 0, 1LL << 62);
        else if (a == "--steps") opt.steps = integer("--steps", 1, 100000000);
        else if (a == "--lr") opt.lr = (float) real("--lr", 1e-7, 0.5);
        else if (a == "--warmup") opt.warmup = integer("--warmup", 0, 100000000);
        else if (a == "--lr-min-ratio") opt.lr_min_ratio = (float) real("--lr-min-ratio", 0, 1);
        else if (a == "--weight-decay") opt.weight_decay = (float) real("--weight-decay", 0, 1);
        else if (a == "--seed") seed = (uint64_t) integer("--seed", 0, 1LL << 62);
        else if (a == "--checkpoint-every") opt.checkpoint_every = integer("--checkpoint-every", 0, 100000000);
        else if (a == "-t" || a == "--threads") opt.threads = (int) integer("--threads", 1, 512);
        else if (a == "-o") { value("-o"); opt.out_path = v; }
        else if (a == "-q" || a == "--quiet") opt.quiet = true;
        else if (a == "--log-every") opt.log_every = integer("--log-every", 1, 100000000);
        else if (a == "--stop-after") opt.stop_after = integer("--stop-after", 1, 100000000);
        else if (a == "--train-embeddings") opt.train_embeddings = true;
        else if (a == "--show") opt.show = (int) integer("--show", 1, 1000);
        else return fail("unknown option '" + a + "' (see --help)");
    }
    if (opt.out_path.empty()) return fail("-o OUT.gguf is required (see --help)");
    if (!task.empty() && task != "arith") return fail("--task is arith, got '" + task + "'");
    opt.data.arith = task == "arith";
    if (opt.data.arith == !opt.data.file.empty()) return fail("give one of --data FILE and --task arith");
    if (!model_path.empty() && !resume_path.empty()) return fail("--model and --resume exclude each other");
    if ((!model_path.empty() || !resume_path.empty()) && !vocab_path.empty()) {
        return fail("--vocab makes a new model; it does not go with --model or --resume");
    }

    if (!resume_path.empty()) {
        opt.model_path = resume_path;
        opt.resume     = true;
    } else if (!model_path.empty()) {
        opt.model_path = model_path;
    } else {
        if (vocab_path.empty()) return fail("a new model needs --vocab FILE (or start from --model / --resume)");
        if (sh.n_ctx % 256 != 0) return fail("--ctx must be a multiple of 256 (llama.cpp trains whole 256-token blocks)");
        std::string vocab_text, tmpl, err;
        if (!read_file(vocab_path, vocab_text)) return fail("cannot read " + vocab_path);
        if (!template_path.empty() && !read_file(template_path, tmpl)) return fail("cannot read " + template_path);
        spm_vocab voc;
        if (!parse_vocab(vocab_text, voc, err)) return fail(vocab_path + ": " + err);
        if (!write_initial_model(sh, voc, tmpl, seed, name, opt.out_path, err)) return fail(err);
        if (!opt.quiet) {
            fprintf(stderr, "muse-train: new model %s: %d layers, embd %d, %d heads, ff %d, ctx %d, %zu tokens\n",
                    opt.out_path.c_str(), sh.n_layer, sh.n_embd, sh.n_head, sh.n_ff, sh.n_ctx, voc.tokens.size());
        }
        opt.model_path = opt.out_path;
    }

    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    opt.stop = [] { return g_stop.load(); };
    run_report  rep;
    std::string err;
    if (!run(opt, rep, err)) {
        fprintf(stderr, "muse-train: %s\n", err.c_str());
        return 1;  // training failed (2 is for a bad command line)
    }
    printf("muse-train: %s: %lld steps, %lld tokens, loss %.4f, token accuracy %.1f%%, %.0f s%s\n",
           opt.out_path.c_str(), (long long) rep.steps, (long long) rep.tokens, rep.loss, 100 * rep.accuracy,
           rep.seconds, rep.stopped ? " (stopped; --resume continues)" : "");
    return rep.stopped && g_stop ? 130 : 0;
}
