#pragma once
// Moved to core/error.h; kept for src/server/http.h until that file includes core/error.h.
#include "core/error.h"
