#include "eval.h"

#include "core/file.h"
#include "core/json-depth.h"
#include "core/utf8.h"
#include "reasoning/answer.h"
#include "reasoning/mode.h"

#include <chrono>
#include <cstdio>

namespace muse {

namespace {

std::string trim(const std::string & s) {
    size_t a = 0, b = s.size();
    while (a < b && (unsigned char) s[a] <= ' ') a++;
    while (b > a && (unsigned char) s[b - 1] <= ' ') b--;
    return s.substr(a, b - a);
}

// GSM8K's answers end with "#### X": X is the answer; otherwise the whole text.
std::string final_answer_text(const std::string & answer) {
    const size_t at = answer.rfind("####");
    return trim(at == std::string::npos ? answer : answer.substr(at + 4));
}

}  // namespace

std::string eval_answer_key(const std::string & text) {
    return extract_answer(text).normalized;
}

error parse_eval_tasks(const std::string & text, const std::string & name, size_t limit, std::vector<eval_task> & out) {
    const size_t cap = limit == 0 ? k_eval_max_tasks : std::min(limit, k_eval_max_tasks);
    std::vector<eval_task> tasks;
    size_t pos = 0;
    int    line = 0;
    while (pos < text.size() && tasks.size() < cap) {
        size_t end = text.find('\n', pos);
        if (end == std::string::npos) end = text.size();
        const std::string raw = text.substr(pos, end - pos);
        pos = end + 1;
        line++;
        const std::string l = trim(raw);
        if (l.empty()) continue;
        auto bad = [&](const std::string & why) {
            return error{ ERROR_BAD_INPUT, name + ": line " + std::to_string(line) + ": " + why };
        };
        if (!utf8_valid(l)) return bad("not valid UTF-8");
        if (json_text_depth(l, 8) > 8) return bad("nested more than 8 levels; a task is {\"question\": \"...\", \"answer\": \"...\"}");
        const nlohmann::json j = nlohmann::json::parse(l, nullptr, false);
        if (j.is_discarded() || !j.is_object()) return bad("not a JSON object; each line is {\"question\": \"...\", \"answer\": \"...\"}");
        const auto q = j.find("question");
        const auto a = j.find("answer");
        if (q == j.end() || !q->is_string() || trim(q->get<std::string>()).empty()) return bad("\"question\" must be a non-empty string");
        if (a == j.end() || !(a->is_string() || a->is_number())) return bad("\"answer\" must be a string or a number");
        eval_task t;
        t.line     = line;
        t.question = q->get<std::string>();
        if (t.question.size() > k_eval_max_question) {
            return bad("the question is " + std::to_string(t.question.size()) + " bytes, over the " +
                       std::to_string(k_eval_max_question) + "-byte limit");
        }
        t.answer   = a->is_string() ? a->get<std::string>() : a->dump();
        t.expected = eval_answer_key(final_answer_text(t.answer));
        if (t.expected.empty()) return bad("no answer can be read from \"answer\" (" + utf8_head(t.answer, 60) + ")");
        const auto id = j.find("id");
        if (id != j.end() && (id->is_string() || id->is_number())) {
            t.id = id->is_string() ? utf8_head(id->get<std::string>(), 200) : id->dump();
        } else {
            t.id = std::to_string(line);
        }
        tasks.push_back(std::move(t));
    }
    if (tasks.empty()) return { ERROR_BAD_INPUT, name + ": no tasks (each line is {\"question\": \"...\", \"answer\": \"...\"})" };
    out = std::move(tasks);
    return {};
}

error read_eval_tasks(const std::string & path, size_t limit, std::vector<eval_task> & out) {
    std::string text;
    if (error e = read_file_capped(path, k_eval_max_file_bytes, "task file", "split it or pass --limit", text)) return e;
    return parse_eval_tasks(text, file_name(path), limit, out);
}

// A fixed seed gives every question its own stream, derived from the seed and the question's
// index: the same draws on a rerun, but not the same draws at every question (with one stream
// for all, a seed whose stream is unlucky at some step is unlucky at that step of every
// question, and one run's accuracy swings by tens of points between seeds). A random seed
// (0xFFFFFFFF) stays random.
uint32_t eval_question_seed(uint32_t seed, size_t i) {
    if (seed == 0xFFFFFFFFu) return seed;
    uint64_t z = ((uint64_t) seed << 32 | (uint64_t) i) + 0x9e3779b97f4a7c15ULL;  // splitmix64
    z          = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z          = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    const uint32_t r = (uint32_t) z;
    return r == 0xFFFFFFFFu ? 0 : r;
}

error run_eval(const assistant & door, const std::vector<eval_task> & tasks, const eval_params & p,
               const std::function<void(int, int)> & progress, const cancel_token & cancel, eval_report & out) {
    out       = eval_report();
    out.tasks = (int32_t) tasks.size();
    if (p.modes.empty()) return { ERROR_INVALID_ARGUMENT, "modes: name at least one mode" };
    const int total = (int) (tasks.size() * p.modes.size());
    int       done  = 0;
    for (ask_mode m : p.modes) {
        eval_mode_summary s;
        s.mode = m;
        double agreement_sum = 0;
        int64_t agents = 0, pruned = 0, tokens = 0;
        for (size_t i = 0; i < tasks.size() && !out.cancelled; ++i) {
            ask_input in;
            in.request.opt      = p.opt;
            in.request.opt.mode = m;
            in.request.opt.sampling.seed = eval_question_seed(p.opt.sampling.seed, i);
            if (!p.system_prompt.empty()) in.request.messages.push_back({ "system", p.system_prompt });
            in.request.messages.push_back({ "user", tasks[i].question });
            ask_output  res;
            ask_refusal why;
            const auto  t0 = std::chrono::steady_clock::now();
            if (error e = door.ask(std::move(in), nullptr, cancel, res, &why)) {
                if (cancel.stop_requested()) {
                    out.cancelled = true;
                    break;
                }
                return { e.code, std::string(ask_mode_name(m)) + ": " + e.message };
            }
            const ask_result & r = res.results.front();
            if (r.finish == FINISH_CANCELLED || cancel.stop_requested()) {
                out.cancelled = true;
                break;
            }
            eval_item it;
            it.task   = (int) i;
            it.mode   = m;
            it.answer = r.answer;
            it.ms     = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
            it.tokens = r.use.completion_tokens;
            it.voted  = r.aggregation == "vote" && r.vote.decided;
            it.got    = it.voted ? r.vote.normalized : eval_answer_key(r.answer);
            if (it.voted) it.agreement = r.vote.agreement;
            for (const auto & a : r.agents) {
                it.agents++;
                it.pruned += a.pruned ? 1 : 0;
            }
            if (r.err) it.error = r.err.message;
            it.correct = !r.err && !it.got.empty() && it.got == tasks[i].expected;

            s.questions++;
            s.correct += it.correct ? 1 : 0;
            s.failed += r.err ? 1 : 0;
            s.ms_total += it.ms;
            tokens += it.tokens;
            agents += it.agents;
            pruned += it.pruned;
            if (it.voted) {
                s.voted++;
                agreement_sum += it.agreement;
            }
            out.items.push_back(std::move(it));
            if (progress) progress(++done, total);
        }
        if (s.questions > 0) {
            s.accuracy            = (double) s.correct / s.questions;
            s.tokens_per_question = (double) tokens / s.questions;
            s.ms_per_question     = s.ms_total / s.questions;
        }
        s.agreement   = s.voted > 0 ? agreement_sum / s.voted : 0;
        s.pruned_rate = agents > 0 ? (double) pruned / (double) agents : 0;
        out.modes.push_back(s);
        if (out.cancelled) break;
    }
    return {};
}

std::string eval_table(const eval_report & r) {
    std::string s;
    char        buf[256];
    snprintf(buf, sizeof(buf), "| %-13s | %9s | %16s | %15s | %11s | %9s | %6s |\n", "mode", "questions", "accuracy",
             "tokens/question", "ms/question", "agreement", "pruned");
    s += buf;
    s += "| ------------- | --------: | ---------------: | --------------: | ----------: | --------: | -----: |\n";
    for (const auto & m : r.modes) {
        char acc[64], agr[32];
        snprintf(acc, sizeof(acc), "%5.1f%% (%d/%d)", 100.0 * m.accuracy, m.correct, m.questions);
        if (m.voted > 0) {
            snprintf(agr, sizeof(agr), "%.2f", m.agreement);
        } else {
            snprintf(agr, sizeof(agr), "-");
        }
        snprintf(buf, sizeof(buf), "| %-13s | %9d | %16s | %15.1f | %11.0f | %9s | %5.1f%% |\n", ask_mode_name(m.mode),
                 m.questions, acc, m.tokens_per_question, m.ms_per_question, agr, 100.0 * m.pruned_rate);
        s += buf;
    }
    return s;
}

nlohmann::ordered_json to_json(const eval_report & r, const std::vector<eval_task> & tasks) {
    nlohmann::ordered_json j;
    j["tasks"]     = r.tasks;
    j["cancelled"] = r.cancelled;
    j["modes"]     = nlohmann::ordered_json::array();
    for (const auto & m : r.modes) {
        j["modes"].push_back({ { "mode", ask_mode_name(m.mode) },
                               { "questions", m.questions },
                               { "correct", m.correct },
                               { "failed", m.failed },
                               { "accuracy", m.accuracy },
                               { "tokens_per_question", m.tokens_per_question },
                               { "ms_per_question", m.ms_per_question },
                               { "ms_total", m.ms_total },
                               { "agreement", m.agreement },
                               { "voted", m.voted },
                               { "pruned_rate", m.pruned_rate } });
    }
    j["items"] = nlohmann::ordered_json::array();
    for (const auto & it : r.items) {
        const eval_task & t = tasks.at((size_t) it.task);
        nlohmann::ordered_json o = { { "id", t.id },
                                     { "mode", ask_mode_name(it.mode) },
                                     { "correct", it.correct },
                                     { "expected", t.expected },
                                     { "got", it.got },
                                     { "tokens", it.tokens },
                                     { "ms", it.ms } };
        if (it.voted) o["agreement"] = it.agreement;
        if (!it.error.empty()) o["error"] = it.error;
        j["items"].push_back(std::move(o));
    }
    return j;
}

}  // namespace muse
