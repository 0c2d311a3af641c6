#include "runtime.h"

#include "backend/local-backend.h"
#include "backend/remote/remote-backend.h"
#include "engine/engine.h"
#include "engine/logging.h"
#include "engine/model.h"

#include <cassert>

namespace muse {

void set_log_verbosity(int verbosity) {
    log_init(verbosity);
}

// Declared in the order they are built: destroyed in reverse, each before what it uses.
struct runtime::impl {
    std::unique_ptr<model>         m;
    std::unique_ptr<engine>        eng;
    std::unique_ptr<backend>       be;  // local over eng, or remote (no model, no engine)
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

std::unique_ptr<runtime> runtime::remote(const remote_params & rp, assistant_params door_params, error & err) {
    auto be = remote_backend::connect(rp, err);
    if (!be) {
        return nullptr;
    }
    std::unique_ptr<runtime> rt(new runtime());
    const backend_caps       c = be->caps();
    rt->p->desc.path           = rp.url;
    rt->p->desc.name           = c.model;
    rt->p->desc.description    = c.model;
    rt->p->desc.architecture   = "remote";
    rt->p->desc.template_family = "remote";
    rt->p->desc.supports_reasoning = c.reasoning;
    rt->p->desc.supports_tools     = c.tools;
    rt->p->be   = std::move(be);
    rt->p->door = std::make_unique<assistant>(*rt->p->be, door_params);
    return rt;
}

}  // namespace muse
