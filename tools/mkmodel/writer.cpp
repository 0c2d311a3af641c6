// Streams a model_plan to disk: metadata first, then each tensor generated, converted and
// written a chunk of rows at a time, so even the 0.5B preset never holds a full tensor copy.
#include "model-plan.h"
#include "random.h"

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include <unistd.h>

namespace muse::mkmodel {

static ggml_type matrix_type(weight_type type, int64_t row_len) {
    switch (type) {
        case weight_type::F16:
            return GGML_TYPE_F16;
        case weight_type::Q8_0:
            return row_len % ggml_blck_size(GGML_TYPE_Q8_0) == 0 ? GGML_TYPE_Q8_0 : GGML_TYPE_F16;
        default:
            return GGML_TYPE_F32;
    }
}

void model_plan::add_matrix(const std::string & name, std::vector<int64_t> ne) {
    const ggml_type t = matrix_type(type, ne[0]);
    tensors.push_back({ name, std::move(ne), t, tensor_init::RANDOM });
}

void model_plan::add_dense(const std::string & name, std::vector<int64_t> ne) {
    const ggml_type t = type == weight_type::F32 ? GGML_TYPE_F32 : GGML_TYPE_F16;
    tensors.push_back({ name, std::move(ne), t, tensor_init::RANDOM });
}

void model_plan::add_vector(const std::string & name, int64_t n, tensor_init init) {
    tensors.push_back({ name, { n }, GGML_TYPE_F32, init });
}

namespace {

struct file_closer {
    void operator()(FILE * f) const { std::fclose(f); }
};

using file_ptr = std::unique_ptr<FILE, file_closer>;

// About 4 MB of F32 values per chunk: large enough for fast conversion, small enough that the
// largest tensor (the 0.5B token embedding) never needs a full copy in memory.
constexpr int64_t CHUNK_VALUES = int64_t(1) << 20;

// Standard deviation 0.02 as a uniform distribution: half-width 0.02 * sqrt(3).
constexpr float RANDOM_HALF_WIDTH = 0.0346410162f;

class tensor_writer {
  public:
    tensor_writer(FILE * f, uint64_t seed, uint64_t total_bytes, const std::function<void(double)> & progress) :
        f_(f),
        seed_(seed),
        total_(total_bytes),
        progress_(progress) {}

    bool write(const tensor_spec & spec, std::string & error) {
        const int64_t row_len = spec.ne[0];
        int64_t       n_rows  = 1;
        for (size_t i = 1; i < spec.ne.size(); ++i) {
            n_rows *= spec.ne[i];
        }
        const size_t  row_bytes  = ggml_row_size(spec.type, row_len);
        const int64_t chunk_rows = std::max<int64_t>(1, CHUNK_VALUES / row_len);

        // One stream per tensor, keyed by its name: the values of a tensor do not depend on
        // which other tensors the model has or on the order they are written in.
        rng gen(seed_ ^ hash_name(spec.name));

        for (int64_t row = 0; row < n_rows; row += chunk_rows) {
            const int64_t rows = std::min(chunk_rows, n_rows - row);
            const int64_t n    = rows * row_len;
            values_.resize(static_cast<size_t>(n));
            fill(spec.init, gen);

            const void * data = convert(spec.type, rows, row_len, row_bytes);
            const size_t size = static_cast<size_t>(rows) * row_bytes;
            if (std::fwrite(data, 1, size, f_) != size) {
                error = std::string("write failed: ") + std::strerror(errno);
                return false;
            }
            report(size);
        }
        return true;
    }

  private:
    void fill(tensor_init init, rng & gen) {
        switch (init) {
            case tensor_init::RANDOM:
                for (float & v : values_) {
                    v = gen.next_symmetric() * RANDOM_HALF_WIDTH;
                }
                break;
            case tensor_init::ONES:
                std::fill(values_.begin(), values_.end(), 1.0f);
                break;
            case tensor_init::ZEROS:
                std::fill(values_.begin(), values_.end(), 0.0f);
                break;
        }
    }

    const void * convert(ggml_type type, int64_t rows, int64_t row_len, size_t row_bytes) {
        switch (type) {
            case GGML_TYPE_F32:
                return values_.data();
            case GGML_TYPE_F16:
                bytes_.resize(static_cast<size_t>(rows) * row_bytes);
                ggml_fp32_to_fp16_row(values_.data(), reinterpret_cast<ggml_fp16_t *>(bytes_.data()), rows * row_len);
                return bytes_.data();
            default:
                bytes_.resize(static_cast<size_t>(rows) * row_bytes);
                ggml_quantize_chunk(type, values_.data(), bytes_.data(), 0, rows, row_len, nullptr);
                return bytes_.data();
        }
    }

    void report(size_t bytes) {
        done_ += bytes;
        if (progress_ && total_ > 0) {
            progress_(static_cast<double>(done_) / static_cast<double>(total_));
        }
    }

    FILE *                              f_;
    uint64_t                            seed_;
    uint64_t                            total_;
    uint64_t                            done_ = 0;
    const std::function<void(double)> & progress_;
    std::vector<float>                  values_;
    std::vector<uint8_t>                bytes_;
};

bool pad_to(FILE * f, long offset, std::string & error) {
    const long pos = std::ftell(f);
    if (pos < 0 || pos > offset) {
        error = "internal error: tensor data out of order";
        return false;
    }
    static const char zeros[64] = {};
    for (long left = offset - pos; left > 0;) {
        const size_t n = static_cast<size_t>(std::min<long>(left, sizeof(zeros)));
        if (std::fwrite(zeros, 1, n, f) != n) {
            error = std::string("write failed: ") + std::strerror(errno);
            return false;
        }
        left -= static_cast<long>(n);
    }
    return true;
}

bool write_file(model_plan & plan, const options & opt, const std::string & path, std::string & error) {
    gguf_context * meta = plan.meta.get();

    // gguf wants ggml tensors for its tensor table; they only describe shapes (no_alloc).
    ggml_init_params params = { plan.tensors.size() * ggml_tensor_overhead(), nullptr, /*no_alloc =*/true };
    ggml_context_ptr ctx(ggml_init(params));
    uint64_t         total = 0;
    for (const tensor_spec & spec : plan.tensors) {
        ggml_tensor * t = ggml_new_tensor(ctx.get(), spec.type, static_cast<int>(spec.ne.size()), spec.ne.data());
        ggml_set_name(t, spec.name.c_str());
        gguf_add_tensor(meta, t);
        total += ggml_nbytes(t);
    }

    file_ptr f(std::fopen(path.c_str(), "wb"));
    if (!f) {
        error = "cannot create " + path + ": " + std::strerror(errno);
        return false;
    }
    if (!gguf_write_to_file_ptr(meta, f.get(), /*only_meta =*/true)) {
        error = "cannot write the metadata of " + path;
        return false;
    }
    const long data_start = std::ftell(f.get());

    tensor_writer writer(f.get(), opt.seed, total, opt.progress);
    for (size_t i = 0; i < plan.tensors.size(); ++i) {
        const long offset = data_start + static_cast<long>(gguf_get_tensor_offset(meta, static_cast<int64_t>(i)));
        if (!pad_to(f.get(), offset, error) || !writer.write(plan.tensors[i], error)) {
            error.insert(0, path + ": ");
            return false;
        }
    }
    // The file ends with the last tensor's padding, as gguf_write_to_file would write it.
    const int64_t last = gguf_get_n_tensors(meta) - 1;
    const size_t  data_size =
        GGML_PAD(gguf_get_tensor_offset(meta, last) + gguf_get_tensor_size(meta, last), gguf_get_alignment(meta));
    if (!pad_to(f.get(), data_start + static_cast<long>(data_size), error)) {
        error.insert(0, path + ": ");
        return false;
    }
    // fclose reports what the last buffered writes hit (a full disk, for one).
    if (std::ferror(f.get()) || std::fclose(f.release()) != 0) {
        error = "write failed for " + path + ": " + std::strerror(errno);
        return false;
    }
    return true;
}

}  // namespace

bool write_plan(model_plan & plan, const options & opt, std::string & error) {
    if (plan.tensors.empty()) {
        error = "internal error: model has no tensors";
        return false;
    }
    // A temporary name of this process and call: tests in parallel processes may generate the
    // same model at once, and each must rename a whole file of its own (never share one being
    // written), so a reader only ever sees a complete model.
    static std::atomic<unsigned> n_calls{ 0 };
    const std::string            tmp =
        opt.out_path + ".tmp." + std::to_string((long) getpid()) + "." + std::to_string(n_calls++);
    const bool        ok  = write_file(plan, opt, tmp, error);
    if (ok && std::rename(tmp.c_str(), opt.out_path.c_str()) == 0) {
        return true;
    }
    if (ok) {
        error = "cannot rename " + tmp + " to " + opt.out_path + ": " + std::strerror(errno);
    }
    std::remove(tmp.c_str());
    return false;
}

}  // namespace muse::mkmodel
