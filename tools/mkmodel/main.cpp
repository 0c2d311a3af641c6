// muse-mkmodel: command-line front end of muse-mkmodel-lib.
#include "mkmodel.h"

#include <charconv>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>

namespace mk = muse::mkmodel;

namespace {

void print_usage(FILE * out) {
    std::fprintf(out,
                 "usage: muse-mkmodel [options] -o FILE\n"
                 "\n"
                 "Writes a deterministic random-weight GGUF model with a real tokenizer and chat template,\n"
                 "for tests and benchmarks. Same options => byte-identical file.\n"
                 "\n"
                 "options:\n"
                 "  --family F      qwen2 | muse-glimmer | mmproj                  (default: qwen2)\n"
                 "  --preset P      tiny | 0.5b                                    (default: tiny)\n"
                 "  --type T        f32 | f16 | q8_0            (default: f32 for tiny, q8_0 for 0.5b)\n"
                 "  --seed N        weight PRNG seed, 0..2^64-1                    (default: 42)\n"
                 "  --n-embd N      mmproj only: n_embd of the text model to pair with\n"
                 "                  (default: the preset's text model, %d for tiny, %d for 0.5b)\n"
                 "  --template F    text models: store this chat template (a Jinja file) instead of the family's\n"
                 "  --vocab-dir D   llama.cpp models/ folder with ggml-vocab-*.gguf and templates/\n"
                 "                  (default: %s)\n"
                 "  -o, --out FILE  output file (written under a temporary name, then renamed)\n"
                 "  -q, --quiet     no progress output\n"
                 "  -h, --help      show this help\n",
                 mk::text_n_embd(mk::model_preset::TINY), mk::text_n_embd(mk::model_preset::BENCH_0_5B),
                 mk::default_vocab_dir());
}

bool parse_u64(std::string_view s, uint64_t & out) {
    const char * end = s.data() + s.size();
    auto [ptr, ec]   = std::from_chars(s.data(), end, out);
    return ec == std::errc() && ptr == end && !s.empty();
}

struct cli_args {
    mk::options opt;
    bool        quiet = false;
    bool        help  = false;
};

bool parse_args(int argc, char ** argv, cli_args & args, std::string & error) {
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg == "-h" || arg == "--help") {
            args.help = true;
            return true;
        }
        if (arg == "-q" || arg == "--quiet") {
            args.quiet = true;
            continue;
        }
        if (i + 1 >= argc) {
            error = arg.starts_with("-") ? "missing value after " + std::string(arg) :
                                           "unexpected argument '" + std::string(arg) + "'";
            return false;
        }
        const std::string_view val = argv[++i];
        if (arg == "--family") {
            if (val == "qwen2") {
                args.opt.family = mk::model_family::QWEN2;
            } else if (val == "muse-glimmer") {
                args.opt.family = mk::model_family::MUSE_GLIMMER;
            } else if (val == "mmproj") {
                args.opt.family = mk::model_family::MMPROJ;
            } else {
                error = "unknown --family '" + std::string(val) + "' (expected qwen2, muse-glimmer or mmproj)";
                return false;
            }
        } else if (arg == "--preset") {
            if (val == "tiny") {
                args.opt.preset = mk::model_preset::TINY;
            } else if (val == "0.5b") {
                args.opt.preset = mk::model_preset::BENCH_0_5B;
            } else {
                error = "unknown --preset '" + std::string(val) + "' (expected tiny or 0.5b)";
                return false;
            }
        } else if (arg == "--type") {
            if (val == "f32") {
                args.opt.type = mk::weight_type::F32;
            } else if (val == "f16") {
                args.opt.type = mk::weight_type::F16;
            } else if (val == "q8_0") {
                args.opt.type = mk::weight_type::Q8_0;
            } else {
                error = "unknown --type '" + std::string(val) + "' (expected f32, f16 or q8_0)";
                return false;
            }
        } else if (arg == "--seed") {
            if (!parse_u64(val, args.opt.seed)) {
                error = "--seed must be an integer between 0 and 2^64-1, got '" + std::string(val) + "'";
                return false;
            }
        } else if (arg == "--n-embd") {
            uint64_t n = 0;
            if (!parse_u64(val, n) || n < 1 || n > 65536) {
                error = "--n-embd must be an integer between 1 and 65536, got '" + std::string(val) + "'";
                return false;
            }
            args.opt.n_embd_text = static_cast<int>(n);
        } else if (arg == "--template") {
            args.opt.template_path = val;
        } else if (arg == "--vocab-dir") {
            args.opt.vocab_dir = val;
        } else if (arg == "-o" || arg == "--out") {
            args.opt.out_path = val;
        } else {
            error = "unknown option '" + std::string(arg) + "' (see --help)";
            return false;
        }
    }
    if (args.opt.out_path.empty()) {
        error = "no output file: pass -o FILE (see --help)";
        return false;
    }
    return true;
}

}  // namespace

int main(int argc, char ** argv) {
    cli_args    args;
    std::string error;
    if (!parse_args(argc, argv, args, error)) {
        std::fprintf(stderr, "muse-mkmodel: error: %s\n", error.c_str());
        return 2;
    }
    if (args.help) {
        print_usage(stdout);
        return 0;
    }

    // Progress on stderr, in 10% steps, so that stdout stays one parseable result line.
    int shown = 0;
    if (!args.quiet) {
        std::fprintf(stderr, "muse-mkmodel: writing %s:", args.opt.out_path.c_str());
        args.opt.progress = [&shown](double done) {
            for (; shown < static_cast<int>(done * 10.0 + 1e-9) && shown < 10; ++shown) {
                std::fprintf(stderr, " %d%%", (shown + 1) * 10);
                std::fflush(stderr);
            }
        };
    }

    const auto                          t0      = std::chrono::steady_clock::now();
    const bool                          ok      = mk::write_model(args.opt, error);
    const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - t0;
    if (!args.quiet) {
        std::fprintf(stderr, "\n");
    }
    if (!ok) {
        std::fprintf(stderr, "muse-mkmodel: error: %s\n", error.c_str());
        return 1;
    }

    std::error_code ec;
    const auto      size = std::filesystem::file_size(args.opt.out_path, ec);
    std::printf("%s: %s %s %s, %.1f MB, %.2f s\n", args.opt.out_path.c_str(), mk::family_name(args.opt.family),
                mk::preset_name(args.opt.preset), mk::type_name(mk::resolve_type(args.opt.preset, args.opt.type)),
                ec ? 0.0 : static_cast<double>(size) / 1e6, elapsed.count());
    return 0;
}
