#pragma once
// Image encodings through the model's vision projector (libmtmd), cached by the image's
// content hash: an image that several requests or agents share is encoded once per process.
//
//   vision_encoder enc(model);                     // the model must have a projector
//   error err;
//   auto emb = enc.encode(img, err);               // img: a core media; n_tokens x n_embd floats, or the cached ones
//   enc.tokenize(prompt, { &img }, req);           // a rendered prompt with media markers -> tokens + embeddings
//
// The embeddings are what the text model decodes in place of the image's tokens: a
// sequence_request carries them as prompt embeddings, and forks of a prefix that holds an
// image share its KV cells like text.
//
// Thread safety: encode() may be called from many threads; projector work is serialised.

#include "core/error.h"
#include "core/media.h"
#include "engine/model.h"
#include "engine/sequence.h"

#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace muse {

// id (the image's SHA-256), n_tokens (positions it takes), n_embd, non_causal, data: what a
// sequence_request carries in its embeddings to put the image into a sequence.
using image_embedding = embedding_block;

// The text that stands for one image in a rendered prompt ("<__media__>", libmtmd's default).
const char * media_marker();

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

    std::shared_ptr<const image_embedding> encode(const media & img, error & err);

    // A rendered prompt whose media markers (media_marker(), one per image, in order) stand for
    // `imgs`: its text as out.prompt_tokens, each image encoded (or taken from the cache) as an
    // embedding block at its positions in out.embeddings; out.prompt is cleared. Errors: the
    // markers do not match the images, or the projector cannot place or encode them.
    error tokenize(const std::string & prompt, const std::vector<const media *> & imgs, sequence_request & out);

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
