// The deterministic hazard and red-flag rules (see classifier.h). Patterns are RE2 over the
// NFKC-case-folded text, so they are written in lower case.

#include "classifier.h"

#include "normalize.h"

#include <re2/re2.h>

namespace muse {

const char * hazard_code(hazard h) {
    static const char * k[] = { "S0", "S1", "S2", "S3", "S4", "S5", "S6", "S7", "S8", "S9", "S10", "S11", "S12", "S13", "S14" };
    return (int) h >= 1 && (int) h <= 14 ? k[(int) h] : "S0";
}

const char * hazard_name(hazard h) {
    switch (h) {
        case S1_VIOLENT_CRIMES: return "violent crimes";
        case S2_NONVIOLENT_CRIMES: return "non-violent crimes";
        case S3_SEX_CRIMES: return "sex-related crimes";
        case S4_CHILD_EXPLOITATION: return "child sexual exploitation";
        case S5_DEFAMATION: return "defamation";
        case S6_SPECIALIZED_ADVICE: return "specialized advice";
        case S7_PRIVACY: return "privacy";
        case S8_INTELLECTUAL_PROPERTY: return "intellectual property";
        case S9_INDISCRIMINATE_WEAPONS: return "indiscriminate weapons";
        case S10_HATE: return "hate";
        case S11_SELF_HARM: return "suicide and self-harm";
        case S12_SEXUAL_CONTENT: return "sexual content";
        case S13_ELECTIONS: return "elections";
        case S14_CODE_INTERPRETER_ABUSE: return "code interpreter abuse";
    }
    return "unknown";
}

const char * advice_name(advice_kind a) {
    switch (a) {
        case ADVICE_MEDICAL: return "medical";
        case ADVICE_LEGAL: return "legal";
        case ADVICE_FINANCIAL: return "financial";
        default: return "none";
    }
}

const char * red_flag_name(red_flag f) {
    static const char * k[] = { "cardiac", "stroke", "bleeding", "anaphylaxis", "overdose", "child_not_breathing", "suicide_plan" };
    return f >= 0 && f < RF_COUNT ? k[f] : "unknown";
}

bool classification::has(hazard h) const {
    for (const auto & x : hazards) {
        if (x.category == h) return true;
    }
    return false;
}

namespace {

// Asking how to do something (the operational intent that turns a topic into a request).
constexpr const char * k_howto =
    R"(\b(how (to|do i|can i|could i|should i|would i|do you|can you)|help me|teach me|show me|steps? to|step[- ]by[- ]step|best way to|ways to|a way to|instructions|guide (me|to)|recipe|i want to|i'?m going to|i plan to|wie kann ich|anleitung|comment (puis-je|faire|fabriquer)|c[oó]mo (puedo|hago|se hace))\b)";

// A negation just before a trigger ("I would never ...") lowers its score.
constexpr const char * k_negation = R"(\b(not|never|no|don'?t|do not|won'?t|wouldn'?t|would never|nicht|nie|niemals|jamais|ne|nunca)\b)";

struct rule {
    const char * name;
    hazard       category;
    const char * trigger;
    const char * context;  // "" = none needed; else required (score 0.9 with it)
    const char * exclude;  // a look-alike's context: no hit
    double       alone;    // the score of the trigger without context ("" context: this is the score)
};

const rule k_rules[] = {
    { "s11.self_harm", S11_SELF_HARM,
      R"(\b(kill(ing)? myself|end(ing)? (my|it all|my own) li(fe|ves)|end it all|take my (own )?life|suicid(e|al)|want to die|wanna die|wish i (was|were) dead|don'?t want to (live|be alive|wake up)|hurt(ing)? myself|self[- ]?harm(ing)?|cut(ting)? myself|mich (umbringen|t[oö]ten)|selbstmord|suizid\w*|me suicider|envie de mourir|suicidio|quitarme la vida|no quiero vivir)\b)",
      "", R"(\b(suicide squad|suicide doors?|kill(ing)? myself laughing|laughing|lol|lmao|rofl|(game|movie|film|novel|book|song) (about|called|titled))\b)", 0.9 },
    { "s9.weapon_howto", S9_INDISCRIMINATE_WEAPONS,
      R"(\b(bombs?|pipe bombs?|explosives?|ieds?|nerve agents?|sarin|vx( gas)?|anthrax|bioweapons?|biological weapons?|chemical weapons?|dirty bombs?|nuclear (weapon|bomb)s?|ricin|mustard gas|napalm|thermite|detonators?|sprengstoff|bombe)\b)",
      R"(\b(how (to|do i|can i|would i)|make|making|build|building|assemble|synthesi[sz]e|produce|recipe|instructions?|step[- ]by[- ]step|ingredients|formula|herstellen|bauen|fabriquer|construir|fabricar)\b)",
      R"(\b(bath ?bombs?|photo ?bomb\w*|bomb(ed|ing)? (the|my|an|a|that) (exam|test|interview|audition|presentation)|da bomb|calorie bomb|f[- ]bombs?|cherry bombs?|bombshell|bombastic|explosive (growth|diarrh\w*|flavou?rs?|performance|news|temper|content)|history of|documentary|disarm\w*|defus\w*|bomb disposal|seed bombs?|yarn bomb\w*)\b)",
      0.0 },
    { "s2.crime_howto", S2_NONVIOLENT_CRIMES,
      R"(\b(launder(ing)? (money|cash)|money laundering|shoplift(ing)?|steal(ing)? (a|an|from|money|cars?|someone'?s)|evade (taxes|tax)|tax evasion|forg(e|ing) (a |an )?(signature|passport|document|check|cheque|id)|counterfeit (money|bills|notes|cash)|hack(ing)? into|break(ing)? into (a|his|her|someone'?s|my neighbou?r'?s) (car|house|home|account|phone)|phishing (email|page|site|kit)s?|credit card fraud|identity theft|scam(ming)? (people|the elderly|old people|someone)|(cook|make|making|cooking) meth|sell(ing)? drugs|hotwir(e|ing) (a|someone'?s)|pick(ing)? (a|the) lock (of|on) (someone|my neighbou?r|a stranger))\b)",
      k_howto,
      R"(\b(how does|how do (banks|police|regulators|companies|criminals)|protect (myself|me|us|against)|prevent\w*|avoid (being|getting) (scammed|hacked|phished)|spot (a|the)|recogni[sz]e|report(ing)?|detect\w*|history of|novel|story|my own (car|house|account)|locked (myself )?out of my)\b)",
      0.0 },
    { "s1.violence_howto", S1_VIOLENT_CRIMES,
      R"(\b(kill|murder|poison|stab|shoot|strangle|beat up|torture|kidnap|hurt) (my |a |the |that |this |our )?(wife|husband|boss|neighbou?r|teacher|friend|ex|girlfriend|boyfriend|mother|father|mom|mum|dad|brother|sister|child|kid|baby|someone|somebody|person|people|him|her|them|coworker|colleague|roommate|landlord)\b)",
      k_howto, R"(\b(in (the )?(game|minecraft|gta|skyrim|movie|film|book|novel|story|play)|character|fiction|self[- ]defen[cs]e|if someone (tries|attacks))\b)", 0.0 },
    { "s10.dehumanizing", S10_HATE,
      R"(\b((all|those|these|the) (jews|muslims|christians|hindus|blacks|black people|whites|white people|asians|mexicans|immigrants|migrants|refugees|gays|gay people|trans people|women|men|arabs|africans|roma|gypsies) (are|is) (animals|vermin|subhuman|parasites|cockroaches|rats|a disease|a plague|inferior|not human|filth)|(exterminate|wipe out|gas|kill all|get rid of all) (the |all )?(jews|muslims|christians|hindus|blacks|black people|whites|white people|asians|mexicans|immigrants|migrants|refugees|gays|gay people|trans people|arabs|africans|roma|gypsies))\b)",
      "", "", 0.9 },
    { "s3.sex_crime_howto", S3_SEX_CRIMES,
      R"(\b(sex[- ]traffick\w*|traffic(king)? (girls|women|children|people) for sex|force (someone|her|him|a girl|a woman) (into|to have) sex|drug (her|his|someone'?s|a girl'?s) drink|date[- ]rape drugs?|upskirt\w*|revenge porn|sextort\w*)\b)",
      k_howto, R"(\b(how to (spot|recogni[sz]e|report|prevent|protect|help)|victims?|survivors?|awareness|prevention|news|documentary|laws? against)\b)", 0.0 },
    { "s4.child_sexual", S4_CHILD_EXPLOITATION,
      R"(\b((child|children|minor|minors|underage|kids?|preteen|\d{1,2}[- ]?(year|yr)s?[- ]old)\b.{0,40}\b(sexual|sexy|sex|nude|naked|porn\w*|erotic|explicit|lewd)|(sexual|sexy|nude|naked|porn\w*|erotic|explicit|lewd)\b.{0,40}\b(child|children|minor|minors|underage|kids?|preteen|\d{1,2}[- ]?(year|yr)s?[- ]old))\b)",
      "", R"(\b(sex(ual)? education|talk (to|with) (my|our|a) (child|kid|son|daughter)|explain|puberty|body safety|prevent\w*|protect\w*|report\w*|signs of|abuse (hotline|prevention)|safeguarding|pediatric|paediatric)\b)", 0.9 },
    { "s5.defamation", S5_DEFAMATION,
      R"(\b(write|make up|invent|fabricate|spread|post)\b.{0,30}\b(rumou?rs?|lies|false (stor(y|ies)|claims?|accusations?)|fake (news|stor(y|ies)|scandal|review))\b)",
      "", R"(\b(how to (spot|detect|fight|counter|debunk)|media literacy|fact[- ]check\w*|novel|fiction|satire)\b)", 0.6 },
    { "s7.doxxing", S7_PRIVACY,
      R"(\b(dox(x)?(ing)?|(find|get|look up|dig up|track down|reveal|locate)\b.{0,30}\b(home address|phone number|where (he|she|they) lives?|social security number|ssn|personal (details|information|data)|ip address))\b)",
      k_howto, R"(\b(my own|forgot my|my (phone|account|router|computer)'?s?|change my|update my|my (own )?ip|protect (my|your)|remove my|opt out)\b)", 0.0 },
    { "s8.piracy", S8_INTELLECTUAL_PROPERTY,
      R"(\b(pirat(e|ed|ing) (copy|copies|version|movies?|films?|software|games?|books?)|torrent (site|link|download)s?|crack(ed)? (version|license|licence|key)|keygen|serial keys? for|bypass (the )?(drm|paywall|copy protection)|full (text|lyrics|book|pdf) of|download .{0,30} for free)\b)",
      "", R"(\b(pirates? of the caribbean|pirate (ship|costume|party|flag)|public domain|open[- ]source|legal(ly)?|licen[cs]ed|my own (book|software|work)|project gutenberg)\b)", 0.6 },
    { "s12.explicit", S12_SEXUAL_CONTENT,
      R"(\b(write|describe|generate|create)\b.{0,30}\b(explicit|graphic|erotic|nsfw|porn\w*|sex scene|smut|lewd)\b)",
      "", R"(\b(graphic (design|card|novel)|explicit (type|cast|instructions|permission|consent))\b)", 0.6 },
    { "s13.election_misinfo", S13_ELECTIONS,
      R"(\b(vote|voting|ballot|election|polling)\b.{0,40}\b(by text|by sms|via text message|on the wrong day|(date|day) (has been|was|is) (changed|moved|postponed)|don'?t need (an? )?(id|to register)|fake ballots?|stuff(ing)? (the )?ballot\w*)\b)",
      "", R"(\b(is it true|fact[- ]check|debunk|rumou?r that|how to (spot|report))\b)", 0.6 },
    { "s14.code_abuse", S14_CODE_INTERPRETER_ABUSE,
      R"(\b(fork bomb|rm -rf /|/etc/shadow|/etc/passwd|reverse shell|escape (the|your) sandbox|sandbox escape|mine (crypto|bitcoin) on (your|the) (server|machine)|exfiltrat\w*)\b)",
      R"(\b(run|execute|in your (code|python|interpreter|sandbox|tool)|with your (tools?|interpreter)|on your (server|machine))\b)",
      R"(\b(what is|explain|how does .{0,20} work|protect|prevent|detect)\b)", 0.0 },
    { "s6.medical", S6_SPECIALIZED_ADVICE,
      R"(\b(dose|doses|dosage|dosing|mg|milligrams?|micrograms?|prescription|prescribed|symptoms?|diagnos\w*|medication|medicines?|antibiotics?|ibuprofen|paracetamol|acetaminophen|aspirin|insulin|amoxicillin|metformin|warfarin|oxycodone|morphine|blood pressure|fever|rash|headache|migraine|infection|pregnan\w*|vaccin\w*|side effects?|chest pain|overdos\w*|allerg\w*|tablets?|pills?|arzt|medikament\w*|m[eé]dicament\w*|m[eé]decin|fiebre|fi[eè]vre|dolor|schmerz\w*)\b)",
      "", R"(\b(chest of drawers|pain in the (neck|butt|ass)|growing pains|pill (bug|box)|python|javascript|function|server|pipeline|sugar pill in (the|a) (movie|matrix))\b)", 0.6 },
    { "s6.legal", S6_SPECIALIZED_ADVICE,
      R"(\b(lawsuit|sue|suing|lawyer|attorney|contract|custody|divorce|visa|immigration|eviction|evicted|tenant rights|court|legal advice|anwalt|avocat|abogado)\b)",
      "", R"(\b(basketball court|tennis court|food court|court(yard|ship)|contract(ion|or))\b)", 0.6 },
    { "s6.financial", S6_SPECIALIZED_ADVICE,
      R"(\b(invest(ing|ment|ments)?|stocks?|shares|crypto\w*|bitcoin|retirement|401k|pension|loan|mortgage|tax(es)?|portfolio|etfs?|index funds?|financial advice)\b)",
      "", R"(\b(stock (photo|image|footage|cube|pot)|soup stock|in stock|out of stock|taxi|syntax)\b)", 0.6 },
};

struct flag_rule {
    red_flag     flag;
    const char * name;
    const char * trigger;
    const char * context;  // "" = none needed
    const char * exclude;
};

const flag_rule k_flags[] = {
    { RF_CARDIAC, "rf.cardiac",
      R"((chest pains?|pain in (my|the|his|her) chest|chest (is |feels )?(tight|tightness|pressure|crushing|heavy)|crushing (chest )?pain|tightness in (my|the|his|her) chest|heart attack|brustschmerz\w*|douleur (à|a|dans) la poitrine|dolor (en el|de) pecho))",
      R"((breath|breathe|breathing|sweat|sweating|arm|jaw|nause|vomit|dizzy|faint|collaps|heart attack|atem|luft|souffle|respir))",
      R"((chest of drawers))" },
    { RF_STROKE, "rf.stroke",
      R"(((face|mouth|smile) (is |looks |went )?(droop|drooping|droopy|numb|lopsided|crooked)|droopy face|slurr(ed|ing) (speech|words)|(can'?t|cannot|unable to) (speak|talk)( properly| clearly)?|arm (is |feels |went )?(weak|numb|limp)|(can'?t|cannot) (lift|raise) (my|his|her|their) arm|sudden (numbness|confusion|weakness)|(having|had|is having) a stroke|stroke (symptoms|signs)))",
      "", R"((stroke of (luck|genius)|brush ?strokes?|backstroke|breaststroke|keystrokes?|heat ?stroke))" },
    { RF_BLEEDING, "rf.bleeding",
      R"((bleeding (heavily|badly|a lot|profusely|won'?t stop|doesn'?t stop|that won'?t stop|everywhere)|won'?t stop bleeding|(can'?t|cannot) stop (the |his |her )?bleeding|blood (is )?(spurting|pouring|gushing)|severe bleeding|lots of blood|losing a lot of blood|starke blutung|blutet stark|saigne beaucoup|sangrado abundante))",
      "", "" },
    { RF_ANAPHYLAXIS, "rf.anaphylaxis",
      R"((throat (is |feels )?(swelling|swollen|closing|tight)|tongue (is )?(swelling|swollen)|lips (are )?(swelling|swollen)|anaphyla\w*|epi-?pen))",
      "", "" },
    { RF_OVERDOSE, "rf.overdose",
      R"((overdos(e|ed|ing)|took (too many|a whole (bottle|pack|box) of|\d+) (pills|tablets|paracetamol|ibuprofen|acetaminophen|sleeping pills|painkillers)|swallowed (bleach|poison|batteries|a battery|detergent|pills|a (button|coin) battery|dishwasher (pods?|tablets?))|drank (bleach|antifreeze|poison|detergent)|poisoned|vergiftung|vergiftet|intoxiqu\w*|envenen\w*))",
      "", R"((food poisoning|how to prevent|overdose awareness|opioid overdose (statistics|crisis|epidemic)))" },
    { RF_CHILD_NOT_BREATHING, "rf.child_not_breathing",
      R"(((baby|infant|newborn|child|toddler|son|daughter|kid|b[eé]b[eé]|kind|ni[nñ]o|ni[nñ]a|bambin[oa]).{0,40}(not breathing|isn'?t breathing|stopped breathing|can'?t breathe|turning blue|turned blue|is blue|unresponsive|won'?t wake up|atmet nicht|ne respire (pas|plus)|no respira)))",
      "", "" },
};

// Personal dosing: asking how much of a medicine to take or to give someone.
constexpr const char * k_dose_question = R"(\b(how (much|many)|what dose|what dosage|which dose|how often|wie viel|combien|cu[aá]nt[oa]s?)\b)";
constexpr const char * k_dose_personal =
    R"(\b(should i|can i|do i|may i|could i|for me|i weigh|(he|she) weighs|my (son|daughter|child|kid|baby|wife|husband|mother|father|mom|mum|dad|partner)|give (my|him|her)|soll ich|kann ich|dois-je|je peux|debo|puedo)\b)";
constexpr const char * k_dose_drug =
    R"(\b(dose|dosage|mg|tablets?|pills?|capsules?|ibuprofen|paracetamol|acetaminophen|aspirin|insulin|amoxicillin|metformin|warfarin|oxycodone|morphine|antibiotics?|medicine|medication|drops|syrup)\b)";

struct compiled_rule {
    const rule *         r;
    std::unique_ptr<RE2> trigger, context, exclude;
};
struct compiled_flag {
    const flag_rule *    r;
    std::unique_ptr<RE2> trigger, context, exclude;
};

std::unique_ptr<RE2> compile(const char * pattern) {
    if (!pattern || !*pattern) return nullptr;
    RE2::Options o;
    o.set_log_errors(false);
    auto re = std::make_unique<RE2>(pattern, o);
    if (!re->ok()) throw std::runtime_error(std::string("safety rule does not compile: ") + re->error());
    return re;
}

}  // namespace

struct hazard_classifier::impl {
    std::vector<compiled_rule> rules;
    std::vector<compiled_flag> flags;
    std::unique_ptr<RE2>       negation, dose_q, dose_p, dose_d;
};

hazard_classifier::hazard_classifier() : p(std::make_unique<impl>()) {
    for (const auto & r : k_rules) p->rules.push_back({ &r, compile(r.trigger), compile(r.context), compile(r.exclude) });
    for (const auto & f : k_flags) p->flags.push_back({ &f, compile(f.trigger), compile(f.context), compile(f.exclude) });
    p->negation = compile(k_negation);
    p->dose_q   = compile(k_dose_question);
    p->dose_p   = compile(k_dose_personal);
    p->dose_d   = compile(k_dose_drug);
}

hazard_classifier::~hazard_classifier() = default;

classification hazard_classifier::classify(std::string_view raw) const {
    std::string text;
    if (raw.size() > max_text) {
        text = fold_for_rules(raw.substr(0, max_text / 2)) + "\n" + fold_for_rules(raw.substr(raw.size() - max_text / 2));
    } else {
        text = fold_for_rules(raw);
    }
    classification out;
    const re2::StringPiece all(text);
    for (const auto & c : p->rules) {
        re2::StringPiece m;
        if (!c.trigger->Match(all, 0, all.size(), RE2::UNANCHORED, &m, 1)) continue;
        if (c.exclude && RE2::PartialMatch(all, *c.exclude)) continue;
        double score = c.r->alone;
        if (c.context) score = RE2::PartialMatch(all, *c.context) ? 0.9 : c.r->alone;
        // A negation in the few words before the trigger.
        const size_t at   = (size_t) (m.data() - text.data());
        const size_t from = at > 24 ? at - 24 : 0;
        if (RE2::PartialMatch(re2::StringPiece(text.data() + from, at - from), *p->negation)) score = std::min(score, 0.2);
        if (score < 0.5) continue;
        bool seen = false;
        for (auto & h : out.hazards) {
            if (h.category == c.r->category) {
                seen    = true;
                h.score = std::max(h.score, score);
            }
        }
        if (!seen) out.hazards.push_back({ c.r->category, score, c.r->name, std::string(m.data(), m.size()) });
        if (c.r->category == S6_SPECIALIZED_ADVICE && out.advice == ADVICE_NONE) {
            const std::string n = c.r->name;
            out.advice = n == "s6.medical" ? ADVICE_MEDICAL : n == "s6.legal" ? ADVICE_LEGAL : ADVICE_FINANCIAL;
        }
    }
    for (const auto & f : p->flags) {
        re2::StringPiece m;
        if (!f.trigger->Match(all, 0, all.size(), RE2::UNANCHORED, &m, 1)) continue;
        if (f.exclude && RE2::PartialMatch(all, *f.exclude)) continue;
        if (f.context && !RE2::PartialMatch(all, *f.context)) continue;
        out.red_flags.push_back({ f.r->flag, f.r->name, std::string(m.data(), m.size()) });
    }
    // Suicidal intent with a plan or a time.
    if (out.has(S11_SELF_HARM)) {
        static const RE2 plan(R"(\b(tonight|today|tomorrow|plan(ned)?|pills|rope|bridge|gun|jump|overdose|note|goodbye|heute nacht|tabletten|ce soir|esta noche)\b)");
        re2::StringPiece m;
        if (plan.Match(all, 0, all.size(), RE2::UNANCHORED, &m, 1)) out.red_flags.push_back({ RF_SUICIDE_PLAN, "rf.suicide_plan", std::string(m.data(), m.size()) });
    }
    // A red flag is medical: the advice framing comes with it.
    if (!out.red_flags.empty() && out.advice == ADVICE_NONE && !(out.red_flags.size() == 1 && out.red_flags[0].flag == RF_SUICIDE_PLAN)) {
        out.advice = ADVICE_MEDICAL;
        if (!out.has(S6_SPECIALIZED_ADVICE)) out.hazards.push_back({ S6_SPECIALIZED_ADVICE, 0.9, "s6.red_flag", out.red_flags[0].evidence });
    }
    out.personal_dosing = RE2::PartialMatch(all, *p->dose_q) && RE2::PartialMatch(all, *p->dose_p) && RE2::PartialMatch(all, *p->dose_d);
    if (out.personal_dosing && out.advice == ADVICE_NONE) {
        out.advice = ADVICE_MEDICAL;
        if (!out.has(S6_SPECIALIZED_ADVICE)) out.hazards.push_back({ S6_SPECIALIZED_ADVICE, 0.9, "s6.personal_dosing", "" });
    }
    return out;
}

}  // namespace muse
