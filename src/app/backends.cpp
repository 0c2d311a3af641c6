#include "backends.h"

#include "core/file.h"

#include <nlohmann/json.hpp>

#include <cstdlib>

namespace muse {

namespace {

using json = nlohmann::json;

bool int_field(const json & e, const char * key, int64_t lo, int64_t hi, int32_t & out, std::string & why) {
    if (!e.contains(key)) return true;
    const json & v = e.at(key);
    if (!v.is_number_integer() || v.get<int64_t>() < lo || v.get<int64_t>() > hi) {
        why = std::string(key) + " must be a whole number in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
        return false;
    }
    out = (int32_t) v.get<int64_t>();
    return true;
}

bool string_field(const json & e, const char * key, size_t max, std::string & out, std::string & why) {
    if (!e.contains(key)) return true;
    const json & v = e.at(key);
    if (!v.is_string() || v.get<std::string>().size() > max) {
        why = std::string(key) + " must be a string of at most " + std::to_string(max) + " bytes";
        return false;
    }
    out = v.get<std::string>();
    return true;
}

}  // namespace

error parse_backends(const std::string & text, const std::string & source, const remote_params & defaults,
                     std::vector<backend_spec> & out) {
    out.clear();
    if (text.size() > k_max_backends_file) {
        return { ERROR_INVALID_ARGUMENT, source + ": larger than " + std::to_string(k_max_backends_file) + " bytes" };
    }
    // Depth is bounded: the parser is iterative over nesting, and anything deeper than an
    // entry's fields is refused below.
    json doc = json::parse(text, nullptr, false);
    if (doc.is_discarded()) return { ERROR_INVALID_ARGUMENT, source + ": not valid JSON" };
    if (doc.is_object()) {
        for (auto it = doc.begin(); it != doc.end(); ++it) {
            if (it.key() != "backends") return { ERROR_INVALID_ARGUMENT, source + ": unknown key \"" + it.key() + "\" (expected \"backends\")" };
        }
        if (!doc.contains("backends")) return { ERROR_INVALID_ARGUMENT, source + ": no \"backends\" array" };
        doc = doc.at("backends");
    }
    if (!doc.is_array()) return { ERROR_INVALID_ARGUMENT, source + ": expected an array of backends or {\"backends\": [...]}" };
    if (doc.empty()) return { ERROR_INVALID_ARGUMENT, source + ": no backends listed" };
    if (doc.size() > k_max_backends) {
        return { ERROR_INVALID_ARGUMENT, source + ": at most " + std::to_string(k_max_backends) + " backends" };
    }
    bool have_local = false;
    for (size_t i = 0; i < doc.size(); ++i) {
        const json &      e     = doc[i];
        const std::string where = source + ": backend " + std::to_string(i + 1) + ": ";
        if (!e.is_object()) return { ERROR_INVALID_ARGUMENT, where + "expected an object with \"url\"" };
        static const char * known[] = { "url", "key", "key_env", "model", "weight", "max_in_flight", "ctx", "timeout", "connect_timeout", "vision" };
        for (auto it = e.begin(); it != e.end(); ++it) {
            bool ok = false;
            for (const char * k : known) ok = ok || it.key() == k;
            if (!ok) {
                return { ERROR_INVALID_ARGUMENT, where + "unknown key \"" + it.key().substr(0, 64) +
                                                     "\" (url, key, key_env, model, weight, max_in_flight, ctx, timeout, connect_timeout, vision)" };
            }
        }
        backend_spec s;
        s.remote = defaults;
        std::string why, key_env;
        if (!e.contains("url")) return { ERROR_INVALID_ARGUMENT, where + "no \"url\"" };
        if (!string_field(e, "url", 2048, s.remote.url, why) || !string_field(e, "key", 4096, s.remote.api_key, why) ||
            !string_field(e, "key_env", 256, key_env, why) || !string_field(e, "model", 512, s.remote.model, why) ||
            !int_field(e, "weight", 1, k_max_backend_weight, s.weight, why) ||
            !int_field(e, "max_in_flight", 0, k_max_backend_inflight, s.max_in_flight, why) ||
            !int_field(e, "ctx", 0, 1 << 22, s.remote.n_ctx, why) || !int_field(e, "timeout", 1, 3600, s.remote.read_timeout_s, why) ||
            !int_field(e, "connect_timeout", 1, 600, s.remote.connect_timeout_s, why)) {
            return { ERROR_INVALID_ARGUMENT, where + why };
        }
        if (e.contains("vision")) {
            if (!e["vision"].is_boolean()) return { ERROR_INVALID_ARGUMENT, where + "vision must be true or false" };
            s.remote.vision = e["vision"].get<bool>() ? 1 : 0;
        }
        if (s.remote.n_ctx > 0 && s.remote.n_ctx < 256) return { ERROR_INVALID_ARGUMENT, where + "ctx must be 0 or in [256, 4194304]" };
        if (s.remote.url == "local") {
            if (have_local) return { ERROR_INVALID_ARGUMENT, where + "\"local\" is listed twice" };
            for (const char * k : { "key", "key_env", "model", "ctx", "timeout", "connect_timeout", "vision" }) {
                if (e.contains(k)) return { ERROR_INVALID_ARGUMENT, where + "\"local\" takes weight and max_in_flight only, not " + k };
            }
            have_local = true;
            s.local    = true;
            out.push_back(s);
            continue;
        }
        if (!key_env.empty()) {
            if (e.contains("key")) return { ERROR_INVALID_ARGUMENT, where + "give key or key_env, not both" };
            const char * v = getenv(key_env.c_str());
            if (!v || !*v) return { ERROR_INVALID_ARGUMENT, where + "key_env: the environment variable " + key_env + " is not set" };
            s.remote.api_key = v;
        }
        if (std::string bad = validate(s.remote); !bad.empty()) return { ERROR_INVALID_ARGUMENT, where + s.remote.url.substr(0, 200) + ": " + bad };
        for (const auto & prev : out) {
            if (!prev.local && prev.remote.url == s.remote.url && prev.remote.model == s.remote.model) {
                return { ERROR_INVALID_ARGUMENT, where + s.remote.url.substr(0, 200) + " is listed twice" };
            }
        }
        out.push_back(s);
    }
    return {};
}

error read_backends_file(const std::string & path, const remote_params & defaults, std::vector<backend_spec> & out) {
    std::string text;
    if (error e = read_file_capped(path, k_max_backends_file, "backends file", "list at most 64 servers", text)) return e;
    return parse_backends(text, path, defaults, out);
}

}  // namespace muse
