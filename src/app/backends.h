#pragma once
// Where `muse serve` sends its requests when it is more than one engine: the servers given by
// --backend URL (repeatable) and by a backends file (--backends FILE), and the local model as
// one member among them. Each becomes a routing member (backend/routing/) with a weight and a
// limit on requests in flight.
//
// A backends file is JSON, an array or {"backends": [...]}, one object per server:
//
//   {"backends": [
//     {"url": "http://10.0.0.5:8081", "weight": 2, "max_in_flight": 8},
//     {"url": "http://10.0.0.6:8000", "model": "Qwen/Qwen3-8B", "key_env": "VLLM_KEY",
//      "timeout": 120, "ctx": 8192},
//     {"url": "local", "weight": 1, "max_in_flight": 2}
//   ]}
//
// "local" is the model muse serve loads itself (--model). Keys: url (required), key or key_env
// (the name of an environment variable that holds the key, so that the file holds no secret),
// model, weight (1-1000, default 1), max_in_flight (0-4096, 0: no limit), ctx (0 or
// 256-4194304), timeout (seconds, 1-3600), connect_timeout (seconds, 1-600), vision (true:
// images go as pictures, false: as their OCR text; default: as llama-server's /props says). Any
// other key is an error naming it.

#include "backend/remote/remote-backend.h"
#include "core/error.h"

#include <cstdint>
#include <string>
#include <vector>

namespace muse {

inline constexpr size_t k_max_backends          = 64;
inline constexpr size_t k_max_backends_file     = 1 << 20;  // bytes
inline constexpr int32_t k_max_backend_weight   = 1000;
inline constexpr int32_t k_max_backend_inflight = 4096;

struct backend_spec {
    bool          local = false;  // the local model, not a server
    remote_params remote;         // url, key, model, timeouts, ctx of a server
    int32_t       weight        = 1;
    int32_t       max_in_flight = 0;
};

// Parses a backends file's text; `defaults` fills what an entry leaves out (the --backend-*
// flags). `source` names the file in errors ("backends.json: entry 2: weight must be ...").
error parse_backends(const std::string & text, const std::string & source, const remote_params & defaults,
                     std::vector<backend_spec> & out);

// Reads and parses a backends file (at most 1 MiB).
error read_backends_file(const std::string & path, const remote_params & defaults, std::vector<backend_spec> & out);

}  // namespace muse
