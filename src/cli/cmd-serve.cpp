// muse serve: the OpenAI-compatible API and the web chat on one model.

#include "app/data.h"
#include "cli.h"
#include "commands.h"
#include "safety-flags.h"

#include "app/runtime.h"
#include "server/server.h"

#include <algorithm>
#include <atomic>
#include <csignal>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <cstdio>
#include <semaphore.h>

namespace muse::cli {

static const char * k_serve_help =
    "usage: muse serve [options]\n"
    "\n"
    "Serves a GGUF model over an OpenAI-compatible HTTP API (/v1/chat/completions, /v1/files,\n"
    "/v1/models) with Muse's reasoning modes and agents, plus /health, /metrics (Prometheus) and\n"
    "a web chat at /. Without --model, Muse uses $MUSE_MODEL, else Muse-Tiny (--model tiny:\n"
    "trained here on arithmetic, it adds and subtracts and nothing else); --model smoke is a\n"
    "generated model whose random weights give meaningless text.\n"
    "\n"
    "model:\n"
    "  -m, --model FILE        GGUF model to load (or tiny, smoke)\n"
    "  --mmproj FILE           vision projector: images in requests go to the model as pictures\n"
    "  --rpc HOST:PORT,...     spread the model's layers over ggml rpc-servers (scripts/build\n"
    "                          rpc-server); trusted networks only: RPC has no authentication\n"
    "  --alias NAME            the model's name in the API (default: the file name without .gguf)\n"
    "  -c, --ctx N             KV cache tokens shared by all requests and agents\n"
    "                          (default 8192 per --parallel request, at most 262144)\n"
    "  -t, --threads N         CPU threads (default: all)\n"
    "  --draft N               tokens each sequence may draft per step from its own text (prompt\n"
    "                          lookup; the output is unchanged, repeats take fewer steps), 0..16\n"
    "                          (default 4, 0 = off)\n"
    "  --cache-prompts N       keep up to N finished prompts' KV cells (default 32, 0 = off) within a\n"
    "                          quarter of --ctx: a request that starts like one of them (a chat's\n"
    "                          next turn, a shared system prompt) reuses those cells\n"
    "\n"
    "remote engines, instead of the local model or beside it:\n"
    "  --backend URL           run every request and agent on this OpenAI-compatible server\n"
    "                          (llama-server, vLLM, SGLang, Ollama's /v1, another muse serve),\n"
    "                          e.g. http://127.0.0.1:8081 (plain http: keep it on a trusted network).\n"
    "                          Repeat it for several servers of one model: a conversation stays on\n"
    "                          one (its prompt cache), others go to the least loaded, and a server\n"
    "                          that fails before the first token hands the request to the next\n"
    "  --backend-key KEY       the key the server wants (Authorization: Bearer KEY)\n"
    "  --backend-model NAME    the model to ask for (default: the first of its /v1/models)\n"
    "  --backend-ctx N         tokens one request may hold (default: the server's, from /props)\n"
    "  --backend-timeout S     seconds to wait for the first token and between tokens (default 300)\n"
    "  --backends FILE         servers from a JSON file, each with its weight, max_in_flight, key\n"
    "                          (or key_env), model, ctx and timeout; \"url\": \"local\" is the local\n"
    "                          model's entry (see README, Scaling out)\n"
    "                          With --model too, the local model is one member among the servers.\n"
    "  --routing POLICY        affinity (default: a conversation stays where its prefix is cached,\n"
    "                          new ones go to the least loaded), least-loaded or round-robin\n"
    "\n"
    "network:\n"
    "  --host ADDR             address to listen on (default 127.0.0.1; 0.0.0.0 for all, which\n"
    "                          needs API keys or --insecure-no-auth)\n"
    "  --port N                port (default 8080; 0 picks a free one and prints it)\n"
    "  --api-key KEY           require this key (Authorization: Bearer KEY); repeatable\n"
    "  --api-key-file FILE     keys, one per line: KEY or USER KEY; KEY may be sha256:<hex>\n"
    "                          so the file need not hold the secret. With keys, every route but\n"
    "                          /health answers 401 without one (the web chat page then asks)\n"
    "  --allow-image-host H    let image_url fetch http:// images from host H (repeatable);\n"
    "                          otherwise only data: URIs are accepted\n"
    "  --no-web                do not serve the web chat\n"
    "  --metrics-key KEY       with API keys: the key GET /metrics needs (it shows every user's\n"
    "                          counters; without this flag /metrics answers 403)\n"
    "  --insecure-no-auth      allow a non-loopback --host without API keys\n"
    "  --data-dir DIR          where users (muse users add) and uploaded files are kept (default:\n"
    "                          $MUSE_DATA_DIR, else $XDG_DATA_HOME/muse, else ~/.local/share/muse;\n"
    "                          :memory: keeps nothing). Its users' keys sign in beside --api-key's\n"
    "  --db URL                keep users, conversations, files, quotas and responses in\n"
    "                          PostgreSQL instead (postgres://USER:PASSWORD@HOST/DB; default:\n"
    "                          $MUSE_DB): several nodes on one database share one state, and\n"
    "                          its quotas hold across them (README, Scaling out)\n"
    "\n"
    "browsers:\n"
    "  --allow-origin ORIGIN   let pages from ORIGIN (https://app.example.com, or *) call the API;\n"
    "                          by default only the server's own pages may (repeatable)\n"
    "  --allow-host NAME       accept requests whose Host header is NAME (repeatable, * for any);\n"
    "                          by default only loopback names and the --host address, so a web\n"
    "                          page cannot reach a local server by DNS rebinding\n"
    "\n"
    "limits:\n"
    "  -np, --parallel N       requests running at once, each with all its agents (default 4)\n"
    "  --queue N               requests waiting for a turn before 429 + Retry-After (default 32)\n"
    "  --max-body-mb N         request body size cap in MiB (default 48)\n"
    "  --max-tokens N          max_tokens cap per answer (default 4096; default max_tokens 1024)\n"
    "  --max-images N          images per request (default 8, at most 16)\n"
    "  --max-agents N          contemplating agents per request (default 8, at most 16)\n"
    "  --max-files N           uploaded files kept per user (default 64)\n"
    "  --max-files-mb N        bytes of uploaded files kept per user, in MiB (default 64)\n"
    "  --max-request-mb N      memory one request's images and tables may take decoded, in MiB\n"
    "                          (default 256; an image over it is refused from its header)\n"
    "  --user-slots N          requests one user may have running or waiting (default with API\n"
    "                          keys: parallel + queue/2; without: parallel + queue)\n"
    "  --header-timeout S      seconds a client has to send a request's headers (default 10)\n"
    "  --body-timeout S        seconds a client has to send a request's body (default 60)\n"
    "  --max-connections N     open connections in all (default 1000)\n"
    "  --max-connections-per-address N\n"
    "                          open connections from one client address (default 64)\n"
    "  --grace S               on SIGTERM, seconds to let running requests finish (default 30)\n"
    "\n"
    "output:\n"
    "  --quiet                 no per-request log lines\n"
    "  -v, --verbose           show llama.cpp's own log\n"
    "\n"
    "SIGTERM or Ctrl-C stops accepting connections, lets running requests finish within --grace\n"
    "(streams end with [DONE]), cancels what is left (streams get an error event) and exits 0\n"
    "within about a second more. A second signal exits at once.\n";

static std::atomic<int> g_signals{ 0 };

static std::atomic<bool> g_serving{ false };

// Installed before the model loads: until the server is up a signal leaves at once; then the
// first drains (see --grace) and a second leaves at once.
static sem_t g_signalled;  // posted by the first signal while serving: the main thread wakes

static void on_signal(int) {
    if (!g_serving.load() || g_signals.fetch_add(1) >= 1) {
        std::_Exit(EXIT_CANCELLED);
    }
    sem_post(&g_signalled);  // async-signal-safe
}

int cmd_serve(int argc, char ** argv) {
#ifdef __GLIBC__
    // Request bodies, decoded images and JSON trees of many MiB come and go on many worker
    // threads. With glibc's defaults each thread's arena keeps what it freed (the mmap threshold
    // grows to 32 MiB after the first big free), and a server that once took a few big requests
    // stayed at a gigabyte. Big blocks are mapped and unmapped; few arenas.
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
    mallopt(M_ARENA_MAX, 4);
#endif
    sem_init(&g_signalled, 0, 0);
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    std::signal(SIGPIPE, SIG_IGN);
    args          a(argc, argv, 2);
    server_params sp;
    std::string   model_path, mmproj, key, key_file, host_allowed, data_dir, db_flag;
    std::vector<std::string> keys_given, key_files;
    int32_t       ctx = 0, threads = 0, max_body_mb = 48, max_files = 64, grace = 30, cache_prompts = 32, draft = -1;
    int32_t       max_files_mb = 64, max_request_mb = 256;
    float         header_timeout = 10, body_timeout = 60;
    std::string   origin, host_name;
    int           verbose = 0;
    safety_flags  safety;
    remote_params remote;
    std::string   backend_url;
    std::vector<std::string> backend_urls;
    std::string              backends_file;
    routing_params           routing;
    std::vector<std::string> rpc_servers;

    while (!a.done() && a.error.empty()) {
        if (a.flag("--help") || a.flag("-h")) {
            fputs(k_serve_help, stdout);
            fputs("\n", stdout);
            fputs(safety_help(), stdout);
            return EXIT_OK;
        }
        if (a.value("--model", model_path) || a.value("-m", model_path)) continue;
        if (a.value("--mmproj", mmproj)) continue;
        if (std::string rpc; a.value("--rpc", rpc)) {
            if (a.error.empty()) {
                if (error e = parse_rpc_list(rpc, rpc_servers)) a.error = "--rpc: " + e.message;
            }
            continue;
        }
        if (a.value("--backend", backend_url)) { backend_urls.push_back(backend_url); continue; }
        if (a.value("--backends", backends_file)) continue;
        if (std::string pol; a.value("--routing", pol)) {
            if (a.error.empty() && !parse_routing_policy(pol, routing.policy)) {
                a.error = "--routing must be affinity, least-loaded or round-robin, got '" + pol + "'";
            }
            continue;
        }
        if (a.value("--backend-key", remote.api_key)) continue;
        if (a.value("--backend-model", remote.model)) continue;
        if (a.int_value("--backend-ctx", 256, 1 << 22, remote.n_ctx)) continue;
        if (a.int_value("--backend-timeout", 1, 3600, remote.read_timeout_s)) continue;
        if (a.value("--alias", sp.model_id)) continue;
        if (a.value("--host", sp.host)) continue;
        if (a.int_value("--port", 0, 65535, sp.port)) continue;
        if (a.value("--api-key", key)) { keys_given.push_back(key); continue; }
        if (a.value("--api-key-file", key_file)) { key_files.push_back(key_file); continue; }
        if (a.value("--data-dir", data_dir)) continue;
        if (a.value("--db", db_flag)) continue;
        if (a.value("--allow-image-host", host_allowed)) { sp.image_hosts.push_back(host_allowed); continue; }
        if (a.flag("--no-web")) { sp.web = false; continue; }
        if (a.value("--metrics-key", sp.metrics_key)) continue;
        if (a.flag("--insecure-no-auth")) { sp.insecure_no_auth = true; continue; }
        if (a.value("--allow-origin", origin)) { sp.allow_origins.push_back(origin); continue; }
        if (a.value("--allow-host", host_name)) { sp.allow_hosts.push_back(host_name); continue; }
        if (a.int_value("--max-files-mb", 1, 1 << 20, max_files_mb)) continue;
        if (a.int_value("--max-request-mb", 1, 65536, max_request_mb)) continue;
        if (a.int_value("--user-slots", 1, 8192, sp.user_slots)) continue;
        if (a.float_value("--header-timeout", 0.1, 3600, header_timeout)) continue;
        if (a.float_value("--body-timeout", 0.1, 86400, body_timeout)) continue;
        if (a.int_value("--max-connections", 1, 100000, sp.transport.max_connections)) continue;
        if (a.int_value("--max-connections-per-address", 1, 100000, sp.transport.max_per_address)) continue;
        if (a.int_value("--parallel", 1, 64, sp.parallel) || a.int_value("-np", 1, 64, sp.parallel)) continue;
        if (a.int_value("--queue", 0, 4096, sp.queue)) continue;
        if (a.int_value("--max-body-mb", 1, 1024, max_body_mb)) continue;
        if (a.int_value("--max-tokens", 1, 1 << 20, sp.limits.max_tokens)) continue;
        if (a.int_value("--max-images", 0, 16, sp.limits.max_images)) continue;
        if (a.int_value("--max-agents", 1, 16, sp.limits.max_agents)) continue;
        if (a.int_value("--max-files", 1, 100000, max_files)) continue;
        if (a.int_value("--grace", 0, 3600, grace)) continue;
        if (a.int_value("--cache-prompts", 0, 256, cache_prompts)) continue;
        if (a.int_value("--ctx", 256, 1 << 22, ctx) || a.int_value("-c", 256, 1 << 22, ctx)) continue;
        if (a.int_value("--threads", 0, 1024, threads) || a.int_value("-t", 0, 1024, threads)) continue;
        if (a.int_value("--draft", 0, 16, draft)) continue;
        if (a.flag("--quiet")) { sp.log_requests = false; continue; }
        if (parse_safety_flag(a, safety)) continue;
        if (a.flag("--verbose") || a.flag("-v")) { verbose = 2; continue; }
        a.error = "unknown option " + a.peek() + " (see muse serve --help)";
    }
    sp.max_body = (size_t) max_body_mb << 20;
    sp.files.max_files_per_user = (size_t) max_files;
    sp.files.max_bytes_per_user = (size_t) max_files_mb << 20;
    sp.request_memory = (size_t) max_request_mb << 20;
    sp.transport.header_timeout_s = header_timeout;
    sp.transport.body_timeout_s   = body_timeout;
    sp.limits.default_max_tokens = std::min(sp.limits.default_max_tokens, sp.limits.max_tokens);
    if (a.error.empty()) {
        if (std::string e = validate(sp, !keys_given.empty() || !key_files.empty()); !e.empty()) a.error = e;
    }
    sp.db = resolve_db(db_flag);
    if (a.error.empty()) a.error = check_db(sp.db);
    std::vector<backend_spec> remotes;
    for (const auto & u : backend_urls) {
        if (!a.error.empty()) break;
        backend_spec s;
        s.remote     = remote;
        s.remote.url = u;
        if (std::string e = validate(s.remote); !e.empty()) a.error = "--backend " + u + ": " + e;
        remotes.push_back(s);
    }
    if (a.error.empty() && !backends_file.empty()) {
        std::vector<backend_spec> listed;
        if (error e = read_backends_file(backends_file, remote, listed)) {
            a.error = "--backends " + e.message;
        } else {
            remotes.insert(remotes.end(), listed.begin(), listed.end());
        }
    }
    bool local_listed = false;
    for (const auto & r : remotes) local_listed = local_listed || r.local;
    // The local model serves too when it is named (or listed in the backends file), or when
    // no server is given.
    const bool local_model = remotes.empty() || local_listed || !model_path.empty() || !mmproj.empty() || !rpc_servers.empty();
    if (!a.error.empty()) {
        fprintf(stderr, "muse serve: %s\n", a.error.c_str());
        return EXIT_USAGE;
    }

    api_keys keys;
    for (const auto & k : keys_given) {
        if (error e = keys.add(k)) {
            fprintf(stderr, "muse serve: --api-key: %s\n", e.message.c_str());
            return EXIT_USAGE;
        }
    }
    for (const auto & f : key_files) {
        if (error e = keys.load_file(f)) {
            fprintf(stderr, "muse serve: --api-key-file %s\n", e.message.c_str());
            return EXIT_USAGE;
        }
    }

    set_log_verbosity(verbose);
    assistant_params door_params = assistant_params_for(sp);
    if (std::string e = build_safety(safety, door_params.safety); !e.empty()) {
        fprintf(stderr, "muse serve: %s\n", e.c_str());
        return EXIT_USAGE;
    }
    int                      rc = EXIT_OK;
    std::unique_ptr<runtime> rt;
    if (!local_model) {
        error err;
        rt = runtime::remote(remotes, door_params, err, routing);
        if (!rt) {
            fprintf(stderr, "muse serve: --backend %s\n", err.message.c_str());
            return err.code == ERROR_INVALID_ARGUMENT ? EXIT_USAGE : EXIT_FAILURE_;
        }
        if (sp.model_id.empty()) sp.model_id = rt->describe().name.substr(0, rt->describe().name.find(" at "));
    } else {
        rt = load_model("muse serve", model_path, mmproj, threads, false,
                        "note: serving the generated smoke-test model (random weights: answers are meaningless).\n"
                        "      For real answers: muse serve --model /path/to/model.gguf\n", rc, nullptr, &rpc_servers);
        if (!rt) {
            return rc;
        }
        if (sp.model_id.empty()) {
            std::string name = model_path.substr(model_path.find_last_of('/') + 1);
            if (name.size() > 5 && name.compare(name.size() - 5, 5, ".gguf") == 0) name.resize(name.size() - 5);
            sp.model_id = name;
        }
        // One KV cache for every request and agent; sequences for each running request's agents.
        runtime_engine_options eo;
        eo.n_ctx        = ctx > 0 ? ctx : std::clamp(sp.parallel * 8192, 8192, 262144);
        eo.n_threads    = threads;
        eo.n_seq_max    = std::min(256, sp.parallel * (2 * sp.limits.max_agents + 12) + cache_prompts);
        eo.prompt_cache = cache_prompts;
        eo.draft_max    = draft;
        eo.peers        = remotes;
        eo.routing      = routing;
        if (error err = rt->start(eo, door_params)) {
            fprintf(stderr, "muse serve: %s%s\n", remotes.empty() ? "" : "--backend ", err.message.c_str());
            return exit_code_for(err.code);
        }
    }
    int  guard_rc = EXIT_OK;
    auto guard_rt = load_guard("muse serve", safety, door_params.safety.get(), threads, guard_rc);
    if (guard_rc != EXIT_OK) return guard_rc;
    if (door_params.safety && safety.guard_model == "self") door_params.safety->set_guard(&rt->get_backend());
    if (door_params.safety) door_params.safety->warm_guard();  // its fixed part cached before the first request
    sp.data_dir = resolve_data_dir(data_dir);
    server srv(rt->door(), std::move(keys), sp);
    if (error e = srv.start()) {
        fprintf(stderr, "muse serve: %s\n", e.message.c_str());
        return e.code == ERROR_STORAGE ? EXIT_FAILURE_ : EXIT_USAGE;
    }
    g_serving = true;

    const std::string host = sp.host == "0.0.0.0" ? "127.0.0.1" : sp.host;
    const std::string url  = "http://" + host + ":" + std::to_string(srv.port());
    printf("Muse is serving %s (%s, context %d, %d parallel)\n", sp.model_id.c_str(), rt->describe().description.c_str(),
           rt->n_ctx(), sp.parallel);
    if (sp.web) {
        printf("  web chat: %s/\n", url.c_str());
    }
    if (remotes.size() + (local_model ? 1 : 0) > 1) {
        std::string list = local_model && !local_listed ? "local (weight 1)" : "";
        for (const auto & r : remotes) {
            list += (list.empty() ? "" : ", ") + (r.local ? std::string("local") : r.remote.url) + " (weight " + std::to_string(r.weight) +
                    (r.max_in_flight > 0 ? ", at most " + std::to_string(r.max_in_flight) + " at once" : "") + ")";
        }
        printf("  routing over: %s\n", list.c_str());
    }
    if (!rt->describe().rpc_servers.empty()) {
        std::string list;
        for (const auto & s : rt->describe().rpc_servers) list += (list.empty() ? "" : ", ") + s;
        printf("  layers on RPC servers: %s (keep them on a trusted network)\n", list.c_str());
    }
    printf("  data: %s\n", describe_data(sp.data_dir, sp.db).c_str());
    printf("  API:      %s/v1  (OpenAI-compatible%s)\n", url.c_str(), keys_given.empty() && key_files.empty() ? "" : ", API key required");
    printf("listening on %s\n", url.c_str());
    fflush(stdout);

    while (sem_wait(&g_signalled) != 0) {
        // EINTR: a signal's handler ran; it posts when it is the one to stop on
    }
    fprintf(stderr, "muse serve: stopping: no new connections; running requests have %d s to finish\n", grace);
    if (!srv.shutdown(grace)) {
        fprintf(stderr, "muse serve: stopped (requests still running past --grace were cancelled)\n");
        fflush(stderr);
        std::_Exit(EXIT_OK);  // do not wait on work that cannot be cancelled
    }
    fprintf(stderr, "muse serve: stopped\n");
    return EXIT_OK;
}

}  // namespace muse::cli
