#pragma once
// Untrusted content — text read from images (OCR), table cells, tool results, fetched pages,
// other people's messages — is data, never instructions. spotlight() wraps it between markers
// made fresh for each request (so the content cannot forge the closing one) and removes the
// characters that hide text; the system prompt tells the model what the markers mean. The
// detector flags instruction-like text inside it: role tags, "ignore previous instructions" and
// its paraphrases in English, German, French and Spanish, a chat template's own markup
// (<|im_start|>, <|start|>, [INST]) and channel syntax (to=user, to=functions.x), hidden
// characters. While such content is in the context, the gates withhold side-effecting tools.
//
//   muse::injection_scan s = muse::scan_untrusted(ocr_text);     // s.flagged, s.signals
//   std::string marker = muse::new_spotlight_marker();           // per request
//   std::string wrapped = muse::spotlight(ocr_text, marker);
//   system_prompt += muse::spotlight_instruction(marker);
//
// Thread safety: reentrant.

#include <string>
#include <string_view>
#include <vector>

namespace muse {

struct injection_scan {
    bool                     flagged = false;
    std::vector<std::string> signals;  // what was found: "ignore_instructions", "role_tag", "template_markup", "hidden_chars", ...
};

injection_scan scan_untrusted(std::string_view text);

// A random marker ("data-" and 12 hex digits).
std::string new_spotlight_marker();
// The text without hidden characters, between «MARKER» and «/MARKER» lines (a forged marker
// inside the text is broken so it cannot close the block early).
std::string spotlight(std::string_view text, const std::string & marker);
// The line the system prompt gets.
std::string spotlight_instruction(const std::string & marker);

}  // namespace muse
