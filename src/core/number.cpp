#include "number.h"

#include <algorithm>
#include <exception>

namespace muse::exact {

namespace {

constexpr uint32_t BASE        = 1000000000u;
constexpr int      BASE_DIGITS = 9;
constexpr size_t   MAX_DIGITS  = k_max_digits;
const char * const TOO_LARGE   = k_too_large;

//
// magnitudes: little-endian limbs in base 1e9, never a leading zero limb, so zero is the empty vector
//

void trim(mag & a) {
    while (!a.empty() && a.back() == 0) {
        a.pop_back();
    }
}

mag mag_from_u64(uint64_t v) {
    mag r;
    while (v != 0) {
        r.push_back(uint32_t(v % BASE));
        v /= BASE;
    }
    return r;
}

bool is_one(const mag & a) {
    return a.size() == 1 && a[0] == 1;
}

int cmp(const mag & a, const mag & b) {
    if (a.size() != b.size()) {
        return a.size() < b.size() ? -1 : 1;
    }
    for (size_t i = a.size(); i-- > 0;) {
        if (a[i] != b[i]) {
            return a[i] < b[i] ? -1 : 1;
        }
    }
    return 0;
}

mag add(const mag & a, const mag & b) {
    mag      r(std::max(a.size(), b.size()) + 1);
    uint64_t carry = 0;
    for (size_t i = 0; i < r.size(); ++i) {
        uint64_t s = carry;
        s += i < a.size() ? a[i] : 0;
        s += i < b.size() ? b[i] : 0;
        r[i]  = uint32_t(s % BASE);
        carry = s / BASE;
    }
    trim(r);
    return r;
}

// requires a >= b
mag sub(const mag & a, const mag & b) {
    mag     r(a.size());
    int64_t borrow = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        int64_t d = int64_t(a[i]) - borrow - (i < b.size() ? int64_t(b[i]) : 0);
        borrow    = d < 0 ? 1 : 0;
        r[i]      = uint32_t(d < 0 ? d + BASE : d);
    }
    trim(r);
    return r;
}

mag mul(const mag & a, const mag & b) {
    if (a.empty() || b.empty()) {
        return {};
    }
    std::vector<uint64_t> acc(a.size() + b.size(), 0);
    for (size_t i = 0; i < a.size(); ++i) {
        uint64_t carry = 0;
        for (size_t j = 0; j < b.size(); ++j) {
            // < 2e9 + 1e18 + 1e9: no overflow
            uint64_t cur = acc[i + j] + uint64_t(a[i]) * b[j] + carry;
            acc[i + j]   = cur % BASE;
            carry        = cur / BASE;
        }
        acc[i + b.size()] += carry;
    }
    mag      r(acc.size());
    uint64_t carry = 0;
    for (size_t i = 0; i < acc.size(); ++i) {
        uint64_t cur = acc[i] + carry;
        r[i]         = uint32_t(cur % BASE);
        carry        = cur / BASE;
    }
    trim(r);
    return r;
}

mag mul_small(const mag & a, uint32_t m) {
    mag      r(a.size() + 1);
    uint64_t carry = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        uint64_t cur = uint64_t(a[i]) * m + carry;
        r[i]         = uint32_t(cur % BASE);
        carry        = cur / BASE;
    }
    r[a.size()] = uint32_t(carry);
    trim(r);
    return r;
}

mag div_small(const mag & a, uint32_t d, uint32_t & rem) {
    mag      q(a.size());
    uint64_t r = 0;
    for (size_t i = a.size(); i-- > 0;) {
        uint64_t cur = r * BASE + a[i];
        q[i]         = uint32_t(cur / d);
        r            = cur % d;
    }
    trim(q);
    rem = uint32_t(r);
    return q;
}

// Schoolbook long division, one base-1e9 quotient limb at a time. Each limb is bracketed from the top limbs
// (floor(top/(bt+1)) <= q <= floor(top/bt)) and then pinned down by bisection, which is simpler to get right
// than Knuth's normalisation and fast enough for 1000-digit operands.
void divmod(const mag & a, const mag & b, mag & q, mag & r) {
    if (cmp(a, b) < 0) {
        q.clear();
        r = a;
        return;
    }
    if (b.size() == 1) {
        uint32_t rem = 0;
        q            = div_small(a, b[0], rem);
        r            = mag_from_u64(rem);
        return;
    }
    const size_t   n  = b.size();
    const uint64_t bt = b.back();
    q.assign(a.size() - n + 1, 0);
    r.assign(a.end() - (n - 1), a.end());
    for (size_t i = a.size() - n + 1; i-- > 0;) {
        r.insert(r.begin(), a[i]);
        trim(r);
        if (cmp(r, b) < 0) {
            continue;
        }
        // r < b * BASE here, so r has n or n + 1 limbs
        uint64_t top = r.back();
        if (r.size() > n) {
            top = top * BASE + r[r.size() - 2];
        }
        uint64_t lo = top / (bt + 1);
        uint64_t hi = std::min<uint64_t>(top / bt, BASE - 1);
        while (lo < hi) {
            uint64_t mid = lo + (hi - lo + 1) / 2;
            if (cmp(mul_small(b, uint32_t(mid)), r) <= 0) {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        q[i] = uint32_t(lo);
        r    = sub(r, mul_small(b, uint32_t(lo)));
    }
    trim(q);
}

mag gcd(mag a, mag b) {
    while (!b.empty()) {
        mag q, r;
        divmod(a, b, q, r);
        a = std::move(b);
        b = std::move(r);
    }
    return a;
}

size_t digits(const mag & a) {
    if (a.empty()) {
        return 1;
    }
    size_t   n   = (a.size() - 1) * BASE_DIGITS;
    uint32_t top = a.back();
    while (top != 0) {
        ++n;
        top /= 10;
    }
    return n;
}

std::string to_string(const mag & a) {
    if (a.empty()) {
        return "0";
    }
    std::string s = std::to_string(a.back());
    for (size_t i = a.size() - 1; i-- > 0;) {
        std::string limb = std::to_string(a[i]);
        s.append(BASE_DIGITS - limb.size(), '0');
        s += limb;
    }
    return s;
}

// `s` is all digits
mag from_digits(const std::string & s) {
    mag r;
    for (size_t end = s.size(); end > 0;) {
        size_t   begin = end >= size_t(BASE_DIGITS) ? end - BASE_DIGITS : 0;
        uint32_t limb  = 0;
        for (size_t i = begin; i < end; ++i) {
            limb = limb * 10 + uint32_t(s[i] - '0');
        }
        r.push_back(limb);
        end = begin;
    }
    trim(r);
    return r;
}

mag pow10(size_t n) {
    mag      r(n / BASE_DIGITS, 0);
    uint32_t top = 1;
    for (size_t i = 0; i < n % BASE_DIGITS; ++i) {
        top *= 10;
    }
    r.push_back(top);
    return r;
}

}  // namespace

// Fails (returns false) as soon as a partial product passes MAX_DIGITS. Squaring the base is only done when a
// later bit needs it, and then the final result is at least as large, so failing early never rejects a result
// that would have fit.
bool pow_capped(const mag & m, uint64_t e, mag & out) {
    mag result{ 1 };
    mag base = m;
    while (e != 0) {
        if (e & 1) {
            result = mul(result, base);
            if (digits(result) > MAX_DIGITS) {
                return false;
            }
        }
        e >>= 1;
        if (e != 0) {
            base = mul(base, base);
            if (digits(base) > MAX_DIGITS) {
                return false;
            }
        }
    }
    out = std::move(result);
    return true;
}

//
// rationals: always reduced, den > 0, zero is { false, {}, {1} }
//

bool is_zero(const rational & v) {
    return v.num.empty();
}

bool is_integer(const rational & v) {
    return is_one(v.den);
}

bool too_large(const rational & v) {
    return digits(v.num) > MAX_DIGITS || digits(v.den) > MAX_DIGITS;
}

rational make_rational(bool neg, mag num, mag den) {
    rational v;
    if (num.empty()) {
        return v;
    }
    mag g = gcd(num, den);
    if (!is_one(g)) {
        mag q, r;
        divmod(num, g, q, r);
        num = std::move(q);
        divmod(den, g, q, r);
        den = std::move(q);
    }
    v.neg = neg;
    v.num = std::move(num);
    v.den = std::move(den);
    return v;
}

rational negate(rational v) {
    if (!is_zero(v)) {
        v.neg = !v.neg;
    }
    return v;
}

rational add(const rational & x, const rational & y) {
    if (x.den == y.den) {
        // the common case (integers): skip the cross products
        if (x.neg == y.neg) {
            return make_rational(x.neg, add(x.num, y.num), x.den);
        }
        int c = cmp(x.num, y.num);
        if (c == 0) {
            return {};
        }
        return c > 0 ? make_rational(x.neg, sub(x.num, y.num), x.den) : make_rational(y.neg, sub(y.num, x.num), x.den);
    }
    mag n1  = mul(x.num, y.den);
    mag n2  = mul(y.num, x.den);
    mag den = mul(x.den, y.den);
    if (x.neg == y.neg) {
        return make_rational(x.neg, add(n1, n2), std::move(den));
    }
    int c = cmp(n1, n2);
    if (c == 0) {
        return {};
    }
    return c > 0 ? make_rational(x.neg, sub(n1, n2), std::move(den))
                 : make_rational(y.neg, sub(n2, n1), std::move(den));
}

rational mul(const rational & x, const rational & y) {
    return make_rational(x.neg != y.neg, mul(x.num, y.num), mul(x.den, y.den));
}

// requires y != 0
rational div(const rational & x, const rational & y) {
    return make_rational(x.neg != y.neg, mul(x.num, y.den), mul(x.den, y.num));
}

// Floored modulo of integers (Python's convention): the result has the sign of the divisor. Requires y != 0.
rational mod(const rational & x, const rational & y) {
    mag q, r;
    divmod(x.num, y.num, q, r);
    rational res = make_rational(x.neg, std::move(r), mag{ 1 });
    if (!is_zero(res) && res.neg != y.neg) {
        res = add(res, y);
    }
    return res;
}

// value: integer, exact decimal when den = 2^a 5^b, else "p/q"; approx: %.15g-style for the last case only
void format_value(const rational & v, std::string & value, std::string & approx) {
    value.clear();
    approx.clear();
    const std::string sign = v.neg ? "-" : "";
    if (is_integer(v)) {
        value = sign + to_string(v.num);
        return;
    }

    size_t   twos = 0, fives = 0;
    mag      rest = v.den;
    uint32_t rem  = 0;
    for (;;) {
        mag q = div_small(rest, 2, rem);
        if (rem != 0) {
            break;
        }
        rest = std::move(q);
        ++twos;
    }
    for (;;) {
        mag q = div_small(rest, 5, rem);
        if (rem != 0) {
            break;
        }
        rest = std::move(q);
        ++fives;
    }
    if (is_one(rest)) {
        // num * 10^k / den is exact; since the fraction is reduced the last digit is never 0
        const size_t k = std::max(twos, fives);
        mag          q, r;
        divmod(mul(v.num, pow10(k)), v.den, q, r);
        std::string s = to_string(q);
        if (s.size() < k + 1) {
            s.insert(0, k + 1 - s.size(), '0');
        }
        s.insert(s.size() - k, ".");
        value = sign + s;
        return;
    }

    value = sign + to_string(v.num) + "/" + to_string(v.den);

    // exponent E with 10^E <= num/den < 10^(E+1)
    long long e      = (long long)digits(v.num) - (long long)digits(v.den);
    auto      scaled = [&](long long shift, mag & n, mag & d) {
        n = shift >= 0 ? mul(v.num, pow10(size_t(shift))) : v.num;
        d = shift < 0 ? mul(v.den, pow10(size_t(-shift))) : v.den;
    };
    mag n, d;
    scaled(-e, n, d);
    if (cmp(n, d) < 0) {
        --e;
    }
    // 15 significant digits, rounded half up: a tie cannot happen for a non-terminating expansion
    scaled(14 - e, n, d);
    mag q, r;
    divmod(n, d, q, r);
    if (cmp(add(r, r), d) >= 0) {
        q = add(q, mag{ 1 });
    }
    std::string digs = to_string(q);
    if (digs.size() > 15) {
        digs.resize(15);
        ++e;
    }

    std::string out;
    if (e >= -4 && e < 15) {
        std::string int_part, frac_part;
        if (e >= 0) {
            int_part  = digs.substr(0, size_t(e) + 1);
            frac_part = digs.substr(size_t(e) + 1);
        } else {
            int_part  = "0";
            frac_part = std::string(size_t(-e - 1), '0') + digs;
        }
        while (!frac_part.empty() && frac_part.back() == '0') {
            frac_part.pop_back();
        }
        out = frac_part.empty() ? int_part : int_part + "." + frac_part;
    } else {
        std::string frac_part = digs.substr(1);
        while (!frac_part.empty() && frac_part.back() == '0') {
            frac_part.pop_back();
        }
        std::string exp_digits = std::to_string(e < 0 ? -e : e);
        if (exp_digits.size() < 2) {
            exp_digits.insert(0, "0");
        }
        out = digs.substr(0, 1) + (frac_part.empty() ? "" : "." + frac_part) + (e < 0 ? "e-" : "e+") + exp_digits;
    }
    approx = sign + out;
}

//
// lexing
//

namespace {

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

size_t count_digits(const std::string & s, size_t i) {
    size_t n = 0;
    while (i + n < s.size() && is_digit(s[i + n])) {
        ++n;
    }
    return n;
}

const char * const MINUS_SIGN = "\xE2\x88\x92";  // U+2212

}  // namespace

// One unsigned number literal at s[pos]: digits with optional thousands groups, optional fraction, optional
// exponent. `space_groups` also allows ' ' as the group separator (answers, not expressions, where a space
// between two numbers would otherwise be a syntax error worth reporting).
lit_status read_literal(const std::string & s, size_t & pos, bool space_groups, rational & out, lit_error & err) {
    const size_t start   = pos;
    size_t       i       = pos;
    const size_t int_len = count_digits(s, i);
    if (int_len == 0 && !(i + 1 < s.size() && s[i] == '.' && is_digit(s[i + 1]))) {
        return LIT_NONE;
    }
    std::string mant = s.substr(i, int_len);
    i += int_len;

    char sep = 0;
    while (i + 1 < s.size() && (s[i] == ',' || (space_groups && s[i] == ' ')) && (sep == 0 || s[i] == sep) &&
           is_digit(s[i + 1])) {
        // a leading "0," is far more likely a decimal comma than a thousands group, so refuse to guess
        if (count_digits(s, i + 1) != 3 || int_len == 0 || int_len > 3 || s[start] == '0') {
            err = { i, "invalid thousands separator" };
            return LIT_ERROR;
        }
        sep = s[i];
        mant.append(s, i + 1, 3);
        i += 4;
    }

    size_t frac_len = 0;
    if (i < s.size() && s[i] == '.') {
        frac_len = count_digits(s, i + 1);
        mant.append(s, i + 1, frac_len);
        i += 1 + frac_len;
    }

    long long exp10 = 0;
    if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
        size_t j       = i + 1;
        bool   exp_neg = false;
        if (j < s.size() && (s[j] == '+' || s[j] == '-')) {
            exp_neg = s[j] == '-';
            ++j;
        }
        const size_t exp_len = count_digits(s, j);
        if (exp_len > 0) {
            for (size_t k = 0; k < exp_len; ++k) {
                exp10 = std::min<long long>(exp10 * 10 + (s[j + k] - '0'), 1000000000LL);
            }
            if (exp_neg) {
                exp10 = -exp10;
            }
            i = j + exp_len;
        }
    }
    pos = i;

    const size_t nz = mant.find_first_not_of('0');
    if (nz == std::string::npos) {
        out = {};
        return LIT_OK;
    }
    mant.erase(0, nz);
    long long net = exp10 - (long long)frac_len;
    while (mant.back() == '0') {
        mant.pop_back();
        ++net;
    }
    // reduced denominator >= 10^(-net) / mant > 10^(-net - len(mant)): decide the hopeless cases before building
    if ((net > 0 && (long long)mant.size() + net > (long long)MAX_DIGITS) ||
        (net < 0 && -net >= (long long)(mant.size() + MAX_DIGITS))) {
        err = { start, TOO_LARGE };
        return LIT_ERROR;
    }
    mag m = from_digits(mant);
    out   = net >= 0 ? make_rational(false, mul(m, pow10(size_t(net))), mag{ 1 })
                     : make_rational(false, std::move(m), pow10(size_t(-net)));
    if (too_large(out)) {
        err = { start, TOO_LARGE };
        return LIT_ERROR;
    }
    return LIT_OK;
}
}  // namespace muse::exact

namespace muse {

using namespace exact;

bool normalize_number(const std::string & text, std::string & out) {
    try {
        size_t b = 0, e = text.size();
        while (b < e && is_space(text[b])) {
            ++b;
        }
        while (e > b && is_space(text[e - 1])) {
            --e;
        }
        const std::string s   = text.substr(b, e - b);
        size_t            pos = 0;
        bool              neg = false;
        if (s.compare(0, 1, "+") == 0) {
            pos = 1;
        } else if (s.compare(0, 1, "-") == 0) {
            pos = 1;
            neg = true;
        } else if (s.compare(0, 3, MINUS_SIGN) == 0) {
            pos = 3;
            neg = true;
        }
        auto skip_spaces = [&]() {
            while (pos < s.size() && is_space(s[pos])) {
                ++pos;
            }
        };

        rational  v;
        lit_error lerr;
        if (read_literal(s, pos, true, v, lerr) != LIT_OK) {
            return false;
        }
        skip_spaces();
        if (pos < s.size() && s[pos] == '/') {
            ++pos;
            skip_spaces();
            rational d;
            if (read_literal(s, pos, true, d, lerr) != LIT_OK || is_zero(d)) {
                return false;
            }
            v = div(v, d);
            skip_spaces();
        }
        if (pos < s.size() && s[pos] == '%') {
            ++pos;
            v = div(v, rational{ false, mag{ 100 }, mag{ 1 } });
        }
        if (pos != s.size() || too_large(v)) {
            return false;
        }
        if (neg) {
            v = negate(v);
        }
        std::string approx;
        format_value(v, out, approx);
        return true;
    } catch (const std::exception &) {
        return false;
    }
}

}  // namespace muse
