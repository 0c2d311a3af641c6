// muse users: add, list, remove (erase), export and quota of the users a server knows, in the
// data directory's store.

#include "app/data.h"
#include "args.h"
#include "cli.h"
#include "commands.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>
#include <string>

namespace muse::cli {

namespace {

const char * k_users_help =
    "usage: muse users <add|list|remove|export|quota> [NAME] [options]\n"
    "\n"
    "Users of `muse serve` and their data, in the data directory's store.\n"
    "\n"
    "  add NAME [--admin]   a new user; prints its API key once (only the key's SHA-256 is stored)\n"
    "  list                 the users: name, id, admin, created\n"
    "  remove NAME          erase the user and everything stored for them (conversations,\n"
    "                       files, quota; for real: see README, Privacy)\n"
    "  export NAME [-o F]   everything stored for the user as one JSON document (stdout or F)\n"
    "  quota NAME [--requests-per-minute N] [--tokens-per-day N]\n"
    "                       show or set the user's quota (0 = unlimited)\n"
    "\n"
    "options:\n"
    "  --data-dir DIR       where Muse keeps its state (default: $MUSE_DATA_DIR, else\n"
    "                       $XDG_DATA_HOME/muse, else ~/.local/share/muse)\n"
    "  --db URL             keep it in PostgreSQL instead, shared by several `muse serve`\n"
    "                       nodes: postgres://USER@HOST/DB (default: $MUSE_DB)\n"
    "  --json               list: one JSON object per line\n"
    "  -h, --help           this help\n"
    "\n"
    "A name is 1-64 letters, digits, '_', '.' or '-'. Give the key to the user as their\n"
    "`Authorization: Bearer` token for `muse serve --data-dir DIR`.\n";

std::string iso_date(int64_t ms) {
    const time_t t = (time_t) (ms / 1000);
    struct tm    tm;
    gmtime_r(&t, &tm);
    char buf[32];
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

int fail(const error & e) {
    fprintf(stderr, "muse users: %s\n", e.message.c_str());
    return exit_code_for(e.code);
}

}  // namespace

int cmd_users(int argc, char ** argv) {
    if (argc < 3 || !strcmp(argv[2], "--help") || !strcmp(argv[2], "-h")) {
        fputs(k_users_help, argc < 3 ? stderr : stdout);
        return argc < 3 ? EXIT_USAGE : EXIT_OK;
    }
    const std::string sub = argv[2];
    std::string       name, data_dir, db_flag, out_path;
    bool              admin = false, as_json = false;
    int64_t           rpm = -1, tpd = -1;
    args              a(argc, argv, 3);
    while (!a.done() && a.error.empty()) {
        if (a.flag("--help") || a.flag("-h")) {
            fputs(k_users_help, stdout);
            return EXIT_OK;
        }
        if (a.value("--data-dir", data_dir)) continue;
        if (a.value("--db", db_flag)) continue;
        if (a.value("-o", out_path) || a.value("--output", out_path)) continue;
        if (a.flag("--admin")) { admin = true; continue; }
        if (a.flag("--json")) { as_json = true; continue; }
        int32_t v = 0;
        if (a.int_value("--requests-per-minute", 0, 1000000, v)) { rpm = v; continue; }
        if (a.int_value("--tokens-per-day", 0, 2000000000, v)) { tpd = v; continue; }
        const std::string x = a.peek();
        if (!x.empty() && x[0] == '-') {
            fprintf(stderr, "muse users: unknown option '%s' (see muse users --help)\n", x.c_str());
            return EXIT_USAGE;
        }
        if (!name.empty()) {
            fprintf(stderr, "muse users: one NAME, got '%s' and '%s'\n", name.c_str(), x.c_str());
            return EXIT_USAGE;
        }
        name = a.take();
    }
    if (!a.error.empty()) {
        fprintf(stderr, "muse users: %s\n", a.error.c_str());
        return EXIT_USAGE;
    }
    const bool needs_name = sub != "list";
    if (sub != "add" && sub != "list" && sub != "remove" && sub != "export" && sub != "quota") {
        fprintf(stderr, "muse users: unknown subcommand '%s' (add, list, remove, export or quota)\n", sub.c_str());
        return EXIT_USAGE;
    }
    if (needs_name && name.empty()) {
        fprintf(stderr, "muse users %s: which user? (muse users %s NAME)\n", sub.c_str(), sub.c_str());
        return EXIT_USAGE;
    }

    const std::string db = resolve_db(db_flag);
    if (std::string bad = check_db(db); !bad.empty()) {
        fprintf(stderr, "muse users: %s\n", bad.c_str());
        return EXIT_USAGE;
    }
    const std::string      dir = db.empty() ? resolve_data_dir(data_dir) : describe_data("", db);
    std::unique_ptr<store> st;
    if (error e = open_data_store(resolve_data_dir(data_dir), db, st)) return fail(e);

    if (sub == "add") {
        const std::string key = new_api_key();
        user_record       u;
        if (error e = st->add_user(name, admin, key_digest(key), u)) return fail(e);
        fprintf(stderr, "muse users: added %s%s (%s) in %s; its API key, shown only now:\n", u.name.c_str(),
                admin ? " (admin)" : "", u.id.c_str(), dir.c_str());
        printf("%s\n", key.c_str());
        return EXIT_OK;
    }
    if (sub == "list") {
        std::vector<user_record> users;
        if (error e = st->list_users(users)) return fail(e);
        if (!as_json) printf("%-24s %-29s %-5s %s\n", "NAME", "ID", "ADMIN", "CREATED");
        for (const auto & u : users) {
            if (as_json) {
                printf("{\"name\":\"%s\",\"id\":\"%s\",\"admin\":%s,\"created_at\":%lld}\n", u.name.c_str(), u.id.c_str(),
                       u.admin ? "true" : "false", (long long) (u.created_at / 1000));
            } else {
                printf("%-24s %-29s %-5s %s\n", u.name.c_str(), u.id.c_str(), u.admin ? "yes" : "no", iso_date(u.created_at).c_str());
            }
        }
        return EXIT_OK;
    }
    user_record u;
    if (error e = st->find_user_by_name(name, u)) return fail(e);
    if (sub == "remove") {
        if (error e = st->erase_user(u.id, "cli")) return fail(e);
        fprintf(stderr, "muse users: erased %s (%s) and everything stored for them\n", u.name.c_str(), u.id.c_str());
        return EXIT_OK;
    }
    if (sub == "export") {
        std::string doc;
        if (error e = st->export_user(u.id, doc)) return fail(e);
        if (out_path.empty()) {
            printf("%s\n", doc.c_str());
            return EXIT_OK;
        }
        FILE * f = fopen(out_path.c_str(), "wb");
        if (!f || fwrite(doc.data(), 1, doc.size(), f) != doc.size() || fclose(f) != 0) {
            fprintf(stderr, "muse users: cannot write %s: %s\n", out_path.c_str(), strerror(errno));
            return EXIT_FAILURE_;
        }
        fprintf(stderr, "muse users: exported %s to %s (%zu bytes)\n", u.name.c_str(), out_path.c_str(), doc.size());
        return EXIT_OK;
    }
    // quota
    quota_record q;
    if (error e = st->get_quota(u.id, q)) return fail(e);
    if (rpm >= 0 || tpd >= 0) {
        if (rpm >= 0) q.requests_per_minute = rpm;
        if (tpd >= 0) q.tokens_per_day = tpd;
        if (error e = st->set_quota(u.id, q, "cli")) return fail(e);
    }
    printf("%s: %lld requests per minute, %lld tokens per day (0 = unlimited)\n", u.name.c_str(),
           (long long) q.requests_per_minute, (long long) q.tokens_per_day);
    return EXIT_OK;
}

}  // namespace muse::cli
