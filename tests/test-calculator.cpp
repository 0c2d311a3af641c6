#include "agents/tools/calculator.h"
#include "core/number.h"

#include <gtest/gtest.h>

#include <string>

using muse::calc_result;
using muse::calculate;
using muse::normalize_number;

namespace {

const std::string MINUS  = "\xE2\x88\x92";  // U+2212
const std::string TIMES  = "\xC3\x97";      // U+00D7
const std::string DIVIDE = "\xC3\xB7";      // U+00F7

std::string value_of(const std::string & expr) {
    calc_result r = calculate(expr);
    EXPECT_TRUE(r.ok) << expr << ": " << r.error;
    return r.value;
}

// asserts failure and returns the message
std::string error_of(const std::string & expr) {
    calc_result r = calculate(expr);
    EXPECT_FALSE(r.ok) << expr << " gave " << r.value;
    EXPECT_TRUE(r.value.empty());
    return r.error;
}

std::string norm(const std::string & text) {
    std::string out = "<unchanged>";
    EXPECT_TRUE(normalize_number(text, out)) << text;
    return out;
}

}  // namespace

TEST(calculator, decimals_are_exact) {
    EXPECT_EQ(value_of("0.1+0.2"), "0.3");
    EXPECT_EQ(value_of("0.1 + 0.2 - 0.3"), "0");
    EXPECT_EQ(value_of("1.5 * 1.5"), "2.25");
    EXPECT_EQ(value_of("-17/8"), "-2.125");
    EXPECT_EQ(value_of(".5 + 5."), "5.5");
    EXPECT_TRUE(calculate("0.1+0.2").approx.empty());
}

TEST(calculator, fractions) {
    EXPECT_EQ(value_of("1/3+1/6"), "0.5");
    calc_result r = calculate("2/3");
    ASSERT_TRUE(r.ok);
    EXPECT_EQ(r.value, "2/3");
    EXPECT_EQ(r.approx, "0.666666666666667");
    r = calculate("-1/3");
    EXPECT_EQ(r.value, "-1/3");
    EXPECT_EQ(r.approx, "-0.333333333333333");
    EXPECT_EQ(value_of("6/4"), "1.5");
    EXPECT_EQ(value_of("10/5"), "2");
}

TEST(calculator, approx_uses_g_style) {
    EXPECT_EQ(calculate("100/3").approx, "33.3333333333333");
    EXPECT_EQ(calculate("1/300").approx, "0.00333333333333333");
    EXPECT_EQ(calculate("1/30000").approx, "3.33333333333333e-05");
    EXPECT_EQ(calculate("10^20/3").approx, "3.33333333333333e+19");
    EXPECT_EQ(calculate("1/7").approx, "0.142857142857143");
    // rounding that carries into a new digit
    EXPECT_EQ(calculate("9.9999999999999999/1").approx, "");
    EXPECT_EQ(calculate("(10^16 - 1/3) / 10^16").approx, "1");
}

TEST(calculator, big_integers) {
    EXPECT_EQ(value_of("2^100"), "1267650600228229401496703205376");
    EXPECT_EQ(value_of("2**100"), "1267650600228229401496703205376");
    EXPECT_EQ(value_of("99999999999999999999 * 99999999999999999999"), "9999999999999999999800000000000000000001");
    EXPECT_EQ(value_of("12345678901234567890123456789 / 3"), "4115226300411522630041152263");
    EXPECT_EQ(value_of("(2^200 + 1) - 2^200"), "1");
    EXPECT_EQ(value_of("3^200 / 3^198"), "9");
    EXPECT_EQ(value_of("2^-2"), "0.25");
    EXPECT_EQ(value_of("(2/3)^3"), "8/27");
    EXPECT_EQ(value_of("(-2)^3"), "-8");
    EXPECT_EQ(value_of("0^0"), "1");
    EXPECT_EQ(value_of("1^10000"), "1");
}

TEST(calculator, long_division_against_multiplication) {
    // exercises multi-limb quotient estimation: (a*b + r) / b == a + r/b
    const std::string a = "987654321098765432109876543210987654321";
    const std::string b = "123456789012345678901234567";
    EXPECT_EQ(value_of("(" + a + "*" + b + ") / " + b), a);
    EXPECT_EQ(value_of("(" + a + "*" + b + " + 7) mod " + b), "7");
    EXPECT_EQ(value_of("1000000000000000000 / 1000000001 * 1000000001"), "1000000000000000000");
}

TEST(calculator, percentages) {
    EXPECT_EQ(value_of("15% * 200"), "30");
    EXPECT_EQ(value_of("50%"), "0.5");
    EXPECT_EQ(value_of("200 * 7.5%"), "15");
    EXPECT_EQ(value_of("50%%"), "0.005");
}

TEST(calculator, thousands_separators) {
    EXPECT_EQ(value_of("1,000,000 / 1,000"), "1000");
    EXPECT_EQ(value_of("1,234.5 + 0.5"), "1235");
}

TEST(calculator, precedence_and_parentheses) {
    EXPECT_EQ(value_of("2 + 3 * 4"), "14");
    EXPECT_EQ(value_of("(2 + 3) * 4"), "20");
    EXPECT_EQ(value_of("10 - 4 - 3"), "3");
    EXPECT_EQ(value_of("100 / 10 / 5"), "2");
    EXPECT_EQ(value_of("2 ^ 3 ^ 2"), "512");
    EXPECT_EQ(value_of("2 * 3 ^ 2"), "18");
    EXPECT_EQ(value_of("((1 + 2) * (3 + 4)) / 7"), "3");
    EXPECT_EQ(value_of("6 " + TIMES + " 7 " + DIVIDE + " 2"), "21");
    EXPECT_EQ(value_of(" 1\t+\n2 "), "3");
}

TEST(calculator, unary_minus) {
    EXPECT_EQ(value_of("-5 + 3"), "-2");
    EXPECT_EQ(value_of("--5"), "5");
    EXPECT_EQ(value_of("-2^2"), "-4");
    EXPECT_EQ(value_of("(-2)^2"), "4");
    EXPECT_EQ(value_of("3 * -2"), "-6");
    EXPECT_EQ(value_of("+7"), "7");
    EXPECT_EQ(value_of(MINUS + "3 " + MINUS + " 1"), "-4");
    EXPECT_EQ(value_of("-0"), "0");
}

TEST(calculator, modulo) {
    EXPECT_EQ(value_of("7 mod 3"), "1");
    EXPECT_EQ(value_of("7mod3"), "1");
    EXPECT_EQ(value_of("-7 mod 3"), "2");
    EXPECT_EQ(value_of("7 mod -3"), "-2");
    EXPECT_EQ(value_of("6 mod 3"), "0");
    EXPECT_NE(error_of("7.5 mod 2").find("integer"), std::string::npos);
    EXPECT_NE(error_of("7 mod 0").find("division by zero"), std::string::npos);
}

TEST(calculator, scientific_notation) {
    EXPECT_EQ(value_of("1.5e3"), "1500");
    EXPECT_EQ(value_of("1e-3"), "0.001");
    EXPECT_EQ(value_of("2E+2 * 3"), "600");
}

TEST(calculator, errors_name_the_problem) {
    EXPECT_EQ(error_of(""), "empty expression");
    EXPECT_EQ(error_of("   "), "empty expression");
    EXPECT_EQ(error_of("1/0"), "division by zero at position 2");
    EXPECT_EQ(error_of("1 + 2 / (3 - 3)"), "division by zero at position 7");
    EXPECT_NE(error_of("0^-1").find("division by zero"), std::string::npos);
    EXPECT_NE(error_of("2 +").find("unexpected end of expression"), std::string::npos);
    EXPECT_EQ(error_of("abc"), "unexpected 'abc' at position 1");
    EXPECT_EQ(error_of("1+2x"), "unexpected 'x' at position 4");
    EXPECT_EQ(error_of("(1+2"), "missing ')' for '(' at position 1");
    EXPECT_NE(error_of("1+2)").find("unexpected ')'"), std::string::npos);
    EXPECT_NE(error_of("1,00").find("thousands separator"), std::string::npos);
    EXPECT_NE(error_of("1,0000").find("thousands separator"), std::string::npos);
    EXPECT_NE(error_of("1000,000").find("thousands separator"), std::string::npos);
    EXPECT_NE(error_of("1, 2").find("unexpected ','"), std::string::npos);
    EXPECT_NE(error_of("10 % 3").find("unexpected '3'"), std::string::npos);
    EXPECT_NE(error_of("2 ^ 0.5").find("exponent must be an integer"), std::string::npos);
    EXPECT_NE(error_of("2 3").find("unexpected '3'"), std::string::npos);
}

TEST(calculator, limits) {
    EXPECT_NE(error_of(std::string(2001, '1')).find("too long"), std::string::npos);
    EXPECT_TRUE(calculate("1" + std::string(999, '0')).ok);  // 1000 digits
    EXPECT_NE(error_of("1" + std::string(1000, '0')).find("number too large"), std::string::npos);
    EXPECT_NE(error_of("2^100000").find("exponent too large"), std::string::npos);
    EXPECT_NE(error_of("2^10000").find("number too large"), std::string::npos);
    EXPECT_NE(error_of("2^-10000").find("number too large"), std::string::npos);
    EXPECT_NE(error_of("2^2^2^2^2").find("exponent too large"), std::string::npos);
    EXPECT_NE(error_of("1e5000").find("number too large"), std::string::npos);
    EXPECT_NE(error_of("1e-5000").find("number too large"), std::string::npos);
    EXPECT_EQ(value_of("0e99999"), "0");
    EXPECT_NE(error_of("10^999 * 10").find("number too large (more than 1000 digits) at position"), std::string::npos);

    std::string ok_nesting = std::string(100, '(') + "1" + std::string(100, ')');
    EXPECT_EQ(value_of(ok_nesting), "1");
    std::string deep = std::string(101, '(') + "1" + std::string(101, ')');
    EXPECT_NE(error_of(deep).find("too deeply nested"), std::string::npos);
    std::string tower = "2";
    for (int i = 0; i < 150; ++i) {
        tower += "^1";
    }
    EXPECT_NE(error_of(tower).find("too deeply nested"), std::string::npos);
}

TEST(calculator, positions_count_characters_not_bytes) {
    // "×" is two bytes but one character
    EXPECT_EQ(error_of("2" + TIMES + "0 / 0"), "division by zero at position 5");
}

TEST(normalize_number, canonical_forms) {
    for (const char * s : { "1,000", "1000", "1000.0", "+1000", "1e3", "1 000", " 1000 " }) {
        EXPECT_EQ(norm(s), "1000") << s;
    }
    EXPECT_EQ(norm("0.50"), "0.5");
    EXPECT_EQ(norm("1/2"), "0.5");
    EXPECT_EQ(norm("2/6"), "1/3");
    EXPECT_EQ(norm("-0"), "0");
    EXPECT_EQ(norm("50%"), "0.5");
    EXPECT_EQ(norm("-1,234.50"), "-1234.5");
    EXPECT_EQ(norm(MINUS + "7"), "-7");
    EXPECT_EQ(norm("12 345 678"), "12345678");
    EXPECT_EQ(norm("-3/4"), "-0.75");
}

TEST(normalize_number, rejects_non_numbers) {
    for (const char * s :
         { "", "abc", "1,00", "12 34", "1+2", "1/0", "--1", "1 2", "0,5", "1.2.3", "$5", "x1", "1e" }) {
        std::string out = "kept";
        EXPECT_FALSE(normalize_number(s, out)) << s;
        EXPECT_EQ(out, "kept") << s;
    }
}
