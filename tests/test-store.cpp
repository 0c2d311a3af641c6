// The store's contract (store/store.h), run on every implementation: SQLite in memory,
// SQLite in a file (WAL, blobs on disk), and PostgreSQL on a throwaway server the test starts
// itself (pg-temp.h; skipped with the reason when PostgreSQL is not installed).

#include "pg-temp.h"
#include "store/postgres-store.h"
#include "store/sqlite-store.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include <sys/mount.h>
#include <cerrno>
#include <cstring>

using namespace muse;
namespace fs = std::filesystem;

namespace {

struct temp_dir {
    fs::path path;
    temp_dir() {
        char tmpl[] = "/tmp/muse-store-XXXXXX";
        path        = mkdtemp(tmpl);
    }
    ~temp_dir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

class store_test : public ::testing::TestWithParam<std::string> {
  protected:
    temp_dir               dir;
    std::unique_ptr<store> st;
    std::string            pg_db;  // postgres: this test's own database

    std::string db_path() const { return GetParam() == "memory" ? ":memory:" : (dir.path / "muse.db").string(); }
    bool        postgres() const { return GetParam() == "postgres"; }

    void SetUp() override {
        if (postgres()) {
            pg_temp & pg = pg_temp::shared();
            if (!pg.ok()) GTEST_SKIP() << pg.why();
            pg_db = pg.create_database();
            ASSERT_FALSE(pg_db.empty());
        }
        error e = reopen();
        ASSERT_FALSE(e) << e.message;
    }

    void TearDown() override {
        st.reset();
        if (!pg_db.empty()) pg_temp::shared().drop_database(pg_db);
    }

    error reopen(int version = -1) {
        st.reset();
        if (postgres()) {
            postgres_store_params p;
            p.conninfo = pg_temp::shared().conninfo(pg_db);
            return open_postgres_store(p, st);
        }
        sqlite_store_params p;
        p.path           = db_path();
        p.schema_version = version;
        return open_sqlite_store(p, st);
    }

    bool on_disk() const { return GetParam() == "file"; }

    // postgres: the first value of a query on this test's database.
    std::string pg_value(const std::string & sql) {
        std::string v;
        EXPECT_TRUE(pg_temp::shared().sql(sql, pg_db, &v)) << sql;
        return v;
    }

    user_record user(const std::string & name, const std::string & key = "") {
        user_record u;
        EXPECT_FALSE(st->add_user(name, false, key.empty() ? "" : key_digest(key), u));
        return u;
    }

    conversation_record conv(const user_record & u, const std::string & title) {
        conversation_record c;
        EXPECT_FALSE(st->create_conversation(u.id, title, "{}", c));
        return c;
    }

    static item_record message(const std::string & role, const std::string & text) {
        item_record it;
        it.type         = "message";
        it.role         = role;
        it.text         = text;
        it.content_json = nlohmann::json::array({ { { "type", role == "user" ? "input_text" : "output_text" }, { "text", text } } }).dump();
        return it;
    }
};

}  // namespace

TEST_P(store_test, users_keys_and_names) {
    user_record a;
    ASSERT_FALSE(st->add_user("alice", true, key_digest("sk-alice"), a));
    EXPECT_EQ(a.id.rfind("user_", 0), 0u);
    EXPECT_TRUE(a.admin);
    user_record dup;
    error       e = st->add_user("alice", false, "", dup);
    EXPECT_EQ(e.code, ERROR_INVALID_ARGUMENT);
    EXPECT_NE(e.message.find("already exists"), std::string::npos);
    for (const char * bad : { "", "al ice", "a/b", "x'; DROP TABLE users; --" }) {
        EXPECT_EQ(st->add_user(bad, false, "", dup).code, ERROR_INVALID_ARGUMENT) << bad;
    }
    EXPECT_EQ(st->add_user(std::string(65, 'a'), false, "", dup).code, ERROR_INVALID_ARGUMENT);

    user_record found;
    ASSERT_FALSE(st->find_user_by_key(key_digest("sk-alice"), found));
    EXPECT_EQ(found.id, a.id);
    EXPECT_EQ(st->find_user_by_key(key_digest("sk-other"), found).code, ERROR_NOT_FOUND);
    user_record b = user("bob");
    ASSERT_FALSE(st->add_key(b.id, key_digest("sk-bob")));
    EXPECT_EQ(st->add_key(b.id, key_digest("sk-alice")).code, ERROR_INVALID_ARGUMENT) << "one key, one user";
    EXPECT_EQ(st->add_key(b.id, "plaintext-key").code, ERROR_INVALID_ARGUMENT) << "only digests are stored";
    ASSERT_FALSE(st->find_user_by_name("bob", found));
    EXPECT_EQ(found.id, b.id);
    int64_t n_keys = 0;
    ASSERT_FALSE(st->count_keys(n_keys));
    EXPECT_EQ(n_keys, 2);
    std::vector<user_record> all;
    ASSERT_FALSE(st->list_users(all));
    ASSERT_EQ(all.size(), 2u);
    EXPECT_EQ(all[0].name, "alice");
}

TEST_P(store_test, conversations_items_and_their_order) {
    user_record         u = user("ann");
    conversation_record c;
    ASSERT_FALSE(st->create_conversation(u.id, "Trip to Lisbon", R"({"topic":"travel"})", c));
    EXPECT_EQ(c.id.rfind("conv_", 0), 0u);

    std::vector<item_record> turn = { message("user", "Where should I eat?"), message("assistant", "Try the pasteis.") };
    turn[1].reasoning             = "they like sweets";
    turn[1].trace_json            = R"({"mode":"thinking"})";
    ASSERT_FALSE(st->append_items(u.id, c.id, turn));
    EXPECT_EQ(turn[0].seq, 1);
    EXPECT_EQ(turn[1].seq, 2);
    EXPECT_EQ(turn[0].id.rfind("msg_", 0), 0u);
    EXPECT_EQ(turn[1].conversation_id, c.id);

    std::vector<item_record> more = { message("user", "And after?") };
    ASSERT_FALSE(st->append_items(u.id, c.id, more));
    EXPECT_EQ(more[0].seq, 3);

    std::vector<item_record> items;
    ASSERT_FALSE(st->list_items(u.id, c.id, 0, 100, items));
    ASSERT_EQ(items.size(), 3u);
    EXPECT_EQ(items[1].reasoning, "they like sweets");
    EXPECT_EQ(items[1].trace_json, R"({"mode":"thinking"})");
    ASSERT_FALSE(st->list_items(u.id, c.id, 1, 1, items));
    ASSERT_EQ(items.size(), 1u);
    EXPECT_EQ(items[0].seq, 2);
    ASSERT_FALSE(st->list_items(u.id, c.id, 0, 2, items, true));
    ASSERT_EQ(items.size(), 2u);
    EXPECT_EQ(items[0].seq, 3) << "newest first";
    ASSERT_FALSE(st->list_items(u.id, c.id, 3, 10, items, true));
    ASSERT_EQ(items.size(), 2u);
    EXPECT_EQ(items[0].seq, 2);

    // One bad item: nothing of the batch is stored.
    std::vector<item_record> bad = { message("user", "fine"), message("user", "bad") };
    bad[1].type                  = "telegram";
    error e                      = st->append_items(u.id, c.id, bad);
    EXPECT_EQ(e.code, ERROR_INVALID_ARGUMENT);
    EXPECT_NE(e.message.find("items[1].type"), std::string::npos) << e.message;
    bad[1]              = message("user", "bad");
    bad[1].content_json = "{not json";
    EXPECT_EQ(st->append_items(u.id, c.id, bad).code, ERROR_INVALID_ARGUMENT);
    bad[1]      = message("user", "bad");
    bad[1].text = std::string("\xff\xfe", 2);
    EXPECT_EQ(st->append_items(u.id, c.id, bad).code, ERROR_INVALID_ARGUMENT);
    // A duplicate id inside one batch fails at the database: the first item is rolled back too.
    bad    = { message("user", "one"), message("user", "two") };
    bad[0].id = bad[1].id = "msg_same";
    EXPECT_EQ(st->append_items(u.id, c.id, bad).code, ERROR_INVALID_ARGUMENT);
    ASSERT_FALSE(st->list_items(u.id, c.id, 0, 100, items));
    EXPECT_EQ(items.size(), 3u) << "a failed append stores nothing";

    conversation_record got;
    ASSERT_FALSE(st->get_conversation(u.id, c.id, got));
    EXPECT_EQ(got.items, 3);
    EXPECT_EQ(got.metadata_json, R"({"topic":"travel"})");
    ASSERT_FALSE(st->update_conversation(u.id, c.id, "Lisbon food", R"({"topic":"food"})"));
    EXPECT_EQ(st->update_conversation(u.id, c.id, "x", "[1]").code, ERROR_INVALID_ARGUMENT) << "metadata is an object";
    EXPECT_EQ(st->update_conversation(u.id, c.id, std::string(600, 't'), "{}").code, ERROR_INVALID_ARGUMENT);
    ASSERT_FALSE(st->get_conversation(u.id, c.id, got));
    EXPECT_EQ(got.title, "Lisbon food");

    item_record one;
    ASSERT_FALSE(st->get_item(u.id, items[2].id, one));
    EXPECT_EQ(one.text, "And after?");
    ASSERT_FALSE(st->delete_item(u.id, items[2].id));
    EXPECT_EQ(st->get_item(u.id, items[2].id, one).code, ERROR_NOT_FOUND);

    EXPECT_EQ(st->list_items(u.id, c.id, 0, 0, items).code, ERROR_INVALID_ARGUMENT);
    EXPECT_EQ(st->list_items(u.id, c.id, 0, 100000, items).code, ERROR_INVALID_ARGUMENT);

    ASSERT_FALSE(st->delete_conversation(u.id, c.id));
    EXPECT_EQ(st->get_conversation(u.id, c.id, got).code, ERROR_NOT_FOUND);
    EXPECT_EQ(st->get_item(u.id, items[0].id, one).code, ERROR_NOT_FOUND) << "items go with their conversation";
}

TEST_P(store_test, conversations_list_newest_first_in_pages) {
    user_record u = user("pat");
    std::vector<std::string> ids;
    for (int i = 0; i < 5; ++i) ids.push_back(conv(u, "c" + std::to_string(i)).id);
    std::vector<conversation_record> page;
    ASSERT_FALSE(st->list_conversations(u.id, 3, 0, page));
    ASSERT_EQ(page.size(), 3u);
    EXPECT_EQ(page[0].id, ids[4]) << "created in the same second: the later one first";
    EXPECT_EQ(page[2].id, ids[2]);
    // A conversation that gets a new item moves to the front.
    std::vector<item_record> it = { message("user", "hello again") };
    ASSERT_FALSE(st->append_items(u.id, ids[0], it));
    ASSERT_FALSE(st->list_conversations(u.id, 10, 0, page));
    ASSERT_EQ(page.size(), 5u);
    EXPECT_EQ(page[0].id, ids[0]);
}

TEST_P(store_test, another_users_ids_do_not_exist) {
    user_record a = user("a");
    user_record b = user("b");
    conversation_record c = conv(a, "private plans");
    std::vector<item_record> items = { message("user", "my secret plan") };
    ASSERT_FALSE(st->append_items(a.id, c.id, items));
    file_record f;
    ASSERT_FALSE(st->put_file(a.id, "notes.txt", "text/plain", "user_data", "private notes", f));

    conversation_record          cg;
    std::vector<item_record>     il;
    item_record                  ig;
    file_record                  fg;
    std::string                  content;
    std::vector<item_record>     append = { message("user", "intrusion") };
    std::vector<search_hit>      hits;
    EXPECT_EQ(st->get_conversation(b.id, c.id, cg).code, ERROR_NOT_FOUND);
    EXPECT_EQ(st->list_items(b.id, c.id, 0, 10, il).code, ERROR_NOT_FOUND);
    EXPECT_EQ(st->append_items(b.id, c.id, append).code, ERROR_NOT_FOUND);
    EXPECT_EQ(st->update_conversation(b.id, c.id, "mine now", "{}").code, ERROR_NOT_FOUND);
    EXPECT_EQ(st->delete_conversation(b.id, c.id).code, ERROR_NOT_FOUND);
    EXPECT_EQ(st->get_item(b.id, items[0].id, ig).code, ERROR_NOT_FOUND);
    EXPECT_EQ(st->delete_item(b.id, items[0].id).code, ERROR_NOT_FOUND);
    EXPECT_EQ(st->get_file(b.id, f.id, fg, &content).code, ERROR_NOT_FOUND);
    EXPECT_EQ(st->delete_file(b.id, f.id).code, ERROR_NOT_FOUND);
    ASSERT_FALSE(st->search(b.id, "secret", 10, hits));
    EXPECT_TRUE(hits.empty());
    std::vector<conversation_record> cl;
    ASSERT_FALSE(st->list_conversations(b.id, 10, 0, cl));
    EXPECT_TRUE(cl.empty());
    // A's data is untouched.
    ASSERT_FALSE(st->list_items(a.id, c.id, 0, 10, il));
    ASSERT_EQ(il.size(), 1u);
    EXPECT_EQ(il[0].text, "my secret plan");
    ASSERT_FALSE(st->get_file(a.id, f.id, fg, &content));
    EXPECT_EQ(content, "private notes");
    // An unknown user owns nothing and cannot create anything.
    conversation_record x;
    EXPECT_EQ(st->create_conversation("user_nobody", "t", "{}", x).code, ERROR_NOT_FOUND);
}

TEST_P(store_test, search_finds_titles_and_texts_of_the_user_only) {
    user_record a = user("a");
    user_record b = user("b");
    conversation_record c1 = conv(a, "Garden planning");
    conversation_record c2 = conv(a, "Taxes");
    std::vector<item_record> i1 = { message("user", "When do I plant tomatoes?"), message("assistant", "After the last frost.") };
    std::vector<item_record> i2 = { message("user", "Deadline for the tomato tax form?") };
    ASSERT_FALSE(st->append_items(a.id, c1.id, i1));
    ASSERT_FALSE(st->append_items(a.id, c2.id, i2));
    conversation_record cb = conv(b, "tomatoes too");

    std::vector<search_hit> hits;
    ASSERT_FALSE(st->search(a.id, "tomat", 10, hits));
    ASSERT_EQ(hits.size(), 2u) << "a prefix matches tomatoes and tomato";
    ASSERT_FALSE(st->search(a.id, "garden", 10, hits));
    ASSERT_EQ(hits.size(), 1u);
    EXPECT_EQ(hits[0].conversation_id, c1.id);
    EXPECT_EQ(hits[0].title, "Garden planning");
    ASSERT_FALSE(st->search(a.id, "frost plant", 10, hits));
    EXPECT_TRUE(hits.empty()) << "every word must match one entry";
    ASSERT_FALSE(st->search(a.id, "last frost", 10, hits));
    ASSERT_EQ(hits.size(), 1u);
    EXPECT_NE(hits[0].snippet.find("[frost]"), std::string::npos) << hits[0].snippet;
    // FTS5 syntax in a query is just text.
    for (const char * q : { "\"", "tomat*) OR (", "NEAR(a b)", "body:x", "^", "" }) {
        EXPECT_FALSE(st->search(a.id, q, 10, hits)) << q;
    }
    EXPECT_EQ(st->search(a.id, std::string(300, 'x'), 10, hits).code, ERROR_INVALID_ARGUMENT);
    // Renamed and deleted entries leave the index; a rename does not move a conversation up the list.
    std::vector<conversation_record> before, after;
    ASSERT_FALSE(st->list_conversations(a.id, 10, 0, before));
    ASSERT_FALSE(st->update_conversation(a.id, c1.id, "Vegetables", "{}"));
    ASSERT_FALSE(st->list_conversations(a.id, 10, 0, after));
    ASSERT_EQ(before.size(), after.size());
    for (size_t i = 0; i < before.size(); ++i) {
        EXPECT_EQ(before[i].id, after[i].id);
        EXPECT_EQ(before[i].updated_at, after[i].updated_at);
    }
    ASSERT_FALSE(st->search(a.id, "garden", 10, hits));
    EXPECT_TRUE(hits.empty());
    ASSERT_FALSE(st->delete_conversation(a.id, c2.id));
    ASSERT_FALSE(st->search(a.id, "deadline", 10, hits));
    EXPECT_TRUE(hits.empty());
}

TEST_P(store_test, files_are_content_addressed_and_freed_with_their_last_reference) {
    user_record a = user("a");
    user_record b = user("b");
    file_record fa, fb;
    const std::string data(100000, 'z');
    ASSERT_FALSE(st->put_file(a.id, "z.bin", "application/octet-stream", "user_data", data, fa));
    ASSERT_FALSE(st->put_file(b.id, "same.bin", "", "", data, fb));
    EXPECT_EQ(fa.sha256, fb.sha256);
    EXPECT_NE(fa.id, fb.id);
    EXPECT_EQ(fa.bytes, 100000);
    const fs::path blob = dir.path / "blobs" / fa.sha256.substr(0, 2) / fa.sha256;
    if (on_disk()) EXPECT_TRUE(fs::exists(blob));
    if (postgres()) EXPECT_EQ(pg_value("SELECT COUNT(*) FROM blobs"), "1") << "one blob for both";
    ASSERT_FALSE(st->delete_file(a.id, fa.id));
    std::string content;
    file_record got;
    ASSERT_FALSE(st->get_file(b.id, fb.id, got, &content)) << "b's reference keeps the blob";
    EXPECT_EQ(content, data);
    ASSERT_FALSE(st->delete_file(b.id, fb.id));
    if (on_disk()) EXPECT_FALSE(fs::exists(blob)) << "the last reference gone, the blob is deleted";
    if (postgres()) EXPECT_EQ(pg_value("SELECT COUNT(*) FROM blobs"), "0") << "the last reference gone, the blob is deleted";
    EXPECT_EQ(st->put_file(a.id, "", "", "", "x", got).code, ERROR_INVALID_ARGUMENT);
    EXPECT_EQ(st->put_file(a.id, std::string(300, 'n'), "", "", "x", got).code, ERROR_INVALID_ARGUMENT);
    EXPECT_EQ(st->put_file("user_nobody", "n", "", "", "x", got).code, ERROR_NOT_FOUND);

    ASSERT_FALSE(st->put_file(a.id, "keep.txt", "text/plain", "vision", "kept across restarts", fa));
    if (on_disk() || postgres()) {
        ASSERT_FALSE(reopen());
        ASSERT_FALSE(st->get_file(a.id, fa.id, got, &content));
        EXPECT_EQ(content, "kept across restarts");
        EXPECT_EQ(got.name, "keep.txt");
        EXPECT_EQ(got.purpose, "vision");
    }
    std::vector<file_record> list;
    ASSERT_FALSE(st->list_files(a.id, list));
    ASSERT_EQ(list.size(), 1u);
    int64_t n = 0, bytes = 0;
    ASSERT_FALSE(st->file_totals(n, bytes));
    EXPECT_EQ(n, 1);
    EXPECT_EQ(bytes, 20);
}

TEST_P(store_test, quotas_audit_and_export) {
    user_record a = user("a", "sk-a");
    quota_record q;
    ASSERT_FALSE(st->get_quota(a.id, q));
    EXPECT_EQ(q.requests_per_minute, 0);
    ASSERT_FALSE(st->set_quota(a.id, { 30, 100000 }, "admin"));
    ASSERT_FALSE(st->get_quota(a.id, q));
    EXPECT_EQ(q.requests_per_minute, 30);
    EXPECT_EQ(q.tokens_per_day, 100000);
    EXPECT_EQ(st->set_quota(a.id, { -1, 0 }, "admin").code, ERROR_INVALID_ARGUMENT);
    EXPECT_EQ(st->set_quota("user_nobody", { 1, 1 }, "admin").code, ERROR_NOT_FOUND);
    int64_t tokens = -1, requests = -1;
    ASSERT_FALSE(st->get_usage(a.id, 20000, tokens, requests));
    EXPECT_EQ(tokens, 0);
    ASSERT_FALSE(st->add_usage(a.id, 20000, 120, 1));
    ASSERT_FALSE(st->add_usage(a.id, 20000, 30, 1));
    ASSERT_FALSE(st->add_usage(a.id, 20001, 5, 1));
    ASSERT_FALSE(st->get_usage(a.id, 20000, tokens, requests));
    EXPECT_EQ(tokens, 150);
    EXPECT_EQ(requests, 2);
    EXPECT_EQ(st->add_usage(a.id, 20000, -5, 0).code, ERROR_INVALID_ARGUMENT);
    EXPECT_EQ(st->add_usage("user_nobody", 20000, 5, 1).code, ERROR_NOT_FOUND);

    conversation_record c = conv(a, "Export me");
    std::vector<item_record> items = { message("user", "2 + 2?"), message("assistant", "4") };
    items[1].trace_json = R"({"mode":"instant"})";
    items[1].usage_json = R"({"input_tokens":5,"output_tokens":1})";
    ASSERT_FALSE(st->append_items(a.id, c.id, items));
    file_record f;
    ASSERT_FALSE(st->put_file(a.id, "a.csv", "text/csv", "user_data", "x,y\n1,2\n", f));

    std::string doc;
    ASSERT_FALSE(st->export_user(a.id, doc));
    auto j = nlohmann::json::parse(doc);
    EXPECT_EQ(j["user"]["name"], "a");
    ASSERT_EQ(j["conversations"].size(), 1u);
    EXPECT_EQ(j["conversations"][0]["title"], "Export me");
    ASSERT_EQ(j["conversations"][0]["items"].size(), 2u);
    EXPECT_EQ(j["conversations"][0]["items"][1]["muse"]["mode"], "instant");
    EXPECT_EQ(j["conversations"][0]["items"][1]["usage"]["output_tokens"], 1);
    EXPECT_EQ(j["conversations"][0]["items"][0]["content"][0]["text"], "2 + 2?");
    ASSERT_EQ(j["files"].size(), 1u);
    EXPECT_EQ(j["files"][0]["content_url"], "/v1/files/" + f.id + "/content");
    EXPECT_EQ(j["quota"]["requests_per_minute"], 30);
    ASSERT_EQ(j["usage"].size(), 2u);
    EXPECT_EQ(j["usage"][0]["tokens"], 150);
    std::vector<std::string> actions;
    for (const auto & a2 : j["audit"]) actions.push_back(a2["action"]);
    EXPECT_EQ(actions, (std::vector<std::string>{ "user_add", "quota_set" }));
    EXPECT_EQ(st->export_user("user_nobody", doc).code, ERROR_NOT_FOUND);
}

TEST_P(store_test, responses_are_the_users_own) {
    user_record a = user("a");
    user_record b = user("b");
    response_record r;
    r.id         = "resp_1";
    r.input_json = R"([{"type":"message","role":"user","content":"hi"}])";
    r.body_json  = R"({"id":"resp_1","object":"response"})";
    ASSERT_FALSE(st->put_response(a.id, r));
    EXPECT_GT(r.created_at, 0);
    response_record got;
    ASSERT_FALSE(st->get_response(a.id, "resp_1", got));
    EXPECT_EQ(got.input_json, r.input_json);
    EXPECT_EQ(st->get_response(b.id, "resp_1", got).code, ERROR_NOT_FOUND);
    EXPECT_EQ(st->delete_response(b.id, "resp_1").code, ERROR_NOT_FOUND);
    response_record bad = r;
    bad.id        = "resp_2";
    bad.body_json = "[1]";
    EXPECT_EQ(st->put_response(a.id, bad).code, ERROR_INVALID_ARGUMENT);
    ASSERT_FALSE(st->delete_response(a.id, "resp_1"));
    EXPECT_EQ(st->get_response(a.id, "resp_1", got).code, ERROR_NOT_FOUND);
}

TEST_P(store_test, erase_removes_every_trace_of_a_user) {
    const std::string canary = "CANARY-7f3a9c-erase-me";
    user_record a = user("a", "sk-a");
    user_record b = user("b");
    conversation_record c = conv(a, "title " + canary);
    std::vector<item_record> items = { message("user", "text " + canary), message("assistant", "ok") };
    items[1].reasoning  = "reasoning " + canary;
    items[1].trace_json = nlohmann::json{ { "note", canary } }.dump();
    ASSERT_FALSE(st->append_items(a.id, c.id, items));
    file_record f;
    ASSERT_FALSE(st->put_file(a.id, "c.txt", "text/plain", "", "file " + canary, f));
    conversation_record cb = conv(b, "bob keeps this");
    std::vector<item_record> ib = { message("user", "bob's words") };
    ASSERT_FALSE(st->append_items(b.id, cb.id, ib));

    ASSERT_FALSE(st->erase_user(a.id, "a"));
    user_record gone;
    EXPECT_EQ(st->get_user(a.id, gone).code, ERROR_NOT_FOUND);
    EXPECT_EQ(st->find_user_by_key(key_digest("sk-a"), gone).code, ERROR_NOT_FOUND);
    conversation_record cg;
    EXPECT_EQ(st->get_conversation(a.id, c.id, cg).code, ERROR_NOT_FOUND);
    std::vector<search_hit> hits;
    ASSERT_FALSE(st->search(a.id, "CANARY", 10, hits));
    EXPECT_TRUE(hits.empty());
    std::vector<audit_record> au;
    ASSERT_FALSE(st->list_audit(a.id, au));
    ASSERT_EQ(au.size(), 1u) << "one entry says the user was erased, naming only the id";
    EXPECT_EQ(au[0].action, "user_erase");
    // Bob is untouched.
    std::vector<item_record> il;
    ASSERT_FALSE(st->list_items(b.id, cb.id, 0, 10, il));
    ASSERT_EQ(il.size(), 1u);
    EXPECT_EQ(st->erase_user(a.id, "a").code, ERROR_NOT_FOUND);

    if (postgres()) {
        // No row of any table holds the canary (blobs' bytes read as text too).
        EXPECT_EQ(pg_value("SELECT (SELECT COUNT(*) FROM users t WHERE t::text LIKE '%CANARY%') + "
                           "(SELECT COUNT(*) FROM conversations t WHERE t::text LIKE '%CANARY%') + "
                           "(SELECT COUNT(*) FROM items t WHERE t::text LIKE '%CANARY%') + "
                           "(SELECT COUNT(*) FROM files t WHERE t::text LIKE '%CANARY%') + "
                           "(SELECT COUNT(*) FROM audit t WHERE t::text LIKE '%CANARY%') + "
                           "(SELECT COUNT(*) FROM blobs t WHERE encode(t.content, 'escape') LIKE '%CANARY%')"),
                  "0");
        EXPECT_EQ(pg_value("SELECT COUNT(*) FROM blobs"), "0");
    }
    if (!on_disk()) return;
    // The canary's bytes are nowhere: not in the database, its WAL, or the blobs.
    size_t scanned = 0;
    for (const auto & e : fs::recursive_directory_iterator(dir.path)) {
        if (!e.is_regular_file()) continue;
        std::ifstream in(e.path(), std::ios::binary);
        std::string   bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        scanned += bytes.size();
        EXPECT_EQ(bytes.find(canary), std::string::npos) << e.path();
        EXPECT_EQ(bytes.find("CANARY-7f3a9c"), std::string::npos) << e.path();
    }
    EXPECT_GT(scanned, 4096u) << "the database was there to scan";
}

TEST_P(store_test, concurrent_writers_and_readers) {
    user_record u = user("busy");
    conversation_record c = conv(u, "load");
    std::atomic<int> failures{ 0 };
    std::vector<std::thread> ts;
    for (int t = 0; t < 4; ++t) {
        ts.emplace_back([&, t] {
            for (int i = 0; i < 25; ++i) {
                std::vector<item_record> it = { message("user", "t" + std::to_string(t) + " i" + std::to_string(i)) };
                if (st->append_items(u.id, c.id, it)) failures++;
                std::vector<item_record> all;
                if (st->list_items(u.id, c.id, 0, 1000, all)) failures++;
            }
        });
    }
    for (auto & t : ts) t.join();
    EXPECT_EQ(failures.load(), 0);
    std::vector<item_record> all;
    ASSERT_FALSE(st->list_items(u.id, c.id, 0, 1000, all));
    ASSERT_EQ(all.size(), 100u);
    for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i].seq, (int64_t) i + 1) << "no gaps, no duplicates";
}

INSTANTIATE_TEST_SUITE_P(sqlite, store_test, ::testing::Values("memory", "file"));
INSTANTIATE_TEST_SUITE_P(postgres, store_test, ::testing::Values("postgres"));

// --- SQLite only: the file's settings, migration and versions -----------------------------

TEST(sqlite_store, settings_and_migration_from_earlier_versions) {
    temp_dir          dir;
    const std::string path = (dir.path / "muse.db").string();
    std::unique_ptr<store> st;
    sqlite_store_params    p;
    p.path           = path;
    // The first version's schema, with rows as that version wrote them; every migration since
    // then runs on open.
    p.schema_version = 1;
    ASSERT_FALSE(open_sqlite_store(p, st));
    EXPECT_EQ(st->schema_version(), 1);
    st.reset();
    {
        // Rows as the previous version wrote them (its schema, its columns).
        sqlite3 * db = nullptr;
        ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
        const char * rows = R"sql(
            INSERT INTO users (id, name, admin, created_at) VALUES ('user_old', 'old', 0, 1);
            INSERT INTO conversations (id, user_id, title, metadata, created_at, updated_at)
                VALUES ('conv_old', 'user_old', 'Before the upgrade', '{}', 1, 1);
            INSERT INTO items (id, conversation_id, user_id, seq, type, role, text, created_at)
                VALUES ('msg_old', 'conv_old', 'user_old', 1, 'message', 'user', 'written by the old version', 1);
        )sql";
        char * msg = nullptr;
        ASSERT_EQ(sqlite3_exec(db, rows, nullptr, nullptr, &msg), SQLITE_OK) << (msg ? msg : "");
        sqlite3_close(db);
    }
    user_record u;
    u.id = "user_old";
    conversation_record c;
    c.id = "conv_old";

    p.schema_version = -1;
    ASSERT_FALSE(open_sqlite_store(p, st));
    EXPECT_EQ(st->schema_version(), sqlite_store_latest_version());
    std::vector<item_record> got;
    ASSERT_FALSE(st->list_items(u.id, c.id, 0, 10, got));
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].text, "written by the old version");
    std::vector<search_hit> hits;
    ASSERT_FALSE(st->search(u.id, "upgrade", 10, hits));
    EXPECT_EQ(hits.size(), 1u) << "the migration indexes what was there before";
    ASSERT_FALSE(st->search(u.id, "old version", 10, hits));
    EXPECT_EQ(hits.size(), 1u);
    st.reset();

    // The file's settings, read back with sqlite3 itself.
    sqlite3 * db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    auto pragma = [&](const char * sql) {
        sqlite3_stmt * s = nullptr;
        sqlite3_prepare_v2(db, sql, -1, &s, nullptr);
        std::string v = sqlite3_step(s) == SQLITE_ROW ? (const char *) sqlite3_column_text(s, 0) : "";
        sqlite3_finalize(s);
        return v;
    };
    EXPECT_EQ(pragma("PRAGMA journal_mode"), "wal");
    EXPECT_EQ(pragma("PRAGMA user_version"), std::to_string(sqlite_store_latest_version()));
    EXPECT_EQ(pragma("PRAGMA integrity_check"), "ok");
    // A database from a newer Muse is refused, not damaged.
    ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version = 99", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
    error e = open_sqlite_store(p, st);
    EXPECT_EQ(e.code, ERROR_STORAGE);
    EXPECT_NE(e.message.find("newer"), std::string::npos) << e.message;
}

TEST(sqlite_store, a_file_that_is_not_a_database_is_a_storage_error) {
    temp_dir dir;
    const std::string path = (dir.path / "muse.db").string();
    std::ofstream(path) << std::string(8192, 'x');
    std::unique_ptr<store> st;
    sqlite_store_params    p;
    p.path  = path;
    error e = open_sqlite_store(p, st);
    EXPECT_EQ(e.code, ERROR_STORAGE) << e.message;
    EXPECT_FALSE(st);
    p.path = "";
    EXPECT_EQ(open_sqlite_store(p, st).code, ERROR_INVALID_ARGUMENT);
}

// A full disk and a read-only data directory: the call fails with ERROR_STORAGE naming the
// cause, and nothing stored before is lost. Needs a small filesystem of its own: a tmpfs,
// mounted when the test may (root, as in CI); skipped otherwise.
TEST(sqlite_store, a_full_disk_and_a_read_only_directory_are_storage_errors) {
    temp_dir dir;
    const std::string mnt = (dir.path / "fs").string();
    fs::create_directories(mnt);
    if (mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=768k") != 0) {
        GTEST_SKIP() << "cannot mount a small tmpfs here (" << strerror(errno) << "): run as root to test a full disk";
    }
    struct unmount_at_end {
        std::string m;
        ~unmount_at_end() { umount2(m.c_str(), MNT_DETACH); }
    } guard{ mnt };

    std::unique_ptr<store> st;
    sqlite_store_params    p;
    p.path = mnt + "/muse.db";
    ASSERT_FALSE(open_sqlite_store(p, st));
    user_record u;
    ASSERT_FALSE(st->add_user("full", false, "", u));
    conversation_record c;
    ASSERT_FALSE(st->create_conversation(u.id, "before the disk filled", "{}", c));

    // Fill the disk with items until a write fails.
    int   stored = 0;
    error e;
    for (int i = 0; i < 10000 && !e; ++i) {
        std::vector<item_record> it(1);
        it[0].type = "message";
        it[0].role = "user";
        it[0].text = "item " + std::to_string(i) + " " + std::string(8000, (char) ('a' + i % 26));
        e          = st->append_items(u.id, c.id, it);
        if (!e) stored++;
    }
    ASSERT_TRUE(e) << "the disk never filled";
    EXPECT_EQ(e.code, ERROR_STORAGE) << e.message;
    EXPECT_NE(e.message.find("full"), std::string::npos) << e.message;
    EXPECT_GT(stored, 5);
    // A file's blob does not fit either: refused, and no partial blob is left behind.
    file_record f;
    error       fe = st->put_file(u.id, "big.bin", "", "", std::string(512 * 1024, 'x'), f);
    EXPECT_EQ(fe.code, ERROR_STORAGE) << fe.message;
    std::vector<file_record> files;
    ASSERT_FALSE(st->list_files(u.id, files));
    EXPECT_TRUE(files.empty());

    // Everything stored before is there; after a restart too.
    std::vector<item_record> items;
    ASSERT_FALSE(st->list_items(u.id, c.id, 0, k_store_max_list, items));
    EXPECT_EQ((int) items.size(), stored);
    st.reset();
    ASSERT_FALSE(open_sqlite_store(p, st));
    ASSERT_FALSE(st->list_items(u.id, c.id, 0, k_store_max_list, items));
    EXPECT_EQ((int) items.size(), stored);
    conversation_record got;
    ASSERT_FALSE(st->get_conversation(u.id, c.id, got));
    EXPECT_EQ(got.title, "before the disk filled");
    st.reset();

    // Read-only: reads work, a write is a storage error naming the cause.
    ASSERT_EQ(mount(nullptr, mnt.c_str(), nullptr, MS_REMOUNT | MS_RDONLY, nullptr), 0) << strerror(errno);
    error oe = open_sqlite_store(p, st);
    if (!oe) {
        ASSERT_FALSE(st->list_items(u.id, c.id, 0, 10, items));
        EXPECT_EQ((int) items.size(), std::min(10, stored));
        conversation_record c2;
        error we = st->create_conversation(u.id, "x", "{}", c2);
        EXPECT_EQ(we.code, ERROR_STORAGE) << we.message;
        EXPECT_NE(we.message.find("cannot be written"), std::string::npos) << we.message;
    } else {
        // Opening a WAL database needs its -shm: on a read-only directory that is refused, with the cause.
        EXPECT_EQ(oe.code, ERROR_STORAGE) << oe.message;
    }
}

// --- PostgreSQL only: what a shared database over a network adds

namespace {

struct pg_database {
    std::string name;
    pg_database() { name = pg_temp::shared().ok() ? pg_temp::shared().create_database() : ""; }
    ~pg_database() { pg_temp::shared().drop_database(name); }
};

item_record pg_message(const std::string & text) {
    item_record it;
    it.type         = "message";
    it.role         = "user";
    it.text         = text;
    it.content_json = nlohmann::json::array({ { { "type", "input_text" }, { "text", text } } }).dump();
    return it;
}

}  // namespace

TEST(postgres_store, a_database_that_cannot_be_reached_is_a_clear_error_naming_it) {
    std::unique_ptr<store> st;
    postgres_store_params  p;
    p.conninfo = "postgresql://muse:s3cret-pw@/nowhere?host=/nonexistent-muse-dir";
    error e    = open_postgres_store(p, st);
    EXPECT_EQ(e.code, ERROR_STORAGE);
    EXPECT_NE(e.message.find("/nonexistent-muse-dir"), std::string::npos) << e.message;
    EXPECT_NE(e.message.find("nowhere"), std::string::npos) << e.message;
    EXPECT_EQ(e.message.find("s3cret-pw"), std::string::npos) << "never the password: " << e.message;
    EXPECT_FALSE(st);
    p.conninfo = "postgresql://[::1";
    EXPECT_EQ(open_postgres_store(p, st).code, ERROR_INVALID_ARGUMENT);
    p.conninfo = "host=x connections=9";
    EXPECT_EQ(open_postgres_store(p, st).code, ERROR_INVALID_ARGUMENT) << "an unknown keyword";
    p.conninfo    = "host=/x";
    p.connections = 0;
    EXPECT_EQ(open_postgres_store(p, st).code, ERROR_INVALID_ARGUMENT);
    EXPECT_EQ(postgres_describe("postgresql://ann:pw@db.example:6543/muse"), "PostgreSQL ann@db.example:6543/muse");
    EXPECT_TRUE(postgres_is_url("postgres://x"));
    EXPECT_FALSE(postgres_is_url("mysql://x"));
}

TEST(postgres_store, two_nodes_share_one_state) {
    if (!pg_temp::shared().ok()) GTEST_SKIP() << pg_temp::shared().why();
    pg_database db;
    ASSERT_FALSE(db.name.empty());
    postgres_store_params p;
    p.conninfo = pg_temp::shared().conninfo(db.name);
    // Two nodes start at once: the schema is created once (the advisory lock).
    std::unique_ptr<store> a, b;
    error                  ea, eb;
    std::thread            ta([&] { ea = open_postgres_store(p, a); });
    std::thread            tb([&] { eb = open_postgres_store(p, b); });
    ta.join();
    tb.join();
    ASSERT_FALSE(ea) << ea.message;
    ASSERT_FALSE(eb) << eb.message;
    EXPECT_EQ(a->schema_version(), postgres_store_latest_version());
    EXPECT_TRUE(a->shared());

    user_record u;
    ASSERT_FALSE(a->add_user("ann", false, key_digest("sk-ann"), u));
    user_record seen;
    ASSERT_FALSE(b->find_user_by_key(key_digest("sk-ann"), seen));
    EXPECT_EQ(seen.id, u.id);
    conversation_record c;
    ASSERT_FALSE(a->create_conversation(u.id, "shared", "{}", c));

    // Both nodes append to one conversation and create conversations at once: seq has no gap
    // or duplicate, updated_at never repeats within the user.
    std::atomic<int>         failures{ 0 };
    std::vector<std::thread> ts;
    for (int t = 0; t < 4; ++t) {
        ts.emplace_back([&, t] {
            store & s = t % 2 ? *a : *b;
            for (int i = 0; i < 15; ++i) {
                std::vector<item_record> it = { pg_message("t" + std::to_string(t) + " i" + std::to_string(i)) };
                if (s.append_items(u.id, c.id, it)) failures++;
                conversation_record x;
                if (s.create_conversation(u.id, "c", "{}", x)) failures++;
            }
        });
    }
    for (auto & t : ts) t.join();
    EXPECT_EQ(failures.load(), 0);
    std::vector<item_record> all;
    ASSERT_FALSE(b->list_items(u.id, c.id, 0, 1000, all));
    ASSERT_EQ(all.size(), 60u);
    for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i].seq, (int64_t) i + 1);
    std::vector<conversation_record> convs;
    ASSERT_FALSE(a->list_conversations(u.id, 1000, 0, convs));
    ASSERT_EQ(convs.size(), 61u);
    std::set<int64_t> times;
    for (const auto & x : convs) times.insert(x.updated_at);
    EXPECT_EQ(times.size(), convs.size()) << "updated_at never repeats within a user";

    // The per-minute request count is one for both nodes.
    int allowed = 0;
    for (int i = 0; i < 10; ++i) {
        bool ok = false;
        ASSERT_FALSE((i % 2 ? a : b)->take_request(u.id, 29000000, 5, ok));
        allowed += ok;
    }
    EXPECT_EQ(allowed, 5);
    bool ok = false;
    ASSERT_FALSE(a->take_request(u.id, 29000001, 5, ok));
    EXPECT_TRUE(ok) << "a new minute";
    EXPECT_EQ(a->take_request("user_nobody", 29000001, 5, ok).code, ERROR_NOT_FOUND);

    // A file put on one node is read on the other; deleted there, its blob goes.
    file_record f, got;
    ASSERT_FALSE(a->put_file(u.id, "n.txt", "text/plain", "user_data", "shared bytes", f));
    std::string content;
    ASSERT_FALSE(b->get_file(u.id, f.id, got, &content));
    EXPECT_EQ(content, "shared bytes");
    ASSERT_FALSE(b->delete_file(u.id, f.id));
    std::string n;
    ASSERT_TRUE(pg_temp::shared().sql("SELECT COUNT(*) FROM blobs", db.name, &n));
    EXPECT_EQ(n, "0");
}

// A store on a database of its own (dropped with `db`).
static void open_fresh(const pg_database & db, std::unique_ptr<store> & st) {
    ASSERT_FALSE(db.name.empty());
    postgres_store_params p;
    p.conninfo = pg_temp::shared().conninfo(db.name);
    ASSERT_FALSE(open_postgres_store(p, st));
}

TEST(postgres_store, survives_a_restart_of_the_database) {
    pg_temp & pg = pg_temp::shared();
    if (!pg.ok()) GTEST_SKIP() << pg.why();
    pg_database            db;
    std::unique_ptr<store> st;
    ASSERT_NO_FATAL_FAILURE(open_fresh(db, st));
    user_record u;
    ASSERT_FALSE(st->add_user("rita", false, "", u));
    conversation_record c;
    ASSERT_FALSE(st->create_conversation(u.id, "before", "{}", c));
    std::vector<item_record> first = { pg_message("said before the restart") };
    ASSERT_FALSE(st->append_items(u.id, c.id, first));

    ASSERT_TRUE(pg.stop_server());
    std::vector<item_record> lost = { pg_message("said while it was down") };
    error e = st->append_items(u.id, c.id, lost);
    EXPECT_EQ(e.code, ERROR_STORAGE) << "the server's 503: " << e.message;
    EXPECT_NE(e.message.find(pg.dir()), std::string::npos) << "names the database: " << e.message;
    conversation_record got;
    EXPECT_EQ(st->get_conversation(u.id, c.id, got).code, ERROR_STORAGE);

    ASSERT_TRUE(pg.start_server());
    // The next call connects again: no reopen of the store.
    std::vector<item_record> after = { pg_message("said after") };
    e = st->append_items(u.id, c.id, after);
    ASSERT_FALSE(e) << e.message;
    std::vector<item_record> all;
    ASSERT_FALSE(st->list_items(u.id, c.id, 0, 100, all));
    ASSERT_EQ(all.size(), 2u) << "nothing acknowledged is lost, nothing refused is stored";
    EXPECT_EQ(all[0].text, "said before the restart");
    EXPECT_EQ(all[1].text, "said after");
    EXPECT_EQ(all[1].seq, 2);
}

TEST(postgres_store, long_texts_and_nul_bytes) {
    pg_temp & pg = pg_temp::shared();
    if (!pg.ok()) GTEST_SKIP() << pg.why();
    pg_database            db;
    std::unique_ptr<store> st;
    ASSERT_NO_FATAL_FAILURE(open_fresh(db, st));
    user_record u;
    ASSERT_FALSE(st->add_user("lena", false, "", u));
    conversation_record c;
    ASSERT_FALSE(st->create_conversation(u.id, "long", "{}", c));
    // Near the item cap, all distinct words: stored whole, its start searchable.
    std::string text = "zebrafirst ";
    for (int i = 0; text.size() < 7u * 1024 * 1024; ++i) text += "w" + std::to_string(i) + " ";
    std::vector<item_record> big = { pg_message(text) };
    big[0].content_json = "[]";
    error e = st->append_items(u.id, c.id, big);
    ASSERT_FALSE(e) << e.message;
    item_record got;
    ASSERT_FALSE(st->get_item(u.id, big[0].id, got));
    EXPECT_EQ(got.text.size(), text.size());
    std::vector<search_hit> hits;
    ASSERT_FALSE(st->search(u.id, "zebrafi", 10, hits));
    EXPECT_EQ(hits.size(), 1u);
    // A NUL in the plain text is kept as U+FFFD; in a title it is refused, naming it.
    std::vector<item_record> nul = { pg_message(std::string("a\0b", 3)) };
    ASSERT_FALSE(st->append_items(u.id, c.id, nul));
    ASSERT_FALSE(st->get_item(u.id, nul[0].id, got));
    EXPECT_EQ(got.text, "a\xEF\xBF\xBD" "b");
    conversation_record x;
    e = st->create_conversation(u.id, std::string("t\0t", 3), "{}", x);
    EXPECT_EQ(e.code, ERROR_INVALID_ARGUMENT) << e.message;
    EXPECT_NE(e.message.find("NUL"), std::string::npos) << e.message;
}
