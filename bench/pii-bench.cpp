// muse-pii-bench: precision and recall of Muse's PII recognizers (safety/pii.h) per type, on a
// generated, labelled corpus: valid values (cards with a right Luhn digit, IBANs with right
// check digits for their country, SSNs that follow the rules, phone numbers libphonenumber's
// metadata calls valid, e-mails, IPv4/IPv6 addresses, secrets with known prefixes, JWTs, PEM
// keys) and look-alikes that must not match (a broken check digit, an SSN in area 000, 666 or
// 9xx, an unknown top-level domain, 256.1.1.1, a short token), in sentences of English, German,
// French and Spanish with distractors (prices, dates, times, order numbers, versions).
// A match is right when its type and span equal a planted value's.
//
// usage: muse-pii-bench [--per-type N] [--seed S] [--json] [--show-errors N]

#include "safety/pii.h"

#include <phonenumbers/phonenumberutil.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

using namespace muse;

namespace {

std::mt19937_64 rng;
int    uni(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }
template <typename T> const T & pick(const std::vector<T> & v) { return v[(size_t) uni(0, (int) v.size() - 1)]; }
std::string digits(int n) {
    std::string s;
    for (int i = 0; i < n; ++i) s += (char) ('0' + uni(0, 9));
    return s;
}
std::string alnum(int n, const char * set = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") {
    std::string s;
    const int   k = (int) strlen(set);
    for (int i = 0; i < n; ++i) s += set[uni(0, k - 1)];
    return s;
}

char luhn_digit(const std::string & body) {
    int  sum = 0;
    bool dbl = true;
    for (size_t i = body.size(); i-- > 0;) {
        int d = body[i] - '0';
        if (dbl) d = d * 2 > 9 ? d * 2 - 9 : d * 2;
        sum += d;
        dbl = !dbl;
    }
    return (char) ('0' + (10 - sum % 10) % 10);
}
std::string group(const std::string & s, int every, char sep) {
    std::string o;
    for (size_t i = 0; i < s.size(); ++i) {
        if (i && i % every == 0) o += sep;
        o += s[i];
    }
    return o;
}

std::string card(bool valid) {
    const std::vector<std::pair<std::string, int>> kinds = { { "4", 16 }, { "51", 16 }, { "55", 16 }, { "2221", 16 }, { "34", 15 }, { "37", 15 },
                                                             { "6011", 16 }, { "3530", 16 } };
    const auto & [pre, len] = pick(kinds);
    std::string body = pre + digits(len - 1 - (int) pre.size());
    char        check = luhn_digit(body);
    if (!valid) check = (char) ('0' + (check - '0' + uni(1, 9)) % 10);
    const std::string n = body + check;
    switch (uni(0, 2)) {
        case 0: return n;
        case 1: return len == 15 ? n.substr(0, 4) + " " + n.substr(4, 6) + " " + n.substr(10) : group(n, 4, ' ');
        default: return group(n, 4, '-');
    }
}

std::string iban(bool valid) {
    struct spec { const char * cc; const char * shape; };  // shape: 9 = digit, A = letter
    static const std::vector<spec> specs = { { "DE", "999999999999999999" }, { "GB", "AAAA99999999999999" }, { "FR", "99999999999999999999999" },
                                             { "ES", "99999999999999999999" }, { "IT", "A9999999999999999999999" }, { "NL", "AAAA9999999999" },
                                             { "BE", "999999999999" }, { "AT", "9999999999999999" } };
    const spec & s = pick(specs);
    std::string  bban;
    for (const char * c = s.shape; *c; ++c) bban += *c == '9' ? (char) ('0' + uni(0, 9)) : (char) ('A' + uni(0, 25));
    const std::string r = bban + s.cc + "00";
    int rem = 0;
    for (char c : r) rem = std::isdigit((unsigned char) c) ? (rem * 10 + (c - '0')) % 97 : (rem * 100 + (c - 'A' + 10)) % 97;
    int check = 98 - rem;
    if (!valid) check = (check + uni(1, 96)) % 97 + 1 == check ? check % 97 + 1 : (check + uni(1, 96)) % 97 + 1;
    if (!valid && check == 98 - rem) check = check == 2 ? 3 : 2;
    char cd[3];
    snprintf(cd, sizeof(cd), "%02d", check);
    const std::string n = std::string(s.cc) + cd + bban;
    return uni(0, 1) ? n : group(n, 4, ' ');
}

std::string ssn(bool valid) {
    int area = uni(1, 899), grp = uni(1, 99), ser = uni(1, 9999);
    if (area == 666) area = 665;
    if (!valid) {
        switch (uni(0, 4)) {
            case 0: area = 0; break;
            case 1: area = 666; break;
            case 2: area = uni(900, 999); break;
            case 3: grp = 0; break;
            default: ser = 0; break;
        }
    }
    char b[16];
    snprintf(b, sizeof(b), "%03d-%02d-%04d", area, grp, ser);
    return b;
}

std::string email(bool valid) {
    static const std::vector<std::string> first = { "anna", "jonas", "marie", "lucas", "sofia", "mateo", "emma", "noah", "chloe", "liam" };
    static const std::vector<std::string> last  = { "schmidt", "martin", "garcia", "rossi", "smith", "dubois", "lopez", "muller" };
    static const std::vector<std::string> doms  = { "examplemail.com", "post.de", "orange.fr", "uni-bonn.de", "company.co.uk", "correo.es",
                                                    "studio.io", "mail.example.org" };
    static const std::vector<std::string> bad   = { "host.invalidtld", "localhost", "server.local", "image.png", "report.docx", "domain.zzz" };
    const std::string user = uni(0, 5) == 0 ? std::string("Support") : uni(0, 2) == 0 ? pick(first) + "." + pick(last) : uni(0, 1) ? pick(first) + "_" + pick(last) + digits(2)
                                                                                        : pick(first) + "+news";
    return user + "@" + (valid ? pick(doms) : pick(bad));
}

std::string ip(bool valid) {
    if (valid) {
        if (uni(0, 3)) return std::to_string(uni(1, 223)) + "." + std::to_string(uni(0, 255)) + "." + std::to_string(uni(0, 255)) + "." + std::to_string(uni(1, 254));
        char b[64];
        if (uni(0, 1)) {
            snprintf(b, sizeof(b), "2001:db8:%x:%x::%x", uni(0, 0xffff), uni(0, 0xffff), uni(1, 0xffff));
        } else {
            snprintf(b, sizeof(b), "fe80:0:0:0:%x:%x:%x:%x", uni(0, 0xffff), uni(0, 0xffff), uni(0, 0xffff), uni(1, 0xffff));
        }
        return b;
    }
    switch (uni(0, 2)) {
        case 0: return std::to_string(uni(256, 999)) + "." + std::to_string(uni(0, 255)) + ".1." + std::to_string(uni(1, 254));
        case 1: return "10." + std::to_string(uni(0, 255)) + "." + std::to_string(uni(0, 255));
        default: return "12:" + std::to_string(uni(10, 59)) + ":" + std::to_string(uni(10, 59));
    }
}

std::string b64url(const std::string & in) {
    static const char * t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string o;
    int         val = 0, bits = -6;
    for (unsigned char c : in) {
        val = (val << 8) + c;
        bits += 8;
        while (bits >= 0) {
            o += t[(val >> bits) & 0x3F];
            bits -= 6;
        }
    }
    if (bits > -6) o += t[((val << 8) >> (bits + 8)) & 0x3F];
    return o;
}

std::string secret(bool valid) {
    if (!valid) {
        const std::vector<std::string> bad = { "sk-" + alnum(8), "ghp_" + alnum(10), "AKIA" + digits(5), "eyJhbGciOi", "token-" + alnum(12),
                                               "BEGIN PRIVATE KEY" };
        return pick(bad);
    }
    switch (uni(0, 6)) {
        case 0: return "sk-proj-" + alnum(48);
        case 1: return "ghp_" + alnum(36);
        case 2: return "AKIA" + alnum(16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567");
        case 3: return "AIza" + alnum(35);
        case 4: return "xoxb-" + digits(12) + "-" + alnum(24);
        case 5: return b64url(R"({"alg":"HS256","typ":"JWT"})") + "." + b64url("{\"sub\":\"" + digits(8) + "\",\"name\":\"x\"}") + "." + alnum(43);
        default: return "-----BEGIN RSA PRIVATE KEY-----\n" + alnum(64) + "\n" + alnum(64) + "\n-----END RSA PRIVATE KEY-----";
    }
}

std::string phone(bool valid) {
    using namespace i18n::phonenumbers;
    const PhoneNumberUtil & u = *PhoneNumberUtil::GetInstance();
    static const std::vector<std::string> regions = { "US", "GB", "DE", "FR", "ES", "IT" };
    if (!valid) {
        const std::vector<std::string> bad = { "12345", "0000 000", "+1 000 000 0000", "555-01", "99 99", "#" + digits(6) };
        return pick(bad);
    }
    for (;;) {
        const std::string region = pick(regions);
        PhoneNumber       n;
        if (!u.GetExampleNumberForType(region, uni(0, 1) ? PhoneNumberUtil::MOBILE : PhoneNumberUtil::FIXED_LINE, &n)) continue;
        uint64_t nat = n.national_number();
        nat          = nat - nat % 1000 + (uint64_t) uni(0, 999);
        n.set_national_number(nat);
        if (!u.IsValidNumber(n)) continue;
        std::string out;
        const PhoneNumberUtil::PhoneNumberFormat f[] = { PhoneNumberUtil::INTERNATIONAL, PhoneNumberUtil::NATIONAL, PhoneNumberUtil::E164,
                                                         PhoneNumberUtil::INTERNATIONAL };
        u.Format(n, f[uni(0, 3)], &out);
        if (region == "US" && uni(0, 3) == 0) {  // 415.555.2671, as people write it
            u.Format(n, PhoneNumberUtil::NATIONAL, &out);
            std::string d;
            for (char c : out) if (std::isdigit((unsigned char) c)) d += c;
            if (d.size() == 10) out = d.substr(0, 3) + "." + d.substr(3, 3) + "." + d.substr(6);
        }
        return out;
    }
}

struct planted {
    pii_type type;
    size_t   begin, end;
};

}  // namespace

int main(int argc, char ** argv) {
    int      per_type = 2000;
    uint64_t seed     = 20261201;
    bool     json     = false;
    int      show     = 0;  // --show-errors N: print the first N wrong or missed matches
    for (int i = 1; i < argc; ++i) {
        if (!strcmp(argv[i], "--show-errors") && i + 1 < argc) { show = atoi(argv[++i]); continue; }
        if (!strcmp(argv[i], "--per-type") && i + 1 < argc) per_type = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc) seed = strtoull(argv[++i], nullptr, 10);
        else if (!strcmp(argv[i], "--json")) json = true;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: muse-pii-bench [--per-type N (1-100000, default 2000)] [--seed S] [--json] [--show-errors N]\n");
            return 0;
        } else {
            fprintf(stderr, "muse-pii-bench: unknown option %s (see --help)\n", argv[i]);
            return 2;
        }
    }
    if (per_type < 1 || per_type > 100000) {
        fprintf(stderr, "muse-pii-bench: --per-type must be in [1, 100000]\n");
        return 2;
    }
    rng.seed(seed);
    using gen = std::string (*)(bool);
    const gen gens[PII_TYPE_COUNT] = { email, phone, card, iban, ssn, ip, secret };
    const std::vector<std::string> templates = {
        "Please send it to {} before Friday; order #{n} costs $12.50.",
        "Kontakt: {} (seit 14.03.2026, Version 2.10.3).",
        "Mon contact est {}, rendez-vous à 14:30 le 2026-03-14.",
        "Puedes escribirme a {} o pasar el lunes, pedido {n}.",
        "The value on the form was {} and the reference 48213-77.",
        "{} was in the log next to build 1.4.2 and port 8080.",
        "Note for Anna: {}. Total €1,299.00 for 3 items.",
    };
    // Hard look-alikes beside every value: identifiers that are none of the types.
    const std::vector<std::string> distractors = {
        "ISBN 978-3-16-148410-0", "order 550e8400-e29b-41d4-a716-446655440000", "MAC 00:1A:2B:3C:4D:5E", "ts 1701436800123",
        "tracking 1Z999AA10123456784", "build 20260314.1142", "version 10.2.0.1442", "invoice 2026/00451", "EAN 4006381333931",
        "lot 12-3456-7890", "localhost:8080", "photo IMG_20260314_142233.jpg", "ref DE-2026-0001",
        "at 09:41:07", "price 1 299,00 €", "case #1234567", "ticket 0044-1234-5678", "hex 0xDEADBEEF", "rev a1b2c3d",
    };
    const pii_detector d;
    int tp[PII_TYPE_COUNT] = {}, fp[PII_TYPE_COUNT] = {}, fn[PII_TYPE_COUNT] = {};
    double scan_ms = 0;
    size_t scanned = 0;
    for (int t = 0; t < PII_TYPE_COUNT; ++t) {
        for (int i = 0; i < per_type; ++i) {
            const bool        valid = i % 3 != 2;  // two valid values for one look-alike
            const std::string v     = gens[t](valid);
            std::string       s     = pick(templates);
            size_t            at    = s.find("{}");
            s.replace(at, 2, v);
            if (size_t n = s.find("{n}"); n != std::string::npos) s.replace(n, 3, digits(5));
            // A distractor after the value (before it would move the value's offsets).
            s += " (" + pick(distractors) + ")";
            std::vector<planted> truth;
            if (valid) truth.push_back({ (pii_type) t, at, at + v.size() });
            const auto t0 = std::chrono::steady_clock::now();
            const auto found = d.find(s);
            scan_ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
            scanned += s.size();
            for (const auto & m : found) {
                bool hit = false;
                for (const auto & p : truth) hit |= p.type == m.type && p.begin == m.begin && p.end == m.end;
                if (hit) tp[m.type]++;
                else fp[m.type]++;
                if (!hit && show > 0 && show--) fprintf(stderr, "false %s: '%s' in: %s\n", pii_type_name(m.type), s.substr(m.begin, m.end - m.begin).c_str(), s.c_str());
            }
            for (const auto & p : truth) {
                bool hit = false;
                for (const auto & m : found) hit |= p.type == m.type && p.begin == m.begin && p.end == m.end;
                if (!hit) fn[p.type]++;
                if (!hit && show > 0 && show--) fprintf(stderr, "missed %s: '%s' in: %s\n", pii_type_name(p.type), s.substr(p.begin, p.end - p.begin).c_str(), s.c_str());
            }
        }
    }
    if (json) printf("{\"seed\": %llu, \"per_type\": %d, \"types\": [", (unsigned long long) seed, per_type);
    else printf("%-7s %9s %9s %7s %7s %7s\n", "type", "precision", "recall", "tp", "fp", "fn");
    for (int t = 0; t < PII_TYPE_COUNT; ++t) {
        const double prec = tp[t] + fp[t] ? (double) tp[t] / (tp[t] + fp[t]) : 1.0;
        const double rec  = tp[t] + fn[t] ? (double) tp[t] / (tp[t] + fn[t]) : 1.0;
        if (json) {
            printf("%s{\"type\": \"%s\", \"precision\": %.4f, \"recall\": %.4f, \"tp\": %d, \"fp\": %d, \"fn\": %d}", t ? ", " : "",
                   pii_type_name((pii_type) t), prec, rec, tp[t], fp[t], fn[t]);
        } else {
            printf("%-7s %9.4f %9.4f %7d %7d %7d\n", pii_type_name((pii_type) t), prec, rec, tp[t], fp[t], fn[t]);
        }
    }
    if (json) printf("], \"scan_mb_per_s\": %.2f}\n", scanned / 1048576.0 / (scan_ms / 1000.0));
    else printf("scanned %.1f KB in %.0f ms (%.2f MB/s), seed %llu, %d sentences per type (2 valid : 1 look-alike)\n", scanned / 1024.0, scan_ms,
                scanned / 1048576.0 / (scan_ms / 1000.0), (unsigned long long) seed, per_type);
    return 0;
}
