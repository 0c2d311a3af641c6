#include "runtime.h"

#include "backend/local-backend.h"
#include "backend/remote/remote-backend.h"
#include "backend/routing/routing-backend.h"
#include "engine/engine.h"
#include "engine/logging.h"
#include "engine/model.h"
#include "engine/rpc.h"

#include <cassert>

namespace muse {

void set_log_verbosity(int verbosity) {
    log_init(verbosity);
}

// Declared in the order they are built: destroyed in reverse, each before what it uses.
struct runtime::impl {
    std::unique_ptr<model>         m;
    std::unique_ptr<engine>        eng;
    std::unique_ptr<backend>       local;  // over eng, when it is one member of a routing `be`
    std::vector<std::unique_ptr<backend>> members;  // remote servers a routing `be` spreads over
    std::unique_ptr<backend>       be;  // local over eng, remote, or routing over `members`
    std::unique_ptr<assistant>     door;
    model_description              desc;
};

// Connects every server of `specs` (a local entry means `local`, or a default member when
// `local` is given and no entry names it) and routes over them; one server alone is used as it
// is. Fills members and be.
static error build_members(const std::vector<backend_spec> & specs, backend * local, const routing_params & routing,
                           std::vector<std::unique_ptr<backend>> & members, std::unique_ptr<backend> & be) {
    std::vector<std::pair<backend *, routing_member>> list;
    bool                                              local_listed = false;
    for (const auto & s : specs) {
        routing_member m;
        m.weight        = s.weight;
        m.max_in_flight = s.max_in_flight;
        if (s.local) {
            if (!local) return { ERROR_INVALID_ARGUMENT, "a \"local\" backend needs a local model (--model)" };
            m.name       = "local";
            local_listed = true;
            list.emplace_back(local, m);
            continue;
        }
        error err;
        auto  rb = remote_backend::connect(s.remote, err);
        if (!rb) {
            err.message = s.remote.url + ": " + err.message;
            return err;
        }
        m.name = s.remote.url + (s.remote.model.empty() ? "" : " (" + s.remote.model + ")");
        list.emplace_back(rb.get(), m);
        members.push_back(std::move(rb));
    }
    if (local && !local_listed) list.insert(list.begin(), { local, routing_member{ "local", 0, 1 } });
    if (list.empty()) return { ERROR_INVALID_ARGUMENT, "no backend given" };
    if (list.size() == 1 && !local) {
        be = std::move(members.front());
        members.clear();
        return {};
    }
    // Several: each request goes to one, by affinity and load, failing over.
    be = std::make_unique<routing_backend>(std::move(list), routing);
    return {};
}

runtime::runtime() : p(std::make_unique<impl>()) {}

runtime::~runtime() = default;

std::unique_ptr<runtime> runtime::load(const runtime_model_options & opt, error & err) {
    model_params mp;
    mp.path         = opt.path;
    mp.mmproj_path  = opt.mmproj;
    mp.n_threads    = opt.n_threads;
    mp.n_gpu_layers = opt.gpu_layers;
    mp.rpc_servers  = opt.rpc_servers;
    mp.progress     = opt.progress;
    auto m = model::load(mp, err);
    if (!m) {
        return nullptr;
    }
    std::unique_ptr<runtime> rt(new runtime());
    rt->p->desc = m->info();
    rt->p->m    = std::move(m);
    return rt;
}

error parse_rpc_list(const std::string & list, std::vector<std::string> & out) {
    return parse_rpc_servers(list, out);
}

const model_description & runtime::describe() const {
    return p->desc;
}

error runtime::start(const runtime_engine_options & opt, assistant_params door_params) {
    if (!p->m) {
        return { ERROR_INVALID_ARGUMENT, "the runtime has no model to start (a remote one runs on its server)" };
    }
    if (p->eng) {
        return { ERROR_INVALID_ARGUMENT, "the runtime is already started" };
    }
    engine_params ep;
    if (opt.n_ctx > 0) ep.n_ctx = opt.n_ctx;
    if (opt.n_batch > 0) ep.n_batch = opt.n_batch;
    if (opt.n_seq_max > 0) ep.n_seq_max = opt.n_seq_max;
    ep.n_threads    = opt.n_threads;
    ep.prompt_cache = opt.prompt_cache;
    if (opt.draft_max >= 0) ep.draft_max = opt.draft_max;
    error err;
    auto  eng = engine::create(*p->m, ep, err);
    if (!eng) {
        return err;
    }
    p->eng = std::move(eng);
    if (opt.peers.empty()) {
        p->be = std::make_unique<local_backend>(*p->eng);
    } else {
        // The local engine is one member among the servers.
        p->local = std::make_unique<local_backend>(*p->eng);
        if ((err = build_members(opt.peers, p->local.get(), opt.routing, p->members, p->be))) {
            p->members.clear();
            p->local.reset();
            p->eng.reset();
            return err;
        }
    }
    p->door = std::make_unique<assistant>(*p->be, door_params);
    return {};
}

assistant & runtime::door() const {
    assert(p->door && "runtime::door() before start()");
    return *p->door;
}

backend & runtime::get_backend() const {
    assert(p->be && "runtime::get_backend() before start()");
    return *p->be;
}

int32_t runtime::n_ctx() const {
    return p->eng ? p->eng->n_ctx() : p->be ? p->be->caps().n_ctx : 0;
}

std::unique_ptr<runtime> runtime::remote(const std::vector<backend_spec> & servers, assistant_params door_params, error & err,
                                         const routing_params & routing) {
    if (servers.empty()) {
        err = { ERROR_INVALID_ARGUMENT, "no remote server given" };
        return nullptr;
    }
    std::unique_ptr<runtime> rt(new runtime());
    if ((err = build_members(servers, nullptr, routing, rt->p->members, rt->p->be))) return nullptr;
    const backend_caps c           = rt->p->be->caps();
    rt->p->desc.path               = servers.front().remote.url;
    // The served model's name: the (first) server's model.
    rt->p->desc.name               = rt->p->members.empty() ? c.model : rt->p->members.front()->caps().model;
    rt->p->desc.description        = c.model;
    rt->p->desc.architecture       = "remote";
    rt->p->desc.template_family    = "remote";
    rt->p->desc.supports_reasoning = c.reasoning;
    rt->p->desc.supports_tools     = c.tools;
    rt->p->door = std::make_unique<assistant>(*rt->p->be, door_params);
    return rt;
}

}  // namespace muse
