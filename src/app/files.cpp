#include "files.h"

#include "perception/attachment-set.h"
#include "perception/image.h"
#include "perception/table.h"

#include <algorithm>
#include <memory>

namespace muse {

error check_upload(const std::string & name, const std::string & bytes, size_t decode_budget, checked_file & out) {
    const bool is_image = !image_format(bytes).empty();
    out.kind   = is_image ? "image" : "table";
    out.format = is_image ? "" : table_format_for(name);  // an image's comes from decoding
    error e;
    if (is_image) {
        image_limits lim;
        lim.max_decode = std::min(lim.max_decode, decode_budget);
        image img;
        e = load_image_bytes(name, bytes, lim, img);
        if (!e) out.format = img.format;
    } else {
        table_store ts;
        table_info  ti;
        e = ts.load_bytes(name, bytes, out.format, ti);
        if (!e) out.format = ti.format;
    }
    return e;
}

size_t max_image_bytes() {
    return image_limits{}.max_bytes;
}

namespace {

attachment_set & read_of(ask_input & in) {
    if (!in.read) in.read = std::make_shared<attachment_set>();
    return *in.read;
}

}  // namespace

error add_image_file(ask_input & in, const std::string & path) {
    return read_of(in).add_image_file(path);
}

error add_table_file(ask_input & in, const std::string & path) {
    return read_of(in).add_table_file(path);
}

}  // namespace muse
