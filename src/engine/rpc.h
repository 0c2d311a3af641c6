#pragma once
// llama.cpp RPC: the local model's layers spread over ggml rpc-servers (llama.cpp's
// tools/rpc, built from the pinned source: scripts/build rpc-server). Each server offers its
// devices (its CPU, or its GPUs) to this process; llama.cpp splits the layers over them by
// their free memory, and the token embeddings stay here.
//
//   std::vector<ggml_backend_dev_t> devs;
//   if (muse::error e = muse::attach_rpc_servers({ "10.0.0.2:50052", "10.0.0.3:50052" }, devs)) { ... }
//   mp.devices = devs (null-terminated) ...
//
// RPC has no authentication and no encryption: keep it on a trusted network (llama.cpp's own
// documentation says the same). ggml's RPC client stops the process when a server it already
// uses dies or answers nonsense; attach_rpc_servers therefore tries each server first in a
// forked child under a deadline, so that a wrong address, a closed port or something that is
// not an rpc-server is a clear error instead.
//
// Thread safety: call from one thread at a time (model loading).

#include "core/error.h"

#include <string>
#include <vector>

struct ggml_backend_device;

namespace muse {

inline constexpr size_t k_max_rpc_servers = 16;

// Checks one "HOST:PORT" (a host name or an IPv4 address: ggml's RPC client has no IPv6; port
// 1-65535).
// "" when it is well formed, else what is wrong.
std::string check_rpc_endpoint(const std::string & endpoint);

// Splits "HOST:PORT,HOST:PORT" into endpoints, checking each and the count.
error parse_rpc_servers(const std::string & list, std::vector<std::string> & out);

// Connects to each server (once per process: a second call reuses the connection) and
// appends its devices to `devices`. ERROR_UNAVAILABLE names the server that cannot be used.
error attach_rpc_servers(const std::vector<std::string> & endpoints, std::vector<ggml_backend_device *> & devices,
                         double deadline_s = 10);

}  // namespace muse
