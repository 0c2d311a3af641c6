// Table intake: the first byte picks the format (CSV, TSV, JSON, JSON Lines or sniffed), the
// rest is the file. Loading, type inference and the summary run; then one query over the
// table, so the SQL limits are exercised on whatever was loaded.
#include "perception/table.h"

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    if (size == 0) {
        return 0;
    }
    static const char * k_formats[] = { "csv", "tsv", "json", "jsonl", "" };
    muse::table_limits lim;
    lim.max_rows = 20000;
    muse::table_store store(lim);
    muse::table_info  info;
    const std::string bytes((const char *) data + 1, size - 1);
    if (!store.load_bytes("fuzz.dat", bytes, k_formats[data[0] % 5], info)) {
        (void) store.query("SELECT * FROM \"" + info.name + "\" LIMIT 3");
    }
    return 0;
}
