#pragma once
// The contract every Backend implementation passes (tests/test-backend-contract.cpp).
// Each test binary provides make_contract_backend() for its implementation.

#include "backend/backend.h"

#include <memory>

namespace muse::test {

struct contract_backend {
    virtual ~contract_backend() = default;
    virtual backend & get() = 0;
};

std::unique_ptr<contract_backend> make_contract_backend();

}  // namespace muse::test
