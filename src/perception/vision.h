#pragma once
// Image encodings through the model's vision projector (libmtmd), cached by the image's
// content hash: an image that several requests or agents share is encoded once per process.
//
//   vision_encoder enc(model);                     // the model must have a projector
//   error err;
//   auto emb = enc.encode(img, err);               // n_tokens x n_embd floats, or the cached ones
//
// The embeddings are what the text model decodes in place of the image's tokens; putting them
// into a sequence (so that forks share them through the KV cache) is the engine's part.
//
// Thread safety: encode() may be called from many threads; projector work is serialised.

#include "engine/error.h"
#include "engine/model.h"
#include "perception/image.h"

#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace muse {

struct image_embedding {
    std::string        id;               // the image's SHA-256
    int32_t            n_tokens = 0;     // positions it takes in the sequence
    int32_t            n_embd   = 0;
    bool               non_causal = false;  // decode with non-causal attention (some projectors)
    std::vector<float> data;             // n_tokens * n_embd
};

struct vision_stats {
    uint64_t encodes   = 0;  // projector runs
    uint64_t hits      = 0;  // served from the cache
    double   encode_ms = 0;  // time in the projector, all runs
    size_t   cached_bytes = 0;
};

class vision_encoder {
  public:
    // cache_bytes: the most embedding data kept; least recently used entries go first.
    explicit vision_encoder(const model & m, size_t cache_bytes = 256u << 20);

    std::shared_ptr<const image_embedding> encode(const image & img, error & err);

    vision_stats stats() const;

  private:
    const model & mdl;
    size_t        cap;
    mutable std::mutex mu;
    std::list<std::string> lru;  // front: most recent
    std::map<std::string, std::pair<std::shared_ptr<const image_embedding>, std::list<std::string>::iterator>> cache;
    vision_stats  st;
};

}  // namespace muse
