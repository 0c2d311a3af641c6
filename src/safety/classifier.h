#pragma once
// A deterministic classifier for the hazard categories Llama Guard 3 uses (MLCommons S1-S14)
// and for medical red flags. No model: lexicons and RE2 patterns over NFKC-case-folded text
// (normalize.h), each rule with the context words that make it count, the contexts that make
// a look-alike ("kill a Python process", "bath bomb", "chest of drawers"), and negation
// ("I would never ..."). Every decision names the rule that made it, so it can be shown in a
// trace and tested.
//
//   muse::hazard_classifier c;
//   muse::classification r = c.classify("I have crushing chest pain and can't breathe");
//   r.red_flags[0].flag == muse::RF_CARDIAC; r.advice == muse::ADVICE_MEDICAL
//
// Thread safety: a classifier is immutable after construction and may be shared by threads.

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace muse {

// MLCommons hazard taxonomy, as Llama Guard 3 numbers it.
enum hazard {
    S1_VIOLENT_CRIMES = 1,
    S2_NONVIOLENT_CRIMES,
    S3_SEX_CRIMES,
    S4_CHILD_EXPLOITATION,
    S5_DEFAMATION,
    S6_SPECIALIZED_ADVICE,
    S7_PRIVACY,
    S8_INTELLECTUAL_PROPERTY,
    S9_INDISCRIMINATE_WEAPONS,
    S10_HATE,
    S11_SELF_HARM,
    S12_SEXUAL_CONTENT,
    S13_ELECTIONS,
    S14_CODE_INTERPRETER_ABUSE,
};
const char * hazard_code(hazard h);  // "S6"
const char * hazard_name(hazard h);  // "specialized advice"

enum advice_kind { ADVICE_NONE, ADVICE_MEDICAL, ADVICE_LEGAL, ADVICE_FINANCIAL };
const char * advice_name(advice_kind a);

// Urgent medical situations: emergency guidance goes first.
enum red_flag { RF_CARDIAC, RF_STROKE, RF_BLEEDING, RF_ANAPHYLAXIS, RF_OVERDOSE, RF_CHILD_NOT_BREATHING, RF_SUICIDE_PLAN, RF_COUNT };
const char * red_flag_name(red_flag f);  // "cardiac", "stroke", ...

struct hazard_hit {
    hazard      category = S1_VIOLENT_CRIMES;
    double      score    = 0;   // 0..1; rules give 0.9 (trigger with its context), 0.6 (trigger alone), 0.2 (negated)
    std::string rule;           // the rule's name ("s9.weapon_howto")
    std::string evidence;       // the folded text the trigger matched
};

struct red_flag_hit {
    red_flag    flag = RF_CARDIAC;
    std::string rule;
    std::string evidence;
};

struct classification {
    std::vector<hazard_hit>   hazards;    // score >= 0.5 (the rest are not reported)
    std::vector<red_flag_hit> red_flags;
    advice_kind               advice          = ADVICE_NONE;  // the S6 kind, when S6 is among hazards
    bool                      personal_dosing = false;        // asks for a dose of a medicine for someone
    bool has(hazard h) const;
};

class hazard_classifier {
  public:
    hazard_classifier();
    ~hazard_classifier();
    hazard_classifier(const hazard_classifier &) = delete;
    hazard_classifier & operator=(const hazard_classifier &) = delete;

    // At most max_text bytes of `text` are read (the start and the end halves of a longer one).
    classification classify(std::string_view text) const;

    static constexpr size_t max_text = 64 * 1024;

  private:
    struct impl;
    std::unique_ptr<impl> p;
};

}  // namespace muse
