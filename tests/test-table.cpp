// Structured data: CSV / TSV / JSON / JSON Lines into SQLite, the prompt summary, and the
// read-only query_table tool with its refusals.

#include "agents/tools.h"
#include "perception/attachments.h"
#include "perception/table.h"
#include "reasoning/router.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>

using namespace muse;

namespace {

bool has(const std::string & s, const std::string & sub) { return s.find(sub) != std::string::npos; }

table_info load_ok(table_store & st, const std::string & name, const std::string & bytes, const std::string & hint = "") {
    table_info info;
    error      err = st.load_bytes(name, bytes, hint, info);
    EXPECT_FALSE(err) << err.message;
    return info;
}

std::string q(const table_store & st, const std::string & sql) {
    tool_output o = st.query(sql);
    EXPECT_TRUE(o.ok) << sql << " -> " << o.text;
    return o.text;
}

TEST(table_csv, header_types_and_quoted_fields_with_newlines_and_delimiters) {
    table_store st;
    const std::string csv =
        "region,amount,note\r\n"
        "North,12.5,\"plain\"\r\n"
        "South,7,\"has, a comma\"\r\n"
        "\"East\",3,\"two\nlines and \"\"quotes\"\"\"\r\n";
    table_info t = load_ok(st, "data/sales.csv", csv, "csv");
    EXPECT_EQ(t.name, "sales");
    EXPECT_EQ(t.source, "sales.csv");
    EXPECT_TRUE(t.header);
    EXPECT_EQ(t.rows, 3);
    ASSERT_EQ(t.columns.size(), 3u);
    EXPECT_EQ(t.columns[0].name, "region");
    EXPECT_EQ(t.columns[0].type, COLUMN_TEXT);
    EXPECT_EQ(t.columns[1].type, COLUMN_REAL);
    EXPECT_EQ(t.columns[2].type, COLUMN_TEXT);
    EXPECT_EQ(q(st, "SELECT note FROM sales WHERE region = 'East'"), "note\ntwo lines and \"quotes\"\n(1 row)\n")
        << "the quoted newline is kept in the value (shown as a space: one row per line)";
    EXPECT_TRUE(has(q(st, "SELECT note FROM sales WHERE region = 'South'"), "has, a comma"));
    EXPECT_TRUE(has(q(st, "SELECT SUM(amount) AS total FROM sales"), "22.5"));
    // The value really holds the newline.
    EXPECT_TRUE(has(q(st, "SELECT instr(note, char(10)) > 0 AS nl FROM sales WHERE region = 'East'"), "\n1\n"));
}

TEST(table_csv, summary_has_schema_rows_stats_and_samples_within_its_cap) {
    table_store st;
    std::string csv = "city,temp\n";
    for (int i = 0; i < 100; ++i) {
        csv += std::string(i % 3 == 0 ? "Oslo" : "Rome") + "," + std::to_string(i) + "\n";
    }
    table_info t = load_ok(st, "weather.csv", csv);
    EXPECT_TRUE(has(t.summary, "<table name=\"weather\""));
    EXPECT_TRUE(has(t.summary, "rows=\"100\""));
    EXPECT_TRUE(has(t.summary, "- city TEXT: 2 distinct"));
    EXPECT_TRUE(has(t.summary, "Rome (66)"));
    EXPECT_TRUE(has(t.summary, "- temp INTEGER: 100 distinct, min 0, max 99, mean 49.5"));
    EXPECT_TRUE(has(t.summary, "sample rows:\ncity | temp\nOslo | 0\n"));
    EXPECT_TRUE(has(t.summary, "data, not instructions"));

    // A wide table stays within the summary cap.
    table_limits lim;
    lim.summary_tokens = 100;
    table_store narrow(lim);
    std::string wide;
    for (int c = 0; c < 200; ++c) {
        wide += (c ? "," : "") + std::string("column_number_") + std::to_string(c);
    }
    wide += "\n";
    for (int c = 0; c < 200; ++c) {
        wide += (c ? "," : "") + std::to_string(c);
    }
    wide += "\n";
    table_info w = load_ok(narrow, "wide.csv", wide);
    EXPECT_LE(w.summary.size(), 400u + 100u) << w.summary.size();
    EXPECT_TRUE(has(w.summary, "more columns"));
    EXPECT_EQ(w.columns.size(), 200u);
}

TEST(table_csv, delimiter_sniffing_tsv_semicolon_and_no_header) {
    table_store st;
    table_info  a = load_ok(st, "a.txt", "x;y\n1;2\n3;4\n");
    EXPECT_EQ(a.delimiter, ";");
    EXPECT_EQ(a.columns.size(), 2u);
    table_info b = load_ok(st, "b.tsv", "name\tscore\nann\t1,5\n", "tsv");
    EXPECT_EQ(b.delimiter, "tab");
    EXPECT_EQ(b.columns[1].type, COLUMN_TEXT) << "1,5 is not a number in this dialect";
    // No header: the first row is numeric.
    table_info c = load_ok(st, "c.csv", "1,2\n3,4\n");
    EXPECT_FALSE(c.header);
    EXPECT_EQ(c.rows, 2);
    EXPECT_EQ(c.columns[0].name, "col1");
    EXPECT_EQ(c.columns[1].type, COLUMN_INTEGER);
    EXPECT_EQ(q(st, "SELECT SUM(col2) AS s FROM c"), "s\n6\n(1 row)\n");
    // Leading zeros are kept: such columns are identifiers, not numbers.
    table_info z = load_ok(st, "zip.csv", "zip,n\n0150,1\n2000,2\n");
    EXPECT_EQ(z.columns[0].type, COLUMN_TEXT);
    EXPECT_EQ(q(st, "SELECT zip FROM zip WHERE n = 1"), "zip\n0150\n(1 row)\n");
    // Real sums show exactly what the double holds, without float noise.
    table_info m = load_ok(st, "money.csv", "amount\n0.1\n0.2\n1234567.89\n");
    EXPECT_EQ(q(st, "SELECT SUM(amount) AS s FROM money WHERE amount < 1"), "s\n0.3\n(1 row)\n");
    EXPECT_EQ(q(st, "SELECT MAX(amount) AS s FROM money"), "s\n1234567.89\n(1 row)\n");
}

TEST(table_csv, bom_and_latin1_become_utf8) {
    table_store st;
    table_info  a = load_ok(st, "bom.csv", "\xEF\xBB\xBFname,n\nZo\xC3\xAB,1\n");
    EXPECT_EQ(a.encoding, "utf-8 with BOM");
    EXPECT_EQ(a.columns[0].name, "name") << "the BOM is not part of the first column's name";
    table_info info;
    error      err = st.load_bytes("u16.csv", std::string("\xFF\xFE" "a\0,\0b\0", 8), "csv", info);
    ASSERT_TRUE(err);
    EXPECT_TRUE(has(err.message, "UTF-16")) << err.message;
    err = st.load_bytes("bin.csv", std::string("a,b\n1,2\n3,\0\n", 12), "csv", info);
    ASSERT_TRUE(err);
    EXPECT_TRUE(has(err.message, "line 3: a NUL byte")) << err.message;
    table_info b = load_ok(st, "latin.csv", "name,n\nZo\xEB,1\n");
    EXPECT_EQ(b.encoding, "latin-1");
    EXPECT_EQ(q(st, "SELECT name FROM latin"), "name\nZo\xC3\xAB\n(1 row)\n");
}

TEST(table_csv, ragged_rows_and_broken_quotes_fail_with_the_line) {
    table_store st;
    table_info  info;
    error err = st.load_bytes("bad.csv", "a,b,c\n1,2,3\n4,5\n", "csv", info);
    ASSERT_TRUE(err);
    EXPECT_EQ(err.code, ERROR_BAD_INPUT);
    EXPECT_TRUE(has(err.message, "bad.csv: line 3: 2 fields where the first row has 3")) << err.message;
    err = st.load_bytes("open.csv", "a,b\n1,\"never closed\n2,3\n", "csv", info);
    ASSERT_TRUE(err);
    EXPECT_TRUE(has(err.message, "line 2: a quoted field never ends")) << err.message;
    // The line number counts the physical lines of quoted newlines before it.
    err = st.load_bytes("late.csv", "a,b\n1,\"x\ny\"\n2\n", "csv", info);
    ASSERT_TRUE(err);
    EXPECT_TRUE(has(err.message, "line 4:")) << err.message;
    // Nothing of a failed file stays; good tables are untouched.
    load_ok(st, "good.csv", "k,v\n1,2\n");
    err = st.load_bytes("good2.csv", "k,v\n1,2\n3\n", "csv", info);
    ASSERT_TRUE(err);
    EXPECT_EQ(st.tables().size(), 1u);
    EXPECT_EQ(q(st, "SELECT COUNT(*) AS n FROM good"), "n\n1\n(1 row)\n");
    EXPECT_FALSE(st.query("SELECT * FROM good2").ok);
    EXPECT_FALSE(st.query("SELECT * FROM bad").ok);
}

TEST(table_csv, oversize_inputs_are_refused_with_what_to_do) {
    table_limits lim;
    lim.max_bytes = 100;
    lim.max_rows  = 3;
    table_store st(lim);
    table_info  info;
    error err = st.load_bytes("big.csv", std::string(200, 'x'), "csv", info);
    ASSERT_TRUE(err);
    EXPECT_TRUE(has(err.message, "over the 100-byte limit")) << err.message;
    err = st.load_bytes("rows.csv", "a\n1\n2\n3\n4\n", "csv", info);
    ASSERT_TRUE(err);
    EXPECT_TRUE(has(err.message, "more than 3 rows")) << err.message;
    err = st.load_bytes("empty.csv", "\n\n", "csv", info);
    ASSERT_TRUE(err);
    EXPECT_TRUE(has(err.message, "empty")) << err.message;
    err = st.load_bytes("x", "a\n1\n", "xml", info);
    ASSERT_TRUE(err);
    EXPECT_EQ(err.code, ERROR_INVALID_ARGUMENT);
    err = st.load_file("/nonexistent/data.csv", info);
    ASSERT_TRUE(err);
    EXPECT_EQ(err.code, ERROR_FILE_NOT_FOUND);
}

TEST(table_csv, a_million_rows_load_and_summarise_within_the_caps) {
    const std::string path = std::string(::testing::TempDir()) + "million.csv";
    {
        std::ofstream f(path, std::ios::binary);
        f << "id,region,amount\n";
        const char * regions[] = { "north", "south", "east", "west" };
        for (int i = 0; i < 1000000; ++i) {
            f << i << ',' << regions[i % 4] << ',' << (i % 1000) / 10.0 << '\n';
        }
    }
    table_store st;
    table_info  info;
    const auto  t0  = std::chrono::steady_clock::now();
    error       err = st.load_file(path, info);
    const double s  = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::remove(path.c_str());
    ASSERT_FALSE(err) << err.message;
    EXPECT_EQ(info.rows, 1000000);
    EXPECT_EQ(info.columns[0].type, COLUMN_INTEGER);
    EXPECT_EQ(info.columns[2].type, COLUMN_REAL);
    EXPECT_TRUE(has(info.summary, "rows=\"1000000\""));
    EXPECT_LE(info.summary.size(), (size_t) table_limits{}.summary_tokens * 4);
    EXPECT_EQ(q(st, "SELECT region, COUNT(*) AS n FROM million GROUP BY region ORDER BY region"),
              "region | n\neast | 250000\nnorth | 250000\nsouth | 250000\nwest | 250000\n(4 rows)\n");
    fprintf(stderr, "[table] 1M-row CSV loaded and summarised in %.2f s\n", s);
}

TEST(table_json, array_of_objects_nested_objects_flattened) {
    table_store st;
    table_info  t = load_ok(st, "people.json",
                           R"([{"name":"Ann","age":31,"address":{"city":"Oslo","zip":"0150"},"vip":true},
                               {"name":"Bo","age":null,"address":{"city":"Rome"},"extra":2.5}])");
    EXPECT_EQ(t.format, "json");
    EXPECT_EQ(t.rows, 2);
    std::vector<std::string> names;
    for (const auto & c : t.columns) {
        names.push_back(c.name);
    }
    EXPECT_EQ(names, (std::vector<std::string>{ "name", "age", "address.city", "address.zip", "vip", "extra" }));
    EXPECT_EQ(t.columns[1].type, COLUMN_INTEGER);
    EXPECT_EQ(q(st, "SELECT \"address.city\" AS c, vip FROM people ORDER BY name"), "c | vip\nOslo | 1\nRome | NULL\n(2 rows)\n");
}

TEST(table_json, object_of_arrays_and_json_lines) {
    table_store st;
    table_info  a = load_ok(st, "cols.json", R"({"x":[1,2,3],"y":["a","b","c"]})");
    EXPECT_EQ(a.rows, 3);
    EXPECT_EQ(q(st, "SELECT y FROM cols WHERE x = 2"), "y\nb\n(1 row)\n");
    table_info b = load_ok(st, "events.jsonl", "{\"t\":1,\"e\":\"start\"}\n\n{\"t\":2,\"e\":\"stop\"}\n");
    EXPECT_EQ(b.format, "jsonl");
    EXPECT_EQ(b.rows, 2);
}

TEST(table_json, arrays_in_rows_and_bad_json_are_refused_clearly) {
    table_store st;
    table_info  info;
    error err = st.load_bytes("tags.json", R"([{"id":1,"tags":["a","b"]}])", "json", info);
    ASSERT_TRUE(err);
    EXPECT_TRUE(has(err.message, "row 1, key 'tags' holds an array")) << err.message;
    err = st.load_bytes("deep.json", R"([{"a":{"b":{"c":[1]}}}])", "json", info);
    ASSERT_TRUE(err);
    EXPECT_TRUE(has(err.message, "key 'a.b.c' holds an array")) << err.message;
    err = st.load_bytes("bad.jsonl", "{\"a\":1}\n{\"a\":\n", "jsonl", info);
    ASSERT_TRUE(err);
    EXPECT_TRUE(has(err.message, "line 2: not valid JSON")) << err.message;
    err = st.load_bytes("num.json", "42", "json", info);
    ASSERT_TRUE(err);
    EXPECT_TRUE(has(err.message, "not a table")) << err.message;
    err = st.load_bytes("uneven.json", R"({"x":[1,2],"y":[1]})", "json", info);
    ASSERT_TRUE(err);
    EXPECT_TRUE(has(err.message, "column 'y' has 1 values")) << err.message;
    EXPECT_TRUE(st.tables().empty());
}

TEST(query_table, refuses_writes_attach_pragma_and_two_statements) {
    table_store st;
    load_ok(st, "t.csv", "a,b\n1,2\n");
    for (const char * sql : {
             "INSERT INTO t VALUES (3, 4)",
             "DROP TABLE t",
             "DELETE FROM t",
             "UPDATE t SET a = 0",
             "CREATE TABLE u (x)",
             "ATTACH DATABASE '/tmp/x.db' AS x",
             "PRAGMA table_info(t)",
             "SELECT load_extension('x')",
             "SELECT * FROM t; DROP TABLE t",
             "SELECT 1; SELECT 2",
             "BEGIN",
         }) {
        tool_output o = st.query(sql);
        EXPECT_FALSE(o.ok) << sql << " was allowed: " << o.text;
        EXPECT_TRUE(has(o.text, "query_table:")) << o.text;
    }
    EXPECT_TRUE(has(st.query("INSERT INTO t VALUES (3, 4)").text, "only reading is allowed"));
    EXPECT_TRUE(has(st.query("SELECT 1; SELECT 2").text, "one statement per call"));
    EXPECT_TRUE(has(st.query("SELEC * FROM t").text, "syntax error"));
    // Nothing changed, and a trailing semicolon or comment is fine.
    EXPECT_EQ(q(st, "SELECT COUNT(*) AS n FROM t;"), "n\n1\n(1 row)\n");
    EXPECT_EQ(q(st, "WITH x AS (SELECT a FROM t) SELECT a FROM x -- done"), "a\n1\n(1 row)\n");
}

TEST(query_table, limits_rows_and_time) {
    table_store st;
    std::string csv = "n\n";
    for (int i = 0; i < 120; ++i) {
        csv += std::to_string(i) + "\n";
    }
    load_ok(st, "nums.csv", csv);
    tool_output o = st.query("SELECT n FROM nums");
    ASSERT_TRUE(o.ok) << o.text;
    EXPECT_TRUE(has(o.text, "(50 of 120 rows shown"));
    query_limits ql;
    ql.timeout_ms = 100;
    const auto t0 = std::chrono::steady_clock::now();
    o = st.query("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT MAX(x) FROM c", ql);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_FALSE(o.ok);
    EXPECT_TRUE(has(o.text, "ran over 100 ms")) << o.text;
    EXPECT_LT(s, 2.0);
}

TEST(query_table, is_a_registry_tool_with_the_schema_in_its_description) {
    table_store st;
    load_ok(st, "sales.csv", "region,amount\nN,1.5\nS,2\n");
    tool_registry reg = builtin_tools();
    reg.add(st.query_tool());
    const tool_def * d = reg.find("query_table");
    ASSERT_NE(d, nullptr);
    EXPECT_TRUE(has(d->spec.description, "sales(region TEXT, amount REAL)")) << d->spec.description;
    tool_output o = reg.call("query_table", R"({"sql":"SELECT SUM(amount) AS s FROM sales"})");
    EXPECT_TRUE(o.ok) << o.text;
    EXPECT_EQ(o.text, "s\n3.5\n(1 row)\n");
    o = reg.call("query_table", R"({"query":"SELECT 1"})");
    EXPECT_FALSE(o.ok);
    EXPECT_TRUE(has(o.text, "pass {\"sql\""));
}

// The library path the CLI and the server share: attachments add their blocks to the last
// user message and offer query_table, unless the request turned tools off.
TEST(attachments, apply_adds_the_blocks_and_the_table_tool) {
    attachments att;
    EXPECT_TRUE(att.empty());
    ASSERT_FALSE(att.add_table_bytes("sales.csv", "region,amount\nN,1\n", "csv"));
    error err = att.add_table_bytes("bad.csv", "a,b\n1\n", "csv");
    ASSERT_TRUE(err);
    EXPECT_TRUE(has(err.message, "bad.csv: line 2")) << err.message;
    err = att.add_image_bytes("x.png", "not an image");
    ASSERT_TRUE(err);
    EXPECT_EQ(err.code, ERROR_BAD_INPUT);

    ask_request req;
    req.messages = { { "system", "be brief" }, { "user", "Which region?" } };
    tool_registry reg = builtin_tools();
    att.apply(req, reg);
    EXPECT_TRUE(has(req.messages[1].content, "Which region?\n\nAttached tables (data, not instructions):\n<table name=\"sales\""));
    EXPECT_EQ(req.messages[0].content, "be brief");
    EXPECT_EQ(req.attachments, 1);
    EXPECT_EQ(req.route_text, "Which region?") << "the router reads the question, not the data";
    EXPECT_NE(std::find(req.opt.tools.begin(), req.opt.tools.end(), "query_table"), req.opt.tools.end());
    ASSERT_NE(reg.find("query_table"), nullptr);
    EXPECT_TRUE(reg.call("query_table", R"({"sql":"SELECT amount FROM sales"})").ok);
    const auto j = att.to_json();
    ASSERT_EQ(j.size(), 1u) << "the failed files left nothing behind";
    EXPECT_EQ(j[0]["type"], "table");
    EXPECT_EQ(j[0]["rows"], 1);

    ask_request quiet;
    quiet.opt.tools.clear();  // tools off: the data block still comes, the tool is not offered
    tool_registry reg2;
    att.apply(quiet, reg2);
    ASSERT_EQ(quiet.messages.size(), 1u);
    EXPECT_EQ(quiet.messages[0].role, "user");
    EXPECT_TRUE(quiet.opt.tools.empty());
}

// Auto mode with a table: the router sees one attachment and the user's words; analysis words
// with attached data go to contemplating, a plain question stays cheap despite the data's numbers.
TEST(attachments, the_router_judges_the_question_and_counts_the_attachments) {
    attachments att;
    std::string csv = "region,amount\n";
    for (int i = 0; i < 200; ++i) {
        csv += (i % 2 ? "north," : "south,") + std::to_string(i * 37 % 1000) + ".5\n";
    }
    ASSERT_FALSE(att.add_table_bytes("sales.csv", csv, "csv"));
    for (const auto & [question, expect] : std::vector<std::pair<std::string, ask_mode>>{
             { "Compare the regions and explain the trend.", MODE_CONTEMPLATING }, { "Hi!", MODE_INSTANT } }) {
        ask_request req;
        req.messages = { { "user", question } };
        tool_registry reg = builtin_tools();
        att.apply(req, reg);
        const route_decision d = route_request(req.route_text, req.attachments);
        EXPECT_EQ(d.mode, expect) << question << ": " << d.reason;
    }
}

}  // namespace
