#include "rpc.h"

#include "ggml-backend.h"

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <mutex>
#include <set>
#include <vector>

namespace muse {

namespace {

using add_server_fn = ggml_backend_reg_t (*)(const char * endpoint);

add_server_fn find_add_server(std::string & why) {
    ggml_backend_reg_t rpc = ggml_backend_reg_by_name("RPC");
    if (!rpc) {
        why = "this build of Muse has no RPC backend (configure llama.cpp with GGML_RPC=ON)";
        return nullptr;
    }
    auto fn = (add_server_fn) ggml_backend_reg_get_proc_address(rpc, "ggml_backend_rpc_add_server");
    if (!fn) why = "the RPC backend has no ggml_backend_rpc_add_server";
    return fn;
}

// What the child said: "ok N", else ggml's abort message without its "file:line: " prefix,
// else its last line.
std::string child_outcome(const std::string & out) {
    std::vector<std::string> lines;
    size_t                   start = 0;
    while (start < out.size()) {
        size_t nl = out.find('\n', start);
        if (nl == std::string::npos) nl = out.size();
        std::string line = out.substr(start, nl - start);
        while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
        if (!line.empty()) lines.push_back(line);
        start = nl + 1;
    }
    for (const auto & l : lines) {
        if (l.rfind("ok ", 0) == 0) return l;
    }
    for (const auto & l : lines) {
        const size_t at = l.find(".cpp:");
        const size_t msg = at == std::string::npos ? at : l.find(": ", at + 5);
        if (msg != std::string::npos) return l.substr(msg + 2, 300);
    }
    return lines.empty() ? "" : lines.back().substr(0, 300);
}

// Tries the server in a child: ggml aborts on a server it cannot reach or understand.
error probe_server(const std::string & endpoint, add_server_fn add_server, double deadline_s) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return {};  // no child: the real attempt decides
    fflush(stdout);
    fflush(stderr);
    const pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return {};
    }
    if (pid == 0) {
        close(fds[0]);
        // ggml's abort message comes through the pipe; no debugger backtrace on the terminal.
        setenv("GGML_NO_BACKTRACE", "1", 1);
        const int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) dup2(devnull, STDOUT_FILENO);
        dup2(fds[1], STDERR_FILENO);
        ggml_backend_reg_t reg = add_server(endpoint.c_str());
        const size_t       n   = reg ? ggml_backend_reg_dev_count(reg) : 0;
        char               line[64];
        const int          len = snprintf(line, sizeof line, "\nok %zu\n", n);
        if (write(fds[1], line, (size_t) len) < 0) _exit(3);
        _exit(0);
    }
    close(fds[1]);
    using clock         = std::chrono::steady_clock;
    const auto  until   = clock::now() + std::chrono::duration<double>(deadline_s);
    bool        timeout = false;
    std::string out;
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - clock::now()).count();
        if (left <= 0) {
            kill(pid, SIGKILL);
            timeout = true;
            break;
        }
        struct pollfd p = { fds[0], POLLIN, 0 };
        const int     r = poll(&p, 1, (int) left);
        if (r < 0 && errno == EINTR) continue;
        if (r == 0) continue;
        char          buf[1024];
        const ssize_t n = read(fds[0], buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        if (out.size() < (1u << 16)) out.append(buf, (size_t) n);
    }
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    const std::string what = "RPC server " + endpoint + ": ";
    if (timeout) {
        char s[32];
        snprintf(s, sizeof s, "%g", deadline_s);
        return { ERROR_UNAVAILABLE, what + "no answer within " + s + " s (is it a ggml rpc-server of the same llama.cpp version?)" };
    }
    const std::string last = child_outcome(out);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && last.rfind("ok ", 0) == 0) {
        if (last == "ok 0") return { ERROR_UNAVAILABLE, what + "it offers no devices" };
        return {};
    }
    return { ERROR_UNAVAILABLE, what + (last.empty() ? std::string("the connection failed") : last) +
                                    " (start it with: rpc-server -H HOST -p PORT)" };
}

}  // namespace

std::string check_rpc_endpoint(const std::string & endpoint) {
    const size_t colon = endpoint.rfind(':');
    if (colon == std::string::npos || colon == 0) return "\"" + endpoint + "\" is not HOST:PORT";
    const std::string host = endpoint.substr(0, colon), port = endpoint.substr(colon + 1);
    if (host.find(':') != std::string::npos || host.find('[') != std::string::npos) {
        return "\"" + endpoint + "\": IPv6 addresses are not supported by ggml's RPC; use a host name or an IPv4 address";
    }
    if (host.size() > 253) return "\"" + endpoint + "\": the host name is longer than 253 characters";
    for (char c : host) {
        if (!isalnum((unsigned char) c) && c != '.' && c != '-' && c != '_') {
            return "\"" + endpoint + "\": the host may hold letters, digits, '.', '-' and '_' only";
        }
    }
    if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos) {
        return "\"" + endpoint + "\": the port must be a number in [1, 65535]";
    }
    const long p = strtol(port.c_str(), nullptr, 10);
    if (p < 1 || p > 65535) return "\"" + endpoint + "\": the port must be a number in [1, 65535]";
    return "";
}

error parse_rpc_servers(const std::string & list, std::vector<std::string> & out) {
    out.clear();
    size_t start = 0;
    for (;;) {
        const size_t      comma = list.find(',', start);
        const std::string one   = list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        if (std::string e = check_rpc_endpoint(one); !e.empty()) return { ERROR_INVALID_ARGUMENT, e };
        for (const auto & seen : out) {
            if (seen == one) return { ERROR_INVALID_ARGUMENT, "\"" + one + "\" is listed twice" };
        }
        out.push_back(one);
        if (out.size() > k_max_rpc_servers) {
            return { ERROR_INVALID_ARGUMENT, "at most " + std::to_string(k_max_rpc_servers) + " RPC servers" };
        }
        if (comma == std::string::npos) break;
        start = comma + 1;
    }
    return {};
}

error attach_rpc_servers(const std::vector<std::string> & endpoints, std::vector<ggml_backend_device *> & devices,
                         double deadline_s) {
    static std::mutex            mu;
    static std::set<std::string> registered;  // ggml keeps one connection per endpoint for the process
    std::lock_guard<std::mutex>  lk(mu);
    if (endpoints.size() > k_max_rpc_servers) {
        return { ERROR_INVALID_ARGUMENT, "at most " + std::to_string(k_max_rpc_servers) + " RPC servers" };
    }
    std::string   why;
    add_server_fn add_server = find_add_server(why);
    if (!add_server) return { ERROR_INVALID_ARGUMENT, why };
    for (const auto & ep : endpoints) {
        if (std::string e = check_rpc_endpoint(ep); !e.empty()) return { ERROR_INVALID_ARGUMENT, e };
        if (!registered.count(ep)) {
            if (error e = probe_server(ep, add_server, deadline_s)) return e;
        }
        ggml_backend_reg_t reg = add_server(ep.c_str());
        if (!reg) return { ERROR_UNAVAILABLE, "RPC server " + ep + ": it offers no devices" };
        if (!registered.count(ep)) {
            ggml_backend_register(reg);
            registered.insert(ep);
        }
        for (size_t i = 0; i < ggml_backend_reg_dev_count(reg); ++i) {
            devices.push_back(ggml_backend_reg_dev_get(reg, i));
        }
    }
    return {};
}

}  // namespace muse
