#pragma once
// A minimal argv walker shared by the `muse` command and the benchmark programs: flags may be
// "--name value" or "--name=value"; numbers are range-checked and a bad one names its flag.
// A flag that sets a request limit takes its name and range from core/limits.h.
//
//   muse::cli::args a(argc, argv, 1);
//   double agents = 0;
//   while (!a.done() && a.error.empty()) {
//       if (a.int_value("--threads", 1, 1024, threads)) continue;
//       if (a.limit_value(muse::k_limit_agents, agents)) continue;   // --agents, 1..16
//       ...
//   }
//
// Thread safety: one walker per thread.

#include "core/limits.h"

#include <cstdint>
#include <string>
#include <vector>

namespace muse::cli {

// A minimal argv walker: flags may be "--name value" or "--name=value".
class args {
  public:
    args(int argc, char ** argv, int first);

    bool        done() const { return i >= (int) v.size(); }
    std::string peek() const { return v[i]; }
    bool        flag(const char * name);                        // consumes "--name"
    bool        value(const char * name, std::string & out);    // consumes "--name X"
    bool        int_value(const char * name, int64_t lo, int64_t hi, int32_t & out);
    bool        float_value(const char * name, double lo, double hi, float & out);
    // "--flag X" for a request limit: X must be a value l accepts (its range or its special
    // value). `name` replaces l.flag (for a short alias such as -n).
    bool        limit_value(const limit & l, double & out, const char * name = nullptr);
    std::string take() { return v[i++]; }

    // Set when a flag had a missing or bad value; the command prints it and exits 2.
    std::string error;

  private:
    std::vector<std::string> v;
    int                      i = 0;
};

}  // namespace muse::cli
