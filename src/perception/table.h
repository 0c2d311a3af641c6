#pragma once
// Structured data for agents: CSV / TSV / JSON / JSON Lines loaded into an in-memory SQLite
// database, a compact summary for the prompt, and read-only SQL queries (what the agents'
// query_table tool runs: agents/tools/query-table.h).
//
//   table_store store;                                   // one per request
//   table_info  info;
//   if (error err = store.load_file("sales.csv", info)) { /* err.message names file and line */ }
//   prompt += info.summary;                              // schema, rows, column stats, samples
//   query_output out = store.query("SELECT region, SUM(amount) FROM sales GROUP BY region");
//
// Input: CSV with RFC 4180 quoting (quoted delimiters, "" escapes, quoted newlines, CRLF),
// the delimiter sniffed among , ; TAB | (TSV: tab), a header row detected (repeated and
// year-like names included; a title or metadata line above the table is skipped), UTF-8
// with or without BOM, a value that is not UTF-8 read as Windows-1252; JSON as an array of
// objects or an object of arrays; JSON Lines. Nested JSON objects are flattened into dotted
// column names; arrays inside rows are refused. Integers beyond 64 bits make their column
// TEXT, so they stay exact. What the loader guessed or repaired is listed in `warnings`.
// Every size is capped (table_limits), nesting too; a bad file fails with the line and what
// to do, and leaves the tables already loaded as they were.
//
// Queries: one SELECT (or WITH ... SELECT) per call; an authorizer denies writes, schema
// changes, ATTACH, PRAGMA, functions with side effects and printf/format; rows, time,
// value sizes and LIKE patterns are limited, and no single function call runs long.
//
// Thread safety: a table_store serialises its own use; agents may query it from many threads.

#include "core/error.h"
#include "core/limits.h"

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

struct sqlite3;

namespace muse {

struct table_limits {
    size_t  max_bytes       = 512u << 20;  // one input file
    int64_t max_rows        = 5000000;
    int32_t max_columns     = 512;
    size_t  max_field_bytes = 1u << 20;
    int32_t max_tables      = (int32_t) k_limit_tables.max;  // per store (a request)
    int32_t summary_tokens  = 800;         // the summary's size cap (about 4 bytes per token)
    int32_t sample_rows     = 3;
};

enum column_type { COLUMN_INTEGER, COLUMN_REAL, COLUMN_TEXT };

const char * column_type_name(column_type t);

struct column_info {
    std::string name;
    column_type type     = COLUMN_TEXT;
    int64_t     non_null = 0;
    int64_t     distinct = 0;
    std::string min, max;  // numeric columns
    double      mean = 0;  // numeric columns
    std::vector<std::pair<std::string, int64_t>> top;  // text columns: most frequent values
};

struct table_info {
    std::string name;       // the SQL table name
    std::string source;     // file name (no directories)
    std::string format;     // csv, tsv, json, jsonl
    std::string encoding;   // utf-8 or utf-8 with BOM, then "; N values read as windows-1252"
    std::string delimiter;  // csv / tsv
    bool        header = false;
    int64_t     rows   = 0;
    std::vector<column_info> columns;
    std::vector<std::string> warnings;  // what was guessed or repaired (a skipped line, an uncertain header)
    std::string summary;    // compact, delimited text for the prompt (marked as data)
};

struct query_limits {
    int32_t max_rows   = 50;     // rows shown; the result says how many more there were
    int32_t timeout_ms = 2000;   // the statement is interrupted after this
    size_t  max_sql    = 8192;   // bytes of SQL
    size_t  max_cell   = 80;     // bytes shown per cell
};

// What a query gives back: the rows as text, or a one-line error the model can act on.
struct query_output {
    bool        ok = false;
    std::string text;
};

// The format a file name announces (.csv .tsv .tab .json .jsonl .ndjson), or "" (sniffed
// from the content when loaded).
std::string table_format_for(const std::string & name);

class table_store {
  public:
    explicit table_store(table_limits limits = {});
    ~table_store();
    table_store(const table_store &)             = delete;
    table_store & operator=(const table_store &) = delete;

    // Loads a file; the format comes from the extension (.csv .tsv .tab .json .jsonl .ndjson),
    // else from the content.
    error load_file(const std::string & path, table_info & out);
    // Loads bytes; format_hint is csv, tsv, json, jsonl or "" (sniffed). name: the source name.
    error load_bytes(const std::string & name, const std::string & bytes, const std::string & format_hint,
                     table_info & out);

    std::vector<table_info> tables() const;

    // Drops a loaded table (false when there is none of that name).
    bool drop(const std::string & name);

    // Bytes the database holds in memory (its page cache: all of an in-memory database).
    size_t memory_used() const;

    // Runs one read-only SELECT; ok=false with a message the model can act on otherwise.
    query_output query(const std::string & sql, const query_limits & lim = {}) const;

  private:
    table_limits            lim;
    sqlite3 *               db = nullptr;
    mutable std::mutex      mu;
    std::vector<table_info> loaded;
};

}  // namespace muse
