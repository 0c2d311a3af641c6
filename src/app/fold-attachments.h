#pragma once
// Folds a request's attachments into it: the data blocks go at the end of the last user
// message (one is added when there is none), the images ride on that message when the model
// sees pictures, the router is told how many attachments came and judges the question without
// them, and the attachments' tools (query_table for tables; read_image_text for images sent as
// pictures) are registered and offered to the agents unless tools are off (an empty list).
//
//   auto set = std::make_shared<attachment_set>();
//   set->add_table_file("sales.csv");
//   tool_registry reg = builtin_tools();
//   fold_attachments(set, req, reg, backend.caps().vision);
//   // req.messages.back().content ends with the table's summary; reg has query_table
//
// Thread safety: reentrant; the tools it registers keep the set alive and may run on many
// threads.

#include "agents/tools.h"
#include "perception/attachment-set.h"
#include "reasoning/orchestrator.h"

#include <memory>

namespace muse {

// `vision`: the backend takes images as pictures (backend_caps::vision); without, each image
// is its OCR text block. An empty set leaves the request and the registry as they are.
// `spotlight_marker` (safety/injection.h): the blocks go between that request's markers.
// Returns the blocks' text as the attachments gave it (for the injection detector).
std::string fold_attachments(const std::shared_ptr<const attachment_set> & set, ask_request & req, tool_registry & reg,
                             bool vision, const std::string & spotlight_marker = "");

}  // namespace muse
