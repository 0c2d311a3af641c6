#pragma once
// A picture as a chat message carries it: decoded RGB pixels, their size, and a content id.
// Perception decodes files into it (perception/image.h: `image` is a media plus its format),
// the engine's vision encoder turns it into embeddings (engine/vision.h), and every layer in
// between passes it by reference, never by copy.
//
//   auto pic = std::make_shared<const muse::media>(std::move(decoded));
//   msg.images.push_back(pic);        // chat_message (core/chat-types.h)
//
// Thread safety: immutable once shared (std::shared_ptr<const media>); read it from any thread.

#include <cstdint>
#include <string>
#include <vector>

namespace muse {

struct media {
    std::string          source;  // where it came from (file name, "data URI (image/png)"), for messages
    std::string          hash;    // SHA-256 of the encoded bytes: the content id (caches, forks share it)
    int32_t              width  = 0;
    int32_t              height = 0;
    std::vector<uint8_t> rgb;     // width * height * 3, row-major
};

}  // namespace muse
