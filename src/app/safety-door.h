#pragma once
// The safety gates at the assistant's door (safety/ holds the rules; this wires them into a
// request): check_input classifies the user's turn with the text extracted from its
// attachments and decides (refuse, or guidance first, a disclaimer last, an instruction for the
// model); the assistant then gates each choice's stream (gate_stream: guidance before the first
// word, sentences held while a dose or personal data is checked, the disclaimer at the end) and
// checks the final answer the same way (check_output), so a streamed answer and the stored one
// agree. Every verdict goes into the trace (`muse.safety`) and the counters (/metrics).
//
//   auto door = std::make_shared<muse::safety_door>(policy);
//   muse::assistant_params ap; ap.safety = door;          // assistant::prepare / run use it
//
// Thread safety: check_input, check_output and the counters from any number of threads.

#include "backend/backend.h"
#include "core/cancel.h"
#include "reasoning/orchestrator.h"
#include "safety/classifier.h"
#include "safety/guard.h"
#include "safety/pii.h"
#include "safety/policy.h"

#include <nlohmann/json.hpp>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace muse {

class safety_door {
  public:
    explicit safety_door(safety_policy p = {});

    const safety_policy & policy() const { return pol; }
    const pii_detector &  pii() const { return detector; }

    // Classifies the request's last user message (the attachments' text is folded into it by
    // then) and decides. The instruction is added to the request's system prompt. A classifier
    // failure refuses the request (ERROR_INTERNAL naming it) when the policy fails closed; open,
    // it passes with "failed_open" in the trace.
    // `untrusted`: the attachments' text as read, and `marker`: the spotlight marker it was
    // folded in with ("" when there were none). Tool results the client sent back (`tool`
    // messages: a fetched page, an e-mail) are untrusted too: they go between markers as well.
    // Instruction-like text in any of it (injection.h) is recorded, and client tools with side
    // effects are withheld for this request.
    error check_input(ask_request & req, safety_decision & d, const std::string & untrusted = "", const std::string & marker = "") const;

    // The final answer as the stream showed it: guidance + the checked answer + the disclaimer;
    // calls to withheld tools dropped (their names in `blocked`).
    void check_output(const safety_decision & d, ask_result & r, std::vector<std::string> * blocked = nullptr) const;

    // The verdict as the trace's `safety` object.
    static std::string trace_json(const safety_decision & d, const safety_policy & p, const std::vector<std::string> & blocked = {});

    // Personal data replaced in every string of a JSON value (traces, stored items), with one
    // redactor so that placeholders agree across the value.
    void redact_json(nlohmann::ordered_json & j, pii_redactor & r) const;
    // The trace's texts (agents' reasoning, answers, tool calls) redacted in place.
    void redact_trace(ask_result & r, pii_redactor & red) const;
    // Text for a log line: redacted when the policy says logs.
    std::string for_log(const std::string & text) const;

    std::vector<backend_metric> stats() const;

    // A guard model (--guard-model: a backend whose model answers in Llama Guard 3's format),
    // or null. It must outlive the door. The assistant runs it beside the answer and holds the
    // answer until its verdict: unsafe refuses; a failure refuses (closed) or passes (open).
    // The guard's prompt style follows its model (safety/guard.h): Llama Guard's own template,
    // Llama Guard's format, or the instructions first for any other model.
    void      set_guard(backend * g);
    guard_prompt_style guard_style() const { return style; }
    backend * guard_backend() const { return guard; }
    struct guard_outcome {
        error         err;
        guard_verdict verdict;
        std::string   raw;  // what the guard wrote (cut to 200 bytes a window, joined by " | ")
        double        ms = 0;
        int           windows = 1;  // a long turn is judged in windows side by side
    };
    // `cache_salt`: the request's (the user's scope). The guard prompt's fixed part before the
    // turn is the same for everyone: its cached cells are shared across users
    // (chat_request::public_until); the turn and what follows stay in the user's scope.
    guard_outcome run_guard(const std::string & turn, const std::string & cache_salt, const cancel_token & cancel) const;
    // One verdict on a neutral turn, not counted, so that the fixed part (shared by every user)
    // is in the prompt cache before the first request: muse serve calls it at start.
    void warm_guard() const;

    // Tests: a classifier that fails (throws) on demand, to check failing closed and open.
    void set_classifier_for_tests(std::function<classification(std::string_view)> f) { test_classify = std::move(f); }

  private:
    safety_policy     pol;
    hazard_classifier cls;
    pii_detector      detector;
    std::function<classification(std::string_view)> test_classify;
    backend *         guard = nullptr;
    guard_prompt_style style = GUARD_PROMPT_LLAMA_GUARD;
    guard_outcome      ask_guard(const std::string & turn, const std::string & cache_salt, const cancel_token & cancel) const;

    mutable std::atomic<uint64_t> checks{ 0 }, refusals{ 0 }, failures{ 0 }, emergency{ 0 }, crisis{ 0 }, disclaimers{ 0 };
    mutable std::atomic<uint64_t> injections{ 0 }, withheld{ 0 }, blocked_calls{ 0 };
    mutable std::atomic<uint64_t> guard_runs{ 0 }, guard_unsafe{ 0 }, guard_failures{ 0 };
    mutable std::atomic<uint64_t> by_hazard[15] = {};
    mutable std::atomic<uint64_t> by_flag[RF_COUNT] = {};
};

}  // namespace muse
