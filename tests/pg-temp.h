#pragma once
// A throwaway PostgreSQL for tests: initdb in a temporary directory, pg_ctl start on a Unix
// socket in it (no TCP), pg_ctl stop -m fast at the end. initdb refuses to run as root: then
// the cluster is the `postgres` system user's (runuser), its directory chowned to it.
// tests/server/lib.cjs (startPostgres) does the same for the server tests.
//
//     pg_temp & pg = pg_temp::shared();       // started on first use, stopped at exit
//     if (!pg.ok()) GTEST_SKIP() << pg.why();
//     std::string db = pg.create_database();  // a fresh, empty database
//     open_postgres_store({ .conninfo = pg.conninfo(db) }, st);
//
// Every wait is bounded and on an event (pg_ctl -w waits for the server to answer).

#include <libpq-fe.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <pwd.h>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

class pg_temp {
  public:
    static pg_temp & shared() {
        static pg_temp p;
        static bool    started = (p.start(), true);
        (void) started;
        return p;
    }

    ~pg_temp() { stop(); }

    bool                ok() const { return running; }
    const std::string & why() const { return reason; }
    const std::string & dir() const { return base; }

    std::string conninfo(const std::string & db) const { return "host=" + base + " port=5432 user=muse dbname=" + db; }
    std::string url(const std::string & db) const { return "postgresql://muse@/" + db + "?host=" + base; }

    // CREATE DATABASE with a new name; "" when that failed.
    std::string create_database() {
        const std::string name = "muse_t" + std::to_string(++n_dbs);
        return sql("CREATE DATABASE " + name) ? name : "";
    }
    void drop_database(const std::string & name) {
        if (!name.empty()) sql("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)");
    }

    // Runs one statement on the maintenance database (postgres); false on failure.
    bool sql(const std::string & statement, const std::string & db = "postgres", std::string * first_value = nullptr) {
        PGconn * c  = PQconnectdb(conninfo(db).c_str());
        bool     ok = PQstatus(c) == CONNECTION_OK;
        if (ok) {
            PQsetNoticeProcessor(c, [](void *, const char *) {}, nullptr);
            PGresult * r = PQexec(c, statement.c_str());
            ok           = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
            if (!ok) fprintf(stderr, "pg_temp: %s: %s", statement.c_str(), PQresultErrorMessage(r));
            if (ok && first_value && PQntuples(r) > 0) *first_value = PQgetvalue(r, 0, 0);
            PQclear(r);
        }
        PQfinish(c);
        return ok;
    }

    bool stop_server() { return run(ctl() + " -D " + base + "/data -m fast -w -t 60 stop"); }
    bool start_server() {
        return run(ctl() + " -D " + base + "/data -l " + base + "/log -w -t 60 -o \"-k " + base +
                   " -c listen_addresses='' -c fsync=off -c max_connections=200\" start");
    }

    void stop() {
        if (running) stop_server();
        running = false;
        if (!base.empty()) {
            std::error_code ec;
            std::filesystem::remove_all(base, ec);
            base.clear();
        }
    }

  private:
    std::string bin, base, reason, as;
    bool        running = false;
    int         n_dbs   = 0;

    std::string ctl() const { return as + bin + "/pg_ctl"; }
    static bool run(const std::string & cmd) { return system((cmd + " >/dev/null 2>&1").c_str()) == 0; }

    void start() {
        const char * env = getenv("MUSE_PG_BIN");
        if (env && *env) bin = env;
        if (bin.empty()) {
            // PATH first (Debian keeps initdb in /usr/lib/postgresql/N/bin; some setups link it).
            FILE * f = popen("command -v initdb 2>/dev/null", "r");
            char   buf[4096] = {};
            if (f && fgets(buf, sizeof buf, f)) {
                std::string p = buf;
                while (!p.empty() && p.back() == '\n') p.pop_back();
                bin = std::filesystem::path(std::filesystem::canonical(p)).parent_path().string();
            }
            if (f) pclose(f);
        }
        if (bin.empty()) {
            std::error_code ec;
            for (const auto & e : std::filesystem::directory_iterator("/usr/lib/postgresql", ec)) {
                if (std::filesystem::exists(e.path() / "bin/initdb")) bin = (e.path() / "bin").string();
            }
        }
        if (bin.empty()) {
            reason = "PostgreSQL is not installed (no initdb on PATH or in /usr/lib/postgresql; Debian: postgresql)";
            return;
        }
        char tmpl[] = "/tmp/muse-pg-XXXXXX";
        if (!mkdtemp(tmpl)) {
            reason = "cannot create a temporary directory";
            return;
        }
        base = tmpl;
        if (geteuid() == 0) {
            const passwd * pw = getpwnam("postgres");
            if (!pw || chown(base.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
                reason = "running as root and there is no `postgres` user to run PostgreSQL as";
                return;
            }
            as = "runuser -u postgres -- ";
        }
        if (!run(as + bin + "/initdb -D " + base + "/data --auth=trust -U muse -E UTF8 --locale=C")) {
            reason = "initdb failed in " + base;
            return;
        }
        if (!start_server()) {
            reason = "pg_ctl start failed (see " + base + "/log)";
            return;
        }
        running = true;
    }
};
