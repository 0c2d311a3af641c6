#include "arith.h"

#include <algorithm>
#include <stdexcept>

namespace muse::tasks {

namespace {

const char * k_place[] = { "Ones", "Tens", "Hundreds", "Thousands" };

std::string place_name(int i) {
    if (i < 4) return k_place[i];
    return "Column " + std::to_string(i + 1);
}

std::string padded(uint64_t v, int digits) {
    std::string s = std::to_string(v);
    return std::string((size_t) std::max(0, digits - (int) s.size()), '0') + s;
}

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

}  // namespace

problem make_problem(op_t op, uint64_t a, uint64_t b, int digits) {
    if (op == OP_SUB && a < b) throw std::invalid_argument("subtraction needs a >= b");
    const int   width = std::max({ digits, (int) std::to_string(a).size(), (int) std::to_string(b).size() });
    const char  sign  = op == OP_ADD ? '+' : '-';
    const std::string pa = padded(a, width), pb = padded(b, width);
    problem p;
    p.op       = op;
    p.a        = a;
    p.b        = b;
    p.question = "What is " + std::to_string(a) + " " + sign + " " + std::to_string(b) + "?";
    std::string r = "Pad to " + std::to_string(width) + " digits: " + pa + " " + sign + " " + pb + ".";
    std::string out(width, '0');
    int         carry = 0;
    for (int i = 0; i < width; ++i) {
        const int x = pa[width - 1 - i] - '0';
        const int y = pb[width - 1 - i] - '0';
        r += " " + place_name(i) + ": ";
        if (op == OP_ADD) {
            const int s = x + y + carry;
            r += std::to_string(x) + " + " + std::to_string(y) + (carry ? " + 1" : "") + " = " + std::to_string(s) +
                 ", write " + std::to_string(s % 10) + ", carry " + std::to_string(s / 10) + ".";
            out[width - 1 - i] = (char) ('0' + s % 10);
            carry              = s / 10;
        } else {
            int       d      = x - y - carry;
            const int borrow = d < 0 ? 1 : 0;
            if (borrow) d += 10;
            r += std::to_string(x) + " - " + std::to_string(y) + (carry ? " - 1" : "") +
                 (borrow ? ", borrow: " + std::to_string(x + 10) + " - " + std::to_string(y) + (carry ? " - 1" : "") : "") +
                 " = " + std::to_string(d) + ", write " + std::to_string(d) + ", borrow " + std::to_string(borrow) + ".";
            out[width - 1 - i] = (char) ('0' + d);
            carry              = borrow;
        }
    }
    if (op == OP_ADD && carry) {
        out = "1" + out;
        r += " The last carry 1 leads.";
    }
    const size_t nz = out.find_first_not_of('0');
    p.answer        = nz == std::string::npos ? "0" : out.substr(nz);
    r += " So " + std::to_string(a) + " " + sign + " " + std::to_string(b) + " = " + p.answer + ".";
    p.reasoning = r;
    return p;
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

problem generator::next(split_t split) {
    for (;;) {
        const op_t op     = p.add && p.sub ? (below(2) ? OP_SUB : OP_ADD) : p.add ? OP_ADD : OP_SUB;
        const int  digits = p.digits_min + (int) below((uint64_t) (p.digits_max - p.digits_min + 1));
        uint64_t   a      = below(pow10(digits));
        uint64_t   b      = below(pow10(digits));
        if (op == OP_SUB && a < b) std::swap(a, b);
        if (held_out(op, a, b) != (split == SPLIT_TEST)) continue;
        return make_problem(op, a, b, digits);
    }
}

}  // namespace muse::tasks
