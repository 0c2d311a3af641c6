// The PII recognizers (safety/pii.h): each validator on known-good and known-bad values, the
// detector on sentences (types, spans, look-alikes left alone, overlaps resolved), redaction
// with consistent typed placeholders, and bounded time on hostile input.

#include "safety/pii.h"

#include <gtest/gtest.h>

#include <chrono>

using namespace muse;

namespace {

std::vector<std::pair<std::string, std::string>> found(const pii_detector & d, const std::string & s) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto & m : d.find(s)) out.push_back({ pii_type_name(m.type), s.substr(m.begin, m.end - m.begin) });
    return out;
}

}  // namespace

TEST(pii, validators) {
    EXPECT_TRUE(luhn_valid("4111111111111111"));
    EXPECT_TRUE(luhn_valid("4111 1111 1111 1111"));
    EXPECT_FALSE(luhn_valid("4111111111111112"));
    EXPECT_FALSE(luhn_valid("41111"));
    EXPECT_TRUE(iban_valid("DE89 3704 0044 0532 0130 00"));
    EXPECT_TRUE(iban_valid("GB82WEST12345698765432"));
    EXPECT_FALSE(iban_valid("DE88 3704 0044 0532 0130 00")) << "check digits";
    EXPECT_FALSE(iban_valid("DE89 3704 0044 0532 0130 0")) << "length for the country";
    EXPECT_FALSE(iban_valid("QQ89 3704 0044 0532 0130 00")) << "no such country";
    EXPECT_TRUE(us_ssn_valid("123-45-6789"));
    for (const char * bad : { "000-45-6789", "666-45-6789", "900-45-6789", "123-00-6789", "123-45-0000", "12-345-6789" }) {
        EXPECT_FALSE(us_ssn_valid(bad)) << bad;
    }
    EXPECT_TRUE(email_tld_known("COM"));
    EXPECT_FALSE(email_tld_known("png"));
}

TEST(pii, finds_each_type_and_leaves_look_alikes) {
    const pii_detector d;
    struct tc { const char * text; std::vector<std::pair<std::string, std::string>> want; };
    const std::vector<tc> cases = {
        { "Mail anna.schmidt@post.de today.", { { "EMAIL", "anna.schmidt@post.de" } } },
        { "Logo file logo@2x.png and user@localhost stay.", {} },
        { "Call (415) 555-2671 or +44 20 7946 0958.", { { "PHONE", "(415) 555-2671" }, { "PHONE", "+44 20 7946 0958" } } },
        { "Ruf an: 030 901820 12", { { "PHONE", "030 901820 12" } } },
        { "Order #356870 and pedido 16815 are not phones.", {} },
        { "Card 4111 1111 1111 1111 expires 12/27.", { { "CARD", "4111 1111 1111 1111" } } },
        { "Card 4111 1111 1111 1112 fails Luhn.", {} },
        { "IBAN DE89 3704 0044 0532 0130 00, thanks", { { "IBAN", "DE89 3704 0044 0532 0130 00" } } },
        { "IBAN DE88 3704 0044 0532 0130 00 is wrong", {} },
        { "SSN 123-45-6789 on file; 666-12-3456 is not one.", { { "SSN", "123-45-6789" } } },
        { "Host 192.168.1.20 and 2001:db8::1, not 256.1.1.1 or version 1.4.2.", { { "IP", "192.168.1.20" }, { "IP", "2001:db8::1" } } },
        { "Meeting at 12:30:45 is a time.", {} },
        { "key=sk-proj-abcdefghijklmnopqrstuvwxyz0123456789", { { "SECRET", "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789" } } },
        { "AWS AKIAIOSFODNN7EXAMPLE leaked", { { "SECRET", "AKIAIOSFODNN7EXAMPLE" } } },
        { "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NSJ9.abcdefghijklmnop ok",
          { { "SECRET", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NSJ9.abcdefghijklmnop" } } },
        { "sk-short is not a key", {} },
    };
    for (const auto & c : cases) EXPECT_EQ(found(d, c.text), c.want) << c.text;

    const std::string pem = "before\n-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA75abc\nxyz==\n-----END RSA PRIVATE KEY-----\nafter";
    const auto        f   = found(d, pem);
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(f[0].first, "SECRET");
    EXPECT_EQ(f[0].second.rfind("-----BEGIN", 0), 0u);
    EXPECT_NE(f[0].second.find("-----END RSA PRIVATE KEY-----"), std::string::npos);
}

TEST(pii, byte_offsets_survive_multibyte_text) {
    const pii_detector d;
    const std::string  s = "Café für Zoë: zoë.x@example.com? Nein: zoe@beispiel.de, Tel. +49 30 901820 12.";
    const auto         f = found(d, s);
    ASSERT_EQ(f.size(), 2u) << s;
    EXPECT_EQ(f[0], (std::pair<std::string, std::string>{ "EMAIL", "zoe@beispiel.de" }));
    EXPECT_EQ(f[1], (std::pair<std::string, std::string>{ "PHONE", "+49 30 901820 12" }));
}

TEST(pii, redaction_is_typed_and_consistent) {
    const pii_detector d;
    pii_redactor       r;
    const std::string  a = r.redact("Write to jo@example.com or ann@example.org; jo@example.com again.", d);
    EXPECT_EQ(a, "Write to <EMAIL_1> or <EMAIL_2>; <EMAIL_1> again.");
    EXPECT_EQ(r.redact("And jo@example.com once more, card 4111111111111111.", d), "And <EMAIL_1> once more, card <CARD_1>.")
        << "the same value keeps its placeholder within one redactor";
    EXPECT_EQ(r.count(PII_EMAIL), 2);
    pii_redactor fresh;
    EXPECT_EQ(fresh.redact("ann@example.org", d), "<EMAIL_1>") << "a new request numbers afresh";
    EXPECT_EQ(fresh.redact("nothing here", d), "nothing here");
}

TEST(pii, hostile_input_is_bounded) {
    const pii_detector d;
    std::string spaced;
    for (int i = 0; i < 20000; ++i) spaced += "1 ";
    for (const std::string & s : { spaced, std::string(200000, '1'), std::string(100000, '@') + "a.com", std::string(50000, ':') + "1",
                                   "-----BEGIN PRIVATE KEY-----" + std::string(300000, 'A'), std::string(100000, '.') + "1.1.1.1" }) {
        const auto t0 = std::chrono::steady_clock::now();
        (void) d.find(s);
        const double s_taken = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        EXPECT_LT(s_taken, 5.0) << s.substr(0, 40);  // linear: milliseconds here, seconds on a loaded machine
    }
}
