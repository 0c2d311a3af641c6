#!/usr/bin/env python3
"""Layering check: every #include under src/ against DESIGN.md's layer table.

usage: check-layers.py [--src DIR] [--exceptions FILE] [--llama-dir DIR]

Prints one line per include the table does not allow and exits 1:

    src/core/x.cpp:12: includes "engine/engine.h": src/core/ may include only core (DESIGN.md layer table)

The exceptions file lists today's violations, one `src/file: include` a line; they are debts
of the restructuring (issue 15) and the list may only shrink. A violation not in the list
fails, and so does a line of the list that is no longer a violation.

How an include is resolved (as the compiler would, with -I src/ and llama.cpp's include
directories): a quoted name is first looked up next to the including file, then under src/;
any name whose first path component is a folder of the table ("engine/x.h") is that folder;
otherwise a name of llama.cpp's headers (LLAMA_CPP below, plus the headers found under
--llama-dir) is llama.cpp; a quoted name found nowhere is an error (add it to a table here);
any other <name> is a system or third-party header, which the table does not govern.
Includes in /* */ comments and raw strings do not count; #if is not evaluated (an include
under #if 0 counts).
"""

import argparse
import fnmatch
import os
import re
import sys

# DESIGN.md, "Layers and folders": a folder may include itself, core/, and what its row lists.
# Keys are folders under src/; a key with a "*" is a finer row for the files of a folder whose
# path under src/ matches it, and adds to that folder's row. "llama.cpp" is llama.cpp's
# headers (LLAMA_CPP).
LAYERS = {
    "core":           [],
    "engine":         ["llama.cpp"],
    "backend":        [],
    "backend/local*": ["engine"],  # "engine (local only)": backend/local/ and local-backend.*
    "perception":     [],
    "agents":         ["backend", "perception", "store"],
    "reasoning":      ["agents", "backend"],
    "store":          [],
    "safety":         ["perception"],
    "app":            ["engine", "backend", "perception", "agents", "reasoning", "store", "safety"],
    "server":         ["app", "backend"],  # backend: caps and stats
    "cli":            ["app"],
}

# llama.cpp's headers, by file name (fnmatch patterns): include/, ggml/include/, tools/mtmd/
# and common/ (llama-common). Its vendor/ libraries (nlohmann, cpp-httplib, hash) are
# third-party and not governed by the table.
LLAMA_CPP = [
    "llama*.h", "ggml*.h", "gguf*.h", "mtmd*.h", "clip*.h",
    "arg.h", "base64.hpp", "build-info.h", "chat*.h", "common.h", "console.h", "debug.h",
    "download.h", "fit.h", "hf-cache.h", "http.h", "imatrix-loader.h",
    "json-partial.h", "json-schema-to-grammar.h", "json.h", "log.h", "ngram-*.h", "peg-parser.h",
    "preset.h", "reasoning-budget.h", "regex-partial.h", "sampling.h", "speculative.h",
    "subproc.h", "trie.h", "unicode.h",
]
LLAMA_CPP_DIRS = ["include", "ggml/include", "tools/mtmd", "common"]

# Quoted headers of this repository outside src/: not layers, not governed by the table.
OUTSIDE_SRC = {
    "mkmodel.h": "tools/mkmodel",
}

SOURCE_EXT = (".h", ".hh", ".hpp", ".inc", ".ipp", ".c", ".cc", ".cpp", ".cxx")
INCLUDE_RE = re.compile(r'^\s*#\s*include\s*(.*)$')
NAME_RE = re.compile(r'^(<([^>]+)>|"([^"]+)")')


def directive_lines(lines):
    """Yields (line number, text) of the lines that start outside a /* */ comment and outside a
    raw string literal, so that neither a commented-out include nor an "#include" inside a
    string counts. A small lexer: ordinary strings and character literals are skipped so that a
    "/*" inside one opens no comment."""
    end = None  # what closes the comment or raw string the current line starts in
    for number, line in enumerate(lines, 1):
        i = 0
        if end is None:
            yield number, line
        else:
            close = line.find(end)
            if close < 0:
                continue
            i, end = close + len(end), None
        while i < len(line):
            c = line[i]
            if line.startswith("//", i):
                break
            if line.startswith("/*", i):
                close = line.find("*/", i + 2)
                if close < 0:
                    end = "*/"
                    break
                i = close + 2
            elif c == '"':
                prefix = re.search(r"(?<![A-Za-z0-9_])(?:u8|[uUL])?R$", line[:i])
                paren = line.find("(", i)
                if prefix and paren > 0:
                    terminator = ")" + line[i + 1:paren] + '"'
                    close = line.find(terminator, paren)
                    if close < 0:
                        end = terminator
                        break
                    i = close + len(terminator)
                else:
                    i += 1
                    while i < len(line) and line[i] != '"':
                        i += 2 if line[i] == "\\" else 1
                    i += 1
            elif c == "'" and (i == 0 or not line[i - 1].isalnum()):  # not a digit separator
                i += 1
                while i < len(line) and line[i] != "'":
                    i += 2 if line[i] == "\\" else 1
                i += 1
            else:
                i += 1


def rows_for(rel):
    """The table's rows that govern the file at src/-relative path rel: (scope, allowed set)."""
    folder = rel.split("/", 1)[0]
    allowed = set(LAYERS[folder]) | {folder, "core"}
    scope = folder
    for key, extra in LAYERS.items():
        if "*" in key and fnmatch.fnmatchcase(rel, key):
            allowed |= set(extra)
            scope = key
    return scope, allowed


def describe(scope):
    folder = scope.split("/", 1)[0]
    listed = ["core"] + [f for f in LAYERS[folder] if f != "core"]
    if scope != folder:
        listed += [f for f in LAYERS[scope] if f not in listed]
    name = f"src/{scope}" if "*" in scope else f"src/{scope}/"
    return f"{name} may include only {', '.join(listed)}"


def resolve(src, rel, quoted, name, llama_names):
    """Returns the group an include belongs to: a folder of the table, "llama.cpp", None for a
    header outside the table's scope, or raises ValueError when it cannot be placed."""
    here = os.path.dirname(rel)
    candidates = ([os.path.normpath(os.path.join(here, name))] if quoted else []) + [os.path.normpath(name)]
    for c in candidates:
        if not c.startswith("..") and os.path.isfile(os.path.join(src, c)):
            first = c.split("/", 1)[0]
            if "/" not in c:
                raise ValueError(f"resolves to src/{c}, outside every layer folder")
            return first
    first = name.split("/", 1)[0]
    if "/" in name and first in LAYERS:
        return first  # not there (yet): judged by the folder it names
    base = os.path.basename(name)
    if base in llama_names or any(fnmatch.fnmatchcase(base, p) for p in LLAMA_CPP):
        return "llama.cpp"
    if quoted and name in OUTSIDE_SRC:
        return None
    if quoted:
        raise ValueError("found neither next to the file nor under src/, and not a known llama.cpp "
                         "or outside header (tests/check-layers.py: LLAMA_CPP, OUTSIDE_SRC)")
    return None  # <system or third-party>


def scan(src, llama_names):
    """Yields (file, include as written, report line) for every include the table forbids."""
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames.sort()
        for fn in sorted(filenames):
            if not fn.endswith(SOURCE_EXT):
                continue
            path = os.path.join(dirpath, fn)
            rel = os.path.relpath(path, src).replace(os.sep, "/")
            shown = "src/" + rel
            if "/" not in rel or rel.split("/", 1)[0] not in LAYERS:
                yield shown, "", f"{shown}:1: in no folder of the DESIGN.md layer table"
                continue
            scope, allowed = rows_for(rel)
            with open(path, encoding="utf-8", errors="replace") as f:
                lines = f.read().split("\n")
            for number, text in directive_lines(lines):
                m = INCLUDE_RE.match(text)
                if not m:
                    continue
                where = f"{shown}:{number}: includes"
                n = NAME_RE.match(m.group(1).strip())
                if not n:
                    written = m.group(1).strip()
                    yield shown, written, f"{where} {written}: not a literal name, cannot be checked"
                    continue
                quoted = n.group(3) is not None
                name = n.group(3) if quoted else n.group(2)
                written = f'"{name}"' if quoted else f"<{name}>"
                try:
                    group = resolve(src, rel, quoted, name, llama_names)
                except ValueError as e:
                    yield shown, written, f"{where} {written}: {e}"
                    continue
                if group is None or group in allowed:
                    continue
                what = " (llama.cpp)" if group == "llama.cpp" else ""
                yield shown, written, f"{where} {written}{what}: {describe(scope)} (DESIGN.md layer table)"


def read_exceptions(path):
    entries, errors = {}, []
    if not path:
        return entries, errors
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            file, sep, include = line.partition(": ")
            if not sep or not include:
                errors.append(f"{path}:{number}: not `src/file: include`")
                continue
            key = (file.strip(), include.strip())
            if key in entries:
                errors.append(f"{path}:{number}: duplicate of line {entries[key]}")
                continue
            entries[key] = number
    return entries, errors


def llama_header_names(llama_dir):
    names = set()
    for d in LLAMA_CPP_DIRS:
        full = os.path.join(llama_dir, d)
        if os.path.isdir(full):
            names |= {fn for fn in os.listdir(full) if fn.endswith((".h", ".hpp"))}
    return names


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description="Checks every #include under src/ against DESIGN.md's layer table.")
    ap.add_argument("--src", default=os.path.join(root, "src"))
    ap.add_argument("--exceptions", help="today's violations, one `src/file: include` a line")
    ap.add_argument("--llama-dir", help="llama.cpp checkout: its header names count as llama.cpp too")
    args = ap.parse_args()

    llama_names = llama_header_names(args.llama_dir) if args.llama_dir else set()
    exceptions, errors = read_exceptions(args.exceptions)
    found, failures, allowed = set(), [], 0
    for file, include, report in scan(args.src, llama_names):
        found.add((file, include))
        if (file, include) in exceptions:
            allowed += 1
        else:
            failures.append(report)
    for (file, include), number in sorted(exceptions.items(), key=lambda kv: kv[1]):
        if (file, include) not in found:
            failures.append(f"{args.exceptions}:{number}: {file}: {include} is no longer a violation: "
                            "remove the line (the list may only shrink)")
    for line in errors + failures:
        print(line)
    if errors or failures:
        print(f"layering: {len(errors) + len(failures)} problem(s); DESIGN.md, \"Layers and folders\"", file=sys.stderr)
        return 1
    print(f"layering: every include under {args.src} is allowed by the table"
          + (f" ({allowed} listed in {os.path.basename(args.exceptions)})" if allowed else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
