#include "data.h"

#include "core/random.h"
#include "store/postgres-store.h"
#include "store/sqlite-store.h"

#include <cstdlib>

namespace muse {

std::string resolve_data_dir(const std::string & flag) {
    if (!flag.empty()) return flag;
    const char * env = getenv("MUSE_DATA_DIR");
    if (env && *env) return env;
    return default_data_dir();
}

std::string resolve_db(const std::string & flag) {
    if (!flag.empty()) return flag;
    const char * env = getenv("MUSE_DB");
    return env && *env ? env : "";
}

std::string check_db(const std::string & db) {
    if (db.empty() || postgres_is_url(db)) return "";
    const size_t scheme = db.find("://");
    return "--db takes a PostgreSQL URL (postgres://USER@HOST/DB or postgresql://...), got " +
           (scheme == std::string::npos ? std::string("'") + db.substr(0, 40) + "'" : "the scheme " + db.substr(0, scheme) + "://");
}

std::string describe_data(const std::string & data_dir, const std::string & db) {
    if (!db.empty()) return postgres_describe(db) + " (shared; file contents in the database)";
    if (data_dir == ":memory:") return "in memory (gone when the process stops)";
    return data_dir;
}

error open_data_store(const std::string & data_dir, const std::string & db, std::unique_ptr<store> & out) {
    if (db.empty()) return open_data_store(data_dir, out);
    if (std::string bad = check_db(db); !bad.empty()) return { ERROR_INVALID_ARGUMENT, bad };
    postgres_store_params p;
    p.conninfo = db;
    return open_postgres_store(p, out);
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
