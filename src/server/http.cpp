#include "http.h"

#include "core/utf8.h"

#include <microhttpd.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <set>
#include <thread>

namespace muse::http {

using clock_type = std::chrono::steady_clock;

namespace {

std::string lower(std::string s) {
    for (char & c : s) c = (char) std::tolower((unsigned char) c);
    return s;
}

// A duplicate of a connection's socket, owned by us: shutdown() through it reaches the socket
// whatever MHD has done with its own descriptor, and the number cannot be reused while held.
struct socket_ref {
    int fd = -1;
    ~socket_ref() {
        if (fd >= 0) close(fd);
    }
};

// Handler threads, started as needed up to a cap; a task beyond the cap waits for one.
class worker_pool {
  public:
    void set_max(int n) { max_threads = std::max(1, n); }

    void enqueue(std::function<void()> f) {
        std::lock_guard<std::mutex> lk(mu);
        tasks.push_back(std::move(f));
        // Each idle thread takes one task: more tasks queued than idle threads (an idle one that
        // was notified but has not woken yet still counts as idle) need a thread of their own,
        // or a short task would wait behind a long one.
        if ((int) tasks.size() > idle && (int) threads.size() < max_threads) {
            threads.emplace_back([this] { run(); });
        } else {
            cv.notify_one();
        }
    }

    // Runs what is queued, then joins every thread.
    void stop() {
        {
            std::lock_guard<std::mutex> lk(mu);
            stopping = true;
        }
        cv.notify_all();
        for (auto & t : threads) t.join();
        threads.clear();
    }

  private:
    void run() {
        std::unique_lock<std::mutex> lk(mu);
        for (;;) {
            idle++;
            cv.wait(lk, [&] { return stopping || !tasks.empty(); });
            idle--;
            if (tasks.empty()) return;
            auto f = std::move(tasks.front());
            tasks.pop_front();
            lk.unlock();
            try {
                f();
            } catch (const std::exception & e) {
                fprintf(stderr, "muse serve: a worker task failed: %s\n", e.what());
            } catch (...) {
                fprintf(stderr, "muse serve: a worker task failed\n");
            }
            lk.lock();
        }
    }

    std::mutex                        mu;
    std::condition_variable           cv;
    std::deque<std::function<void()>> tasks;
    std::vector<std::thread>          threads;
    int                               idle = 0;
    int                               max_threads = 64;
    bool                              stopping = false;
};

}  // namespace

// --- stream ---------------------------------------------------------------------------------

void stream::close_once(bool complete) {
    if (close_called.exchange(true)) return;
    if (on_close) on_close(complete);
}

bool stream::write(std::string_view bytes) {
    std::lock_guard<std::mutex> lk(mu);
    if (closed || client_gone) return false;
    buf.append(bytes.data(), bytes.size());
    if (suspended) {
        suspended = false;
        MHD_resume_connection(conn);
    }
    return true;
}

void stream::finish() {
    std::lock_guard<std::mutex> lk(mu);
    finished = true;
    if (suspended && !closed) {
        suspended = false;
        MHD_resume_connection(conn);
    }
}

// --- request / response -----------------------------------------------------------------------

std::string request::header(std::string_view name) const {
    for (const auto & [k, v] : headers) {
        if (k == name) return v;
    }
    return "";
}

bool request::has_header(std::string_view name) const {
    for (const auto & h : headers) {
        if (h.first == name) return true;
    }
    return false;
}

void response::set_header(std::string name, std::string value) {
    for (auto & h : headers) {
        if (lower(h.first) == lower(name)) {
            h.second = std::move(value);
            return;
        }
    }
    headers.emplace_back(std::move(name), std::move(value));
}

void response::set_content(std::string b, std::string type) {
    body         = std::move(b);
    content_type = std::move(type);
}

std::string validate(const options & o) {
    if (o.port < 0 || o.port > 65535) return "--port must be in [0, 65535], got " + std::to_string(o.port);
    if (o.max_body < 1024 || o.max_body > ((size_t) 1 << 30)) return "the body limit must be in [1 KiB, 1 GiB]";
    if (o.max_header_bytes < 4096 || o.max_header_bytes > (1u << 20)) return "the header limit must be in [4 KiB, 1 MiB]";
    if (!(o.header_timeout_s >= 0.1 && o.header_timeout_s <= 3600)) return "--header-timeout must be in [0.1, 3600] seconds";
    if (!(o.body_timeout_s >= 0.1 && o.body_timeout_s <= 86400)) return "--body-timeout must be in [0.1, 86400] seconds";
    if (!(o.idle_timeout_s >= 1 && o.idle_timeout_s <= 86400)) return "--idle-timeout must be in [1, 86400] seconds";
    if (o.max_connections < 1 || o.max_connections > 100000) return "--max-connections must be in [1, 100000]";
    if (o.max_per_address < 1 || o.max_per_address > 100000) return "--max-connections-per-address must be in [1, 100000]";
    if (o.max_workers < 1 || o.max_workers > 10000) return "the worker cap must be in [1, 10000]";
    return "";
}

// --- multipart --------------------------------------------------------------------------------

namespace {

// The value of `param` in a header like `multipart/form-data; boundary="x"`.
std::string header_param(const std::string & value, const std::string & param) {
    size_t pos = 0;
    while ((pos = value.find(';', pos)) != std::string::npos) {
        ++pos;
        while (pos < value.size() && (value[pos] == ' ' || value[pos] == '\t')) ++pos;
        const size_t eq = value.find('=', pos);
        if (eq == std::string::npos) break;
        if (lower(value.substr(pos, eq - pos)) != param) continue;
        size_t v = eq + 1;
        if (v < value.size() && value[v] == '"') {
            const size_t end = value.find('"', v + 1);
            return end == std::string::npos ? "" : value.substr(v + 1, end - v - 1);
        }
        size_t end = value.find(';', v);
        std::string out = value.substr(v, end == std::string::npos ? std::string::npos : end - v);
        while (!out.empty() && (out.back() == ' ' || out.back() == '\t')) out.pop_back();
        return out;
    }
    return "";
}

}  // namespace

error parse_multipart(const std::string & body, const std::string & content_type, size_t max_parts, std::vector<form_part> & parts) {
    parts.clear();
    if (lower(content_type).rfind("multipart/form-data", 0) != 0) {
        return { ERROR_INVALID_ARGUMENT, "the body is not multipart/form-data (Content-Type: " + utf8_head(content_type, 80) + ")" };
    }
    const std::string boundary = header_param(content_type, "boundary");
    if (boundary.empty() || boundary.size() > 200) {
        return { ERROR_INVALID_ARGUMENT, "multipart/form-data without a usable boundary parameter" };
    }
    const std::string delim = "--" + boundary;
    size_t pos = body.find(delim);
    if (pos == std::string::npos) return { ERROR_INVALID_ARGUMENT, "multipart body: no boundary line" };
    for (;;) {
        pos += delim.size();
        if (body.compare(pos, 2, "--") == 0) return {};  // the closing delimiter
        if (body.compare(pos, 2, "\r\n") != 0) return { ERROR_INVALID_ARGUMENT, "multipart body: a boundary line is not followed by CRLF" };
        pos += 2;
        if (parts.size() >= max_parts) {
            return { ERROR_INVALID_ARGUMENT, "multipart body: more than " + std::to_string(max_parts) + " parts" };
        }
        const size_t head_end = body.find("\r\n\r\n", pos);
        if (head_end == std::string::npos || head_end - pos > 16384) {
            return { ERROR_INVALID_ARGUMENT, "multipart body: a part's headers do not end (or pass 16 KiB)" };
        }
        form_part p;
        size_t line = pos;
        while (line < head_end) {
            size_t eol = body.find("\r\n", line);
            if (eol == std::string::npos || eol > head_end) eol = head_end;
            const std::string h = body.substr(line, eol - line);
            const size_t colon = h.find(':');
            if (colon != std::string::npos) {
                const std::string name = lower(h.substr(0, colon));
                std::string value = h.substr(colon + 1);
                while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.erase(value.begin());
                if (name == "content-disposition") {
                    p.name     = header_param(value, "name");
                    p.filename = header_param(value, "filename");
                } else if (name == "content-type") {
                    p.content_type = value;
                }
            }
            line = eol + 2;
        }
        const size_t data = head_end + 4;
        const size_t next = body.find("\r\n" + delim, data);
        if (next == std::string::npos) return { ERROR_INVALID_ARGUMENT, "multipart body: the last part is not closed by the boundary" };
        p.data = body.substr(data, next - data);
        parts.push_back(std::move(p));
        pos = next + 2;
    }
}

// --- the transport ----------------------------------------------------------------------------

struct route_entry {
    std::string              method;
    std::string              pattern;
    std::vector<std::string> segments;
    handler                  h;
};

namespace {

// "/v1/files/x" -> {"v1", "files", "x"}. Empty segments are kept ("/v1//files", "/v1/files/"
// have one), so that only the exact path matches a route and a ":id" is never empty.
std::vector<std::string> split_path(const std::string & path) {
    std::vector<std::string> out;
    if (path.empty() || path[0] != '/') return { path };
    size_t i = 1;
    for (;;) {
        const size_t j = path.find('/', i);
        out.push_back(path.substr(i, j == std::string::npos ? std::string::npos : j - i));
        if (j == std::string::npos) break;
        i = j + 1;
    }
    if (out.size() == 1 && out[0].empty()) out.clear();  // "/"
    return out;
}

bool match(const route_entry & r, const std::vector<std::string> & segs, std::map<std::string, std::string> & params) {
    if (segs.size() != r.segments.size()) return false;
    std::map<std::string, std::string> got;
    for (size_t i = 0; i < segs.size(); ++i) {
        if (!r.segments[i].empty() && r.segments[i][0] == ':') {
            if (segs[i].empty()) return false;
            got[r.segments[i].substr(1)] = segs[i];
        } else if (segs[i] != r.segments[i]) {
            return false;
        }
    }
    params = std::move(got);
    return true;
}

}  // namespace

struct conn_state {
    std::shared_ptr<socket_ref> sock;
    std::string                 addr;
    enum phase_t { HEADERS, BODY, BUSY } phase = HEADERS;
    clock_type::time_point      since = clock_type::now();
    bool                        shut  = false;
    std::weak_ptr<http::stream> st;  // the reply being streamed, if any
    uint64_t                    id = 0;         // the watchdog's epoll key
    bool                        peer_gone = false;
    cancel_source               gone;           // stopped when the peer closes: request::gone
};

struct req_ctx {
    MHD_Connection *    conn = nullptr;
    conn_state *        cs   = nullptr;
    request             req;
    response            res;
    const route_entry * r = nullptr;
    bool                answered   = false;  // the response is queued
    bool                deferred   = false;  // res answers the request once its body is read and dropped
    size_t              discard_limit = 0;   // body bytes worth dropping to deliver that answer
    bool                dispatched = false;
    std::atomic<bool>   ready{ false };
    size_t              discarded = 0;
    clock_type::time_point t0 = clock_type::now();
};

struct transport {
    server &                 owner;
    options                  opt;
    MHD_Daemon *             daemon = nullptr;
    int                      listen_fd = -1;
    int32_t                  bound_port = 0;
    std::vector<route_entry> routes;
    worker_pool              pool;

    std::mutex               mu;  // guards conns and the conn_state fields the watchdog reads
    std::set<conn_state *>   conns;
    std::map<uint64_t, conn_state *> by_id;
    uint64_t                 next_id = 1;  // 0 is the wake-up descriptor's key
    bool                     drop_unfinished = false;
    std::thread              watchdog;
    std::atomic<bool>        watchdog_stop{ false };
    // The watchdog sleeps in epoll_wait on every connection's duplicate socket (a peer that
    // closes wakes it: EPOLLRDHUP) and on `wake_fd`, until the next header or body deadline.
    int                      ep = -1;
    int                      wake_fd = -1;

    ~transport() {
        if (ep >= 0) close(ep);
        if (wake_fd >= 0) close(wake_fd);
    }

    void wake() {
        if (wake_fd < 0) return;
        const uint64_t one = 1;
        ssize_t        n   = write(wake_fd, &one, sizeof(one));
        (void) n;
    }

    explicit transport(server & s) : owner(s) {}

    // --- MHD callbacks ---
    // The callbacks below are called by C code: nothing may be thrown through it.
    static void on_connection(void * cls, MHD_Connection * c, void ** socket_context, MHD_ConnectionNotificationCode code) {
        try {
            on_connection_impl(cls, c, socket_context, code);
        } catch (const std::exception & e) {
            fprintf(stderr, "muse serve: connection bookkeeping failed: %s\n", e.what());
        }
    }

    static void on_connection_impl(void * cls, MHD_Connection * c, void ** socket_context, MHD_ConnectionNotificationCode code) {
        auto & t = *static_cast<transport *>(cls);
        if (code == MHD_CONNECTION_NOTIFY_STARTED) {
            auto * cs = new conn_state;
            cs->sock  = std::make_shared<socket_ref>();
            if (const MHD_ConnectionInfo * ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD)) {
                cs->sock->fd = fcntl(ci->connect_fd, F_DUPFD_CLOEXEC, 0);
            }
            if (const MHD_ConnectionInfo * ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS)) {
                char buf[INET6_ADDRSTRLEN] = { 0 };
                const sockaddr * sa = ci->client_addr;
                if (sa && sa->sa_family == AF_INET) {
                    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in *>(sa)->sin_addr, buf, sizeof(buf));
                } else if (sa && sa->sa_family == AF_INET6) {
                    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6 *>(sa)->sin6_addr, buf, sizeof(buf));
                }
                cs->addr = buf;
            }
            std::lock_guard<std::mutex> lk(t.mu);
            cs->id = t.next_id++;
            t.conns.insert(cs);
            t.by_id[cs->id] = cs;
            *socket_context = cs;
            if (t.ep >= 0 && cs->sock->fd >= 0) {
                // One wake-up when the peer closes (or the socket fails); nothing for data.
                epoll_event ev{};
                ev.events   = EPOLLRDHUP | EPOLLONESHOT;
                ev.data.u64 = cs->id;
                epoll_ctl(t.ep, EPOLL_CTL_ADD, cs->sock->fd, &ev);
            }
        } else {
            auto * cs = static_cast<conn_state *>(*socket_context);
            if (!cs) return;
            std::unique_lock<std::mutex> lk(t.mu);
            if (t.ep >= 0 && cs->sock && cs->sock->fd >= 0) epoll_ctl(t.ep, EPOLL_CTL_DEL, cs->sock->fd, nullptr);
            t.by_id.erase(cs->id);
            t.conns.erase(cs);
            delete cs;
            *socket_context = nullptr;
            lk.unlock();
            if (t.owner.on_request_ended) t.owner.on_request_ended();
        }
    }

    static conn_state * state_of(MHD_Connection * c) {
        const MHD_ConnectionInfo * ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        return ci ? static_cast<conn_state *>(ci->socket_context) : nullptr;
    }

    static MHD_Result collect_header(void * cls, MHD_ValueKind, const char * key, const char * value) {
        auto & req = *static_cast<request *>(cls);
        if (req.headers.size() < 256) req.headers.emplace_back(lower(key ? key : ""), value ? value : "");
        return MHD_YES;
    }

    static MHD_Result collect_query(void * cls, MHD_ValueKind, const char * key, const char * value) {
        auto & req = *static_cast<request *>(cls);
        const std::string k = key ? key : "", v = value ? value : "";
        if (req.query.size() < 32 && k.size() <= 64 && v.size() <= 1024) req.query.emplace(k, v);  // the first of a repeated key
        return MHD_YES;
    }

    static ssize_t read_stream(void * cls, uint64_t, char * buf, size_t max) {
        stream & s = **static_cast<std::shared_ptr<stream> *>(cls);
        std::lock_guard<std::mutex> lk(s.mu);
        if (s.client_gone) return MHD_CONTENT_READER_END_WITH_ERROR;
        if (s.sent < s.buf.size()) {
            const size_t n = std::min(max, s.buf.size() - s.sent);
            memcpy(buf, s.buf.data() + s.sent, n);
            s.sent += n;
            if (s.sent == s.buf.size()) {
                s.buf.clear();
                s.sent = 0;
            }
            return (ssize_t) n;
        }
        if (s.finished) return MHD_CONTENT_READER_END_OF_STREAM;
        // Nothing to send yet: the connection sleeps until a write or finish resumes it.
        s.suspended = true;
        MHD_suspend_connection(s.conn);
        return 0;
    }

    static void free_stream(void * cls) { delete static_cast<std::shared_ptr<stream> *>(cls); }

    MHD_Result queue(MHD_Connection * c, req_ctx & rc) {
        response &     res = rc.res;
        MHD_Response * r   = nullptr;
        {
            // Being answered: no header or body deadline applies any more.
            std::lock_guard<std::mutex> lk(mu);
            if (rc.cs && rc.cs->phase != conn_state::BUSY) {
                rc.cs->phase = conn_state::BUSY;
                rc.cs->since = clock_type::now();
            }
        }
        if (res.stream) {
            {
                std::lock_guard<std::mutex> lk(res.stream->mu);
                res.stream->conn = c;
            }
            bool gone_already = false;
            {
                std::lock_guard<std::mutex> lk(mu);
                if (rc.cs) {
                    rc.cs->st    = res.stream;
                    gone_already = rc.cs->peer_gone;
                }
            }
            if (gone_already) res.stream->client_gone = true;
            r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, &read_stream,
                                                  new std::shared_ptr<stream>(res.stream), &free_stream);
        } else {
            r = MHD_create_response_from_buffer(res.body.size(), (void *) res.body.data(), MHD_RESPMEM_MUST_COPY);
        }
        if (!r) return MHD_NO;
        if (!res.content_type.empty()) MHD_add_response_header(r, "Content-Type", res.content_type.c_str());
        for (const auto & [k, v] : res.headers) MHD_add_response_header(r, k.c_str(), v.c_str());
        const MHD_Result ok = MHD_queue_response(c, (unsigned) res.status, r);
        MHD_destroy_response(r);
        return ok;
    }

    static MHD_Result on_access(void * cls, MHD_Connection * c, const char * url, const char * method, const char * version,
                                const char * upload, size_t * upload_size, void ** con_cls) {
        try {
            return on_access_impl(cls, c, url, method, version, upload, upload_size, con_cls);
        } catch (const std::exception & e) {
            fprintf(stderr, "muse serve: request handling failed: %s\n", e.what());
            return MHD_NO;  // the connection is closed
        }
    }

    static MHD_Result on_access_impl(void * cls, MHD_Connection * c, const char * url, const char * method, const char *,
                                     const char * upload, size_t * upload_size, void ** con_cls) {
        auto & t = *static_cast<transport *>(cls);
        auto * holder = static_cast<std::shared_ptr<req_ctx> *>(*con_cls);
        if (!holder) {
            auto rc  = std::make_shared<req_ctx>();
            holder   = new std::shared_ptr<req_ctx>(rc);
            *con_cls = holder;
            rc->conn = c;
            rc->cs   = state_of(c);
            request & req = rc->req;
            req.method = method ? method : "";
            req.path   = url ? url : "";
            MHD_get_connection_values(c, MHD_HEADER_KIND, &collect_header, &req);
            MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, &collect_query, &req);
            {
                std::lock_guard<std::mutex> lk(t.mu);
                if (rc->cs) {
                    req.remote_addr = rc->cs->addr;
                    rc->cs->phase   = conn_state::BODY;
                    rc->cs->since   = clock_type::now();
                    req.gone        = rc->cs->gone.get_token();
                }
            }
            req_ctx * raw = rc.get();
            req.commit = [raw] {
                if (!raw->ready.exchange(true)) MHD_resume_connection(raw->conn);
            };
            t.start_request(*rc);
            if (rc->answered) {
                // Answered from the headers. A client still sending a body would see the
                // connection reset before it reads the answer: a body of reasonable size is read
                // and dropped first (never buffered), then the answer goes out.
                const std::string cl = req.header("content-length");
                const bool chunked = lower(req.header("transfer-encoding")).find("chunked") != std::string::npos;
                const unsigned long long n = cl.empty() ? 0 : strtoull(cl.c_str(), nullptr, 10);
                if ((n > 0 && n <= 2 * (unsigned long long) t.opt.max_body) || (chunked && n == 0)) {
                    rc->answered      = false;
                    rc->deferred      = true;
                    rc->discard_limit = chunked ? t.opt.max_body : (size_t) n;
                    return MHD_YES;
                }
                rc->answered = true;
                return t.queue(c, *rc);
            }
            return MHD_YES;
        }
        req_ctx & rc = **holder;
        if (*upload_size > 0) {
            if (rc.deferred || rc.answered) {
                rc.discarded += *upload_size;
                *upload_size = 0;
                // A body far past what was announced or allowed is not worth reading to its end.
                return rc.discarded > rc.discard_limit ? MHD_NO : MHD_YES;
            }
            if (rc.req.body.size() + *upload_size > t.opt.max_body) {
                t.error_response(rc, 413, "request body too large: the limit is " + std::to_string(t.opt.max_body) + " bytes");
                if (t.owner.on_not_found) t.owner.on_not_found(rc.req, rc.res);  // the server's error shape
                rc.req.body.clear();
                rc.req.body.shrink_to_fit();
                rc.deferred      = true;
                rc.discard_limit = t.opt.max_body;
                rc.discarded     = *upload_size;
                *upload_size     = 0;
                return MHD_YES;
            }
            rc.req.body.append(upload, *upload_size);
            *upload_size = 0;
            return MHD_YES;
        }
        if (rc.answered) return MHD_YES;
        if (rc.deferred) {
            rc.answered = true;
            return t.queue(c, rc);
        }
        if (!rc.dispatched) {
            rc.dispatched = true;
            {
                std::lock_guard<std::mutex> lk(t.mu);
                if (rc.cs) {
                    rc.cs->phase = conn_state::BUSY;
                    rc.cs->since = clock_type::now();
                }
            }
            MHD_suspend_connection(c);
            std::shared_ptr<req_ctx> keep = *holder;
            t.pool.enqueue([&t, keep] { t.run_handler(keep); });
            return MHD_YES;
        }
        if (rc.ready && !rc.answered) {
            rc.answered = true;
            return t.queue(c, rc);
        }
        return MHD_YES;
    }

    static void on_completed(void * cls, MHD_Connection * c, void ** con_cls, MHD_RequestTerminationCode toe) {
        try {
            on_completed_impl(cls, c, con_cls, toe);
        } catch (const std::exception & e) {
            fprintf(stderr, "muse serve: request completion failed: %s\n", e.what());
        }
    }

    static void on_completed_impl(void * cls, MHD_Connection *, void ** con_cls, MHD_RequestTerminationCode toe) {
        auto & t = *static_cast<transport *>(cls);
        auto * holder = static_cast<std::shared_ptr<req_ctx> *>(*con_cls);
        if (!holder) return;
        std::shared_ptr<req_ctx> rc = *holder;
        delete holder;
        *con_cls = nullptr;
        if (rc->res.stream) {
            stream & s = *rc->res.stream;
            bool complete;
            {
                std::lock_guard<std::mutex> lk(s.mu);
                s.closed = true;
                complete = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK && s.finished && s.buf.empty();
                if (!complete) s.client_gone = true;
            }
            s.close_once(complete);
        }
        {
            std::lock_guard<std::mutex> lk(t.mu);
            if (rc->cs && t.conns.count(rc->cs)) {
                rc->cs->phase = conn_state::HEADERS;
                rc->cs->since = clock_type::now();
                rc->cs->st.reset();
            }
        }
        if (t.owner.on_request_ended) t.owner.on_request_ended();
        if (rc->answered && t.owner.on_logged) {
            if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && !rc->res.stream) rc->res.status = 499;
            t.owner.on_logged(rc->req, rc->res);
        }
    }

    void error_response(req_ctx & rc, int status, const std::string & message) {
        rc.res = response();
        rc.res.status = status;
        if (owner.on_exception && status >= 500) {
            owner.on_exception(rc.req, rc.res, message);
            return;
        }
        // The JSON shape the server uses everywhere (set by the server layer through on_not_found
        // for routing errors); a plain fallback here.
        std::string esc;
        for (char ch : message) {
            if (ch == '"' || ch == '\\') esc += '\\';
            if ((unsigned char) ch >= 0x20) esc += ch;
        }
        rc.res.body = "{\"error\":{\"message\":\"" + esc + "\",\"type\":\"invalid_request_error\",\"param\":null,\"code\":null}}";
    }

    // Headers are in: route, early checks.
    void start_request(req_ctx & rc) {
        request & req = rc.req;
        if (req.path.size() > 8192) {
            error_response(rc, 414, "the URL is over 8192 bytes");
            rc.answered = true;
            return;
        }
        const auto segs = split_path(req.path);
        bool path_known = false;
        for (const auto & r : routes) {
            std::map<std::string, std::string> params;
            if (!match(r, segs, params)) continue;
            path_known = true;
            if (r.method == req.method || (req.method == "HEAD" && r.method == "GET")) {
                rc.r       = &r;
                req.route  = r.pattern;
                req.params = std::move(params);
                break;
            }
        }
        if (!rc.r) {
            rc.res.status = path_known ? 405 : 404;
            if (owner.on_headers && req.method == "OPTIONS" && path_known) {
                // CORS preflight: the server layer answers it.
                rc.answered = owner.on_headers(req, rc.res);
                if (rc.answered) return;
            }
            if (owner.on_not_found) {
                owner.on_not_found(req, rc.res);
            } else {
                error_response(rc, rc.res.status, "no route " + req.method + " " + req.path);
            }
            rc.answered = true;
            return;
        }
        const std::string cl = req.header("content-length");
        if (!cl.empty()) {
            char * end = nullptr;
            errno = 0;
            const unsigned long long n = strtoull(cl.c_str(), &end, 10);
            if (errno != 0 || end == cl.c_str() || *end != '\0' || n > opt.max_body) {
                error_response(rc, 413, "request body too large: the limit is " + std::to_string(opt.max_body) +
                                        " bytes (send smaller images or split the request)");
                if (owner.on_not_found) owner.on_not_found(req, rc.res);  // the server's error shape
                rc.answered = true;
                return;
            }
        }
        if (owner.on_headers && owner.on_headers(req, rc.res)) {
            rc.answered = true;
        }
    }

    void run_handler(const std::shared_ptr<req_ctx> & rc) {
        std::string failure;
        try {
            rc->r->h(rc->req, rc->res);
        } catch (const std::exception & e) {
            failure = std::string("internal error: ") + e.what();
        } catch (...) {
            failure = "internal error";
        }
        if (rc->ready) {
            // Committed (streaming): the reply is on its way; a failure can only end it.
            if (!failure.empty()) {
                fprintf(stderr, "muse serve: %s %s: %s\n", rc->req.method.c_str(), rc->req.path.c_str(), failure.c_str());
            }
            if (rc->res.stream) rc->res.stream->finish();
            return;
        }
        if (!failure.empty()) {
            rc->res = response();
            error_response(*rc, 500, failure);
        }
        rc->ready = true;
        MHD_resume_connection(rc->conn);
    }

    // Cuts connections past their header or body deadline (or all unfinished ones when
    // draining), and tells a request and its streamed reply the moment their client goes. It
    // sleeps in epoll_wait until a peer closes, a deadline comes or it is woken (a drain, stop):
    // nothing is polled.
    void watch() {
        while (!watchdog_stop) {
            int timeout_ms = -1;
            try {
                timeout_ms = cut_overdue();
            } catch (const std::exception & e) {
                fprintf(stderr, "muse serve: connection watchdog: %s\n", e.what());
            }
            epoll_event evs[64];
            const int   n = epoll_wait(ep, evs, 64, timeout_ms);
            for (int i = 0; i < n; ++i) {
                if (evs[i].data.u64 == 0) {
                    uint64_t v;
                    ssize_t  r = read(wake_fd, &v, sizeof(v));
                    (void) r;
                    continue;
                }
                peer_closed(evs[i].data.u64);
            }
        }
    }

    // Cuts what is past its deadline; returns the milliseconds to the next one (-1: none). A
    // connection that starts later has its deadline at least the shorter timeout away, so the
    // wait never passes a deadline it has not seen.
    int cut_overdue() {
        std::lock_guard<std::mutex> lk(mu);
        const auto now  = clock_type::now();
        double     next = std::min(opt.header_timeout_s, opt.body_timeout_s);
        for (conn_state * cs : conns) {
            if (cs->shut || !cs->sock || cs->sock->fd < 0) continue;
            if (cs->phase != conn_state::HEADERS && cs->phase != conn_state::BODY) continue;
            const double age   = std::chrono::duration<double>(now - cs->since).count();
            const double limit = cs->phase == conn_state::HEADERS ? opt.header_timeout_s : opt.body_timeout_s;
            if (drop_unfinished || age > limit) {
                shutdown(cs->sock->fd, SHUT_RDWR);
                cs->shut = true;
            } else {
                next = std::min(next, limit - age);
            }
        }
        return (int) std::ceil(next * 1000) + 1;
    }

    // The peer of connection `id` has closed: its request's `gone` token is stopped and its
    // streamed reply, if any, ends.
    void peer_closed(uint64_t id) {
        std::shared_ptr<stream> st;
        cancel_source           src;
        {
            std::lock_guard<std::mutex> lk(mu);
            auto it = by_id.find(id);
            if (it == by_id.end()) return;
            conn_state * cs = it->second;
            cs->peer_gone   = true;
            st              = cs->st.lock();
            src             = cs->gone;
        }
        src.request_stop();  // the request's callbacks run here, outside the lock
        if (st) mark_gone(*st);
    }

    static void mark_gone(stream & s) {
        {
            std::lock_guard<std::mutex> lk(s.mu);
            if (s.closed) return;
            s.client_gone = true;
            if (s.suspended) {
                s.suspended = false;
                MHD_resume_connection(s.conn);
            }
        }
        s.close_once(false);
    }
};

int32_t server::busy_requests() const {
    std::lock_guard<std::mutex> lk(t->mu);
    int32_t n = 0;
    for (const conn_state * cs : t->conns) n += cs->phase == conn_state::BUSY ? 1 : 0;
    return n;
}

server::server() : t(std::make_unique<transport>(*this)) {}

server::~server() {
    stop();
}

void server::route(std::string method, std::string pattern, handler h) {
    auto segs = split_path(pattern);
    t->routes.push_back({ std::move(method), std::move(pattern), std::move(segs), std::move(h) });
}

int32_t server::port() const {
    return t->bound_port;
}

int32_t server::open_connections() const {
    std::lock_guard<std::mutex> lk(t->mu);
    return (int32_t) t->conns.size();
}

error server::start(const options & o) {
    if (std::string e = validate(o); !e.empty()) return { ERROR_INVALID_ARGUMENT, e };
    t->opt = o;
    t->pool.set_max(o.max_workers);

    // Two descriptors per connection (MHD's and our duplicate): raise the soft limit.
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        if (rl.rlim_cur < rl.rlim_max) {
            rl.rlim_cur = rl.rlim_max;
            setrlimit(RLIMIT_NOFILE, &rl);
            getrlimit(RLIMIT_NOFILE, &rl);
        }
        // Two per connection, and room for the model, logs and the engine.
        const rlim_t fit = rl.rlim_cur > 128 ? (rl.rlim_cur - 128) / 2 : 1;
        if (rl.rlim_cur != RLIM_INFINITY && (rlim_t) t->opt.max_connections > fit) {
            fprintf(stderr, "muse serve: note: the open-file limit (%llu) allows %llu connections, not %d; raise it with ulimit -n\n",
                    (unsigned long long) rl.rlim_cur, (unsigned long long) fit, t->opt.max_connections);
            t->opt.max_connections = (int32_t) fit;
        }
    }

    addrinfo hints{};
    hints.ai_family   = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags    = AI_PASSIVE | AI_NUMERICSERV;
    addrinfo * res = nullptr;
    const std::string port_s = std::to_string(o.port);
    if (int rc = getaddrinfo(o.host.c_str(), port_s.c_str(), &hints, &res); rc != 0) {
        return { ERROR_INVALID_ARGUMENT, "cannot listen on " + o.host + ": " + gai_strerror(rc) };
    }
    std::string why = "no address";
    for (addrinfo * ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) { why = strerror(errno); continue; }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 1024) != 0) {
            why = strerror(errno);
            close(fd);
            continue;
        }
        t->listen_fd = fd;
        break;
    }
    freeaddrinfo(res);
    if (t->listen_fd < 0) {
        return { ERROR_INVALID_ARGUMENT, "cannot listen on " + o.host + ":" + port_s + " (" + why +
                                             "): the port is in use or the address is not local (try --port)" };
    }
    sockaddr_storage ss{};
    socklen_t        sl = sizeof(ss);
    getsockname(t->listen_fd, reinterpret_cast<sockaddr *>(&ss), &sl);
    t->bound_port = ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6 *>(&ss)->sin6_port
                                                   : reinterpret_cast<sockaddr_in *>(&ss)->sin_port);

    if (t->ep < 0) t->ep = epoll_create1(EPOLL_CLOEXEC);
    if (t->wake_fd < 0) {
        t->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        epoll_event ev{};
        ev.events   = EPOLLIN;
        ev.data.u64 = 0;
        if (t->ep >= 0 && t->wake_fd >= 0) epoll_ctl(t->ep, EPOLL_CTL_ADD, t->wake_fd, &ev);
    }
    if (t->ep < 0 || t->wake_fd < 0) {
        close(t->listen_fd);
        t->listen_fd = -1;
        return { ERROR_INTERNAL, std::string("the connection watchdog did not start: ") + strerror(errno) };
    }
    const unsigned idle = (unsigned) std::max(1.0, o.idle_timeout_s);
    t->daemon = MHD_start_daemon(
        MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME, 0, nullptr, nullptr, &transport::on_access, t.get(),
        MHD_OPTION_LISTEN_SOCKET, t->listen_fd,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned) o.max_connections,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned) o.max_per_address,
        MHD_OPTION_CONNECTION_TIMEOUT, idle,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t) o.max_header_bytes + (32u << 10),
        MHD_OPTION_NOTIFY_COMPLETED, &transport::on_completed, t.get(),
        MHD_OPTION_NOTIFY_CONNECTION, &transport::on_connection, t.get(),
        MHD_OPTION_END);
    if (!t->daemon) {
        close(t->listen_fd);
        t->listen_fd = -1;
        return { ERROR_INTERNAL, "the HTTP server (libmicrohttpd) did not start" };
    }
    t->watchdog = std::thread([this] { t->watch(); });
    return {};
}

void server::stop_accepting() {
    if (!t->daemon) return;
    {
        std::lock_guard<std::mutex> lk(t->mu);
        t->drop_unfinished = true;
    }
    t->wake();
    const MHD_socket fd = MHD_quiesce_daemon(t->daemon);
    if (fd != MHD_INVALID_SOCKET) close(fd);
    t->listen_fd = -1;
}

void server::stop() {
    if (!t->daemon) return;
    stop_accepting();
    // Handlers end (the server layer has cancelled its work) and resume their connections.
    t->pool.stop();
    // Streams still open: their clients see the connection close.
    std::vector<std::shared_ptr<stream>> open;
    {
        std::lock_guard<std::mutex> lk(t->mu);
        for (conn_state * cs : t->conns) {
            if (auto st = cs->st.lock()) open.push_back(st);
            if (cs->sock && cs->sock->fd >= 0) shutdown(cs->sock->fd, SHUT_RDWR);
        }
    }
    for (auto & st : open) transport::mark_gone(*st);
    t->watchdog_stop = true;
    t->wake();
    if (t->watchdog.joinable()) t->watchdog.join();
    MHD_stop_daemon(t->daemon);
    t->daemon = nullptr;
}

}  // namespace muse::http
