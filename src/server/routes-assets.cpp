// GET /assets/NAME, /assets/fonts/NAME and /favicon.ico: the web chat's libraries, KaTeX's fonts
// and the icon, compiled into the binary (web-assets.h). Public like the page itself (on_headers
// lets them through without a key): they are the same bytes for everyone and hold no data.

#include "server-impl.h"

#include "core/utf8.h"
#include "server/web-assets.h"

#include <string_view>

namespace muse {

namespace {

// The name is compared whole with the table's, never joined to a path: "../x" is just unknown.
const web_asset * find_web_asset(std::string_view name) {
    for (size_t i = 0; i < web_assets_count; ++i) {
        if (name == web_assets[i].name) return &web_assets[i];
    }
    return nullptr;
}

void send_web_asset(const http::request & req, http::response & res, const std::string & name) {
    const web_asset * a = find_web_asset(name);
    if (!a) {
        send_error(res, make_error(404, "no asset '" + utf8_head(name, 100) + "'", "invalid_request_error", "asset_not_found"));
        return;
    }
    // The bytes change only with the binary, but the URL does not: a browser asks again each
    // time (no-cache) and gets a bodiless 304 while the ETag, from the bytes' hash, still holds.
    res.set_header("Cache-Control", "no-cache");
    res.set_header("ETag", a->etag);
    res.set_header("X-Content-Type-Options", "nosniff");
    if (req.header("if-none-match") == a->etag) {
        res.status = 304;
        res.content_type.clear();
        return;
    }
    res.set_content(std::string(reinterpret_cast<const char *>(a->data), a->size), a->content_type);
}

}  // namespace

void server::impl::routes_assets() {
    if (!params.web) return;
    svr.route("GET", "/assets/:name", [](http::request & req, http::response & res) { send_web_asset(req, res, req.params.at("name")); });
    svr.route("GET", "/assets/fonts/:name",
              [](http::request & req, http::response & res) { send_web_asset(req, res, "fonts/" + req.params.at("name")); });
    auto icon = [](http::request & req, http::response & res) { send_web_asset(req, res, "favicon.svg"); };
    svr.route("GET", "/favicon.ico", icon);
    svr.route("GET", "/favicon.svg", icon);
}

// A path on_headers lets through without a key when the web chat is on.
bool is_web_asset_route(const std::string & route) {
    return route == "/assets/:name" || route == "/assets/fonts/:name" || route == "/favicon.ico" || route == "/favicon.svg";
}

}  // namespace muse
