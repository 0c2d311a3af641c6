// Hostile model files: a corpus of damaged and malicious variants of the tiny generated model
// (metadata llama.cpp would assert on, broken vocabularies and tensor tables, truncations,
// chat templates that recurse, loop or explode) must each make `muse info` exit 3 with one
// line on stderr, in bounded time and memory; the untouched model must still load.
//
// Variants are written next to each other in the scratch directory with their tensor data
// left as a hole (a sparse file of zeros): `muse info` never computes with the weights, so
// the corpus costs no disk and the rebuilt-but-unchanged control shows that the writer
// alone makes no model unloadable.

#include "test-models.h"

#include "ggml-cpp.h"
#include "ggml.h"
#include "gguf.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <functional>
#include <limits>
#include <poll.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

using namespace muse;

namespace {

// ---------------------------------------------------------------------------------------
// Running `muse info` with limits

struct run_result {
    int         exit_code = -1;  // 128 + signal when killed
    std::string out;
    std::string err;
    double      wall_s    = 0;
    long        maxrss_kb = 0;  // the process and the children it waited for (wait4)
    bool        timed_out = false;
};

// Every run gets this much address space: if a check regresses, the machine is not the
// one to run out of memory. The assertion below is on peak RSS, far lower.
constexpr uint64_t k_address_space_limit = 6ull << 30;
constexpr double   k_run_timeout_s       = 120;

run_result run_muse(const std::vector<std::string> & args) {
    run_result r;
    int        out_fd[2], err_fd[2];
    if (pipe2(out_fd, O_CLOEXEC) != 0 || pipe2(err_fd, O_CLOEXEC) != 0) {
        r.err = "pipe failed";
        return r;
    }
    std::vector<char *> argv;
    argv.push_back(const_cast<char *>(MUSE_CLI_PATH));
    for (const auto & a : args) {
        argv.push_back(const_cast<char *>(a.c_str()));
    }
    argv.push_back(nullptr);

    const auto  t0  = std::chrono::steady_clock::now();
    const pid_t pid = fork();
    if (pid == 0) {
        struct rlimit as = { k_address_space_limit, k_address_space_limit };
        setrlimit(RLIMIT_AS, &as);
        dup2(out_fd[1], 1);
        dup2(err_fd[1], 2);
        execv(MUSE_CLI_PATH, argv.data());
        _exit(127);
    }
    close(out_fd[1]);
    close(err_fd[1]);

    struct pollfd fds[2] = { { out_fd[0], POLLIN, 0 }, { err_fd[0], POLLIN, 0 } };
    std::string * bufs[2] = { &r.out, &r.err };
    int           open_n  = 2;
    while (open_n > 0) {
        const double left = k_run_timeout_s - std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (left <= 0) {
            kill(pid, SIGKILL);
            r.timed_out = true;
            break;
        }
        const int n = poll(fds, 2, (int) (left * 1000) + 1);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd >= 0 && (fds[i].revents & (POLLIN | POLLHUP | POLLERR))) {
                char          buf[4096];
                const ssize_t k = read(fds[i].fd, buf, sizeof(buf));
                if (k > 0) {
                    if (bufs[i]->size() < (1u << 20)) {
                        bufs[i]->append(buf, (size_t) k);
                    }
                } else if (k == 0 || errno != EINTR) {
                    close(fds[i].fd);
                    fds[i].fd = -1;
                    --open_n;
                }
            }
        }
    }
    for (auto & f : fds) {
        if (f.fd >= 0) {
            close(f.fd);
        }
    }
    int           status = 0;
    struct rusage ru     = {};
    while (wait4(pid, &status, 0, &ru) < 0 && errno == EINTR) {
    }
    r.wall_s    = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    r.maxrss_kb = ru.ru_maxrss;
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return r;
}

// ---------------------------------------------------------------------------------------
// A model file to damage: its metadata (a gguf context) and tensor table, written as
// metadata + a sparse data section, then optionally patched as raw bytes.

struct tensor_desc {
    std::string name;
    ggml_type   type;
    int64_t     ne[GGML_MAX_DIMS];
};

struct model_file {
    gguf_context_ptr         meta{ gguf_init_empty() };
    std::vector<tensor_desc> tensors;

    void set_u32(const std::string & k, uint32_t v) { gguf_set_val_u32(meta.get(), k.c_str(), v); }
    void set_i32(const std::string & k, int32_t v) { gguf_set_val_i32(meta.get(), k.c_str(), v); }
    void set_f32(const std::string & k, float v) { gguf_set_val_f32(meta.get(), k.c_str(), v); }
    void set_str(const std::string & k, const std::string & v) { gguf_set_val_str(meta.get(), k.c_str(), v.c_str()); }
    void remove(const std::string & k) { gguf_remove_key(meta.get(), k.c_str()); }
    void set_u32_arr(const std::string & k, const std::vector<uint32_t> & v) {
        gguf_set_arr_data(meta.get(), k.c_str(), GGUF_TYPE_UINT32, v.data(), v.size());
    }
    void set_str_arr(const std::string & k, const std::vector<std::string> & v) {
        std::vector<const char *> p;
        for (const auto & s : v) {
            p.push_back(s.c_str());
        }
        gguf_set_arr_str(meta.get(), k.c_str(), p.data(), p.size());
    }
    std::vector<std::string> str_arr(const std::string & k) const {
        const int64_t            id = gguf_find_key(meta.get(), k.c_str());
        std::vector<std::string> v;
        for (size_t i = 0; i < gguf_get_arr_n(meta.get(), id); ++i) {
            v.push_back(gguf_get_arr_str(meta.get(), id, i));
        }
        return v;
    }
    tensor_desc * tensor(const std::string & name) {
        for (auto & t : tensors) {
            if (t.name == name) {
                return &t;
            }
        }
        return nullptr;
    }
    void drop_tensor(const std::string & name) {
        std::erase_if(tensors, [&](const tensor_desc & t) { return t.name == name; });
    }
};

model_file read_model(const std::string & path) {
    model_file       m;
    gguf_init_params gp = { /*no_alloc =*/ true, /*ctx =*/ nullptr };
    gguf_context_ptr src(gguf_init_from_file(path.c_str(), gp));
    if (!src) {
        ADD_FAILURE() << "cannot read " << path;
        return m;
    }
    gguf_set_kv(m.meta.get(), src.get());
    for (int64_t i = 0; i < gguf_get_n_tensors(src.get()); ++i) {
        tensor_desc t;
        t.name = gguf_get_tensor_name(src.get(), i);
        t.type = gguf_get_tensor_type(src.get(), i);
        std::memcpy(t.ne, gguf_get_tensor_ne(src.get(), i), sizeof(t.ne));
        m.tensors.push_back(t);
    }
    return m;
}

// The file's bytes: metadata (which patches may edit) and how long the data section is.
struct file_bytes {
    std::string meta;
    uint64_t    data_size = 0;
};

file_bytes serialize(const model_file & m) {
    gguf_context_ptr out(gguf_init_empty());
    gguf_set_kv(out.get(), m.meta.get());
    ggml_init_params ip = { /*mem_size =*/ (m.tensors.size() + 1) * ggml_tensor_overhead(), nullptr, /*no_alloc =*/ true };
    ggml_context_ptr tctx(ggml_init(ip));
    for (const auto & t : m.tensors) {
        int n_dims = GGML_MAX_DIMS;
        while (n_dims > 1 && t.ne[n_dims - 1] == 1) {
            --n_dims;
        }
        ggml_tensor * x = ggml_new_tensor(tctx.get(), t.type, n_dims, t.ne);
        ggml_set_name(x, t.name.c_str());
        gguf_add_tensor(out.get(), x);
    }
    file_bytes f;
    f.meta.resize(gguf_get_meta_size(out.get()));
    gguf_get_meta_data(out.get(), f.meta.data());
    const int64_t n = gguf_get_n_tensors(out.get());
    if (n > 0) {
        const size_t align = gguf_get_alignment(out.get());
        const size_t last  = gguf_get_tensor_size(out.get(), n - 1);
        f.data_size        = gguf_get_tensor_offset(out.get(), n - 1) + (last + align - 1) / align * align;
    }
    return f;
}

bool write_file(const std::string & path, const file_bytes & f) {
    std::filesystem::remove(path);
    const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        return false;
    }
    bool ok = write(fd, f.meta.data(), f.meta.size()) == (ssize_t) f.meta.size();
    ok      = ok && ftruncate(fd, (off_t) (f.meta.size() + f.data_size)) == 0;  // a hole: zeros, no disk
    close(fd);
    return ok;
}

// Raw-byte helpers for damage the gguf API refuses to write.
void put_u32(std::string & b, size_t at, uint32_t v) { std::memcpy(&b[at], &v, 4); }
void put_u64(std::string & b, size_t at, uint64_t v) { std::memcpy(&b[at], &v, 8); }

// Offset of the bytes just after a key's (or tensor's) name in the metadata.
size_t after_name(const std::string & b, const std::string & name) {
    std::string needle(8, '\0');
    put_u64(needle, 0, name.size());
    needle += name;
    const size_t at = b.find(needle);
    EXPECT_NE(at, std::string::npos) << name;
    return at == std::string::npos ? 0 : at + needle.size();
}

// The qwen2 model as the llama architecture (same tensors, keys renamed in place: both
// prefixes are six bytes).
void as_llama(file_bytes & f) {
    for (size_t at = 0; (at = f.meta.find("qwen2.", at)) != std::string::npos; at += 6) {
        f.meta.replace(at, 6, "llama.");
    }
    f.meta.replace(after_name(f.meta, "general.architecture") + 4 + 8, 5, "llama");
}

// ---------------------------------------------------------------------------------------
// The corpus

struct variant {
    test::test_family                             base = test::QWEN;
    std::string                                   name;
    std::string                                   expect;  // the error line must contain this ("" = anything)
    std::function<void(model_file &)>             edit;    // may be empty
    std::function<void(file_bytes &)>             patch;   // may be empty
};

const std::string A = "qwen2.";  // the tiny model's architecture

std::string tmpl_repeat(const std::string & open, int n, const std::string & mid, const std::string & close) {
    std::string s;
    for (int i = 0; i < n; ++i) {
        s += open;
    }
    s += mid;
    for (int i = 0; i < n; ++i) {
        s += close;
    }
    return s;
}

std::vector<variant> corpus() {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const float inf = std::numeric_limits<float>::infinity();
    std::vector<variant> v;
    auto kv = [&](std::string name, std::string expect, std::function<void(model_file &)> edit) {
        v.push_back({ test::QWEN, std::move(name), std::move(expect), std::move(edit), nullptr });
    };
    auto raw = [&](std::string name, std::string expect, std::function<void(file_bytes &)> patch) {
        v.push_back({ test::QWEN, std::move(name), std::move(expect), nullptr, std::move(patch) });
    };
    auto glimmer = [&](std::string name, std::string expect, std::function<void(model_file &)> edit) {
        v.push_back({ test::GLIMMER, "glimmer-" + name, std::move(expect), std::move(edit), nullptr });
    };

    // The file itself: header, counts, lengths, types, offsets, truncation.
    raw("empty-file", "not a GGUF", [](file_bytes & f) { f.meta.clear(); f.data_size = 0; });
    raw("magic-only", "", [](file_bytes & f) { f.meta.resize(4); f.data_size = 0; });
    raw("bad-magic", "not a GGUF", [](file_bytes & f) { f.meta[3] = 'X'; });
    raw("version-0", "", [](file_bytes & f) { put_u32(f.meta, 4, 0); });
    raw("version-99", "", [](file_bytes & f) { put_u32(f.meta, 4, 99); });
    raw("tensor-count-huge", "", [](file_bytes & f) { put_u64(f.meta, 8, 1ull << 62); });
    raw("kv-count-huge", "", [](file_bytes & f) { put_u64(f.meta, 16, 1ull << 62); });
    raw("kv-count-zero", "", [](file_bytes & f) { put_u64(f.meta, 16, 0); });
    raw("kv-count-one-more", "", [](file_bytes & f) { put_u64(f.meta, 16, *(uint64_t *) &f.meta[16] + 1); });
    raw("key-length-huge", "", [](file_bytes & f) { put_u64(f.meta, 24, 1ull << 62); });
    raw("string-length-huge", "", [](file_bytes & f) {
        put_u64(f.meta, after_name(f.meta, "general.architecture") + 4, 1ull << 62);
    });
    raw("array-count-huge", "", [](file_bytes & f) {
        put_u64(f.meta, after_name(f.meta, "tokenizer.ggml.tokens") + 8, 1ull << 60);
    });
    raw("array-count-short", "", [](file_bytes & f) {
        put_u64(f.meta, after_name(f.meta, "tokenizer.ggml.token_type") + 8, 10);
    });
    raw("value-type-invalid", "", [](file_bytes & f) { put_u32(f.meta, after_name(f.meta, "general.architecture"), 99); });
    raw("array-type-invalid", "", [](file_bytes & f) { put_u32(f.meta, after_name(f.meta, "tokenizer.ggml.tokens") + 4, 77); });
    // The gguf API asserts on a bad alignment: write a good one, then change its bytes.
    for (uint32_t align : { 0u, 3u, 1u << 31 }) {
        v.push_back({ test::QWEN, "alignment-" + std::to_string(align), "",
                      [](model_file & m) { m.set_u32("general.alignment", 32); },
                      [align](file_bytes & f) { put_u32(f.meta, after_name(f.meta, "general.alignment") + 4, align); } });
    }
    // The gguf API refuses duplicate keys: add one of the same length, then rename it in place.
    v.push_back({ test::QWEN, "duplicate-key", "", [](model_file & m) { m.set_u32(A + "block_couns", 513); },
                  [](file_bytes & f) { f.meta[after_name(f.meta, A + "block_couns") - 1] = 't'; } });
    raw("duplicate-tensor", "", [](file_bytes & f) {
        f.meta[after_name(f.meta, "blk.0.attn_k.weight") - 8] = 'q';  // blk.0.attn_k -> blk.0.attn_q
    });
    raw("tensor-dims-5", "", [](file_bytes & f) { put_u32(f.meta, after_name(f.meta, "blk.0.attn_q.weight"), 5); });
    raw("tensor-dims-0", "", [](file_bytes & f) { put_u32(f.meta, after_name(f.meta, "blk.0.attn_q.weight"), 0); });
    raw("tensor-type-invalid", "", [](file_bytes & f) {
        const size_t at = after_name(f.meta, "blk.0.attn_q.weight");  // n_dims, ne[n_dims], type
        const uint32_t n_dims = *(uint32_t *) &f.meta[at];
        put_u32(f.meta, at + 4 + 8 * n_dims, 200);
    });
    raw("tensor-shape-overflow", "", [](file_bytes & f) {
        put_u64(f.meta, after_name(f.meta, "blk.0.attn_q.weight") + 4, 1ull << 62);
    });
    raw("tensor-shape-zero", "", [](file_bytes & f) {
        put_u64(f.meta, after_name(f.meta, "blk.0.attn_q.weight") + 4, 0);
    });
    raw("tensor-offset-misaligned", "", [](file_bytes & f) {
        const size_t   at     = after_name(f.meta, "blk.0.attn_q.weight");
        const uint32_t n_dims = *(uint32_t *) &f.meta[at];
        const size_t   off    = at + 4 + 8 * n_dims + 4;
        put_u64(f.meta, off, *(uint64_t *) &f.meta[off] + 1);
    });
    raw("tensor-offset-past-end", "", [](file_bytes & f) {
        const size_t   at     = after_name(f.meta, "output_norm.weight");
        const uint32_t n_dims = *(uint32_t *) &f.meta[at];
        put_u64(f.meta, at + 4 + 8 * n_dims + 4, 1ull << 40);
    });
    raw("cut-in-header", "", [](file_bytes & f) { f.meta.resize(20); f.data_size = 0; });
    raw("cut-in-metadata", "", [](file_bytes & f) { f.meta.resize(f.meta.size() / 3); f.data_size = 0; });
    raw("cut-in-tensor-table", "", [](file_bytes & f) { f.meta.resize(f.meta.size() - 200); f.data_size = 0; });
    raw("cut-at-data", "truncated", [](file_bytes & f) { f.data_size = 0; });
    raw("cut-in-data", "truncated", [](file_bytes & f) { f.data_size /= 2; });
    raw("cut-one-byte-short", "truncated", [](file_bytes & f) { f.data_size -= 1; });

    // The architecture and its hyperparameters.
    kv("arch-missing", "general.architecture", [](model_file & m) { m.remove("general.architecture"); });
    kv("arch-wrong-type", "general.architecture", [](model_file & m) { m.set_u32("general.architecture", 2); });
    kv("arch-with-newline", "", [](model_file & m) { m.set_str("general.architecture", "qwen2\nfake second line"); });
    kv("key-with-newline", "?", [](model_file & m) { m.set_f32(A + "bad\nkey", std::numeric_limits<float>::quiet_NaN()); });
    kv("arch-empty", "general.architecture", [](model_file & m) { m.set_str("general.architecture", ""); });
    kv("arch-unknown", "architecture 'qwen9' is not supported", [](model_file & m) { m.set_str("general.architecture", "qwen9"); });
    kv("arch-other-known", "", [](model_file & m) { m.set_str("general.architecture", "llama"); });
    kv("block-count-0", "block_count", [](model_file & m) { m.set_u32(A + "block_count", 0); });
    kv("block-count-513", "block_count", [](model_file & m) { m.set_u32(A + "block_count", 513); });
    kv("block-count-max", "block_count", [](model_file & m) { m.set_u32(A + "block_count", 0xffffffffu); });
    kv("block-count-missing", "block_count", [](model_file & m) { m.remove(A + "block_count"); });
    kv("block-count-negative", "block_count", [](model_file & m) { m.set_i32(A + "block_count", -1); });
    kv("block-count-string", "block_count", [](model_file & m) { m.set_str(A + "block_count", "2"); });
    kv("block-count-float", "block_count", [](model_file & m) { m.set_f32(A + "block_count", 2.0f); });
    kv("block-count-fewer-than-tensors", "", [](model_file & m) { m.set_u32(A + "block_count", 1); });
    kv("block-count-more-than-tensors", "blk.2", [](model_file & m) { m.set_u32(A + "block_count", 3); });
    kv("context-length-0", "context_length", [](model_file & m) { m.set_u32(A + "context_length", 0); });
    kv("context-length-max", "context_length", [](model_file & m) { m.set_u32(A + "context_length", 0xffffffffu); });
    kv("context-length-missing", "context_length", [](model_file & m) { m.remove(A + "context_length"); });
    kv("embedding-length-0", "embedding_length", [](model_file & m) { m.set_u32(A + "embedding_length", 0); });
    kv("embedding-length-max", "embedding_length", [](model_file & m) { m.set_u32(A + "embedding_length", 0xffffffffu); });
    kv("embedding-length-mismatch", "", [](model_file & m) { m.set_u32(A + "embedding_length", 256); });
    kv("feed-forward-0", "", [](model_file & m) { m.set_u32(A + "feed_forward_length", 0); });
    kv("feed-forward-max", "feed_forward_length", [](model_file & m) { m.set_u32(A + "feed_forward_length", 0xfffffff0u); });
    kv("heads-0", "", [](model_file & m) { m.set_u32(A + "attention.head_count", 0); });
    kv("heads-max", "head_count", [](model_file & m) { m.set_u32(A + "attention.head_count", 0xffffffffu); });
    kv("heads-not-dividing", "", [](model_file & m) { m.set_u32(A + "attention.head_count", 3); });
    kv("heads-more-than-embedding", "head", [](model_file & m) { m.set_u32(A + "attention.head_count", 256); m.set_u32(A + "attention.head_count_kv", 256); });
    kv("heads-array-wrong-length", "head_count", [](model_file & m) { m.set_u32_arr(A + "attention.head_count", { 4, 4, 4 }); });
    kv("heads-array-zero", "", [](model_file & m) { m.set_u32_arr(A + "attention.head_count", { 4, 0 }); });
    kv("kv-heads-0", "", [](model_file & m) { m.set_u32(A + "attention.head_count_kv", 0); });
    kv("kv-heads-more-than-heads", "head_count_kv", [](model_file & m) { m.set_u32(A + "attention.head_count_kv", 64); });
    kv("kv-heads-not-dividing", "head_count_kv", [](model_file & m) { m.set_u32(A + "attention.head_count", 4); m.set_u32(A + "attention.head_count_kv", 3); });
    kv("kv-heads-max", "head_count_kv", [](model_file & m) { m.set_u32(A + "attention.head_count_kv", 0xffffffffu); });
    for (auto [name, val] : std::initializer_list<std::pair<const char *, float>>{
             { "negative", -1e-6f }, { "zero", 0.0f }, { "nan", nan }, { "inf", inf }, { "minus-inf", -inf }, { "huge", 1e30f } }) {
        kv(std::string("rms-eps-") + name, "layer_norm_rms_epsilon", [val](model_file & m) { m.set_f32(A + "attention.layer_norm_rms_epsilon", val); });
    }
    kv("rms-eps-string", "layer_norm_rms_epsilon", [](model_file & m) { m.set_str(A + "attention.layer_norm_rms_epsilon", "1e-6"); });
    kv("rms-eps-missing", "layer_norm_rms_epsilon", [](model_file & m) { m.remove(A + "attention.layer_norm_rms_epsilon"); });
    kv("norm-eps-negative", "layer_norm_epsilon", [](model_file & m) { m.set_f32(A + "attention.layer_norm_epsilon", -1e-5f); });
    kv("rope-base-0", "freq_base", [](model_file & m) { m.set_f32(A + "rope.freq_base", 0.0f); });
    kv("rope-base-nan", "freq_base", [nan](model_file & m) { m.set_f32(A + "rope.freq_base", nan); });
    kv("rope-base-negative", "freq_base", [](model_file & m) { m.set_f32(A + "rope.freq_base", -10000.0f); });
    kv("rope-dims-0", "", [](model_file & m) { m.set_u32(A + "rope.dimension_count", 0); });
    kv("rope-dims-odd", "rope.dimension_count", [](model_file & m) { m.set_u32(A + "rope.dimension_count", 3); });
    kv("rope-dims-wider-than-head", "rope.dimension_count", [](model_file & m) { m.set_u32(A + "rope.dimension_count", 4096); });
    kv("rope-dims-max", "rope.dimension_count", [](model_file & m) { m.set_u32(A + "rope.dimension_count", 0xffffffffu); });
    kv("rope-scaling-unknown", "rope.scaling.type", [](model_file & m) { m.set_str(A + "rope.scaling.type", "bogus"); });
    kv("rope-scaling-factor-nan", "rope.scaling.factor", [nan](model_file & m) { m.set_f32(A + "rope.scaling.factor", nan); });
    kv("rope-scaling-factor-negative", "rope.scaling.factor", [](model_file & m) { m.set_f32(A + "rope.scaling.factor", -2.0f); });
    kv("key-length-0", "key_length", [](model_file & m) { m.set_u32(A + "attention.key_length", 0); });
    kv("key-length-mismatch", "", [](model_file & m) { m.set_u32(A + "attention.key_length", 8); });
    kv("value-length-mismatch", "", [](model_file & m) { m.set_u32(A + "attention.value_length", 16); });
    kv("experts-too-many", "expert_count", [](model_file & m) { m.set_u32(A + "expert_count", 2000); });
    kv("experts-none-used", "expert", [](model_file & m) { m.set_u32(A + "expert_count", 8); });
    kv("experts-used-more-than-count", "expert_used_count", [](model_file & m) { m.set_u32(A + "expert_count", 2); m.set_u32(A + "expert_used_count", 4); });
    kv("experts-used-without-experts", "expert_used_count", [](model_file & m) { m.set_u32(A + "expert_used_count", 2); });
    kv("expert-groups-as-many-as-experts", "expert_group_count", [](model_file & m) { m.set_u32(A + "expert_count", 4); m.set_u32(A + "expert_used_count", 2); m.set_u32(A + "expert_group_count", 4); });
    kv("expert-groups-without-experts", "expert_group_count", [](model_file & m) { m.set_u32(A + "expert_group_count", 2); });
    kv("nextn-layers-beyond-blocks", "nextn_predict_layers", [](model_file & m) { m.set_u32(A + "nextn_predict_layers", 5); });
    kv("sliding-window-max", "sliding_window", [](model_file & m) { m.set_u32(A + "attention.sliding_window", 0xffffffffu); });
    kv("other-float-nan", "attention.scale", [nan](model_file & m) { m.set_f32(A + "attention.scale", nan); });
    kv("other-count-huge", "mystery_count", [](model_file & m) { m.set_u32(A + "mystery_count", 0x80000000u); });

    // The vocabulary.
    const std::string T = "tokenizer.ggml.";
    kv("tokens-missing", "tokenizer.ggml.tokens", [T](model_file & m) { m.remove(T + "tokens"); });
    kv("tokens-empty", "tokenizer.ggml.tokens", [T](model_file & m) { m.set_str_arr(T + "tokens", {}); });
    kv("tokens-not-strings", "tokenizer.ggml.tokens", [T](model_file & m) { m.set_u32_arr(T + "tokens", { 1, 2, 3 }); });
    kv("tokens-duplicated", "twice", [T](model_file & m) {
        auto t = m.str_arr(T + "tokens");
        t[1000] = t[999];
        m.set_str_arr(T + "tokens", t);
    });
    kv("tokens-duplicated-empty-name", "twice", [T](model_file & m) {
        auto t = m.str_arr(T + "tokens");
        t[5] = "";
        t[6] = "[EMPTY_5]";  // llama.cpp renames the empty token 5 to this
        m.set_str_arr(T + "tokens", t);
    });
    kv("tokens-fewer-than-embeddings", "token_embd", [T](model_file & m) {
        auto t = m.str_arr(T + "tokens");
        t.resize(t.size() - 100);
        m.set_str_arr(T + "tokens", t);
    });
    kv("tokens-more-than-embeddings", "token_embd", [T](model_file & m) {
        auto t = m.str_arr(T + "tokens");
        for (int i = 0; i < 10; ++i) {
            t.push_back("<extra_" + std::to_string(i) + ">");
        }
        m.set_str_arr(T + "tokens", t);
    });
    // The llama architecture sizes its embeddings by llama.vocab_size: with fewer rows than
    // tokens it loads, and the first token id past the table aborts a decode.
    v.push_back({ test::QWEN, "llama-vocab-size-below-tokens", "token_embd",
                  [](model_file & m) {
                      const uint32_t rows = (uint32_t) m.tensor("token_embd.weight")->ne[1] - 64;
                      m.set_u32(A + "vocab_size", rows);
                      m.tensor("token_embd.weight")->ne[1] = rows;
                      if (tensor_desc * out = m.tensor("output.weight")) {
                          out->ne[1] = rows;
                      }
                  },
                  as_llama });
    kv("tokenizer-model-missing", "", [T](model_file & m) { m.remove(T + "model"); });
    kv("tokenizer-model-unknown", "", [T](model_file & m) { m.set_str(T + "model", "bogus"); });
    kv("tokenizer-model-wrong-type", "", [T](model_file & m) { m.set_u32(T + "model", 1); });
    kv("pre-tokenizer-unknown", "", [T](model_file & m) { m.set_str(T + "pre", "bogus"); });
    kv("merges-missing", "", [T](model_file & m) { m.remove(T + "merges"); });
    kv("merges-not-strings", "", [T](model_file & m) { m.set_u32_arr(T + "merges", { 1, 2 }); });
    kv("token-types-short", "", [T](model_file & m) {
        const uint32_t one = 1;
        gguf_set_arr_data(m.meta.get(), (T + "token_type").c_str(), GGUF_TYPE_INT32, &one, 1);
    });
    kv("token-types-floats", "", [T](model_file & m) {
        const float one = 1;
        gguf_set_arr_data(m.meta.get(), (T + "token_type").c_str(), GGUF_TYPE_FLOAT32, &one, 1);
    });
    kv("scores-short", "", [T](model_file & m) {
        const float one = 1;
        gguf_set_arr_data(m.meta.get(), (T + "scores").c_str(), GGUF_TYPE_FLOAT32, &one, 1);
    });

    // The tensor table.
    kv("tensor-embeddings-missing", "token_embd", [](model_file & m) { m.drop_tensor("token_embd.weight"); });
    kv("tensor-query-missing", "attn_q", [](model_file & m) { m.drop_tensor("blk.0.attn_q.weight"); });
    kv("tensor-output-norm-missing", "output_norm", [](model_file & m) { m.drop_tensor("output_norm.weight"); });
    kv("tensor-unexpected", "", [](model_file & m) {
        m.tensors.push_back({ "blk.0.mystery.weight", GGML_TYPE_F32, { 128, 1, 1, 1 } });
    });
    kv("tensor-embeddings-short", "token_embd", [](model_file & m) { m.tensor("token_embd.weight")->ne[1] -= 1; });
    kv("tensor-embeddings-3d", "token_embd", [](model_file & m) { m.tensor("token_embd.weight")->ne[2] = 2; });
    kv("tensor-query-wrong-shape", "attn_q", [](model_file & m) { m.tensor("blk.0.attn_q.weight")->ne[1] = 64; });
    kv("tensor-ffn-wrong-shape", "ffn_up", [](model_file & m) { m.tensor("blk.1.ffn_up.weight")->ne[0] = 64; });

    // The chat template: untrusted code. Each must neither crash Muse nor hold it.
    const std::string C = "tokenizer.chat_template";
    auto tmpl = [&](std::string name, std::string expect, std::string src) {
        kv(std::move(name), std::move(expect), [C, src](model_file & m) { m.set_str(C, src); });
    };
    tmpl("template-recursive-macro", "chat template",
         "{% macro f(x) %}{{ f(x) }}{% endmacro %}{{ f(1) }}");
    tmpl("template-mutual-recursion", "chat template",
         "{% macro a(x) %}{{ b(x) }}{% endmacro %}{% macro b(x) %}{{ a(x ~ 'x') }}{% endmacro %}{{ a('') }}");
    tmpl("template-deep-parentheses", "chat template", "{{ " + tmpl_repeat("(", 200000, "1", ")") + " }}");
    tmpl("template-deep-ifs", "chat template", tmpl_repeat("{% if true %}", 50000, "x", "{% endif %}"));
    tmpl("template-endless-loop", "chat template",
         "{% for i in range(1000000000000) %}{% endfor %}{{ messages[0].content }}");
    tmpl("template-nested-loops", "chat template",
         "{% for i in range(1000000) %}{% for j in range(1000000) %}{% endfor %}{% endfor %}");
    tmpl("template-string-doubling", "chat template",
         "{% set ns = namespace(s='xxxxxxxx') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}");
    tmpl("template-huge-repeat", "chat template", "{{ 'x' * 100000000000 }}");
    tmpl("template-huge-output", "chat template",
         "{% for i in range(100000000000) %}{{ 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' }}{% endfor %}");
    tmpl("template-list-growth", "chat template",
         "{% set ns = namespace(l=[1]) %}{% for i in range(64) %}{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l | length }}");
    tmpl("template-syntax-error", "chat template", "{% for m in messages %}{{ m.content }");
    tmpl("template-always-raises", "chat template", "{{ raise_exception('this template refuses everything') }}");
    kv("template-tool-use-recursive", "chat template", [C](model_file & m) {
        m.set_str(C + ".tool_use", "{% macro f(x) %}{{ f(x) }}{% endmacro %}{{ f(1) }}");
    });
    kv("template-wrong-type", "chat_template", [C](model_file & m) { m.set_u32(C, 7); });
    kv("template-array", "chat_template", [C](model_file & m) { m.set_str_arr(C, { "{{ 1 }}", "{{ 2 }}" }); });

    // The same classes on the Muse Glimmer family (sliding-window layers, soft-capping, its own template).
    const std::string G = "muse-glimmer.";
    glimmer("block-count-513", "block_count", [G](model_file & m) { m.set_u32(G + "block_count", 513); });
    glimmer("rms-eps-negative", "layer_norm_rms_epsilon", [G](model_file & m) { m.set_f32(G + "attention.layer_norm_rms_epsilon", -1e-5f); });
    glimmer("softcap-negative", "final_logit_softcapping", [G](model_file & m) { m.set_f32(G + "final_logit_softcapping", -30.0f); });
    glimmer("swa-pattern-short", "sliding_window_pattern", [G](model_file & m) {
        const int8_t one = 1;
        gguf_set_arr_data(m.meta.get(), (G + "attention.sliding_window_pattern").c_str(), GGUF_TYPE_BOOL, &one, 1);
    });
    glimmer("value-length-differs", "", [G](model_file & m) { m.set_u32(G + "attention.value_length", 16); });
    glimmer("tokens-duplicated", "twice", [T](model_file & m) {
        auto t = m.str_arr(T + "tokens");
        t.back() = t[0];
        m.set_str_arr(T + "tokens", t);
    });
    glimmer("template-recursive-macro", "chat template", [C](model_file & m) {
        m.set_str(C, "{% macro f(x) %}{{ f(x) }}{% endmacro %}{{ f(1) }}");
    });
    return v;
}

struct outcome {
    std::string name;
    run_result  r;
};

std::string variant_dir() {
    const std::string d = test::scratch_dir() + "/model-files";
    std::filesystem::create_directories(d);
    return d;
}

TEST(model_files, untouched_and_rebuilt_models_load) {
    for (test::test_family fam : { test::QWEN, test::GLIMMER }) {
        const std::string base = test::model_path(fam);
        SCOPED_TRACE(base);
        auto r = run_muse({ "info", base });
        EXPECT_EQ(r.exit_code, 0) << r.err;
        EXPECT_EQ(r.err, "");

        // The writer alone (metadata rewritten, data a hole of zeros) makes no model
        // unloadable, so every refusal below is the damage's doing.
        const std::string path = variant_dir() + "/rebuilt.gguf";
        ASSERT_TRUE(write_file(path, serialize(read_model(base))));
        r = run_muse({ "info", path });
        EXPECT_EQ(r.exit_code, 0) << r.err;
        EXPECT_NE(r.out.find(fam == test::QWEN ? "qwen2" : "muse-glimmer"), std::string::npos) << r.out;
        std::filesystem::remove(path);
    }
    // The qwen2 model relabelled as llama (the corpus uses it for llama's own vocab_size rule).
    const std::string path = variant_dir() + "/as-llama.gguf";
    file_bytes        f    = serialize(read_model(test::model_path(test::QWEN)));
    as_llama(f);
    ASSERT_TRUE(write_file(path, f));
    const auto r = run_muse({ "info", path });
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("architecture   llama"), std::string::npos) << r.out;
    std::filesystem::remove(path);
}

TEST(model_files, corrupt_corpus_exits_3_with_one_line_in_bounded_time_and_memory) {
    const model_file           qwen     = read_model(test::model_path(test::QWEN));
    const model_file           glim     = read_model(test::model_path(test::GLIMMER));
    const std::vector<variant> all      = corpus();
    ASSERT_GE(all.size(), 81u);

    // Write every variant first (the edits are cheap), then run `muse info` on two at a time.
    std::vector<std::string> paths;
    for (const auto & v : all) {
        const model_file & original = v.base == test::QWEN ? qwen : glim;
        model_file         m;
        gguf_set_kv(m.meta.get(), original.meta.get());
        m.tensors = original.tensors;
        if (v.edit) {
            v.edit(m);
        }
        file_bytes f = serialize(m);
        if (v.patch) {
            v.patch(f);
        }
        paths.push_back(variant_dir() + "/" + v.name + ".gguf");
        ASSERT_TRUE(write_file(paths.back(), f)) << v.name;
    }
    const std::string fifo = variant_dir() + "/fifo.gguf";
    std::filesystem::remove(fifo);
    ASSERT_EQ(mkfifo(fifo.c_str(), 0644), 0);

    std::vector<outcome> results(all.size() + 1);
    std::atomic<size_t>  next{ 0 };
    auto                 worker = [&] {
        for (size_t i; (i = next++) < results.size();) {
            const bool is_fifo = i == all.size();
            results[i].name    = is_fifo ? "fifo" : all[i].name;
            results[i].r       = run_muse({ "info", is_fifo ? fifo : paths[i] });
        }
    };
    std::thread t1(worker), t2(worker);
    t1.join();
    t2.join();

    double max_wall = 0, total_wall = 0;
    long   max_rss  = 0;
    for (size_t i = 0; i < results.size(); ++i) {
        const auto &        o      = results[i];
        const std::string & expect = i < all.size() ? all[i].expect : std::string();
        SCOPED_TRACE(o.name);
        EXPECT_FALSE(o.r.timed_out);
        EXPECT_EQ(o.r.exit_code, 3) << o.r.err;
        EXPECT_EQ(o.r.out, "");
        // One line: "muse info: <what is wrong>\n".
        EXPECT_EQ(std::count(o.r.err.begin(), o.r.err.end(), '\n'), 1) << o.r.err;
        EXPECT_TRUE(!o.r.err.empty() && o.r.err.back() == '\n') << o.r.err;
        EXPECT_EQ(o.r.err.rfind("muse info: ", 0), 0u) << o.r.err;
        if (!expect.empty()) {
            EXPECT_NE(o.r.err.find(expect), std::string::npos) << "expected '" << expect << "' in: " << o.r.err;
        }
        // A healthy `muse info` of this model peaks near 160 MB; the template bombs took
        // 15-23 GB before their rendering was bounded.
        EXPECT_LT(o.r.maxrss_kb, 1024 * 1024) << "peak RSS " << o.r.maxrss_kb << " kB";
        EXPECT_LT(o.r.wall_s, 60.0);
        max_wall = std::max(max_wall, o.r.wall_s);
        total_wall += o.r.wall_s;
        max_rss = std::max(max_rss, o.r.maxrss_kb);
        printf("  %-36s exit %3d  %6.2f s  %7ld kB  %s", o.name.c_str(), o.r.exit_code, o.r.wall_s, o.r.maxrss_kb,
               o.r.err.c_str());
        if (o.r.err.empty() || o.r.err.back() != '\n') {
            printf("\n");
        }
    }
    printf("%zu variants: slowest %.2f s, total %.1f s, peak RSS %ld kB\n", results.size(), max_wall, total_wall,
           max_rss);

    if (!HasFailure()) {
        for (const auto & p : paths) {
            std::filesystem::remove(p);
        }
    }
    std::filesystem::remove(fifo);
}

}  // namespace
