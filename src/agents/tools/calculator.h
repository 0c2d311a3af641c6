#pragma once
// Exact calculator for agent tool calls: rational arithmetic over arbitrary-precision integers, so "0.1+0.2" is
// exactly "0.3" and the model never has to trust floating point.
//
//     calc_result r = muse::calculate("15% * 200");   // r.ok, r.value == "30"
//     calc_result e = muse::calculate("1/0");         // !e.ok, e.error == "division by zero at position 2"
//
// Grammar (whitespace is ignored between tokens):
//     expr    := term (('+' | '-') term)*
//     term    := unary (('*' | '/' | '×' | '÷' | 'mod') unary)*
//     unary   := ('+' | '-')* power                      -- so -2^2 == -4
//     power   := postfix (('^' | '**') unary)?           -- right-associative; integer exponent, |exp| <= 10000
//     postfix := primary '%'*                            -- '%' only ever means /100
//     primary := number | '(' expr ')'
//     number  := 1234 | 1,234,567 | 1.5 | .5 | 1.5e-3    -- ',' only between groups of exactly 3 digits
// '−' (U+2212) is accepted as a minus. 'mod' is floored (the result has the divisor's sign) and needs integers.
// Limits: 2000 characters of input, 100 levels of nesting, 1000 decimal digits in any numerator or denominator.
// Error positions are 1-based and count characters (UTF-8 code points); operator errors point at the operator.
//
// The tool: calculator_tool() is `calculator` in builtin_tools() ({"expression": "..."}).
//
// Thread safety: pure functions without shared state; call from any thread.

#include "agents/tools.h"

#include <string>

namespace muse {

struct calc_result {
    bool        ok = false;
    std::string value;   // canonical exact result: "-12", "0.3", "1/3"
    std::string approx;  // non-terminating fraction only: 15 significant digits ("0.333333333333333"), else empty
    std::string error;   // when !ok: one line naming what is wrong and where
};

calc_result calculate(const std::string & expression);

// The `calculator` tool over calculate().
tool_def calculator_tool();

// normalize_number, the vote's exact number comparison, lives in core/number.h.

}  // namespace muse
