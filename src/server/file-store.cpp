#include "file-store.h"

#include "core/random.h"
#include "core/utf8.h"

#include <algorithm>


namespace muse {

namespace {

std::string new_file_id() {
    return "file-" + random_hex(24);
}

// A stored file's kind and format travel as its MIME type.
std::string mime_of(const std::string & kind, const std::string & format) {
    if (kind == "image") return "image/" + format;
    if (format == "csv") return "text/csv";
    if (format == "tsv") return "text/tab-separated-values";
    if (format == "json") return "application/json";
    if (format == "jsonl") return "application/jsonl";
    return "application/octet-stream";
}

void kind_of(const std::string & mime, std::string & kind, std::string & format) {
    if (mime.rfind("image/", 0) == 0) {
        kind   = "image";
        format = mime.substr(6);
        return;
    }
    kind   = "table";
    format = mime == "text/csv"                    ? "csv"
             : mime == "text/tab-separated-values" ? "tsv"
             : mime == "application/json"          ? "json"
             : mime == "application/jsonl"         ? "jsonl"
                                                   : "";
}

stored_file from_record(const file_record & r, const std::string & user) {
    stored_file f;
    f.id         = r.id;
    f.user       = user;
    f.filename   = r.name;
    f.purpose    = r.purpose;
    f.created_at = r.created_at / 1000;
    kind_of(r.mime, f.kind, f.format);
    return f;
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
    usage_locked(f.user, mine, mine_bytes);
    if (mine >= lim.max_files_per_user) {
        return refuse(file_refusal::QUOTA, "file: you already have " + std::to_string(mine) +
                                               " files stored, the limit per user; delete some (DELETE /v1/files/ID)");
    }
    if (mine_bytes + n > lim.max_bytes_per_user) {
        return refuse(file_refusal::QUOTA, "file: your files would take " + std::to_string(mine_bytes + n) + " bytes, over the limit of " +
                                               std::to_string(lim.max_bytes_per_user) + " bytes per user; delete some (DELETE /v1/files/ID)");
    }
    if (total_locked() + n > lim.max_total_bytes) {
        return refuse(file_refusal::FULL, "file: the server's file storage is full (" + std::to_string(lim.max_total_bytes) +
                                              " bytes for all users); try again later");
    }
    if (db) {
        std::string uid;
        file_record r;
        error       e = user_id(f.user, uid);
        if (!e) e = db->put_file(uid, f.filename, mime_of(f.kind, f.format), f.purpose, *f.bytes, r);
        if (e) {
            return e.code == ERROR_STORAGE ? refuse(file_refusal::STORAGE, "file: " + e.message) : e;
        }
        f.id         = r.id;
        f.created_at = r.created_at / 1000;
        return {};
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

error file_store::user_id(const std::string & user, std::string & id) const {
    id.clear();
    {
        std::lock_guard<std::mutex> lk(ids_mu);
        if (auto it = ids.find(user); it != ids.end()) id = it->second;
    }
    user_record u;
    // The id is checked each time: `muse users remove` may have erased the user meanwhile,
    // and then a new use starts a new user.
    if (!id.empty() && !db->get_user(id, u)) return {};
    error e = db->find_user_by_name(user, u);
    if (e.code == ERROR_NOT_FOUND) {
        e = db->add_user(user, false, "", u);
        if (e.code == ERROR_INVALID_ARGUMENT) e = db->find_user_by_name(user, u);  // added meanwhile
    }
    if (e) return e;
    std::lock_guard<std::mutex> lk(ids_mu);
    ids[user] = u.id;
    id        = u.id;
    return {};
}

bool file_store::get(const std::string & user, const std::string & id, stored_file & out) const {
    if (db) {
        std::string uid;
        file_record r;
        auto        content = std::make_shared<std::string>();
        if (user_id(user, uid) || db->get_file(uid, id, r, content.get())) return false;
        out       = from_record(r, user);
        out.bytes = std::move(content);
        return true;
    }
    std::lock_guard<std::mutex> lk(mu);
    auto it = files.find(id);
    if (it == files.end() || it->second.user != user) {
        return false;
    }
    out = it->second;
    return true;
}

std::vector<stored_file> file_store::list(const std::string & user) const {
    std::vector<stored_file> out;
    if (db) {
        std::string              uid;
        std::vector<file_record> rs;
        if (user_id(user, uid) || db->list_files(uid, rs)) return out;
        for (const auto & r : rs) {
            out.push_back(from_record(r, user));
            out.back().bytes = std::make_shared<const std::string>();  // metadata only
            out.back().size  = (size_t) r.bytes;
        }
        return out;
    }
    std::lock_guard<std::mutex> lk(mu);
    for (const auto & [id, f] : files) {
        if (f.user == user) {
            out.push_back(f);
        }
    }
    return out;
}

bool file_store::remove(const std::string & user, const std::string & id) {
    if (db) {
        std::string uid;
        return !user_id(user, uid) && !db->delete_file(uid, id);
    }
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
    usage_locked(user, n_files, n_bytes);
}

void file_store::usage_locked(const std::string & user, size_t & n_files, size_t & n_bytes) const {
    n_files = n_bytes = 0;
    if (db) {
        std::string              uid;
        std::vector<file_record> rs;
        if (user_id(user, uid) || db->list_files(uid, rs)) return;
        for (const auto & r : rs) {
            n_files++;
            n_bytes += (size_t) r.bytes;
        }
        return;
    }
    for (const auto & [id, f] : files) {
        if (f.user != user) continue;
        n_files++;
        n_bytes += f.bytes->size();
    }
}

size_t file_store::total_locked() const {
    if (db) {
        int64_t n = 0, b = 0;
        return db->file_totals(n, b) ? 0 : (size_t) b;
    }
    return bytes;
}

size_t file_store::total_bytes() const {
    std::lock_guard<std::mutex> lk(mu);
    return total_locked();
}

size_t file_store::count() const {
    std::lock_guard<std::mutex> lk(mu);
    if (db) {
        int64_t n = 0, b = 0;
        return db->file_totals(n, b) ? 0 : (size_t) n;
    }
    return files.size();
}

}  // namespace muse
