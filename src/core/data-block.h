#pragma once
// Untrusted text inside the delimited blocks of a prompt (<table>, <image>, <tool_result>):
// file contents, OCR text, query results and file names are data, and no data may close
// its block or open another, whatever its case or spacing ("</TABLE>", "< /table >").
//
//   s += "<table source=\"" + block_attr(name) + "\">\n" + block_text(summary) + "</table>\n";
//
// block_text writes every '<' and '>' as "&lt;" and "&gt;", so the text holds no tag at all,
// and drops control characters other than newline and tab. block_attr also writes '"' as
// "&quot;" and newlines and tabs as spaces, so a value cannot end its attribute or its line.
//
// Thread safety: pure functions.

#include <string>
#include <string_view>

namespace muse {

std::string block_text(std::string_view s);
std::string block_attr(std::string_view s);

}  // namespace muse
