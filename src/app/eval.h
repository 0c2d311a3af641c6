#pragma once
// `muse eval`: a task file with known answers run through the reasoning modes, scored by exact
// match, one table row per mode. It is how a user measures what Instant, Thinking and
// Contemplating are worth on a model.
//
//   std::vector<muse::eval_task> tasks;
//   if (muse::error e = muse::read_eval_tasks("gsm8k-test.jsonl", 0, tasks)) { ... e.message names the line ... }
//   muse::eval_params p;
//   p.modes = { muse::MODE_INSTANT, muse::MODE_THINKING, muse::MODE_CONTEMPLATING };
//   muse::eval_report r = muse::run_eval(door, tasks, p, progress, cancel);
//   puts(muse::eval_table(r).c_str());
//
// Task files are JSON Lines, one `{"question": "...", "answer": "..."}` per line (GSM8K's
// format: an answer whose last line is "#### 72" is scored on 72; ours gives the bare answer).
// An `id` is kept when present. Blank lines are skipped; any other line that is not such an
// object is an error naming the line.
//
// Scoring: the expected answer and each result go through the vote's answer extraction
// (reasoning/answer.h: "Final answer: X", \boxed{X}, the last number of a short text, ...), so
// "1,000", "1000" and "1000.0" agree. Contemplating with a vote is scored on the vote's winner.
//
// Thread safety: run_eval() runs one question at a time and may be called from any thread; the
// progress callback is called on the calling thread.

#include "app/assistant.h"
#include "core/cancel.h"
#include "core/error.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace muse {

struct eval_task {
    std::string id;        // the task's `id`, else its line number
    std::string question;
    std::string answer;    // as written in the file
    std::string expected;  // the comparison key (normalised answer)
    int         line = 0;
};

// Caps on a task file.
inline constexpr size_t k_eval_max_file_bytes = 64u << 20;
inline constexpr size_t k_eval_max_tasks      = 100000;
inline constexpr size_t k_eval_max_question   = 64u << 10;  // bytes

// Parses JSON Lines text (`name` is used in errors). At most `limit` tasks (0: all, up to
// k_eval_max_tasks).
error parse_eval_tasks(const std::string & text, const std::string & name, size_t limit, std::vector<eval_task> & out);
// Reads and parses a task file (at most k_eval_max_file_bytes).
error read_eval_tasks(const std::string & path, size_t limit, std::vector<eval_task> & out);

// The comparison key of an answer text ("" when it holds no answer).
std::string eval_answer_key(const std::string & text);

struct eval_params {
    std::vector<ask_mode> modes = { MODE_INSTANT, MODE_THINKING, MODE_CONTEMPLATING };
    ask_options           opt;  // agents, budget, answer tokens, sampling, tools (mode is set per row)
    std::string           system_prompt;
};

// One question in one mode.
struct eval_item {
    int         task = 0;  // index into the task list
    ask_mode    mode = MODE_INSTANT;
    bool        correct = false;
    std::string got;       // the key the result was scored on ("" when it held no answer)
    std::string answer;    // the result's answer text
    int32_t     tokens = 0;  // completion tokens, every agent
    double      ms = 0;
    double      agreement = 0;  // contemplating with a vote: the winner's share of the votes
    bool        voted = false;
    int32_t     agents = 0, pruned = 0;
    std::string error;     // the request failed (scored wrong)
};

struct eval_mode_summary {
    ask_mode mode = MODE_INSTANT;
    int32_t  questions = 0, correct = 0, failed = 0;
    double   accuracy = 0;          // correct / questions
    double   tokens_per_question = 0;
    double   ms_total = 0, ms_per_question = 0;
    double   agreement = 0;         // mean over the questions that were voted on (0: none)
    int32_t  voted = 0;
    double   pruned_rate = 0;       // pruned agents / agents (0 when no agent ran)
};

struct eval_report {
    std::vector<eval_mode_summary> modes;
    std::vector<eval_item>         items;  // mode by mode, task by task
    int32_t                        tasks = 0;
    bool                           cancelled = false;
};

// Runs every task in every mode (mode by mode). `progress(done, total)` after each question.
// A refused request (the rules of app::assistant) is an error returned before anything runs; a
// request that fails while running is a wrong answer with its error in the item.
// The sampling seed of question i under a run's seed: derived from both, so every question
// has its own stream and a rerun the same ones; 0xFFFFFFFF (random) stays random.
uint32_t eval_question_seed(uint32_t seed, size_t i);

error run_eval(const assistant & door, const std::vector<eval_task> & tasks, const eval_params & p,
               const std::function<void(int done, int total)> & progress, const cancel_token & cancel, eval_report & out);

// The table `muse eval` prints: mode | questions | accuracy | tokens/question | ms/question |
// agreement | pruned.
std::string eval_table(const eval_report & r);

// {tasks, cancelled, modes: [{mode, questions, correct, failed, accuracy, tokens_per_question,
//  ms_per_question, ms_total, agreement, voted, pruned_rate}], items: [{id, mode, correct,
//  expected, got, tokens, ms, agreement, error}]}
nlohmann::ordered_json to_json(const eval_report & r, const std::vector<eval_task> & tasks);

}  // namespace muse
