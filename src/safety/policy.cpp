// Safety policy, locale tables and the deterministic texts (see policy.h).

#include "policy.h"

#include "core/file.h"

#include <nlohmann/json.hpp>
#include <re2/re2.h>

#include <cctype>

namespace muse {

namespace {

struct locale_info {
    const char * tag;        // matched as a prefix of the policy's locale ("de" matches "de-AT")
    const char * emergency;  // the number to call
    const char * crisis;     // a suicide and crisis line
    const char * lang;       // texts: en, de, fr, es, it
};

// Emergency numbers and crisis lines of common countries (more specific tags first).
const locale_info k_locales[] = {
    { "en-us", "911", "988 (Suicide & Crisis Lifeline: call or text)", "en" },
    { "en-ca", "911", "988 (Suicide Crisis Helpline: call or text)", "en" },
    { "en-gb", "999 or 112", "116 123 (Samaritans, free, 24 hours)", "en" },
    { "en-ie", "112 or 999", "116 123 (Samaritans, free, 24 hours)", "en" },
    { "en-au", "000", "13 11 14 (Lifeline)", "en" },
    { "en-nz", "111", "1737 (call or text)", "en" },
    { "en-in", "112", "14416 (Tele-MANAS)", "en" },
    { "de", "112", "0800 111 0 111 (TelefonSeelsorge, kostenlos, rund um die Uhr)", "de" },
    { "fr", "112 (ou le 15, SAMU)", "3114 (numéro national de prévention du suicide)", "fr" },
    { "es", "112", "024 (Línea de atención a la conducta suicida)", "es" },
    { "it", "112", "02 2327 2327 (Telefono Amico)", "it" },
    { "pt-br", "192 (SAMU)", "188 (CVV)", "en" },
    { "ja", "119", "0570-064-556 (こころの健康相談統一ダイヤル)", "en" },
    { "en", "112", "a local crisis line (in the US and Canada: 988; UK and Ireland: 116 123)", "en" },
};

const locale_info & locale_of(const std::string & locale) {
    std::string l = locale;
    for (char & c : l) c = c == '_' ? '-' : (char) std::tolower((unsigned char) c);
    for (const auto & x : k_locales) {
        if (l.rfind(x.tag, 0) == 0) return x;
    }
    return k_locales[sizeof(k_locales) / sizeof(k_locales[0]) - 1];
}

struct texts {
    const char * emergency_lead;   // {n}: the number
    const char * crisis_lead;      // {c}: the crisis line, {n}: the number
    const char * disclaimer_medical, * disclaimer_legal, * disclaimer_financial;
    const char * dose_withheld;
    const char * refusal;
    const char * flags[RF_COUNT];  // what to do now
};

const texts k_en = {
    "**If this may be an emergency, call {n} now.**",
    "**You don't have to face this alone.** If you are thinking about suicide or hurting yourself, you can talk to someone right now: "
    "{c}. If you are in immediate danger, call {n}.",
    "This is general information, not medical advice. For your own situation, ask a doctor or pharmacist.",
    "This is general information, not legal advice. For your own case, ask a lawyer.",
    "This is general information, not financial advice. For your own situation, ask a licensed adviser.",
    "[a personal dose is not given here: ask a pharmacist or doctor]",
    "I can't help with that.",
    { "Chest pain with breathlessness, sweating, or pain spreading to the arm or jaw can be a heart attack: stop, sit down, "
      "unlock the door and keep the phone with you. Do not drive yourself.",
      "A drooping face, a weak arm or slurred speech can be a stroke: note the time the signs began, do not give food or drink, "
      "and stay with the person.",
      "Press firmly on the wound with a clean cloth and keep pressing; raise the injured part if you can.",
      "If an adrenaline auto-injector (EpiPen) is at hand, use it now in the outer thigh; lie down with the legs raised, or sit up "
      "if breathing is hard.",
      "Call even if the person seems well. Keep the packaging or bottle to show, and do not make them vomit.",
      "Start CPR if you can; the dispatcher will guide you through it.",
      "Stay with someone you trust, and put distance between you and anything you could use to hurt yourself." },
};
const texts k_de = {
    "**Wenn es ein Notfall sein kann, rufen Sie jetzt die {n} an.**",
    "**Sie müssen das nicht allein durchstehen.** Wenn Sie an Suizid denken oder sich verletzen wollen, können Sie sofort mit "
    "jemandem sprechen: {c}. Bei akuter Gefahr rufen Sie die {n}.",
    "Dies ist eine allgemeine Information, keine ärztliche Beratung. Fragen Sie für Ihre Situation eine Ärztin, einen Arzt oder "
    "die Apotheke.",
    "Dies ist eine allgemeine Information, keine Rechtsberatung. Fragen Sie für Ihren Fall eine Anwältin oder einen Anwalt.",
    "Dies ist eine allgemeine Information, keine Finanzberatung. Fragen Sie für Ihre Situation eine zugelassene Beratung.",
    "[keine persönliche Dosierung: fragen Sie die Apotheke oder eine Ärztin, einen Arzt]",
    "Dabei kann ich nicht helfen.",
    { "Brustschmerz mit Atemnot, Schweiß oder Schmerz, der in Arm oder Kiefer ausstrahlt, kann ein Herzinfarkt sein: hinsetzen, "
      "Tür aufschließen, Telefon bei sich behalten. Nicht selbst fahren.",
      "Hängender Mundwinkel, schwacher Arm oder verwaschene Sprache können ein Schlaganfall sein: Uhrzeit notieren, nichts essen "
      "oder trinken lassen, bei der Person bleiben.",
      "Mit einem sauberen Tuch fest auf die Wunde drücken und weiter drücken; den verletzten Körperteil wenn möglich hochlagern.",
      "Wenn ein Adrenalin-Autoinjektor (EpiPen) da ist, jetzt in den äußeren Oberschenkel geben; hinlegen, Beine hoch, bei "
      "Atemnot aufsetzen.",
      "Auch anrufen, wenn es der Person noch gut geht. Packung aufheben, kein Erbrechen auslösen.",
      "Wenn Sie können, beginnen Sie mit der Wiederbelebung; die Leitstelle leitet Sie an.",
      "Bleiben Sie bei einem Menschen, dem Sie vertrauen, und bringen Sie Abstand zwischen sich und alles, womit Sie sich "
      "verletzen könnten." },
};
const texts k_fr = {
    "**S'il peut s'agir d'une urgence, appelez le {n} maintenant.**",
    "**Vous n'êtes pas seul·e.** Si vous pensez au suicide ou à vous faire du mal, vous pouvez parler à quelqu'un tout de suite : "
    "{c}. En cas de danger immédiat, appelez le {n}.",
    "Ceci est une information générale, pas un avis médical. Pour votre situation, demandez à un médecin ou à un pharmacien.",
    "Ceci est une information générale, pas un conseil juridique. Pour votre cas, consultez un avocat.",
    "Ceci est une information générale, pas un conseil financier. Pour votre situation, consultez un conseiller agréé.",
    "[pas de dose personnelle ici : demandez à un pharmacien ou à un médecin]",
    "Je ne peux pas aider avec cela.",
    { "Une douleur thoracique avec essoufflement, sueurs ou douleur dans le bras ou la mâchoire peut être un infarctus : "
      "arrêtez-vous, asseyez-vous, déverrouillez la porte. Ne conduisez pas.",
      "Un visage qui s'affaisse, un bras faible ou une parole confuse peuvent être un AVC : notez l'heure des premiers signes, "
      "ne donnez ni à boire ni à manger, restez auprès de la personne.",
      "Appuyez fermement sur la plaie avec un linge propre et maintenez la pression ; surélevez le membre si possible.",
      "Si un stylo d'adrénaline (EpiPen) est disponible, utilisez-le maintenant dans la cuisse ; allongez-vous jambes surélevées, "
      "ou asseyez-vous si respirer est difficile.",
      "Appelez même si la personne semble aller bien. Gardez l'emballage, ne faites pas vomir.",
      "Commencez la réanimation si vous le pouvez ; le régulateur vous guidera.",
      "Restez avec quelqu'un de confiance et éloignez-vous de ce qui pourrait vous blesser." },
};
const texts k_es = {
    "**Si puede ser una emergencia, llame al {n} ahora.**",
    "**No tiene que pasar por esto solo.** Si piensa en el suicidio o en hacerse daño, puede hablar con alguien ahora mismo: "
    "{c}. Si está en peligro inmediato, llame al {n}.",
    "Esto es información general, no consejo médico. Para su caso, consulte a un médico o farmacéutico.",
    "Esto es información general, no asesoramiento legal. Para su caso, consulte a un abogado.",
    "Esto es información general, no asesoramiento financiero. Para su caso, consulte a un asesor autorizado.",
    "[no se indica una dosis personal: consulte a un farmacéutico o médico]",
    "No puedo ayudar con eso.",
    { "Dolor en el pecho con falta de aire, sudor o dolor que se extiende al brazo o la mandíbula puede ser un infarto: pare, "
      "siéntese, abra la puerta y no conduzca.",
      "Cara caída, brazo débil o habla arrastrada pueden ser un ictus: anote la hora de los primeros signos, no dé comida ni "
      "bebida y quédese con la persona.",
      "Presione firmemente la herida con un paño limpio y mantenga la presión; eleve la zona si puede.",
      "Si tiene un autoinyector de adrenalina (EpiPen), úselo ahora en el muslo; túmbese con las piernas elevadas, o siéntese "
      "si le cuesta respirar.",
      "Llame aunque la persona parezca estar bien. Guarde el envase y no provoque el vómito.",
      "Empiece la reanimación si sabe; el operador le guiará.",
      "Quédese con alguien de confianza y aléjese de lo que pudiera usar para hacerse daño." },
};

const texts & texts_of(const safety_policy & p) {
    const std::string lang = locale_of(p.locale).lang;
    if (lang == "de") return k_de;
    if (lang == "fr") return k_fr;
    if (lang == "es") return k_es;
    return k_en;  // it and others: English texts with the locale's numbers
}

std::string fill(std::string s, const safety_policy & p) {
    for (const auto & [key, value] : { std::pair<std::string, std::string>{ "{n}", emergency_number_for(p) }, { "{c}", crisis_line_for(p) } }) {
        for (size_t at = s.find(key); at != std::string::npos; at = s.find(key, at + value.size())) s.replace(at, key.size(), value);
    }
    return s;
}

}  // namespace

std::string emergency_number_for(const safety_policy & p) {
    return p.emergency_number.empty() ? locale_of(p.locale).emergency : p.emergency_number;
}

std::string crisis_line_for(const safety_policy & p) {
    return p.crisis_line.empty() ? locale_of(p.locale).crisis : p.crisis_line;
}

error parse_redact_list(const std::string & list, safety_policy & out) {
    out.redact_logs = out.redact_traces = out.redact_store = out.redact_answers = false;
    if (list == "none" || list.empty()) return {};
    size_t at = 0;
    while (at <= list.size()) {
        const size_t      comma = list.find(',', at);
        const std::string w     = list.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
        if (w == "logs") out.redact_logs = true;
        else if (w == "traces") out.redact_traces = true;
        else if (w == "store") out.redact_store = true;
        else if (w == "answers") out.redact_answers = true;
        else return { ERROR_INVALID_ARGUMENT, "redact: '" + w.substr(0, 40) + "' is not one of logs, traces, store, answers, none" };
        if (comma == std::string::npos) break;
        at = comma + 1;
    }
    return {};
}

error parse_region_list(const std::string & list, safety_policy & out) {
    std::vector<std::string> regions;
    size_t                   at = 0;
    while (at <= list.size()) {
        const size_t      comma = list.find(',', at);
        const std::string r     = list.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
        if (r.size() != 2 || !std::isupper((unsigned char) r[0]) || !std::isupper((unsigned char) r[1])) {
            return { ERROR_INVALID_ARGUMENT, "pii-regions: '" + r.substr(0, 16) + "' is not a region code like US or DE" };
        }
        regions.push_back(r);
        if (comma == std::string::npos) break;
        at = comma + 1;
    }
    if (regions.empty() || regions.size() > 32) return { ERROR_INVALID_ARGUMENT, "pii-regions: give 1 to 32 region codes" };
    out.phone_regions = regions;
    return {};
}

error parse_safety_policy_json(const std::string & text, safety_policy & out) {
    using json = nlohmann::json;
    json j = json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return { ERROR_INVALID_ARGUMENT, "the safety policy must be a JSON object" };
    for (auto it = j.begin(); it != j.end(); ++it) {
        const std::string & k = it.key();
        const json &        v = it.value();
        auto str = [&](std::string & dst, size_t max) -> error {
            if (!v.is_string() || v.get<std::string>().size() > max) return { ERROR_INVALID_ARGUMENT, "safety policy: " + k + " must be a string of at most " + std::to_string(max) + " bytes" };
            dst = v.get<std::string>();
            return {};
        };
        if (k == "enabled") {
            if (!v.is_boolean()) return { ERROR_INVALID_ARGUMENT, "safety policy: enabled must be true or false" };
            out.enabled = v.get<bool>();
        } else if (k == "fail") {
            if (v != "closed" && v != "open") return { ERROR_INVALID_ARGUMENT, "safety policy: fail must be \"closed\" or \"open\"" };
            out.fail_closed = v == "closed";
        } else if (k == "locale") {
            if (error e = str(out.locale, 16)) return e;
        } else if (k == "emergency_number") {
            if (error e = str(out.emergency_number, 64)) return e;
        } else if (k == "crisis_line") {
            if (error e = str(out.crisis_line, 256)) return e;
        } else if (k == "disclaimer") {
            if (error e = str(out.disclaimer, 1024)) return e;
        } else if (k == "actions") {
            if (!v.is_object()) return { ERROR_INVALID_ARGUMENT, "safety policy: actions must be an object like {\"S2\": \"allow\"}" };
            for (auto a = v.begin(); a != v.end(); ++a) {
                const std::string & code = a.key();
                int n = 0;
                if (code.size() < 2 || code.size() > 3 || code[0] != 'S' || !std::isdigit((unsigned char) code[1]) ||
                    (n = std::stoi(code.substr(1))) < 1 || n > 14) {
                    return { ERROR_INVALID_ARGUMENT, "safety policy: actions: '" + code.substr(0, 16) + "' is not a hazard code S1-S14" };
                }
                if (a.value() != "allow" && a.value() != "refuse") {
                    return { ERROR_INVALID_ARGUMENT, "safety policy: actions." + code + " must be \"allow\" or \"refuse\"" };
                }
                out.actions[n] = a.value() == "refuse" ? SAFETY_REFUSE : SAFETY_ALLOW;
            }
        } else if (k == "phone_regions") {
            if (!v.is_array()) return { ERROR_INVALID_ARGUMENT, "safety policy: phone_regions must be an array like [\"US\", \"DE\"]" };
            std::string list;
            for (const auto & w : v) {
                if (!w.is_string()) return { ERROR_INVALID_ARGUMENT, "safety policy: phone_regions holds strings" };
                list += (list.empty() ? "" : ",") + w.get<std::string>();
            }
            if (error e = parse_region_list(list, out)) return { e.code, "safety policy: " + e.message };
        } else if (k == "redact") {
            if (!v.is_array()) return { ERROR_INVALID_ARGUMENT, "safety policy: redact must be an array like [\"logs\", \"store\"]" };
            std::string list;
            for (const auto & w : v) {
                if (!w.is_string()) return { ERROR_INVALID_ARGUMENT, "safety policy: redact holds strings" };
                list += (list.empty() ? "" : ",") + w.get<std::string>();
            }
            if (error e = parse_redact_list(list.empty() ? "none" : list, out)) return { e.code, "safety policy: " + e.message };
        } else {
            return { ERROR_INVALID_ARGUMENT, "safety policy: unknown key '" + k.substr(0, 40) +
                                                 "' (enabled, fail, locale, emergency_number, crisis_line, disclaimer, actions, redact, phone_regions)" };
        }
    }
    return {};
}

error load_safety_policy(const std::string & path, safety_policy & out) {
    std::string text;
    if (error e = read_file_capped(path, 1 << 20, "safety policy", "keep it under 1 MiB", text)) return { e.code, "--safety-policy " + e.message };
    if (error e = parse_safety_policy_json(text, out)) return { e.code, path + ": " + e.message };
    return {};
}

std::string refusal_text(const safety_policy & p) {
    return texts_of(p).refusal;
}

safety_decision decide(const classification & c, const safety_policy & p) {
    safety_decision d;
    d.input = c;
    const texts & t = texts_of(p);
    for (const auto & h : c.hazards) {
        auto a = p.actions.find((int) h.category);
        if (a != p.actions.end() && a->second == SAFETY_REFUSE) {
            d.refuse     = true;
            d.refused_by = hazard_code(h.category);
            d.refusal    = t.refusal;
            d.actions.push_back("refuse");
            return d;
        }
    }
    bool emergency = false, suicide = false;
    std::string now;
    for (const auto & f : c.red_flags) {
        if (f.flag == RF_SUICIDE_PLAN) {
            suicide = true;
        } else {
            emergency = true;
        }
        if (now.find(t.flags[f.flag]) == std::string::npos) now += (now.empty() ? "" : " ") + std::string(t.flags[f.flag]);
    }
    if (c.has(S11_SELF_HARM)) suicide = true;
    if (suicide) {
        d.prefix = fill(t.crisis_lead, p);
        for (const auto & f : c.red_flags) {
            if (f.flag == RF_SUICIDE_PLAN) d.prefix += " " + std::string(t.flags[RF_SUICIDE_PLAN]);
        }
        d.instruction += "The user may be in distress. Answer with warmth and care, encourage them to reach out to the crisis line "
                         "or someone they trust, and never describe methods of self-harm. ";
        d.actions.push_back("crisis_first");
    }
    if (emergency) {
        std::string e = fill(t.emergency_lead, p);
        std::string rest;
        for (const auto & f : c.red_flags) {
            if (f.flag != RF_SUICIDE_PLAN && rest.find(t.flags[f.flag]) == std::string::npos) rest += " " + std::string(t.flags[f.flag]);
        }
        d.prefix = e + rest + (d.prefix.empty() ? "" : "\n\n" + d.prefix);
        d.instruction += "The user describes what may be a medical emergency; emergency guidance is already shown first. Keep the "
                         "answer short and practical. ";
        d.actions.push_back("emergency_first");
    }
    if (!d.prefix.empty()) d.prefix += "\n\n";
    if (c.advice != ADVICE_NONE) {
        const std::string disc = c.advice == ADVICE_MEDICAL ? (p.disclaimer.empty() ? t.disclaimer_medical : p.disclaimer)
                                 : c.advice == ADVICE_LEGAL ? t.disclaimer_legal
                                                            : t.disclaimer_financial;
        d.suffix = "\n\n" + disc;
        d.actions.push_back("disclaimer");
        if (c.advice == ADVICE_MEDICAL) {
            d.instruction += "The question is about health: answer informationally and in general terms, do not diagnose, and do not "
                             "give a personal dose of a prescription medicine (say to ask a pharmacist or doctor). ";
        } else {
            d.instruction += std::string("The question asks for ") + advice_name(c.advice) +
                             " advice: give general information, not advice for the user's own case. ";
        }
    }
    if (c.personal_dosing) {
        d.dose_guard = true;
        d.dose_note  = t.dose_withheld;
        d.actions.push_back("dose_withheld");
    }
    d.redact_answer = p.redact_answers;
    if (!d.instruction.empty()) d.instruction.pop_back();
    return d;
}

std::string check_answer_piece(const std::string & piece, const safety_decision & d, const pii_detector & pii, pii_redactor & r) {
    std::string out = piece;
    if (d.dose_guard) {
        // "400 mg", "2 tablets", "5 ml", "10 units", "1.5 g": amounts of a medicine.
        static const RE2 dose(R"(((?i)\b\d+(?:[.,]\d+)?\s?(?:mg|mcg|µg|ug|g|ml|units?|iu|tablets?|pills?|capsules?|drops|teaspoons?|tsp)\b))");
        re2::StringPiece in(out), m;
        size_t           at = 0;
        std::string      result;
        while (RE2::FindAndConsume(&in, dose, &m)) {
            const size_t b = (size_t) (m.data() - out.data());
            result += out.substr(at, b - at);
            result += d.dose_note;
            at = b + m.size();
        }
        if (at > 0) out = result + out.substr(at);
    }
    if (d.redact_answer) out = r.redact(out, pii);
    return out;
}

std::vector<size_t> sentence_ends(std::string_view t) {
    std::vector<size_t> ends;
    for (size_t i = 0; i < t.size(); ++i) {
        const char c = t[i];
        if (c == '\n' || ((c == '.' || c == '!' || c == '?') && i + 1 < t.size() && (t[i + 1] == ' ' || t[i + 1] == '\n'))) {
            size_t e = i + 1;
            while (e < t.size() && (t[e] == ' ' || t[e] == '\n')) e++;
            if (e == t.size()) break;  // whitespace may continue in the next delta: not yet complete
            ends.push_back(e);
            i = e - 1;
        }
    }
    return ends;
}

std::string stream_gate::push(std::string_view delta) {
    if (!d.holds_sentences()) return std::string(delta);
    held += delta;
    const auto ends = sentence_ends(held);
    if (ends.empty()) return "";
    std::string out;
    size_t      at = 0;
    for (size_t e : ends) {
        out += check_answer_piece(held.substr(at, e - at), d, pii, red);
        at = e;
    }
    held.erase(0, at);
    return out;
}

std::string stream_gate::flush() {
    if (!d.holds_sentences() || held.empty()) return "";
    std::string out = check_answer_piece(held, d, pii, red);
    held.clear();
    return out;
}

std::string stream_gate::check_whole(std::string_view answer) {
    if (!d.holds_sentences()) return std::string(answer);
    stream_gate g(d, pii);
    std::string out = g.push(answer);
    return out + g.flush();
}

}  // namespace muse
