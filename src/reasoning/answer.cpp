#include "answer.h"

#include "core/number.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <map>

namespace muse {

namespace {

const char * const MINUS_SIGN = "\xE2\x88\x92";  // U+2212

bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

bool is_alpha(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

bool is_alnum(char c) {
    return is_alpha(c) || is_digit(c);
}

char to_lower(char c) {
    return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c;
}

std::string lower(std::string s) {
    for (char & c : s) {
        c = to_lower(c);
    }
    return s;
}

std::string trim(const std::string & s) {
    size_t b = 0, e = s.size();
    while (b < e && is_space(s[b])) {
        ++b;
    }
    while (e > b && is_space(s[e - 1])) {
        --e;
    }
    return s.substr(b, e - b);
}

bool starts_with(const std::string & s, size_t at, const std::string & prefix) {
    return s.compare(at, prefix.size(), prefix) == 0;
}

bool ends_with(const std::string & s, const std::string & suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

size_t count_words(const std::string & s) {
    size_t n       = 0;
    bool   in_word = false;
    for (char c : s) {
        if (is_space(c)) {
            in_word = false;
        } else if (!in_word) {
            in_word = true;
            ++n;
        }
    }
    return n;
}

// Contents of the brace group opening at s[open] == '{' (unbalanced: the rest of the text); `end` is just past it.
std::string brace_group(const std::string & s, size_t open, size_t & end) {
    int depth = 0;
    for (size_t i = open; i < s.size(); ++i) {
        if (s[i] == '{') {
            ++depth;
        } else if (s[i] == '}' && --depth == 0) {
            end = i + 1;
            return s.substr(open + 1, i - open - 1);
        }
    }
    end = s.size();
    return s.substr(open + 1);
}

void replace_all(std::string & s, const std::string & from, const std::string & to) {
    for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size())) {
        s.replace(p, from.size(), to);
    }
}

// Just enough LaTeX for what models put in \boxed{} and $...$: fractions, \text{}, spacing and escapes.
std::string clean_latex(std::string s) {
    if (s.find('\\') == std::string::npos) {
        return s;
    }
    replace_all(s, "\\dfrac", "\\frac");
    replace_all(s, "\\tfrac", "\\frac");
    for (size_t p = s.find("\\frac"); p != std::string::npos; p = s.find("\\frac", p)) {
        size_t i = p + 5;
        while (i < s.size() && s[i] == ' ') {
            ++i;
        }
        if (i >= s.size() || s[i] != '{') {
            p += 5;
            continue;
        }
        size_t            mid = 0, end = 0;
        const std::string a = brace_group(s, i, mid);
        while (mid < s.size() && s[mid] == ' ') {
            ++mid;
        }
        if (mid >= s.size() || s[mid] != '{') {
            p += 5;
            continue;
        }
        const std::string b = brace_group(s, mid, end);
        s.replace(p, end - p, a + "/" + b);
    }
    for (const char * cmd : { "\\text", "\\textbf", "\\mathrm", "\\mathbf", "\\mbox" }) {
        const std::string open = std::string(cmd) + "{";
        for (size_t p = s.find(open); p != std::string::npos; p = s.find(open, p)) {
            size_t            end   = 0;
            const std::string inner = brace_group(s, p + open.size() - 1, end);
            s.replace(p, end - p, inner);
        }
    }
    replace_all(s, "^{\\circ}", "");
    replace_all(s, "^\\circ", "");
    replace_all(s, "\\left", "");
    replace_all(s, "\\right", "");
    replace_all(s, "\\%", "%");
    replace_all(s, "\\$", "$");
    replace_all(s, "\\,", "");
    replace_all(s, "\\!", "");
    replace_all(s, "\\;", " ");
    return s;
}

// Peels the formatting models wrap answers in ("**42**.", "$x$", "`B`", "\"Paris\"") and trailing punctuation.
std::string strip_wrappers(std::string s) {
    static const std::pair<const char *, const char *> pairs[] = {
        { "**", "**" },   { "__", "__" }, { "*", "*" }, { "_", "_" },
        { "`", "`" },     { "$$", "$$" }, { "$", "$" }, { "\\(", "\\)" },
        { "\\[", "\\]" }, { "\"", "\"" }, { "'", "'" }, { "\xE2\x80\x9C", "\xE2\x80\x9D" },  // “ ”
    };
    for (;;) {
        const std::string before = s;
        s                        = trim(s);
        while (!s.empty() && std::string(".,;:!?").find(s.back()) != std::string::npos) {
            s.pop_back();
        }
        // a lone "**" left over from a marker split ("**Answer:** 42", "answer is **42**") pairs with nothing
        for (const char * half : { "**", "__" }) {
            const std::string h = half;
            if (s.find(h) != std::string::npos && s.find(h) == s.rfind(h)) {
                if (starts_with(s, 0, h)) {
                    s.erase(0, h.size());
                } else if (ends_with(s, h)) {
                    s.resize(s.size() - h.size());
                }
            }
        }
        for (const auto & [open, close] : pairs) {
            const size_t no = std::char_traits<char>::length(open), nc = std::char_traits<char>::length(close);
            if (s.size() > no + nc && starts_with(s, 0, open) && ends_with(s, close)) {
                s = s.substr(no, s.size() - no - nc);
                break;
            }
        }
        if (s == before) {
            return s;
        }
    }
}

// An option letter: "(B)", "B)", "B", "option B", "choice (b)"; with `allow_trailing` also "(B) Paris", "B) Paris".
// A bare lowercase letter is not an option: "a" is far more often an article than a choice.
bool parse_option(const std::string & text, bool allow_trailing, std::string & letter) {
    std::string s      = trim(text);
    bool        prefix = false;
    for (const char * word : { "option", "choice" }) {
        const std::string w = word;
        if (lower(s.substr(0, w.size())) == w && s.size() > w.size() && is_space(s[w.size()])) {
            s      = trim(s.substr(w.size()));
            prefix = true;
            break;
        }
    }
    auto is_letter = [](char c, bool lower_ok) { return (c >= 'A' && c <= 'J') || (lower_ok && c >= 'a' && c <= 'j'); };
    size_t len     = 0;
    char   c       = 0;
    if (s.size() >= 3 && s[0] == '(' && s[2] == ')' && is_letter(s[1], true)) {
        c   = s[1];
        len = 3;
    } else if (s.size() >= 2 && s[1] == ')' && is_letter(s[0], true)) {
        c   = s[0];
        len = 2;
    } else if (!s.empty() && is_letter(s[0], prefix) && (s.size() == 1 || s[1] == '.' || s[1] == ':')) {
        c   = s[0];
        len = s.size() == 1 ? 1 : 2;
    } else {
        return false;
    }
    std::string rest = trim(s.substr(len));
    if (!rest.empty() && (!allow_trailing || !is_space(s[len]))) {
        return false;
    }
    letter = std::string(1, char(c >= 'a' ? c - 'a' + 'A' : c));
    return true;
}

// End of the number literal that starts at s[i] (i itself when there is none): an optional minus, digits with
// ",ddd" groups, a fraction part, "/digits", a '%'. Validity is left to normalize_number.
size_t scan_number(const std::string & s, size_t i) {
    size_t j = i;
    if (starts_with(s, j, "-")) {
        j += 1;
    } else if (starts_with(s, j, MINUS_SIGN)) {
        j += 3;
    }
    auto digits_at = [&](size_t k) {
        size_t n = 0;
        while (k + n < s.size() && is_digit(s[k + n])) {
            ++n;
        }
        return n;
    };
    size_t d = digits_at(j);
    if (d == 0) {
        return i;
    }
    j += d;
    while (j < s.size() && s[j] == ',' && digits_at(j + 1) == 3) {
        j += 4;
    }
    if (j < s.size() && s[j] == '.' && digits_at(j + 1) > 0) {
        j += 1 + digits_at(j + 1);
    }
    if (j < s.size() && s[j] == '/' && digits_at(j + 1) > 0) {
        j += 1 + digits_at(j + 1);
        if (j < s.size() && s[j] == '.' && digits_at(j + 1) > 0) {
            j += 1 + digits_at(j + 1);
        }
    }
    if (j < s.size() && s[j] == '%') {
        j += 1;
    }
    return j;
}

bool number_key(const std::string & s, std::string & key) {
    if (normalize_number(s, key)) {
        return true;
    }
    // currency signs carry no information when agents are compared on the same question
    for (const char * cur : { "$", "\xE2\x82\xAC", "\xC2\xA3" }) {  // $ € £
        const std::string c = cur;
        if (starts_with(s, 0, c) && normalize_number(s.substr(c.size()), key)) {
            return true;
        }
    }
    return false;
}

// lower-case ASCII, ASCII punctuation to spaces, drop articles, single spaces (SQuAD-style)
std::string span_key(const std::string & s) {
    std::string cleaned;
    for (char c : s) {
        const unsigned char u = static_cast<unsigned char>(c);
        cleaned += u >= 0x80 || is_alnum(c) ? to_lower(c) : ' ';
    }
    std::string key, word;
    auto        flush = [&]() {
        if (!word.empty() && word != "a" && word != "an" && word != "the") {
            key += (key.empty() ? "" : " ") + word;
        }
        word.clear();
    };
    for (char c : cleaned) {
        if (c == ' ') {
            flush();
        } else {
            word += c;
        }
    }
    flush();
    return key;
}

extracted_answer make_answer(answer_kind kind, const std::string & display, const std::string & key) {
    extracted_answer a;
    a.kind       = kind;
    a.display    = display;
    a.normalized = key;
    return a;
}

// Classifies one candidate answer: number, option letter or span.
extracted_answer classify(const std::string & candidate) {
    const std::string c = strip_wrappers(clean_latex(candidate));
    if (c.empty()) {
        return {};
    }
    std::string key;
    if (number_key(c, key)) {
        return make_answer(ANSWER_NUMBER, c, key);
    }
    // "x = 5", "2 + 3 = 5": the value is what comes after the last '='
    const size_t eq = c.rfind('=');
    if (eq != std::string::npos) {
        const std::string rhs = strip_wrappers(c.substr(eq + 1));
        if (number_key(rhs, key)) {
            return make_answer(ANSWER_NUMBER, rhs, key);
        }
    }
    if (parse_option(c, true, key)) {
        return make_answer(ANSWER_OPTION, c, key);
    }
    // "42 apples", "42, since ...": a leading number followed by words is the number
    const size_t start      = starts_with(c, 0, "$") ? 1 : 0;
    const size_t end        = scan_number(c, start);
    const bool   clause_end = end + 1 >= c.size() || is_space(c[end + 1]);  // "42, since" but not "1,00"
    if (end > start && end < c.size() && (is_space(c[end]) || ((c[end] == ',' || c[end] == ';') && clause_end))) {
        const std::string lit = c.substr(0, end);
        if (number_key(lit, key)) {
            return make_answer(ANSWER_NUMBER, lit, key);
        }
    }
    key = span_key(c);
    if (key.empty()) {
        return {};
    }
    return make_answer(ANSWER_SPAN, c, key);
}

// The answer text after a marker ending at `at`: skips "**", ':', '=' and "is", then takes the rest of the line
// up to the end of the sentence (the next line when the marker ends its line, as in a "Final answer" heading).
// Empty when no separator follows and `need_separator`.
std::string after_marker(const std::string & text, size_t at, bool need_separator) {
    size_t i   = at;
    bool   sep = false;
    for (;;) {
        while (i < text.size() && (text[i] == ' ' || text[i] == '\t' || text[i] == '*' || text[i] == '_')) {
            ++i;
        }
        if (i < text.size() && (text[i] == ':' || text[i] == '=')) {
            sep = true;
            ++i;
        } else if (i + 1 < text.size() && to_lower(text[i]) == 'i' && to_lower(text[i + 1]) == 's' &&
                   (i + 2 >= text.size() || !is_alnum(text[i + 2]))) {
            sep = true;
            i += 2;
        } else {
            break;
        }
    }
    size_t eol = text.find('\n', i);
    if (eol == std::string::npos) {
        eol = text.size();
    }
    std::string line = trim(text.substr(i, eol - i));
    if (line.empty()) {
        // heading style: the answer is on the next non-empty line
        size_t p = eol;
        while (line.empty() && p < text.size()) {
            size_t next = text.find('\n', p + 1);
            if (next == std::string::npos) {
                next = text.size();
            }
            line = trim(text.substr(p + 1, next - p - 1));
            p    = next;
        }
        sep = true;
    }
    if (need_separator && !sep) {
        return {};
    }
    for (const char * end : { ". ", ".\t", "; ", "! ", "? " }) {
        const size_t p = line.find(end);
        if (p != std::string::npos) {
            line.resize(p);
        }
    }
    return line;
}

extracted_answer from_markers(const std::string & text) {
    const std::string lo = lower(text);

    const size_t boxed = text.rfind("\\boxed");
    if (boxed != std::string::npos) {
        size_t i = boxed + 6;
        while (i < text.size() && text[i] == ' ') {
            ++i;
        }
        if (i < text.size() && text[i] == '{') {
            size_t           end = 0;
            extracted_answer a   = classify(brace_group(text, i, end));
            if (a.kind != ANSWER_NONE) {
                return a;
            }
        }
    }

    const size_t fin = lo.rfind("final answer");
    if (fin != std::string::npos) {
        extracted_answer a = classify(after_marker(text, fin + 12, true));
        if (a.kind != ANSWER_NONE) {
            return a;
        }
    }

    // the last "answer" that is followed by ':' / "is" / '='
    for (size_t p = lo.rfind("answer"); p != std::string::npos;
         p        = p == 0 ? std::string::npos : lo.rfind("answer", p - 1)) {
        if (p + 6 < lo.size() && is_alpha(lo[p + 6])) {
            continue;  // "answered", "answers"
        }
        const std::string candidate = after_marker(text, p + 6, true);
        if (candidate.empty()) {
            continue;
        }
        extracted_answer a = classify(candidate);
        if (a.kind != ANSWER_NONE) {
            return a;
        }
        break;
    }

    // bold on the last non-empty line
    const std::string t         = trim(text);
    const size_t      line_from = t.rfind('\n');
    const std::string last_line = line_from == std::string::npos ? t : t.substr(line_from + 1);
    const size_t      close     = last_line.rfind("**");
    if (close != std::string::npos && close >= 2) {
        const size_t open = last_line.rfind("**", close - 2);
        if (open != std::string::npos && close > open + 2) {
            extracted_answer a = classify(last_line.substr(open + 2, close - open - 2));
            if (a.kind != ANSWER_NONE) {
                return a;
            }
        }
    }
    return {};
}

extracted_answer last_number(const std::string & text) {
    extracted_answer best;
    for (size_t i = 0; i < text.size();) {
        const bool sign  = text[i] == '-' || starts_with(text, i, MINUS_SIGN);
        const bool start = (is_digit(text[i]) || sign) && (i == 0 || (!is_alnum(text[i - 1]) && text[i - 1] != '.'));
        if (!start) {
            ++i;
            continue;
        }
        const size_t end = scan_number(text, i);
        if (end == i) {
            ++i;
            continue;
        }
        const std::string lit = text.substr(i, end - i);
        std::string       key;
        if (normalize_number(lit, key)) {
            best = make_answer(ANSWER_NUMBER, lit, key);
        }
        i = end;
    }
    return best;
}

}  // namespace

extracted_answer extract_answer(const std::string & text) {
    try {
        const std::string t = trim(text);
        if (t.empty()) {
            return {};
        }
        extracted_answer a = from_markers(t);
        if (a.kind != ANSWER_NONE) {
            return a;
        }
        std::string letter;
        if (parse_option(strip_wrappers(t), false, letter)) {
            return make_answer(ANSWER_OPTION, t, letter);
        }
        const size_t words = count_words(t);
        if (words <= 8 && t.size() <= 80) {
            return classify(t);
        }
        if (words <= 40) {
            return last_number(t);
        }
    } catch (const std::exception &) {
        // fall through: no answer
    }
    return {};
}

const char * vote_rule_name(vote_rule r) {
    return r == VOTE_WEIGHTED ? "weighted" : "majority";
}

bool parse_vote_rule(const std::string & s, vote_rule & out) {
    if (s == "weighted") {
        out = VOTE_WEIGHTED;
        return true;
    }
    if (s == "majority") {
        out = VOTE_MAJORITY;
        return true;
    }
    return false;
}

vote_result majority_vote(const std::vector<ballot> & ballots, vote_rule rule) {
    vote_result res;
    try {
        std::vector<const ballot *> counted;
        for (const ballot & b : ballots) {
            if (b.answer.kind != ANSWER_NONE) {
                counted.push_back(&b);
            }
        }
        // agent order, so "first" means lowest index whatever order the ballots arrived in
        std::stable_sort(counted.begin(), counted.end(),
                         [](const ballot * a, const ballot * b) { return a->agent < b->agent; });

        // Weights in log space, shifted by the largest, so that exp never underflows to a tie.
        bool   weighted = rule == VOTE_WEIGHTED && !counted.empty();
        double max_lw   = -INFINITY;
        for (const ballot * b : counted) {
            weighted = weighted && b->has_weight && std::isfinite(b->log_weight);
            if (weighted) {
                max_lw = std::max(max_lw, b->log_weight);
            }
        }
        struct group {
            vote_tally_entry entry;
            double           conf_sum   = 0;
            int              conf_known = 0;
            double           w          = 0;  // sum of exp(log_weight - max_lw)
        };
        std::vector<group>            groups;
        std::map<std::string, size_t> index;
        for (const ballot * b : counted) {
            auto it = index.find(b->answer.normalized);
            if (it == index.end()) {
                it = index.emplace(b->answer.normalized, groups.size()).first;
                group g;
                g.entry.normalized = b->answer.normalized;
                g.entry.display    = b->answer.display;
                groups.push_back(std::move(g));
            }
            group & g = groups[it->second];
            g.entry.votes++;
            if (weighted) {
                g.w += std::exp(b->log_weight - max_lw);
            }
            g.entry.agents.push_back(b->agent);
            // 0 means unknown: averaging it in would make an unscored agent look surest
            if (b->confidence != 0) {
                g.conf_sum += b->confidence;
                g.conf_known++;
            }
        }
        res.voters = int(counted.size());
        if (groups.empty()) {
            return res;
        }
        double w_total = 0;
        for (const group & g : groups) {
            w_total += g.w;
        }
        for (group & g : groups) {
            g.entry.weight = weighted ? g.w / w_total : (double) g.entry.votes / (double) res.voters;
        }
        // groups were created in first-agent order, so a stable sort keeps that order among equal counts
        auto ahead = [&](const group & a, const group & b) {
            if (weighted && a.w != b.w) {
                return a.w > b.w;
            }
            return a.entry.votes > b.entry.votes;
        };
        std::stable_sort(groups.begin(), groups.end(), ahead);

        size_t tied = 1;
        while (tied < groups.size() && !ahead(groups[0], groups[tied])) {
            ++tied;
        }
        size_t winner = 0;
        if (tied > 1) {
            res.tie        = true;
            res.tie_break  = "first agent";
            bool all_known = true;
            for (size_t i = 0; i < tied; ++i) {
                all_known = all_known && groups[i].conf_known > 0;
            }
            if (all_known) {
                auto   mean  = [&](size_t i) { return groups[i].conf_sum / groups[i].conf_known; };
                size_t best  = 0;
                int    n_top = 1;
                for (size_t i = 1; i < tied; ++i) {
                    if (mean(i) > mean(best)) {
                        best  = i;
                        n_top = 1;
                    } else if (mean(i) == mean(best)) {
                        ++n_top;
                    }
                }
                // with equal best means the earliest such group (lowest first agent) keeps `best`
                winner = best;
                if (n_top == 1) {
                    res.tie_break = "confidence";
                }
            }
            std::rotate(groups.begin(), groups.begin() + winner, groups.begin() + winner + 1);
        }

        for (group & g : groups) {
            res.tally.push_back(std::move(g.entry));
        }
        res.decided    = true;
        res.normalized = res.tally[0].normalized;
        res.display    = res.tally[0].display;
        res.votes      = res.tally[0].votes;
        res.agreement  = double(res.votes) / res.voters;
        res.weighted   = weighted;
        res.weight     = res.tally[0].weight;
    } catch (const std::exception &) {
        res = {};
    }
    return res;
}

}  // namespace muse
