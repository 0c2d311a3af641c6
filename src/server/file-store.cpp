#include "file-store.h"

#include "core/random.h"
#include "core/utf8.h"

#include <algorithm>


namespace muse {

namespace {

std::string new_file_id() {
    return "file-" + random_hex(24);
}

}  // namespace

std::string normalize_file_name(const std::string & raw, size_t max_bytes) {
    std::string s = utf8_sanitize(raw);
    if (const size_t slash = s.find_last_of("/\\"); slash != std::string::npos) {
        s = s.substr(slash + 1);
    }
    std::string out;
    for (const char c : s) {
        if ((unsigned char) c >= 0x20 && c != 0x7f) {
            out += c;
        }
    }
    const size_t a = out.find_first_not_of(' '), b = out.find_last_not_of(' ');
    out = a == std::string::npos ? "" : utf8_head(out.substr(a, b - a + 1), max_bytes);
    return out.empty() ? "upload" : out;
}

error file_store::put(stored_file & f, file_refusal * why) {
    auto refuse = [&](file_refusal r, std::string msg) -> error {
        if (why) *why = r;
        return { ERROR_INVALID_ARGUMENT, std::move(msg) };
    };
    if (why) *why = file_refusal::NONE;
    const size_t n = f.bytes ? f.bytes->size() : 0;
    if (n == 0) {
        return refuse(file_refusal::EMPTY, "file: the upload is empty");
    }
    if (n > lim.max_file_bytes || n > lim.max_bytes_per_user) {
        return refuse(file_refusal::TOO_LARGE, "file: " + std::to_string(n) + " bytes is over the limit of " +
                                                   std::to_string(std::min(lim.max_file_bytes, lim.max_bytes_per_user)) + " bytes per file");
    }
    std::lock_guard<std::mutex> lk(mu);
    size_t mine = 0, mine_bytes = 0;
    for (const auto & [id, g] : files) {
        if (g.user != f.user) continue;
        mine++;
        mine_bytes += g.bytes->size();
    }
    if (mine >= lim.max_files_per_user) {
        return refuse(file_refusal::QUOTA, "file: you already have " + std::to_string(mine) +
                                               " files stored, the limit per user; delete some (DELETE /v1/files/ID)");
    }
    if (mine_bytes + n > lim.max_bytes_per_user) {
        return refuse(file_refusal::QUOTA, "file: your files would take " + std::to_string(mine_bytes + n) + " bytes, over the limit of " +
                                               std::to_string(lim.max_bytes_per_user) + " bytes per user; delete some (DELETE /v1/files/ID)");
    }
    if (bytes + n > lim.max_total_bytes) {
        return refuse(file_refusal::FULL, "file: the server's file storage is full (" + std::to_string(lim.max_total_bytes) +
                                              " bytes for all users); try again later");
    }
    do {
        f.id = new_file_id();
    } while (files.count(f.id));
    f.created_at = (int64_t) std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch()).count();
    files[f.id] = f;
    bytes += n;
    return {};
}

bool file_store::get(const std::string & user, const std::string & id, stored_file & out) const {
    std::lock_guard<std::mutex> lk(mu);
    auto it = files.find(id);
    if (it == files.end() || it->second.user != user) {
        return false;
    }
    out = it->second;
    return true;
}

std::vector<stored_file> file_store::list(const std::string & user) const {
    std::lock_guard<std::mutex> lk(mu);
    std::vector<stored_file> out;
    for (const auto & [id, f] : files) {
        if (f.user == user) {
            out.push_back(f);
        }
    }
    return out;
}

bool file_store::remove(const std::string & user, const std::string & id) {
    std::lock_guard<std::mutex> lk(mu);
    auto it = files.find(id);
    if (it == files.end() || it->second.user != user) {
        return false;
    }
    bytes -= it->second.bytes->size();
    files.erase(it);
    return true;
}

void file_store::usage(const std::string & user, size_t & n_files, size_t & n_bytes) const {
    std::lock_guard<std::mutex> lk(mu);
    n_files = n_bytes = 0;
    for (const auto & [id, f] : files) {
        if (f.user != user) continue;
        n_files++;
        n_bytes += f.bytes->size();
    }
}

size_t file_store::total_bytes() const {
    std::lock_guard<std::mutex> lk(mu);
    return bytes;
}

size_t file_store::count() const {
    std::lock_guard<std::mutex> lk(mu);
    return files.size();
}

}  // namespace muse
