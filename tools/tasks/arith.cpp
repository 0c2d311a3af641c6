#include "arith.h"

#include <algorithm>
#include <stdexcept>

namespace muse::tasks {

namespace {

uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t pow10(int d) {
    uint64_t v = 1;
    for (int i = 0; i < d; ++i) v *= 10;
    return v;
}

std::string str(uint64_t v) { return std::to_string(v); }

}  // namespace

// One line per column, right to left. Each line restates what is left of the operands (the
// previous line's numbers without their last digit, 0 once a number is used up), so the digits
// to combine are always the last ones written and each line copies the one before; it ends with
// the digits of the result found so far, the new one in front. A subtraction that must borrow
// says so once its three numbers are written ("3 - 8 - 0 < 0, so 13 - 8 - 0 = 5"): deciding the
// borrow before the subtrahend's digit was on the line was where a small model went wrong. The
// last line gives the answer: those digits, the final carry in front; leading zeros are
// dropped on a line of their own ("054 without its leading zero is 54.") rather than in the
// copy that ends the scratchpad. (A model trained without these two lines got 65 of 103
// subtractions wrong where one trained with them got 4: see README, "Muse-Tiny".)
problem make_problem(op_t op, uint64_t a, uint64_t b) {
    if (op == OP_SUB && a < b) throw std::invalid_argument("subtraction needs a >= b");
    const char * sign = op == OP_ADD ? " + " : " - ";
    problem      p;
    p.op       = op;
    p.a        = a;
    p.b        = b;
    p.question = "What is " + str(a) + sign + str(b) + "?";
    std::string r, digits;
    uint64_t    x = a, y = b;
    int         carry = 0;  // the carry (addition) or borrow (subtraction) into this column
    do {
        const int dx = (int) (x % 10), dy = (int) (y % 10);
        std::string line = str(x) + sign + str(y) + ": ";
        int         d    = 0;
        if (op == OP_ADD) {
            const int s = dx + dy + carry;
            line += str(dx) + " + " + str(dy) + " + " + str(carry) + " = " + str(s) + ", carry " + str(s / 10);
            d     = s % 10;
            carry = s / 10;
        } else {
            const int s = dx - dy - carry;
            if (s < 0) {
                line += str(dx) + " - " + str(dy) + " - " + str(carry) + " < 0, so 1" + str(dx) + " - " + str(dy) + " - " +
                        str(carry) + " = " + str(s + 10) + ", borrow 1";
                d     = s + 10;
                carry = 1;
            } else {
                line += str(dx) + " - " + str(dy) + " - " + str(carry) + " = " + str(s) + ", borrow 0";
                d     = s;
                carry = 0;
            }
        }
        digits = str(d) + digits;
        r += line + ", so far " + digits + ".\n";
        x /= 10;
        y /= 10;
    } while (x > 0 || y > 0);
    if (op == OP_ADD && carry) digits = "1" + digits;
    const size_t nz = digits.find_first_not_of('0');
    p.answer        = nz == std::string::npos ? "0" : digits.substr(nz);
    if (p.answer != digits) {
        r += digits + " without its leading " + (digits.size() - p.answer.size() > 1 ? "zeros" : "zero") + " is " +
             p.answer + ".\n";
    }
    r += "So the answer is " + p.answer + ".";
    p.reasoning = r;
    return p;
}

std::string check_reasoning(const problem & p, uint64_t candidate, bool & right) {
    if (p.op == OP_ADD && candidate < p.b) throw std::invalid_argument("an addition's candidate below b");
    const op_t        inv   = p.op == OP_ADD ? OP_SUB : OP_ADD;
    const problem     back  = make_problem(inv, candidate, p.b);
    const std::string got   = back.answer, want = str(p.a);
    std::string       r     = "Check " + str(candidate) + (inv == OP_ADD ? " + " : " - ") + str(p.b) + " against " + want +
                        ".\n" + back.reasoning + "\n" + got + " against " + want + ": ";
    const size_t      n     = std::max(got.size(), want.size());
    right                   = true;
    for (size_t i = 0; i < n; ++i) {
        const char x = i < got.size() ? got[got.size() - 1 - i] : '0';
        const char y = i < want.size() ? want[want.size() - 1 - i] : '0';
        r += std::string(i ? ", " : "") + x + " and " + y;
        if (x != y) {
            right = false;
            r += " differ.";
            return r;
        }
    }
    return r + ", the same.";
}

bool held_out(op_t op, uint64_t a, uint64_t b) {
    const uint64_t h = mix64(mix64(a * 0x9e3779b97f4a7c15ULL + (uint64_t) op) ^ (b + 0x632be59bd9b4e019ULL));
    return h % 10 == 0;
}

generator::generator(const generator_params & params) : p(params), state(params.seed) {
    if (p.digits_min < 1 || p.digits_max > 18 || p.digits_min > p.digits_max) {
        throw std::invalid_argument("digits must be in 1..18, min <= max");
    }
    if (!p.add && !p.sub) throw std::invalid_argument("at least one operation");
    if (!(p.p_hard >= 0.0 && p.p_hard <= 1.0)) throw std::invalid_argument("p_hard must be in 0..1");
    if (!(p.p_sub >= 0.0 && p.p_sub <= 1.0)) throw std::invalid_argument("p_sub must be in 0..1");
}

uint64_t generator::next_u64() {
    state += 0x9e3779b97f4a7c15ULL;
    return mix64(state);
}

uint64_t generator::below(uint64_t n) {
    // Rejection sampling: no modulo bias.
    const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t       v;
    do {
        v = next_u64();
    } while (v >= limit);
    return v % n;
}

uint64_t generator::with_digits(int d) {
    if (d <= 1) return below(10);
    return pow10(d - 1) + below(pow10(d) - pow10(d - 1));
}

void generator::hard(op_t op, uint64_t & a, uint64_t & b) {
    const uint64_t span = (uint64_t) (p.digits_max - p.digits_min + 1);
    const int      la   = p.digits_min + (int) below(span);
    const int      lb   = p.digits_min + (int) below(span);
    a                   = with_digits(la);
    b                   = with_digits(lb);
    if (op == OP_SUB && la >= 2 && below(2)) {
        // b shares a's leading k digits: a - b starts with k zeros before they are dropped.
        const int      k    = 1 + (int) below((uint64_t) (la - 1));
        const uint64_t unit = pow10(la - k);
        b                   = a / unit * unit + below(unit);
    } else if (op == OP_ADD && below(3) == 0) {
        // A run of carries: a's low digits are nines, b's last digit is not zero.
        const int run = 1 + (int) below((uint64_t) la);
        const uint64_t unit = pow10(run);
        a = a / unit * unit + (unit - 1);
        if (b % 10 == 0) b += 1 + below(9);  // stays within its length: the last digit was 0
    }
}

uint64_t generator::slip(const problem & p) {
    for (;;) {
        std::string  s = p.answer;
        const size_t i = (size_t) below(s.size());
        switch (below(4)) {
            case 0: s[i] = (char) ('0' + ((s[i] - '0') + (below(2) ? 1 : 9)) % 10); break;  // off by one
            case 1: if (s.size() > 1) s.erase(i, 1); break;                                  // dropped
            case 2: s.insert(i, 1, s[i]); break;                                             // doubled
            default: if (i + 1 < s.size()) std::swap(s[i], s[i + 1]); break;                  // swapped
        }
        if (s.size() > 1 && s[0] == '0') continue;
        if (s.size() > 19) continue;
        const uint64_t v = std::stoull(s);
        if (s == p.answer || (p.op == OP_ADD && v < p.b)) continue;
        return v;
    }
}

problem generator::next(split_t split) {
    for (;;) {
        const bool sub = p.p_sub == 0.5 ? below(2) != 0 : (double) below(1000000) < p.p_sub * 1000000.0;
        const op_t op  = p.add && p.sub ? (sub ? OP_SUB : OP_ADD) : p.add ? OP_ADD : OP_SUB;
        uint64_t   a = 0, b = 0;
        if (p.p_hard > 0.0 && (double) below(1000000) < p.p_hard * 1000000.0) {
            hard(op, a, b);
        } else {
            const int digits = p.digits_min + (int) below((uint64_t) (p.digits_max - p.digits_min + 1));
            a                = below(pow10(digits));
            b                = below(pow10(digits));
        }
        if (op == OP_SUB && a < b) std::swap(a, b);
        if (held_out(op, a, b) != (split == SPLIT_TEST)) continue;
        return make_problem(op, a, b);
    }
}

}  // namespace muse::tasks
