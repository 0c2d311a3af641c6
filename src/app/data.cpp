#include "data.h"

#include "core/random.h"
#include "store/sqlite-store.h"

#include <cstdlib>

namespace muse {

std::string resolve_data_dir(const std::string & flag) {
    if (!flag.empty()) return flag;
    const char * env = getenv("MUSE_DATA_DIR");
    if (env && *env) return env;
    return default_data_dir();
}

error open_data_store(const std::string & data_dir, std::unique_ptr<store> & out) {
    sqlite_store_params p;
    if (data_dir == ":memory:") {
        p.path = ":memory:";
    } else {
        p.path     = data_dir + "/muse.db";
        p.blob_dir = data_dir + "/blobs";
    }
    return open_sqlite_store(p, out);
}

std::string new_api_key() {
    return "sk-muse-" + random_hex(48);
}

}  // namespace muse
