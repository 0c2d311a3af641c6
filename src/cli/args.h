#pragma once
// A minimal argv walker shared by the `muse` command and the benchmark programs: flags may be
// "--name value" or "--name=value"; numbers are range-checked and a bad one names its flag.
//
//   muse::cli::args a(argc, argv, 1);
//   while (!a.done() && a.error.empty()) {
//       if (a.int_value("--threads", 1, 1024, threads)) continue;
//       ...
//   }

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
    std::string take() { return v[i++]; }

    // Set when a flag had a missing or bad value; the command prints it and exits 2.
    std::string error;

  private:
    std::vector<std::string> v;
    int                      i = 0;
};

}  // namespace muse::cli
