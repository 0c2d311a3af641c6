#pragma once
// Exact numbers: rationals over arbitrary-precision integers, the literals people write
// ("1,234.5", "1 000", "1.5e-3"), and their canonical text. The calculator tool evaluates
// expressions over them; the vote compares answers through normalize_number.
//
//     std::string key;
//     muse::normalize_number("1,000.0", key);   // true, key == "1000"
//     muse::normalize_number("2/6", key);       // true, key == "1/3"
//
// Limits: 1000 decimal digits in any numerator or denominator (k_max_digits).
//
// Thread safety: pure functions without shared state; call from any thread.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace muse {

// Canonical form of one number literal (as the calculator would print it), for comparing answers:
// "1,000" "1000" "1000.0" "+1000" "1e3" "1 000" -> "1000"; "0.50" -> "0.5"; "1/2" -> "0.5"; "2/6" -> "1/3";
// "-0" -> "0"; "50%" -> "0.5".
// Accepts, around ASCII whitespace: an optional sign, a number (thousands grouped by ',' or by ' '), optionally
// '/' and an unsigned number, optionally '%'. Returns false (and leaves `out` alone) for anything else.
bool normalize_number(const std::string & text, std::string & out);

namespace exact {

constexpr size_t              k_max_digits = 1000;
inline constexpr const char * k_too_large  = "number too large (more than 1000 digits)";

// A magnitude: little-endian limbs in base 1e9, never a leading zero limb, so zero is empty.
using mag = std::vector<uint32_t>;

// Always reduced, den > 0; zero is { false, {}, {1} }.
struct rational {
    bool neg = false;
    mag  num;
    mag  den{ 1 };
};

bool     is_zero(const rational & v);
bool     is_integer(const rational & v);
bool     too_large(const rational & v);  // more than k_max_digits digits above or below
rational make_rational(bool neg, mag num, mag den);
rational negate(rational v);
rational add(const rational & x, const rational & y);
rational mul(const rational & x, const rational & y);
rational div(const rational & x, const rational & y);  // requires y != 0
// Floored modulo of integers (the result has the divisor's sign). Requires y != 0.
rational mod(const rational & x, const rational & y);
// m^e; false as soon as a partial product passes k_max_digits.
bool pow_capped(const mag & m, uint64_t e, mag & out);

// value: integer, exact decimal when den = 2^a 5^b, else "p/q"; approx: 15 significant digits
// for the last case only, else empty.
void format_value(const rational & v, std::string & value, std::string & approx);

enum lit_status { LIT_NONE, LIT_OK, LIT_ERROR };

struct lit_error {
    size_t      pos = 0;  // byte offset
    std::string msg;
};

// One unsigned number literal at s[pos]: digits with optional thousands groups, optional
// fraction, optional exponent; advances pos past it. `space_groups` also allows ' ' as the group
// separator (answers, not expressions).
lit_status read_literal(const std::string & s, size_t & pos, bool space_groups, rational & out, lit_error & err);

}  // namespace exact

}  // namespace muse
