#pragma once
// Everything a request brings besides its text: images and tables, checked and loaded, and
// turned into what the agents get: delimited data blocks in the user's message and, for
// tables, the query_table tool. `muse ask --image/--data` and the server use it alike.
//
//   attachments att;
//   if (error err = att.add_image_file("shot.png")) { ... }      // decoded, OCR'd
//   if (error err = att.add_table_file("sales.csv")) { ... }     // loaded into SQLite
//   att.apply(req, registry);   // appends the blocks to the last user message, offers query_table
//   json j = att.to_json();     // what was attached and what the model read for it
//
// Caps: at most k_max_images images and table_limits::max_tables tables per request; each file
// within image_limits / table_limits; and a memory budget for the whole request (decoded
// pixels plus the tables' SQLite pages; default k_default_budget): an attachment that would
// pass it is refused with what it would cost. A failed add leaves what was already attached
// as it was.
//
// Thread safety: build it on one thread; after apply(), the query tool may run on many.

#include "core/limits.h"
#include "perception/image.h"
#include "perception/table.h"
#include "reasoning/orchestrator.h"

#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <mutex>
#include <optional>

namespace muse {

class attachments {
  public:
    static constexpr int    k_max_images     = (int) k_limit_images.max;
    static constexpr size_t k_default_budget = 512u << 20;  // bytes: decoded images + tables

    explicit attachments(image_limits il = {}, table_limits tl = {}, size_t memory_budget = k_default_budget);

    error add_image_file(const std::string & path);
    error add_image_bytes(const std::string & name, const std::string & bytes);
    error add_image_data_uri(const std::string & uri);
    error add_table_file(const std::string & path);
    error add_table_bytes(const std::string & name, const std::string & bytes, const std::string & format_hint);

    bool empty() const { return imgs.empty() && tables->tables().empty(); }

    // Memory the attachments hold: decoded pixels and the tables' database.
    size_t memory_used() const;

    // Appends the data blocks to the request's last user message (adding one when there is
    // none), registers query_table in `reg` when tables are attached, and lets the agents use
    // it unless tools are off (an empty tool list). The attachments must outlive the request.
    //
    // Images: with `vision` (the model has a projector) they ride on the message itself, each
    // with a short caption, and the agents may call read_image_text to get an image's OCR
    // text (small print); without, each becomes its OCR text block.
    void apply(ask_request & req, tool_registry & reg, bool vision = false);

    // The text apply() appends.
    std::string prompt_block(bool vision = false) const;

    // [{type: "image", source, format, width, height, sha256, ocr_text, ocr_confidence, ocr_error,
    //   prompt_text}, {type: "table", name, source, format, encoding, rows, columns, warnings, summary}]
    nlohmann::ordered_json to_json() const;

  private:
    struct image_item {
        std::shared_ptr<const image> img;  // shared with the messages apply() fills
        std::optional<ocr_result>    ocr;  // run when first needed: a vision model may never ask
    };
    // The image's OCR, run once (thread-safe: agents may call read_image_text together).
    const ocr_result & ocr_of(size_t i) const;
    error add_image(image img);
    image_limits decode_limits() const;
    error add_table(const std::function<error(table_info &)> & load);

    // An error when `adding` more bytes on top of `used` would pass the budget.
    error within_budget(const std::string & what, size_t used, size_t adding) const;

    image_limits                 ilim;
    size_t                       budget;
    bool                         as_vision = false;  // how apply() delivered the images
    mutable std::vector<image_item> imgs;
    mutable std::mutex              ocr_mu;
    std::unique_ptr<table_store> tables;
};

}  // namespace muse
