#include "calculator.h"

#include "core/number.h"
#include "core/utf8.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <exception>
#include <vector>

namespace muse {

namespace {

using namespace exact;

constexpr size_t   k_max_input    = 2000;
constexpr int      k_max_nesting  = 100;
constexpr uint64_t k_max_exponent = 10000;

const char * const TOO_LARGE = k_too_large;

//
// lexing
//

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

bool is_alpha(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

// 1-based position in characters (UTF-8 code points) of byte offset `at`
size_t char_pos(const std::string & s, size_t at) {
    return 1 + utf8_length(std::string_view(s).substr(0, at));
}

size_t char_count(const std::string & s) {
    return char_pos(s, s.size()) - 1;
}

const char * const MINUS_SIGN = "\xE2\x88\x92";  // U+2212
const char * const TIMES_SIGN = "\xC3\x97";      // U+00D7
const char * const DIV_SIGN   = "\xC3\xB7";      // U+00F7

//
// parsing: recursive descent, evaluating as it goes
//

struct parser {
    const std::string & s;
    size_t              pos   = 0;
    int                 depth = 0;
    std::string         err;

    explicit parser(const std::string & src) : s(src) {}

    bool fail(size_t at, const std::string & msg) {
        if (err.empty()) {
            err = msg + " at position " + std::to_string(char_pos(s, at));
        }
        return false;
    }

    void skip_ws() {
        while (pos < s.size() && is_space(s[pos])) {
            ++pos;
        }
    }

    bool at_end() const { return pos >= s.size(); }

    bool at(const char * tok) const { return s.compare(pos, std::char_traits<char>::length(tok), tok) == 0; }

    bool at_word(const char * word) const {
        const size_t n = std::char_traits<char>::length(word);
        // "7mod3" reads as 7 mod 3, but "modulo" is not "mod"
        return at(word) && (pos + n >= s.size() || !is_alpha(s[pos + n]));
    }

    // names the token at pos, for "unexpected ..." errors
    std::string token_text() const {
        size_t n = 1;
        if (is_alpha(s[pos]) || is_digit(s[pos])) {
            while (pos + n < s.size() && (is_alpha(s[pos + n]) || is_digit(s[pos + n]))) {
                ++n;
            }
        } else {
            n = utf8_next(s, pos) - pos;
        }
        return s.substr(pos, std::min<size_t>(n, 40));
    }

    bool fail_unexpected() {
        if (at_end()) {
            return fail(pos, "unexpected end of expression");
        }
        return fail(pos, "unexpected '" + token_text() + "'");
    }

    bool check_size(const rational & v, size_t at) { return too_large(v) ? fail(at, TOO_LARGE) : true; }

    bool parse_expr(rational & out) {
        if (!parse_term(out)) {
            return false;
        }
        for (;;) {
            skip_ws();
            const size_t op_pos = pos;
            bool         minus  = false;
            if (at("+")) {
                pos += 1;
            } else if (at("-")) {
                pos += 1;
                minus = true;
            } else if (at(MINUS_SIGN)) {
                pos += 3;
                minus = true;
            } else {
                return true;
            }
            rational rhs;
            if (!parse_term(rhs)) {
                return false;
            }
            out = add(out, minus ? negate(rhs) : rhs);
            if (!check_size(out, op_pos)) {
                return false;
            }
        }
    }

    bool parse_term(rational & out) {
        if (!parse_unary(out)) {
            return false;
        }
        for (;;) {
            skip_ws();
            const size_t op_pos = pos;
            char         op     = 0;
            if (at("*") && !at("**")) {
                op = '*';
                pos += 1;
            } else if (at(TIMES_SIGN)) {
                op = '*';
                pos += 2;
            } else if (at("/")) {
                op = '/';
                pos += 1;
            } else if (at(DIV_SIGN)) {
                op = '/';
                pos += 2;
            } else if (at_word("mod")) {
                op = 'm';
                pos += 3;
            } else {
                return true;
            }
            rational rhs;
            if (!parse_unary(rhs)) {
                return false;
            }
            if (op == '*') {
                out = mul(out, rhs);
            } else if (is_zero(rhs)) {
                return fail(op_pos, "division by zero");
            } else if (op == '/') {
                out = div(out, rhs);
            } else {
                if (!is_integer(out) || !is_integer(rhs)) {
                    return fail(op_pos, "mod needs integer operands");
                }
                out = mod(out, rhs);
            }
            if (!check_size(out, op_pos)) {
                return false;
            }
        }
    }

    bool parse_unary(rational & out) {
        bool neg = false;
        for (;;) {
            skip_ws();
            if (at("+")) {
                pos += 1;
            } else if (at("-")) {
                pos += 1;
                neg = !neg;
            } else if (at(MINUS_SIGN)) {
                pos += 3;
                neg = !neg;
            } else {
                break;
            }
        }
        if (!parse_power(out)) {
            return false;
        }
        if (neg) {
            out = negate(out);
        }
        return true;
    }

    bool parse_power(rational & out) {
        if (!parse_postfix(out)) {
            return false;
        }
        skip_ws();
        const size_t op_pos = pos;
        if (at("**")) {
            pos += 2;
        } else if (at("^")) {
            pos += 1;
        } else {
            return true;
        }
        // right-associative chains recurse, so they count towards the nesting limit like parentheses
        if (++depth > k_max_nesting) {
            return fail(op_pos, "too deeply nested (more than 100 levels)");
        }
        rational   e;
        const bool ok = parse_unary(e);
        --depth;
        if (!ok) {
            return false;
        }
        if (!is_integer(e)) {
            return fail(op_pos, "exponent must be an integer");
        }
        if (e.num.size() > 1 || (!e.num.empty() && e.num[0] > k_max_exponent)) {
            return fail(op_pos, "exponent too large (more than 10000)");
        }
        const uint64_t n = e.num.empty() ? 0 : e.num[0];
        if (e.neg && is_zero(out)) {
            return fail(op_pos, "division by zero");
        }
        mag num, den;
        if (!pow_capped(out.num, n, num) || !pow_capped(out.den, n, den)) {
            return fail(op_pos, TOO_LARGE);
        }
        rational res;
        res.neg = out.neg && (n & 1) != 0;
        // a reduced fraction stays reduced under powers
        res.num = e.neg ? std::move(den) : std::move(num);
        res.den = e.neg ? std::move(num) : std::move(den);
        if (res.num.empty()) {
            res = {};
        }
        out = std::move(res);
        return true;
    }

    bool parse_postfix(rational & out) {
        if (!parse_primary(out)) {
            return false;
        }
        for (;;) {
            skip_ws();
            if (!at("%")) {
                return true;
            }
            const size_t op_pos = pos;
            pos += 1;
            out = div(out, rational{ false, mag{ 100 }, mag{ 1 } });
            if (!check_size(out, op_pos)) {
                return false;
            }
        }
    }

    bool parse_primary(rational & out) {
        skip_ws();
        if (at_end()) {
            return fail_unexpected();
        }
        if (at("(")) {
            const size_t open = pos;
            pos += 1;
            if (++depth > k_max_nesting) {
                return fail(open, "too deeply nested (more than 100 levels)");
            }
            const bool ok = parse_expr(out);
            --depth;
            if (!ok) {
                return false;
            }
            skip_ws();
            if (at_end()) {
                return fail(open, "missing ')' for '('");
            }
            if (!at(")")) {
                return fail_unexpected();
            }
            pos += 1;
            return true;
        }
        lit_error        lerr;
        const lit_status st = read_literal(s, pos, false, out, lerr);
        if (st == LIT_ERROR) {
            return fail(lerr.pos, lerr.msg);
        }
        if (st == LIT_NONE) {
            return fail_unexpected();
        }
        return true;
    }
};

}  // namespace

calc_result calculate(const std::string & expression) {
    calc_result res;
    try {
        if (char_count(expression) > k_max_input) {
            res.error = "expression too long (more than 2000 characters)";
            return res;
        }
        parser p(expression);
        p.skip_ws();
        if (p.at_end()) {
            res.error = "empty expression";
            return res;
        }
        rational v;
        if (!p.parse_expr(v)) {
            res.error = p.err;
            return res;
        }
        p.skip_ws();
        if (!p.at_end()) {
            p.fail_unexpected();
            res.error = p.err;
            return res;
        }
        format_value(v, res.value, res.approx);
        res.ok = true;
    } catch (const std::exception & e) {
        res       = {};
        res.error = std::string("internal error: ") + e.what();
    }
    return res;
}

static tool_output run_calculator(const std::string & args) {
    const nlohmann::json j = nlohmann::json::parse(args);
    if (!j.contains("expression") || !j["expression"].is_string()) {
        return { false, "calculator needs {\"expression\": \"...\"}, e.g. {\"expression\": \"(1 + 2) * 3\"}" };
    }
    const calc_result r = calculate(j["expression"].get<std::string>());
    if (!r.ok) {
        return { false, "calculator: " + r.error };
    }
    return { true, r.approx.empty() ? r.value : r.value + " (about " + r.approx + ")" };
}

tool_def calculator_tool() {
    return {
        { "calculator",
          "Exact arithmetic: + - * / ^, parentheses, decimals, fractions and percentages (15% * 200). "
          "Use it for every calculation instead of doing it in your head.",
          R"({"type":"object","properties":{"expression":{"type":"string","description":"the expression, e.g. (1.5 + 2) * 3"}},"required":["expression"]})" },
        run_calculator
    };
}

}  // namespace muse
