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
    std::vector<std::unique_ptr<backend>> members;  // remote servers a routing `be` spreads over
    std::unique_ptr<backend>       be;  // local over eng, remote, or routing over `members`
    std::unique_ptr<assistant>     door;
    model_description              desc;
};

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
    error err;
    auto  eng = engine::create(*p->m, ep, err);
    if (!eng) {
        return err;
    }
    p->eng  = std::move(eng);
    p->be   = std::make_unique<local_backend>(*p->eng);
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

std::unique_ptr<runtime> runtime::remote(const std::vector<remote_params> & servers, assistant_params door_params, error & err) {
    if (servers.empty()) {
        err = { ERROR_INVALID_ARGUMENT, "no remote server given" };
        return nullptr;
    }
    std::unique_ptr<runtime> rt(new runtime());
    for (const auto & rp : servers) {
        auto be = remote_backend::connect(rp, err);
        if (!be) {
            err.message = rp.url + ": " + err.message;
            return nullptr;
        }
        rt->p->members.push_back(std::move(be));
    }
    if (rt->p->members.size() == 1) {
        rt->p->be = std::move(rt->p->members.front());
        rt->p->members.clear();
    } else {
        // Several servers: each request goes to one, by affinity and load, failing over.
        std::vector<std::pair<backend *, routing_member>> list;
        for (size_t i = 0; i < rt->p->members.size(); ++i) {
            routing_member m;
            m.name = servers[i].url;
            list.emplace_back(rt->p->members[i].get(), m);
        }
        rt->p->be = std::make_unique<routing_backend>(std::move(list));
    }
    const backend_caps c           = rt->p->be->caps();
    rt->p->desc.path               = servers.front().url;
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
