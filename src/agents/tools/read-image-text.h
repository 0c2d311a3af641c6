#pragma once
// The `read_image_text` tool: the OCR text of an attached image, for a model that sees the
// images as pictures but cannot read their small print. Images are numbered from 1, in the
// order they were attached.
//
//   reg.add(read_image_text_tool(set));   // {"image": 1} -> the lines in reading order
//
// Thread safety: the tool may run from many agent threads at once (each image's OCR runs
// once, perception/attachment-set.h); it keeps the set alive.

#include "agents/tools.h"
#include "perception/attachment-set.h"

#include <memory>

namespace muse {

tool_def read_image_text_tool(std::shared_ptr<const attachment_set> set);

}  // namespace muse
