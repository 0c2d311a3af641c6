// The one HTTP client of `muse serve`: image_url fetches from --allow-image-host hosts.

#include "server-impl.h"

#include "app/files.h"

#include <httplib.h>

#include <algorithm>

namespace muse {

api_error server::impl::fetch_image(const std::string & url, std::string & bytes, std::string & name) {
    const bool http  = url.rfind("http://", 0) == 0;
    const bool https = url.rfind("https://", 0) == 0;
    if (!http && !https) {
        return bad_request("image_url", "image_url must be a data: URI (data:image/png;base64,...) or an http(s) URL");
    }
    const size_t      start = http ? 7 : 8;
    const size_t      slash = url.find('/', start);
    const std::string hostport = url.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    std::string       host = hostport;
    if (auto colon = host.rfind(':'); colon != std::string::npos) host = host.substr(0, colon);
    const bool allowed = std::find(params.image_hosts.begin(), params.image_hosts.end(), host) != params.image_hosts.end() ||
                         std::find(params.image_hosts.begin(), params.image_hosts.end(), hostport) != params.image_hosts.end();
    if (!allowed) {
        return bad_request("image_url", "remote image URLs are refused (host '" + host +
                                        "' is not allowed): send the image as a data: URI, or start the server with --allow-image-host " + host);
    }
    if (https) {
        return bad_request("image_url", "this build fetches http:// image URLs only (no TLS): send the image as a data: URI");
    }
    httplib::Client cli("http://" + hostport);
    cli.set_connection_timeout(5);
    cli.set_read_timeout(15);
    const size_t cap = max_image_bytes();
    bool         over = false;
    bytes.clear();
    auto r = cli.Get(slash == std::string::npos ? "/" : url.substr(slash), [&](const char * data, size_t n) {
        if (bytes.size() + n > cap) { over = true; return false; }
        bytes.append(data, n);
        return true;
    });
    if (over) return bad_request("image_url", url + ": the image is over " + std::to_string(cap) + " bytes");
    if (!r) return bad_request("image_url", url + ": could not fetch it (" + httplib::to_string(r.error()) + ")");
    if (r->status != 200) return bad_request("image_url", url + ": the host answered HTTP " + std::to_string(r->status));
    name = url;
    return {};
}

}  // namespace muse
