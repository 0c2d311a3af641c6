// muse-data-bench: time to load a table file into SQLite and summarise it, as `muse ask
// --data FILE` does, repeated; bench/run-perception runs it on a generated 1-million-row CSV.
// Output: one JSON object per line on stdout.

#include "args.h"
#include "perception/table.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

int main(int argc, char ** argv) {
    std::string file;
    int32_t     reps = 3;
    muse::cli::args a(argc, argv, 1);
    while (!a.done() && a.error.empty()) {
        if (a.flag("-h") || a.flag("--help")) {
            printf("usage: %s FILE [-r N]\n\nLoads FILE (CSV, TSV, JSON, JSON Lines) into an in-memory SQLite table and\n"
                   "summarises it, N times (default 3, 1-100); prints the times and the median.\n", argv[0]);
            return 0;
        }
        if (a.int_value("-r", 1, 100, reps)) continue;
        if (file.empty() && a.peek().rfind("-", 0) != 0) {
            file = a.take();
            continue;
        }
        a.error = "unknown option '" + a.peek() + "' (see --help)";
    }
    if (a.error.empty() && file.empty()) {
        a.error = "no file given (see --help)";
    }
    if (!a.error.empty()) {
        fprintf(stderr, "muse-data-bench: %s\n", a.error.c_str());
        return 2;
    }
    std::vector<double> ms;
    muse::table_info    info;
    for (int r = 0; r < reps; ++r) {
        muse::table_store st;
        const auto        t0  = std::chrono::steady_clock::now();
        muse::error       err = st.load_file(file, info);
        const double      t   = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        if (err) {
            fprintf(stderr, "muse-data-bench: %s\n", err.message.c_str());
            return 1;
        }
        ms.push_back(t);
        nlohmann::ordered_json j = { { "test", "load_and_summarise" }, { "rep", r + 1 }, { "ms", t }, { "rows", info.rows },
                                     { "columns", info.columns.size() }, { "summary_bytes", info.summary.size() } };
        printf("%s\n", j.dump().c_str());
        fflush(stdout);
    }
    std::sort(ms.begin(), ms.end());
    printf("%s\n", nlohmann::ordered_json({ { "test", "median" }, { "ms", ms[ms.size() / 2] }, { "rows", info.rows } }).dump().c_str());
    return 0;
}
