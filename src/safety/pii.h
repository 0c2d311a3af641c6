#pragma once
// Personal data in text, found the way Microsoft Presidio finds it: a pattern proposes a
// candidate, a validator confirms it (an e-mail's top-level domain, a card's Luhn digit, an
// IBAN's mod-97 and length for its country, US SSN area/group/serial rules, an address that
// parses, a phone number libphonenumber calls valid for a configured region, a secret's known
// prefix or structure), so a number that merely looks like one is left alone. Patterns run in
// RE2 (linear time on any input); phone numbers come from Debian's libphonenumber.
//
//   muse::pii_detector pii;                                   // regions US, GB, DE, FR, ES, IT
//   for (const auto & m : pii.find(text)) { ... m.type, m.begin, m.end ... }
//   muse::pii_redactor r;                                     // one per request
//   std::string safe = r.redact(text, pii);                   // "mail <EMAIL_1> or call <PHONE_1>"
//
// Thread safety: a pii_detector is immutable after construction and may be shared by threads;
// a pii_redactor belongs to one request.

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace muse {

enum pii_type { PII_EMAIL, PII_PHONE, PII_CARD, PII_IBAN, PII_SSN, PII_IP, PII_SECRET, PII_TYPE_COUNT };

// "EMAIL", "PHONE", "CARD", "IBAN", "SSN", "IP", "SECRET": the placeholders' names.
const char * pii_type_name(pii_type t);

struct pii_match {
    pii_type    type = PII_EMAIL;
    size_t      begin = 0, end = 0;  // bytes of the text
    std::string why;                 // the validator that confirmed it ("luhn", "mod97", ...)
};

struct pii_options {
    // Regions whose national phone formats count (ISO 3166 codes); numbers written with a
    // leading + and country code are found whatever the list.
    std::vector<std::string> phone_regions = { "US", "GB", "DE", "FR", "ES", "IT" };
    size_t max_text = 4u << 20;  // longer text is scanned in its first max_text bytes only
};

class pii_detector {
  public:
    explicit pii_detector(pii_options opt = {});
    ~pii_detector();
    pii_detector(const pii_detector &) = delete;
    pii_detector & operator=(const pii_detector &) = delete;

    // Every confirmed match, in order, none overlapping (where candidates overlap, the more
    // specific type wins: secret, e-mail, IBAN, card, SSN, IP, phone).
    std::vector<pii_match> find(std::string_view text) const;

  private:
    struct impl;
    std::unique_ptr<impl> p;
};

// Replaces matches with typed placeholders (<EMAIL_1>, <PHONE_2>): the same value gets the same
// placeholder for as long as the redactor lives (one request), so a model or a reader can still
// tell that two mentions are one person.
class pii_redactor {
  public:
    std::string redact(std::string_view text, const pii_detector & d);
    // How many distinct values of each type were replaced.
    int count(pii_type t) const { return next[t]; }

  private:
    std::map<std::string, std::string> seen;  // value -> placeholder
    int next[PII_TYPE_COUNT] = {};
};

// The validators, for tests and for callers that already hold a candidate.
bool luhn_valid(std::string_view digits);
bool iban_valid(std::string_view iban);       // spaces allowed; country length and mod-97
bool us_ssn_valid(std::string_view ssn);      // AAA-GG-SSSS (dashes or spaces)
bool email_tld_known(std::string_view tld);   // case-insensitive

}  // namespace muse
