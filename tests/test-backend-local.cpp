// The local backend (llama.cpp engine on a generated model) passes the backend contract.

#include "backend-contract.h"
#include "test-models.h"

#include "backend/local-backend.h"
#include "engine/engine.h"

#include <gtest/gtest.h>

namespace muse::test {

struct local_contract : contract_backend {
    std::unique_ptr<engine> eng;
    std::unique_ptr<local_backend> be;
    local_contract() {
        engine_params p;
        p.n_ctx     = 2048;
        p.n_seq_max = 8;
        p.n_threads = 2;
        error err;
        eng = engine::create(shared_model(GLIMMER), p, err);
        if (!eng) {
            throw std::runtime_error(err.message);
        }
        be = std::make_unique<local_backend>(*eng);
    }
    backend & get() override { return *be; }
};

std::unique_ptr<contract_backend> make_contract_backend() { return std::make_unique<local_contract>(); }

}  // namespace muse::test
