#pragma once
// Everything a request brings besides its text: images and tables, checked and loaded, and
// what they give the prompt: delimited data blocks, the images themselves (for a model with a
// vision projector), the tables to query and each image's OCR text. It knows nothing of
// requests or tools: the app folds a set into a request (app/fold-attachments.h) and the
// agents' query_table and read_image_text tools read it (agents/tools/).
//
//   auto set = std::make_shared<attachment_set>();
//   if (error err = set->add_image_file("shot.png")) { ... }      // decoded
//   if (error err = set->add_table_file("sales.csv")) { ... }     // loaded into SQLite
//   std::string text = set->prompt_block(vision);   // the blocks for the last user message
//   for (auto & img : set->images()) msg.images.push_back(img);    // with vision
//   query_output rows = set->tables().query("SELECT ...");
//   const ocr_result & ocr = set->ocr(0);           // the first image's text, read once
//   json j = set->to_json(vision);                  // what was attached and what the model read for it
//
// Caps: at most k_max_images images and table_limits::max_tables tables per request; each file
// within image_limits / table_limits; and a memory budget for the whole request (decoded
// pixels plus the tables' SQLite pages; default k_default_budget): an attachment that would
// pass it is refused with what it would cost. A failed add leaves what was already attached
// as it was.
//
// Thread safety: build it on one thread; once built, every const method may run on many (OCR
// runs once per image, whoever asks first).

#include "core/limits.h"
#include "perception/image.h"
#include "perception/table.h"

#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <mutex>
#include <optional>

namespace muse {

class attachment_set {
  public:
    static constexpr int    k_max_images     = (int) k_limit_images.max;
    static constexpr size_t k_default_budget = 512u << 20;  // bytes: decoded images + tables

    explicit attachment_set(image_limits il = {}, table_limits tl = {}, size_t memory_budget = k_default_budget);

    error add_image_file(const std::string & path);
    error add_image_bytes(const std::string & name, const std::string & bytes);
    error add_image_data_uri(const std::string & uri);
    error add_table_file(const std::string & path);
    error add_table_bytes(const std::string & name, const std::string & bytes, const std::string & format_hint);

    bool empty() const { return imgs.empty() && tables_->tables().empty(); }

    // Images and tables attached.
    size_t count() const { return imgs.size() + tables_->tables().size(); }

    // Memory the attachments hold: decoded pixels and the tables' database.
    size_t memory_used() const;

    // The images, in the order they were added (a chat message carries them as media).
    std::vector<std::shared_ptr<const image>> images() const;

    // The OCR of image i (from 0, below images().size()), run when first asked and kept.
    const ocr_result & ocr(size_t i) const;

    // The tables, to list or query.
    const table_store & tables() const { return *tables_; }

    // The text for the prompt. Images: with `vision` (the model sees them as pictures) a short
    // caption each, saying that read_image_text returns its OCR text; without, each image's
    // OCR text block. Tables: their summaries.
    std::string prompt_block(bool vision = false) const;

    // [{type: "image", source, format, width, height, sha256, delivered_as, ocr_text,
    //   ocr_confidence, ocr_error, prompt_text}, {type: "table", name, source, format, encoding,
    //   rows, columns, warnings, summary}]; `vision` as given to prompt_block().
    nlohmann::ordered_json to_json(bool vision = false) const;

  private:
    struct image_item {
        std::shared_ptr<const image> img;  // shared with the messages that carry it
        std::optional<ocr_result>    ocr;  // run when first needed: a vision model may never ask
    };
    error add_image(image img);
    image_limits decode_limits() const;
    error add_table(const std::function<error(table_info &)> & load);

    // An error when `adding` more bytes on top of `used` would pass the budget.
    error within_budget(const std::string & what, size_t used, size_t adding) const;

    image_limits                    ilim;
    size_t                          budget;
    mutable std::vector<image_item> imgs;
    mutable std::mutex              ocr_mu;
    std::unique_ptr<table_store>    tables_;
};

}  // namespace muse
