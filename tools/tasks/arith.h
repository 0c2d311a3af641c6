#pragma once
// A verifiable task family: multi-digit addition and subtraction, each problem with the
// scratchpad a careful solver writes (one line per column, right to left: what is left of the
// operands, the column's digits with the carry or borrow, the result's digits so far) and the
// exact answer. Training data for Muse-Tiny and held-out test sets for `muse eval` come from
// here.
//
//   muse::tasks::generator g({ .digits_min = 3, .digits_max = 4, .seed = 7 });
//   muse::tasks::problem p = g.next(muse::tasks::SPLIT_TEST);
//   // p.question  "What is 487 + 356?"
//   // p.reasoning "487 + 356: 7 + 6 + 0 = 13, carry 1, so far 3.\n48 + 35: 8 + 5 + 1 = 14, ..."
//   // p.answer    "843"
//
// The split is a property of the problem, not of the seed: a problem is held out when a hash
// of (operation, a, b) falls in the test tenth, so no seed's training set ever contains a
// test problem.
//
// Thread safety: a generator belongs to one thread; the free functions are pure.

#include <cstdint>
#include <string>

namespace muse::tasks {

enum op_t { OP_ADD, OP_SUB };
enum split_t { SPLIT_TRAIN, SPLIT_TEST };

struct problem {
    op_t        op = OP_ADD;
    uint64_t    a = 0, b = 0;  // for subtraction a >= b
    std::string question, reasoning, answer;
};

// The problem for a op b, with its scratchpad.
problem make_problem(op_t op, uint64_t a, uint64_t b);

// A verifier's check of a candidate answer to p: the inverse operation's scratchpad (the
// candidate minus b for an addition, the candidate plus b for a subtraction), then its result
// compared with the question's first number digit by digit, right to left, up to the first
// pair that differs:
//   "Check 843 - 356 against 487.\n843 - 356: ...\nSo the answer is 487.\n
//    487 against 487: 7 and 7, 8 and 8, 4 and 4, the same."
// `right` says whether the candidate is the answer. Throws std::invalid_argument when the
// candidate cannot be checked this way (an addition's candidate below b).
std::string check_reasoning(const problem & p, uint64_t candidate, bool & right);

// True when the problem belongs to the held-out test split.
bool held_out(op_t op, uint64_t a, uint64_t b);

struct generator_params {
    int      digits_min = 3, digits_max = 3;  // operand length, 1..18 (each operand drawn with this many digits at most)
    bool     add = true, sub = true;          // which operations (at least one)
    uint64_t seed = 1;
    // Share of problems drawn from the hard cases that uniform operands rarely give (training
    // only; test sets stay uniform): each operand's length drawn on its own, so lengths differ
    // about as often as not; subtractions whose operands share their leading digits (a result
    // with leading zeros to drop); additions with a long run of carries.
    double   p_hard = 0.0;
    // Share of subtractions when both operations are on. At 0.5 the draws are those of a
    // generator without this field (a fair coin per problem).
    double   p_sub = 0.5;
};

class generator {
  public:
    explicit generator(const generator_params & p);
    // The next problem of `split` (drawn until one of that split comes).
    problem next(split_t split);
    // A wrong answer to p of the kind a solver's slip gives (a digit off by one, dropped,
    // doubled, or two digits swapped), never p's answer; for an addition, at least p.b.
    uint64_t slip(const problem & p);

  private:
    uint64_t         next_u64();
    uint64_t         below(uint64_t n);  // uniform in [0, n)
    uint64_t         with_digits(int d); // uniform among numbers of exactly d digits (0..9 for d = 1)
    void             hard(op_t op, uint64_t & a, uint64_t & b);
    generator_params p;
    uint64_t         state;
};

}  // namespace muse::tasks
