#include "router.h"

#include "core/utf8.h"

#include <algorithm>
#include <cctype>
#include <set>
#include <vector>

namespace muse {

static char lower(char c) {
    return (char) std::tolower((unsigned char) c);
}

// Keywords are written normalized (lowercase, words separated by one space). A trailing '*' matches any
// word starting with the stem ("compil*" -> compile, compiler, compiling); otherwise the whole word(s).
static const std::vector<const char *> MATH_WORDS = {
    "calculat*", "solve", "solving", "equation*", "how many", "how much", "probabilit*", "percent*", "integral*",
    "derivative*", "sqrt", "square root", "factorial", "arithmetic", "algebra*", "geometr*", "trigonometr*",
    "statistic*", "average", "mean of", "sum of", "math*", "theorem*", "logarithm*", "expected value", "variance",
    "matrix", "matrices", "polynomial*", "prime number*", "divisible", "modulo", "multiply", "divided by",
};

static const std::vector<const char *> CODE_WORDS = {
    "code", "coding", "function", "functions", "bug", "bugs", "debug*", "compil*", "program*", "script*", "regex*",
    "api", "apis", "stack trace", "stacktrace", "segfault", "exception", "syntax error", "runtime error",
    "refactor*", "implement*", "algorithm*", "unit test*", "sql", "python", "javascript", "typescript", "java",
    "rust", "golang", "kotlin", "swift", "ruby", "php", "haskell", "scala", "bash", "html", "css", "json", "yaml",
    "cpp", "cmake", "github", "git", "docker", "kubernetes", "linux", "npm", "lambda", "null pointer",
};

// Raw (lowercased, not normalized) fragments that only occur in code.
static const std::vector<const char *> CODE_FRAGMENTS = {
    "```", "#include", "std::", "c++", "c#", "();", "console.log", "printf(", "print(", "def ", "=>",
};

static const std::vector<const char *> MATH_FRAGMENTS = {
    "\xc3\x97",      // ×
    "\xc3\xb7",      // ÷
    "\xe2\x88\x9a",  // √
    "\xe2\x88\x91",  // ∑
    "\xe2\x88\xab",  // ∫
    "\xcf\x80",      // π
    "\xe2\x89\xa4",  // ≤
    "\xe2\x89\xa5",  // ≥
    "\xe2\x89\xa0",  // ≠
};

static const std::vector<const char *> MULTI_STEP_WORDS = {
    "step by step", "plan", "plans", "planning", "compar*", "pros and cons", "trade off*", "tradeoff*", "prove",
    "proof", "design*", "analy*", "evaluat*", "strateg*", "outline", "break down", "walk me through", "derive",
    "versus", "vs", "architect*", "roadmap", "in depth", "multi step",
};

static const std::vector<const char *> CASUAL_WORDS = {
    "hi", "hello", "hey", "hiya", "howdy", "yo", "sup", "thanks", "thank you", "thank u", "thx", "ty", "cheers",
    "good morning", "good afternoon", "good evening", "good night", "how are you", "how r u", "how s it going",
    "how is it going", "what s up", "whats up", "bye", "goodbye", "see you", "see ya", "nice to meet you", "lol",
    "haha", "ok", "okay", "cool", "great", "awesome", "nice", "who are you", "what is your name",
    "what s your name",
};

// With attachments these mean "work through the attached data", which rule 4 sends to contemplating.
static const std::vector<const char *> ANALYSIS_WORDS = {
    "analy*", "compar*", "summar*", "trend*", "insight*", "correlat*", "pattern*", "interpret*", "evaluat*",
    "statistic*", "break down", "breakdown", "outlier*", "anomal*", "distribution",
};

// " word word " with ASCII letters lowercased and ASCII punctuation as separators; non-ASCII bytes stay part of
// words so UTF-8 text is never split inside a character.
static std::string normalize(const std::string & text) {
    std::string out = " ";
    for (char c : text) {
        const unsigned char u = (unsigned char) c;
        if (u >= 0x80 || std::isalnum(u)) {
            out += lower(c);
        } else if (out.back() != ' ') {
            out += ' ';
        }
    }
    if (out.back() != ' ') {
        out += ' ';
    }
    return out;
}

// The first keyword found in the normalized text, as written there ("analy*" -> "analyze"), or "".
// edges_only: the keyword must open or close the text, as greetings and thanks do.
static std::string find_word(const std::string & norm, const std::vector<const char *> & words,
                             bool edges_only = false) {
    for (const char * w : words) {
        std::string key    = w;
        const bool  prefix = !key.empty() && key.back() == '*';
        if (prefix) {
            key.pop_back();
        }
        const std::string needle = " " + key + (prefix ? "" : " ");
        size_t            pos    = norm.find(needle);
        if (edges_only && pos != 0) {
            pos = norm.size() >= needle.size() ? norm.size() - needle.size() : std::string::npos;
            if (pos == std::string::npos || prefix || norm.compare(pos, needle.size(), needle) != 0) {
                continue;
            }
        }
        if (pos != std::string::npos) {
            if (!prefix) {
                return key;
            }
            const size_t end = norm.find(' ', pos + 1);
            return norm.substr(pos + 1, end - pos - 1);
        }
    }
    return "";
}

static std::string find_fragment(const std::string & lowered, const std::vector<const char *> & fragments) {
    for (const char * f : fragments) {
        if (lowered.find(f) != std::string::npos) {
            return f;
        }
    }
    return "";
}

static bool is_operand_char(char c) {
    return std::isalnum((unsigned char) c) || c == '.' || c == ')' || c == '(';
}

// An arithmetic operator between two operands, at least one of them holding a digit: "3x + 5", "2^10", "1/2",
// "x=4". '-' counts only between spaces or digits so "covid-19" doesn't; dates don't either.
static std::string find_expression(const std::string & s) {
    const std::string ops = "+-*/^=";
    for (size_t i = 0; i < s.size(); ++i) {
        if (ops.find(s[i]) == std::string::npos) {
            continue;
        }
        size_t l = i;
        while (l > 0 && s[l - 1] == ' ') {
            --l;
        }
        size_t r = i + 1;
        while (r < s.size() && s[r] == ' ') {
            ++r;
        }
        if (l == 0 || r >= s.size() || !is_operand_char(s[l - 1]) || !is_operand_char(s[r])) {
            continue;
        }
        bool   digit = false;
        size_t k     = l;
        for (; k > 0 && is_operand_char(s[k - 1]); --k) {
            digit = digit || std::isdigit((unsigned char) s[k - 1]);
        }
        bool chained = k > 0 && s[k - 1] == s[i];
        const bool right_digit = std::isdigit((unsigned char) s[r]);
        for (k = r; k < s.size() && is_operand_char(s[k]); ++k) {
            digit = digit || std::isdigit((unsigned char) s[k]);
        }
        chained = chained || (k < s.size() && s[k] == s[i]);
        if (!digit) {
            continue;
        }
        const bool spaced = l < i && r > i + 1;
        if (s[i] == '-' && !spaced && !(std::isdigit((unsigned char) s[l - 1]) && right_digit)) {
            continue;
        }
        if ((s[i] == '-' || s[i] == '/') && !spaced && chained) {
            continue;  // a date or a code like 2024-05-01, 05/01/2024, 24/7/365
        }
        return std::string(1, s[i]);
    }
    // A percentage: "15%".
    for (size_t i = 1; i < s.size(); ++i) {
        if (s[i] == '%' && std::isdigit((unsigned char) s[i - 1])) {
            return "%";
        }
    }
    return "";
}

// Numbered items "1." / "2)" at the start of a line or after whitespace; both 1 and 2 must appear so a lone
// "version 2." is not a list.
static bool has_enumeration(const std::string & s) {
    std::set<int> seen;
    for (size_t i = 0; i < s.size(); ++i) {
        if (!std::isdigit((unsigned char) s[i]) || (i > 0 && !std::isspace((unsigned char) s[i - 1]))) {
            continue;
        }
        size_t j = i;
        int    n = 0;
        while (j < s.size() && j < i + 2 && std::isdigit((unsigned char) s[j])) {
            n = n * 10 + (s[j] - '0');
            ++j;
        }
        const bool marker = j < s.size() && (s[j] == '.' || s[j] == ')');
        if (marker && (j + 1 == s.size() || std::isspace((unsigned char) s[j + 1]))) {
            seen.insert(n);
        }
    }
    return seen.count(1) && seen.count(2);
}

struct feature_triggers {
    std::string math, code, multi_step, casual, analysis;
};

static route_features extract(const std::string & text, int attachments, feature_triggers & why) {
    route_features f;
    f.attachments = std::max(0, attachments);

    f.chars = (int) utf8_length(text);
    bool in_word = false;
    for (size_t i = 0; i < text.size(); ++i) {
        const unsigned char c = (unsigned char) text[i];
        if (c == '?') {
            ++f.questions;
        } else if (c == 0xEF && text.compare(i, 3, "\xef\xbc\x9f") == 0) {  // full-width '?'
            ++f.questions;
        }
        const bool space = c < 0x80 && std::isspace(c);
        if (!space && !in_word) {
            ++f.words;
        }
        in_word = !space;
    }

    std::string lowered(text.size(), '\0');
    std::transform(text.begin(), text.end(), lowered.begin(), lower);
    const std::string norm = normalize(text);

    why.math = find_word(norm, MATH_WORDS);
    if (why.math.empty()) {
        why.math = find_expression(lowered);
    }
    if (why.math.empty()) {
        why.math = find_fragment(lowered, MATH_FRAGMENTS);
    }
    why.code = find_word(norm, CODE_WORDS);
    if (why.code.empty()) {
        why.code = find_fragment(lowered, CODE_FRAGMENTS);
    }
    why.multi_step = find_word(norm, MULTI_STEP_WORDS);
    if (why.multi_step.empty() && has_enumeration(text)) {
        why.multi_step = "1. 2.";
    }
    why.analysis = find_word(norm, ANALYSIS_WORDS);

    f.math       = !why.math.empty();
    f.code       = !why.code.empty();
    f.multi_step = !why.multi_step.empty();
    if (!f.math && !f.code && !f.multi_step && f.words <= ROUTE_CASUAL_MAX_WORDS) {
        why.casual = find_word(norm, CASUAL_WORDS, true);
        f.casual   = !why.casual.empty();
    }
    return f;
}

route_features route_extract_features(const std::string & text, int attachments) {
    feature_triggers why;
    return extract(text, attachments, why);
}

static std::string quoted(const std::string & s) {
    return "'" + s + "'";
}

route_decision route_request(const std::string & text, int attachments) {
    route_decision   d;
    feature_triggers why;
    d.features      = extract(text, attachments, why);
    const auto & f = d.features;

    std::vector<std::string> hard;
    if (f.math) {
        hard.push_back("math (" + quoted(why.math) + ")");
    }
    if (f.code) {
        hard.push_back("code (" + quoted(why.code) + ")");
    }
    if (f.multi_step) {
        hard.push_back("multi-step (" + quoted(why.multi_step) + ")");
    }
    std::string hard_list;
    for (size_t i = 0; i < hard.size(); ++i) {
        hard_list += (i ? " + " : "") + hard[i];
    }
    const std::string n_words = std::to_string(f.words) + " words";

    if (f.casual) {
        d.mode   = MODE_INSTANT;
        d.reason = "casual small talk (" + quoted(why.casual) + ", " + n_words + ")";
    } else if (hard.size() >= 2 && f.words >= ROUTE_SHORT_WORDS) {
        d.mode   = MODE_CONTEMPLATING;
        d.reason = "hard: " + hard_list + " in " + n_words;
    } else if (f.words > ROUTE_LONG_WORDS && f.questions > 0) {
        d.mode   = MODE_CONTEMPLATING;
        d.reason = "long request (" + n_words + ") with " + std::to_string(f.questions) + " question(s)";
    } else if (f.attachments > 0 && !why.analysis.empty()) {
        d.mode   = MODE_CONTEMPLATING;
        d.reason = std::to_string(f.attachments) + " attachment(s) with analysis (" + quoted(why.analysis) + ")";
    } else if (!hard.empty()) {
        d.mode   = MODE_THINKING;
        d.reason = hard_list + (hard.size() >= 2 ? " in a short request (" + n_words + ")" : "");
    } else if (f.words >= ROUTE_SHORT_WORDS) {
        d.mode   = MODE_THINKING;
        d.reason = "medium length (" + n_words + ")";
    } else {
        d.mode   = MODE_INSTANT;
        d.reason = "short request (" + n_words + ") with no math, code or multi-step signals";
    }
    return d;
}

}  // namespace muse
