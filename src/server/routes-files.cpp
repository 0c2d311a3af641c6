// POST/GET/DELETE /v1/files and GET /v1/files/ID/content: uploads checked before they are stored, per-user quotas.

#include "server-impl.h"

#include "app/files.h"
#include "core/utf8.h"

#include <algorithm>

namespace muse {

void server::impl::routes_files() {
    auto upload = counted([this](http::request & req, http::response & res) { handle_file_upload(req, res); });
    svr.route("POST", "/v1/files", upload);
    svr.route("POST", "/files", upload);
    auto list_files = counted([this](http::request & req, http::response & res) {
        ojson data = ojson::array();
        for (const auto & f : files.list(req.user)) data.push_back(file_json(f));
        res.set_content(wire(ojson({ { "object", "list" }, { "data", data } })), "application/json");
    });
    svr.route("GET", "/v1/files", list_files);
    svr.route("GET", "/files", list_files);
    auto get_file = counted([this](http::request & req, http::response & res) {
        stored_file f;
        if (!files.get(req.user, req.params.at("id"), f)) {
            send_error(res, make_error(404, "no file '" + utf8_head(req.params.at("id"), 100) + "'", "invalid_request_error", "file_not_found"));
            return;
        }
        res.set_content(wire(file_json(f)), "application/json");
    });
    svr.route("GET", "/v1/files/:id", get_file);
    svr.route("GET", "/files/:id", get_file);
    // The bytes as uploaded (files.content in the SDK; the export links here).
    auto file_content = counted([this](http::request & req, http::response & res) {
        stored_file f;
        if (!files.get(req.user, req.params.at("id"), f) || !f.bytes) {
            send_error(res, make_error(404, "no file '" + utf8_head(req.params.at("id"), 100) + "'", "invalid_request_error", "file_not_found"));
            return;
        }
        static const std::pair<const char *, const char *> types[] = { { "png", "image/png" }, { "jpeg", "image/jpeg" }, { "gif", "image/gif" },
                                                                        { "bmp", "image/bmp" }, { "webp", "image/webp" }, { "csv", "text/csv" },
                                                                        { "tsv", "text/tab-separated-values" }, { "json", "application/json" },
                                                                        { "jsonl", "application/jsonl" } };
        std::string type = "application/octet-stream";
        for (const auto & [fmt, mime] : types) {
            if (f.format == fmt) type = mime;
        }
        std::string name = utf8_head(f.filename, 200);  // a header value: no quotes, backslashes or control bytes
        for (char & c : name) {
            if ((unsigned char) c < 0x20 || c == '"' || c == '\\' || c == 0x7f) c = '_';
        }
        res.set_header("Content-Disposition", "attachment; filename=\"" + name + "\"");
        res.set_content(*f.bytes, type);
    });
    svr.route("GET", "/v1/files/:id/content", file_content);
    svr.route("GET", "/files/:id/content", file_content);
    auto delete_file = counted([this](http::request & req, http::response & res) {
        const std::string id = req.params.at("id");
        if (!files.remove(req.user, id)) {
            send_error(res, make_error(404, "no file '" + utf8_head(id, 100) + "'", "invalid_request_error", "file_not_found"));
            return;
        }
        res.set_content(wire(ojson({ { "id", id }, { "object", "file" }, { "deleted", true } })), "application/json");
    });
    svr.route("DELETE", "/v1/files/:id", delete_file);
    svr.route("DELETE", "/files/:id", delete_file);

}

ojson server::impl::file_json(const stored_file & f) const {
    return { { "id", f.id }, { "object", "file" }, { "bytes", std::max(f.size, f.bytes ? f.bytes->size() : (size_t) 0) }, { "created_at", f.created_at },
             { "filename", f.filename }, { "purpose", f.purpose }, { "muse_kind", f.kind }, { "muse_format", f.format } };
}
void server::impl::handle_file_upload(http::request & req, http::response & res) {
    auto * ticket = static_cast<admission::ticket *>(req.hold.get());
    if (!ticket) {
        send_error(res, make_error(500, "internal error: the request was not admitted", "server_error"));
        return;
    }
    request_cancel stop(req.gone, cancel_all.get_token());  // the client leaves, or a drain ends
    if (adm.wait(*ticket, stop.token()) != admission::ADMITTED) {
        if (cancelling) {
            send_error(res, make_error(503, "the server is shutting down", "server_error", "shutting_down"));
        } else {
            res.status = 499;
        }
        return;
    }
    std::vector<http::form_part> parts;
    if (error e = http::parse_multipart(req.body, req.header("content-type"), 16, parts)) {
        send_error(res, bad_request("file", e.message));
        return;
    }
    req.body.clear();
    req.body.shrink_to_fit();
    const http::form_part * file = nullptr;
    std::string purpose = "user_data";
    for (const auto & p : parts) {
        if (p.name == "file" && !file) file = &p;
        if (p.name == "purpose") purpose = p.data;
    }
    if (!file) {
        send_error(res, bad_request("file", "send the file as multipart/form-data with a `file` part (and `purpose`)"));
        return;
    }
    // Everything about the file is checked before anything is stored.
    stored_file f;
    f.user     = req.user;
    f.filename = normalize_file_name(file->filename);
    f.purpose  = normalize_file_name(purpose, 64);
    {
        size_t n_files = 0, n_bytes = 0;
        files.usage(req.user, n_files, n_bytes);
        const auto & lim = files.limits();
        if (n_files >= lim.max_files_per_user || n_bytes + file->data.size() > lim.max_bytes_per_user) {
            // Refused before the file is decoded or parsed.
            const std::string msg = n_files >= lim.max_files_per_user
                ? "file: you already have " + std::to_string(n_files) + " files stored, the limit per user; delete some (DELETE /v1/files/ID)"
                : "file: your files would take " + std::to_string(n_bytes + file->data.size()) + " bytes, over the limit of " +
                      std::to_string(lim.max_bytes_per_user) + " bytes per user; delete some (DELETE /v1/files/ID)";
            send_error(res, make_error(429, msg, "rate_limit_error", "file_quota_exceeded"));
            return;
        }
    }
    // Check it now, so that a broken file is refused at upload and not in a later chat.
    checked_file checked;
    error        e = check_upload(f.filename, file->data, params.request_memory, checked);
    f.kind         = checked.kind;
    f.format       = checked.format;
    if (e) {
        send_error(res, bad_request("file", e.message));
        return;
    }
    f.bytes = std::make_shared<const std::string>(file->data);
    file_refusal why = file_refusal::NONE;
    if (error pe = files.put(f, &why)) {
        const int status = why == file_refusal::TOO_LARGE ? 413 : why == file_refusal::QUOTA ? 429 : why == file_refusal::FULL ? 507
                         : why == file_refusal::STORAGE ? 503 : pe.code == ERROR_STORAGE ? 503 : 400;
        send_error(res, make_error(status, pe.message, status == 429 ? "rate_limit_error" : status >= 500 ? "server_error" : "invalid_request_error",
                                   status == 429 ? "file_quota_exceeded" : status == 507 ? "storage_full" : status == 503 ? "storage_unavailable" : ""));
        return;
    }
    res.set_content(wire(file_json(f)), "application/json");
}
}  // namespace muse
