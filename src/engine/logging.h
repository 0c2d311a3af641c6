#pragma once
// Routes llama.cpp / ggml / mtmd logging. By default they are quiet (Muse reports errors
// itself); verbosity 1 shows warnings and errors, 2 shows everything.

#include <string>

namespace muse {

void log_init(int verbosity);

// The last error llama.cpp logged on this thread since the last call; empties it.
std::string log_take_last_error();

}  // namespace muse
