// PII recognizers: RE2 candidates, validators, libphonenumber for phones (see pii.h).

#include "pii.h"

#include <arpa/inet.h>
#include <phonenumbers/phonenumbermatch.h>
#include <phonenumbers/phonenumbermatcher.h>
#include <phonenumbers/phonenumberutil.h>
#include <re2/re2.h>

#include <algorithm>
#include <cctype>
#include <cstring>

namespace muse {

const char * pii_type_name(pii_type t) {
    switch (t) {
        case PII_EMAIL: return "EMAIL";
        case PII_PHONE: return "PHONE";
        case PII_CARD: return "CARD";
        case PII_IBAN: return "IBAN";
        case PII_SSN: return "SSN";
        case PII_IP: return "IP";
        case PII_SECRET: return "SECRET";
        default: return "PII";
    }
}

// ---- validators ---------------------------------------------------------------------------

bool luhn_valid(std::string_view digits) {
    int  sum = 0, n = 0;
    bool dbl = false;
    for (size_t i = digits.size(); i-- > 0;) {
        const char c = digits[i];
        if (c == ' ' || c == '-') continue;
        if (c < '0' || c > '9') return false;
        int d = c - '0';
        if (dbl) d = d * 2 > 9 ? d * 2 - 9 : d * 2;
        sum += d;
        dbl = !dbl;
        n++;
    }
    return n >= 12 && sum % 10 == 0;
}

namespace {

// IBAN lengths by country (ISO 13616 registry, the common ones).
const std::map<std::string, int> & iban_lengths() {
    static const std::map<std::string, int> m = {
        { "AD", 24 }, { "AE", 23 }, { "AL", 28 }, { "AT", 20 }, { "AZ", 28 }, { "BA", 20 }, { "BE", 16 }, { "BG", 22 }, { "BH", 22 },
        { "BR", 29 }, { "CH", 21 }, { "CR", 22 }, { "CY", 28 }, { "CZ", 24 }, { "DE", 22 }, { "DK", 18 }, { "DO", 28 }, { "EE", 20 },
        { "EG", 29 }, { "ES", 24 }, { "FI", 18 }, { "FO", 18 }, { "FR", 27 }, { "GB", 22 }, { "GE", 22 }, { "GI", 23 }, { "GL", 18 },
        { "GR", 27 }, { "GT", 28 }, { "HR", 21 }, { "HU", 28 }, { "IE", 22 }, { "IL", 23 }, { "IS", 26 }, { "IT", 27 }, { "JO", 30 },
        { "KW", 30 }, { "KZ", 20 }, { "LB", 28 }, { "LI", 21 }, { "LT", 20 }, { "LU", 20 }, { "LV", 21 }, { "MC", 27 }, { "MD", 24 },
        { "ME", 22 }, { "MK", 19 }, { "MR", 27 }, { "MT", 31 }, { "MU", 30 }, { "NL", 18 }, { "NO", 15 }, { "PK", 24 }, { "PL", 28 },
        { "PS", 29 }, { "PT", 25 }, { "QA", 29 }, { "RO", 24 }, { "RS", 22 }, { "SA", 24 }, { "SE", 24 }, { "SI", 19 }, { "SK", 24 },
        { "SM", 27 }, { "TN", 24 }, { "TR", 26 }, { "UA", 29 }, { "VG", 24 }, { "XK", 20 },
    };
    return m;
}

bool card_prefix_known(std::string_view d) {
    auto p = [&](size_t n) { return n <= d.size() ? std::stoi(std::string(d.substr(0, n))) : -1; };
    const size_t len = d.size();
    if (d[0] == '4') return len == 13 || len == 16 || len == 19;                              // Visa
    if ((p(2) >= 51 && p(2) <= 55) || (p(4) >= 2221 && p(4) <= 2720)) return len == 16;       // Mastercard
    if (p(2) == 34 || p(2) == 37) return len == 15;                                           // American Express
    if (p(4) == 6011 || p(2) == 65 || (p(3) >= 644 && p(3) <= 649)) return len >= 16;         // Discover
    if (p(4) >= 3528 && p(4) <= 3589) return len >= 16;                                       // JCB
    if (p(2) == 36 || p(2) == 38 || (p(3) >= 300 && p(3) <= 305)) return len >= 14;           // Diners
    if (p(2) == 62) return len >= 16;                                                         // UnionPay
    return false;
}

std::string lower(std::string_view s) {
    std::string o(s);
    for (char & c : o) c = (char) std::tolower((unsigned char) c);
    return o;
}

bool word_byte(char c) {
    return std::isalnum((unsigned char) c) || c == '_';
}

}  // namespace

bool iban_valid(std::string_view in) {
    std::string s;
    for (char c : in) {
        if (c == ' ') continue;
        if (!std::isalnum((unsigned char) c)) return false;
        s += (char) std::toupper((unsigned char) c);
    }
    if (s.size() < 15 || s.size() > 34) return false;
    auto it = iban_lengths().find(s.substr(0, 2));
    if (it == iban_lengths().end() || (int) s.size() != it->second) return false;
    if (!std::isdigit((unsigned char) s[2]) || !std::isdigit((unsigned char) s[3])) return false;
    const std::string r = s.substr(4) + s.substr(0, 4);
    int rem = 0;
    for (char c : r) {
        if (std::isdigit((unsigned char) c)) rem = (rem * 10 + (c - '0')) % 97;
        else rem = (rem * 100 + (c - 'A' + 10)) % 97;
    }
    return rem == 1;
}

bool us_ssn_valid(std::string_view s) {
    if (s.size() == 11 && !(s[3] == s[6] && (s[3] == '-' || s[3] == ' '))) return false;  // AAA-GG-SSSS
    if (s.size() != 11 && s.size() != 9) return false;
    std::string d;
    for (char c : s) {
        if (c == '-' || c == ' ') continue;
        if (!std::isdigit((unsigned char) c)) return false;
        d += c;
    }
    if (d.size() != 9) return false;
    const int area = std::stoi(d.substr(0, 3)), group = std::stoi(d.substr(3, 2)), serial = std::stoi(d.substr(5, 4));
    return area != 0 && area != 666 && area < 900 && group != 0 && serial != 0;
}

bool email_tld_known(std::string_view tld) {
    static const char * k[] = {
        "com", "net", "org", "edu", "gov", "mil", "int", "info", "biz", "name", "pro", "io", "ai", "co", "app", "dev", "me", "tv", "xyz",
        "online", "site", "tech", "store", "blog", "cloud", "email", "mail", "shop", "news", "live", "life", "world", "eu", "asia",
        "uk", "de", "fr", "es", "it", "nl", "be", "ch", "at", "se", "no", "dk", "fi", "pl", "cz", "sk", "pt", "ie", "gr", "hu", "ro",
        "bg", "hr", "si", "lt", "lv", "ee", "lu", "is", "us", "ca", "mx", "br", "ar", "cl", "pe", "uy", "au", "nz", "jp", "cn", "kr",
        "tw", "hk", "sg", "in", "id", "my", "th", "vn", "ph", "ru", "ua", "tr", "il", "ae", "sa", "za", "ng", "ke", "eg", "ma",
    };
    const std::string t = lower(tld);
    for (const char * x : k) {
        if (t == x) return true;
    }
    return false;
}

// ---- the detector -------------------------------------------------------------------------

struct pii_detector::impl {
    pii_options opt;
    RE2         email{ R"(([A-Za-z0-9._%+\-]{1,64}@(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2,24}))" };
    RE2         card{ R"((\d(?:[ \-]?\d){12,18}))" };
    RE2         iban{ R"(([A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}))" };
    RE2         ssn{ R"((\d{3}[\- ]\d{2}[\- ]\d{4}))" };
    RE2         phone{ R"((\+?\(?\d[\d \-().\/]{5,24}\d))" };
    RE2         ipv4{ R"(((?:\d{1,3}\.){3}\d{1,3}))" };
    RE2         ipv6{ R"(([0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}))" };
    RE2         secret{ R"((sk-(?:proj-|ant-|muse-)?[A-Za-z0-9_\-]{20,}|gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,}|xox[baprs]-[A-Za-z0-9\-]{10,}|AKIA[0-9A-Z]{16}|AIza[0-9A-Za-z_\-]{35}|glpat-[A-Za-z0-9_\-]{20,}|eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}|-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED )?PRIVATE KEY-----[A-Za-z0-9+/=\r\n\t :.,\-]*?-----END (?:RSA |EC |DSA |OPENSSH |ENCRYPTED )?PRIVATE KEY-----))" };

    explicit impl(pii_options o) : opt(std::move(o)) {}

    // Every match of `re` in text: its first group's span.
    template <typename F> void each(const RE2 & re, std::string_view text, F && f) const {
        re2::StringPiece in(text.data(), text.size()), g;
        const char *     base = text.data();
        while (RE2::FindAndConsume(&in, re, &g)) {
            f((size_t) (g.data() - base), (size_t) (g.data() - base + g.size()));
            if (g.empty()) {
                if (in.empty()) break;
                in.remove_prefix(1);
            }
        }
    }
};

pii_detector::pii_detector(pii_options opt) : p(std::make_unique<impl>(std::move(opt))) {}
pii_detector::~pii_detector() = default;

std::vector<pii_match> pii_detector::find(std::string_view text_in) const {
    const std::string_view text = text_in.substr(0, std::min(text_in.size(), p->opt.max_text));
    struct cand {
        pii_match m;
        int       rank;  // lower wins an overlap
    };
    std::vector<cand> c;
    // Spans shaped like a card, an IBAN, an SSN or a dotted quad, valid or not: a phone number
    // is never read out of them (a card with a wrong check digit is not a phone number).
    std::vector<std::pair<size_t, size_t>> shaped;
    auto add = [&](pii_type t, size_t b, size_t e, const char * why, int rank) { c.push_back({ { t, b, e, why }, rank }); };
    // A candidate must not be part of a longer word or number.
    auto bounded = [&](size_t b, size_t e) { return (b == 0 || !word_byte(text[b - 1])) && (e >= text.size() || !word_byte(text[e])); };

    p->each(p->secret, text, [&](size_t b, size_t e) {
        if (!bounded(b, e) && text[b] != '-') return;
        add(PII_SECRET, b, e, text[b] == '-' ? "pem" : text.substr(b, 3) == "eyJ" ? "jwt" : "prefix", 0);
    });
    p->each(p->email, text, [&](size_t b, size_t e) {
        if (b > 0 && (word_byte(text[b - 1]) || strchr(".%+-", text[b - 1]))) return;
        const std::string_view v   = text.substr(b, e - b);
        const size_t           dot = v.rfind('.');
        if (dot == std::string_view::npos || !email_tld_known(v.substr(dot + 1))) return;
        if (e < text.size() && (std::isalnum((unsigned char) text[e]) || text[e] == '-')) return;
        if (v.front() == '.' || v.find("..") != std::string_view::npos) return;
        add(PII_EMAIL, b, e, "tld", 1);
    });
    p->each(p->iban, text, [&](size_t b, size_t e) {
        if (b > 0 && word_byte(text[b - 1])) return;
        // The country says how long it is: take that many characters (single spaces between).
        auto it = iban_lengths().find(std::string(text.substr(b, 2)));
        if (it == iban_lengths().end()) return;
        shaped.push_back({ b, e });
        size_t n = 0, end = b;
        for (size_t i = b; i < e && n < (size_t) it->second; ++i) {
            if (text[i] == ' ') continue;
            n++;
            end = i + 1;
        }
        if (n != (size_t) it->second || (end < text.size() && word_byte(text[end]))) return;
        if (iban_valid(text.substr(b, end - b))) add(PII_IBAN, b, end, "mod97", 2);
    });
    p->each(p->card, text, [&](size_t b, size_t e) {
        if (!bounded(b, e) || (b > 0 && text[b - 1] == '+')) return;  // +49 ...: a phone number
        for (const auto & [sb, se] : shaped) {
            if (b < se && sb < e) return;  // the digits of an IBAN-shaped string (its check failed): not a card
        }
        std::string d;
        for (size_t i = b; i < e; ++i) {
            if (std::isdigit((unsigned char) text[i])) d += text[i];
        }
        if (d.size() >= 13) shaped.push_back({ b, e });
        if (d.size() < 13 || d.size() > 19 || !card_prefix_known(d) || !luhn_valid(d)) return;
        add(PII_CARD, b, e, "luhn", 3);
    });
    p->each(p->ssn, text, [&](size_t b, size_t e) {
        if (!bounded(b, e)) return;
        const std::string_view v = text.substr(b, e - b);
        if (v[3] != v[6]) return;  // one separator throughout
        shaped.push_back({ b, e });
        if (us_ssn_valid(v)) add(PII_SSN, b, e, "ssn-rules", 4);
    });
    p->each(p->ipv4, text, [&](size_t b, size_t e) {
        shaped.push_back({ b, e });  // a dotted quad, an address or not, is not a phone number
        if (!bounded(b, e) || (b > 0 && text[b - 1] == '.') || (e < text.size() && text[e] == '.' && e + 1 < text.size() && std::isdigit((unsigned char) text[e + 1]))) return;
        const std::string v(text.substr(b, e - b));
        size_t            at = 0;
        for (int k = 0; k < 4; ++k) {
            const size_t dot = v.find('.', at);
            const std::string part = v.substr(at, dot == std::string::npos ? std::string::npos : dot - at);
            if (part.size() > 1 && part[0] == '0') return;  // leading zeros: a version or a date, not an address
            at = dot == std::string::npos ? v.size() : dot + 1;
        }
        in_addr a;
        if (inet_pton(AF_INET, v.c_str(), &a) == 1) add(PII_IP, b, e, "inet_pton", 5);
    });
    p->each(p->ipv6, text, [&](size_t b, size_t e) {
        if ((b > 0 && (std::isxdigit((unsigned char) text[b - 1]) || text[b - 1] == ':')) || (e < text.size() && std::isxdigit((unsigned char) text[e]))) return;
        const std::string v(text.substr(b, e - b));
        int hex = 0;
        for (char ch : v) hex += std::isxdigit((unsigned char) ch) ? 1 : 0;
        in6_addr a;
        if (hex >= 4 && (v.find("::") != std::string::npos || std::count(v.begin(), v.end(), ':') == 7) && inet_pton(AF_INET6, v.c_str(), &a) == 1) {
            add(PII_IP, b, e, "inet_pton6", 5);
        }
    });
    // Phones: RE2 finds the windows that could hold one (bounded by what is not a digit or a
    // word), libphonenumber reads each window for every region. (Given the whole text, it takes
    // ~50 µs a byte on a long run of digits.)
    p->each(p->phone, text, [&](size_t wb, size_t we) {
        if ((wb > 0 && (word_byte(text[wb - 1]) || text[wb - 1] == '+')) || (we < text.size() && word_byte(text[we]))) return;
        using namespace i18n::phonenumbers;
        const PhoneNumberUtil & util = *PhoneNumberUtil::GetInstance();
        const std::string       window(text.substr(wb, we - wb));
        for (const auto & region : p->opt.phone_regions) {
            PhoneNumberMatcher m(util, window, region, PhoneNumberMatcher::VALID, 64);
            while (m.HasNext()) {
                PhoneNumberMatch x;
                if (!m.Next(&x)) break;
                const size_t b = wb + (size_t) x.start(), e = b + (size_t) x.length();
                int          nd = 0;
                for (size_t i = b; i < e; ++i) nd += std::isdigit((unsigned char) text[i]) ? 1 : 0;
                if (nd < 8 && text[b] != '+') continue;  // 5-7 digits: an order or a code far more often than a phone
                bool in_shape = false;
                for (const auto & [sb, se] : shaped) in_shape |= b < se && sb < e;
                if (!in_shape) add(PII_PHONE, b, e, "libphonenumber", 6);
            }
        }
    });

    // Overlaps: the more specific type wins, then the longer span; duplicates go.
    std::sort(c.begin(), c.end(), [](const cand & a, const cand & b) {
        if (a.rank != b.rank) return a.rank < b.rank;
        return (a.m.end - a.m.begin) > (b.m.end - b.m.begin);
    });
    std::vector<pii_match> out;
    for (const auto & x : c) {
        bool clash = false;
        for (const auto & y : out) clash |= x.m.begin < y.end && y.begin < x.m.end;
        if (!clash) out.push_back(x.m);
    }
    std::sort(out.begin(), out.end(), [](const pii_match & a, const pii_match & b) { return a.begin < b.begin; });
    return out;
}

std::string pii_redactor::redact(std::string_view text, const pii_detector & d) {
    std::string out;
    size_t      at = 0;
    for (const auto & m : d.find(text)) {
        out.append(text.substr(at, m.begin - at));
        const std::string value(text.substr(m.begin, m.end - m.begin));
        auto              it = seen.find(value);
        if (it == seen.end()) {
            it = seen.emplace(value, "<" + std::string(pii_type_name(m.type)) + "_" + std::to_string(++next[m.type]) + ">").first;
        }
        out += it->second;
        at = m.end;
    }
    out.append(text.substr(at));
    return out;
}

}  // namespace muse
