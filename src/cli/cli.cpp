#include "cli.h"

#include "mkmodel.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <unistd.h>

namespace muse::cli {

int exit_code_for(error_code code) {
    switch (code) {
        case ERROR_NONE:
            return EXIT_OK;
        case ERROR_FILE_NOT_FOUND:
        case ERROR_NOT_GGUF:
        case ERROR_CORRUPT_MODEL:
        case ERROR_UNSUPPORTED_ARCH:
        case ERROR_MODEL_LOAD:
        case ERROR_PROJECTOR_LOAD:
            return EXIT_MODEL;
        case ERROR_INVALID_ARGUMENT:
            return EXIT_USAGE;
        default:
            return EXIT_FAILURE_;
    }
}

args::args(int argc, char ** argv, int first) {
    for (int k = first; k < argc; ++k) {
        v.emplace_back(argv[k]);
    }
}

bool args::flag(const char * name) {
    if (!done() && v[i] == name) {
        i++;
        return true;
    }
    return false;
}

bool args::value(const char * name, std::string & out) {
    if (done()) {
        return false;
    }
    const std::string n  = name;
    const std::string &a = v[i];
    if (a == n) {
        if (i + 1 >= (int) v.size()) {
            error = n + " needs a value";
            i++;
            return true;
        }
        out = v[i + 1];
        i += 2;
        return true;
    }
    if (a.rfind(n + "=", 0) == 0) {
        out = a.substr(n.size() + 1);
        i++;
        return true;
    }
    return false;
}

bool args::int_value(const char * name, int64_t lo, int64_t hi, int32_t & out) {
    std::string s;
    if (!value(name, s)) {
        return false;
    }
    if (!error.empty()) {
        return true;
    }
    char *    end = nullptr;
    long long x   = std::strtoll(s.c_str(), &end, 10);
    if (s.empty() || *end != '\0' || x < lo || x > hi) {
        error = std::string(name) + " must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got '" + s + "'";
        return true;
    }
    out = (int32_t) x;
    return true;
}

bool args::float_value(const char * name, double lo, double hi, float & out) {
    std::string s;
    if (!value(name, s)) {
        return false;
    }
    if (!error.empty()) {
        return true;
    }
    char * end = nullptr;
    double x   = std::strtod(s.c_str(), &end);
    if (s.empty() || *end != '\0' || !(x >= lo && x <= hi)) {
        char buf[160];
        snprintf(buf, sizeof(buf), "%s must be a number in [%g, %g], got '%s'", name, lo, hi, s.c_str());
        error = buf;
        return true;
    }
    out = (float) x;
    return true;
}

std::string cache_dir() {
    if (const char * d = std::getenv("MUSE_CACHE_DIR"); d && *d) {
        return d;
    }
    if (const char * d = std::getenv("XDG_CACHE_HOME"); d && *d) {
        return std::string(d) + "/muse";
    }
    if (const char * h = std::getenv("HOME"); h && *h) {
        return std::string(h) + "/.cache/muse";
    }
    return "/tmp/muse-cache";
}

bool default_model(std::string & path, bool & generated, std::string & err, bool quiet) {
    generated = false;
    if (const char * m = std::getenv("MUSE_MODEL"); m && *m) {
        path = m;
        return true;
    }
    namespace fs = std::filesystem;
    const std::string dir = cache_dir() + "/models";
    path                  = dir + "/smoke-muse-glimmer.gguf";
    generated             = true;
    if (fs::exists(path)) {
        return true;
    }
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) {
        err = "cannot create " + dir + ": " + ec.message() + " (set MUSE_CACHE_DIR or pass --model)";
        return false;
    }
    if (!quiet) {
        fprintf(stderr, "generating the smoke-test model in %s ...\n", path.c_str());
    }
    mkmodel::options opt;
    opt.family   = mkmodel::model_family::MUSE_GLIMMER;
    opt.preset   = mkmodel::model_preset::TINY;
    opt.out_path = path;
    if (!mkmodel::write_model(opt, err)) {
        err = "cannot generate the default smoke model: " + err + " (pass --model FILE.gguf)";
        return false;
    }
    return true;
}

bool stderr_is_tty() { return isatty(STDERR_FILENO) == 1; }
bool stdout_is_tty() { return isatty(STDOUT_FILENO) == 1; }

void progress_line(const char * what, float fraction) {
    if (!stderr_is_tty()) {
        return;
    }
    const int width = 30;
    const int fill  = (int) (fraction * width + 0.5f);
    fprintf(stderr, "\r%s [%.*s%*s] %3d%%", what, fill, "##############################", width - fill, "", (int) (fraction * 100 + 0.5f));
    fflush(stderr);
}

void progress_done() {
    if (stderr_is_tty()) {
        fprintf(stderr, "\r\033[K");
        fflush(stderr);
    }
}

}  // namespace muse::cli
