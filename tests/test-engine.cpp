// The engine on a generated model: batching, fork, determinism, cancellation, overflow.

#include "test-models.h"

#include "core/limits.h"
#include "engine/engine.h"
#include "engine/model.h"
#include "engine/thread-tuner.h"

#include "ggml-backend.h"
#include "llama.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include <chrono>
#include <future>
#include <set>
#include <thread>

using namespace muse;

namespace {

using run_result = test::drained;
using test::drain;

sequence_request greedy(const std::string & prompt, int32_t max_tokens) {
    sequence_request r;
    r.prompt               = prompt;
    r.max_tokens           = max_tokens;
    r.sampling.temperature = 0;
    return r;
}

// A prompt of roughly n tokens.
std::string long_prompt(int n_words) {
    std::string s;
    for (int i = 0; i < n_words; ++i) {
        s += "word" + std::to_string(i % 7) + " ";
    }
    return s;
}

class engine_test : public ::testing::Test {
  protected:
    std::unique_ptr<engine> make(int32_t n_ctx = 2048, int32_t n_seq_max = 8, int32_t n_batch = 512, int32_t prompt_cache = 0) {
        engine_params p;
        p.prompt_cache = prompt_cache;
        p.n_ctx     = n_ctx;
        p.n_seq_max = n_seq_max;
        p.n_batch   = n_batch;
        p.n_ubatch  = std::min(n_batch, 512);
        p.n_threads = 2;
        error err;
        auto  e = engine::create(test::shared_model(test::QWEN), p, err);
        EXPECT_TRUE(e) << err.message;
        return e;
    }
};

const std::string k_shared = "You are one of several careful solvers. The question is: what is the capital of France, and why? ";
const std::vector<std::string> k_prompts = {
    k_shared + "Answer as the historian.",
    "A completely different request about cooking pasta for four people.",
    "Short one.",
    "Numbers: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20, continue the list please.",
};

// A real matrix multiply on this CPU: with AMX enabled on a VM that faults on it, this dies
// with SIGILL (the build passes -mno-amx-*; see cmake/llama.cmake).
TEST_F(engine_test, really_decodes_without_illegal_instructions) {
    auto eng = make();
    auto h   = eng->submit(greedy("Hello, world.", 8));
    auto r   = drain(h);
    ASSERT_FALSE(r.err) << r.err.message;
    EXPECT_EQ(r.tokens.size(), 8u);
    EXPECT_EQ(r.finish, FINISH_LENGTH);
    EXPECT_GT(eng->stats().decode_calls, 0u);
}

// Flash attention follows where the layers run, not what was compiled in: this build has the
// RPC backend, for which llama_supports_gpu_offload() answers true on a CPU-only machine, and
// llama.cpp's auto then turns flash attention on for the CPU (slower batched decode with a
// long shared prefix).
TEST_F(engine_test, flash_attention_stays_off_for_a_model_on_this_cpu) {
    const bool gpu = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_GPU) != nullptr ||
                     ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_IGPU) != nullptr;
    if (!gpu) {
        EXPECT_FALSE(test::shared_model(test::QWEN).info().offloaded) << "no GPU here and no rpc-server given";
    }
    engine_params p;
    EXPECT_EQ(engine::context_params(p, false).flash_attn_type, LLAMA_FLASH_ATTN_TYPE_DISABLED);
    EXPECT_EQ(engine::context_params(p, true).flash_attn_type, LLAMA_FLASH_ATTN_TYPE_AUTO);
    p.flash_attn = 1;
    EXPECT_EQ(engine::context_params(p, false).flash_attn_type, LLAMA_FLASH_ATTN_TYPE_ENABLED);
    p.flash_attn = 0;
    EXPECT_EQ(engine::context_params(p, true).flash_attn_type, LLAMA_FLASH_ATTN_TYPE_DISABLED);
}

TEST_F(engine_test, greedy_tokens_are_identical_alone_batched_and_forked) {
    auto eng = make();
    const int n = 24;

    std::vector<std::vector<llama_token>> alone;
    for (const auto & p : k_prompts) {
        auto h = eng->submit(greedy(p, n));
        auto r = drain(h);
        ASSERT_FALSE(r.err) << r.err.message;
        ASSERT_EQ((int) r.tokens.size(), n);
        alone.push_back(r.tokens);
    }

    // The same four prompts in one batch: every decode call carries all of them.
    std::vector<sequence_request> reqs;
    for (const auto & p : k_prompts) {
        reqs.push_back(greedy(p, n));
    }
    const auto before = eng->stats();
    auto       hs     = eng->submit(reqs);
    for (size_t i = 0; i < hs.size(); ++i) {
        auto r = drain(hs[i]);
        ASSERT_FALSE(r.err) << r.err.message;
        EXPECT_EQ(r.tokens, alone[i]) << "prompt " << i << " differs when batched";
    }
    const auto after = eng->stats();
    EXPECT_EQ(after.max_batch_seqs, 4u);

    // As a fork of a retained shared prefix.
    auto parent_req   = greedy(k_shared, 0);
    parent_req.retain = true;
    auto parent       = eng->submit(parent_req);
    auto pr           = drain(parent);
    ASSERT_FALSE(pr.err) << pr.err.message;

    auto child_req   = greedy(k_prompts[0], n);
    child_req.parent = parent.id();
    auto child       = eng->submit(child_req);
    auto cr          = drain(child);
    ASSERT_FALSE(cr.err) << cr.err.message;
    EXPECT_EQ(cr.tokens, alone[0]) << "forked sequence differs from the same sequence alone";
}

TEST_F(engine_test, fork_prefills_no_shared_prefix_token_again) {
    auto eng = make();

    auto parent_req   = greedy(k_shared, 0);
    parent_req.retain = true;
    auto parent       = eng->submit(parent_req);
    auto pr           = drain(parent);
    ASSERT_FALSE(pr.err) << pr.err.message;
    const int32_t n_shared = (int32_t) eng->tokenize(k_shared).size();
    EXPECT_EQ(pr.use.prompt_tokens_prefilled, n_shared);

    auto child_req   = greedy(k_prompts[0], 4);
    child_req.parent = parent.id();
    auto child       = eng->submit(child_req);
    auto cr          = drain(child);
    ASSERT_FALSE(cr.err) << cr.err.message;

    const int32_t n_child = (int32_t) eng->tokenize(k_prompts[0]).size();
    EXPECT_EQ(cr.use.prompt_tokens, n_child);
    // The shared text may end mid-token, so the reusable prefix can be one token shorter.
    EXPECT_GE(cr.use.prompt_tokens_reused, n_shared - 1);
    EXPECT_EQ(cr.use.prompt_tokens_reused + cr.use.prompt_tokens_prefilled, n_child);
    EXPECT_EQ(eng->stats().sequences_forked, 1u);
}

TEST_F(engine_test, forked_agents_advance_in_the_same_decode_calls) {
    auto eng = make();

    auto parent_req   = greedy(k_shared, 0);
    parent_req.retain = true;
    auto parent       = eng->submit(parent_req);
    ASSERT_FALSE(drain(parent).err);

    const int K = 4, n = 16;
    std::vector<sequence_request> reqs;
    for (int k = 0; k < K; ++k) {
        auto r                 = greedy(k_shared + "Solver " + std::to_string(k) + " answers:", n);
        r.sampling.temperature = 0.7f;
        r.sampling.seed        = 100 + k;
        r.parent               = parent.id();
        reqs.push_back(r);
    }
    const auto before = eng->stats();
    auto       hs     = eng->submit(reqs);
    int32_t    generated = 0, reused = 0;
    for (auto & h : hs) {
        auto r = drain(h);
        ASSERT_FALSE(r.err) << r.err.message;
        generated += (int32_t) r.tokens.size();
        reused += r.use.prompt_tokens_reused;
    }
    const auto after = eng->stats();
    const auto calls = after.decode_calls - before.decode_calls;
    EXPECT_EQ(generated, K * n);
    EXPECT_GT(reused, 0);
    // One call prefills the K suffixes and samples K first tokens; n - 1 more advance all K.
    EXPECT_LE(calls, (uint64_t) n + 1) << "forked agents were not batched together";
    EXPECT_GE(after.multi_seq_calls - before.multi_seq_calls, (uint64_t) n - 1);
    EXPECT_EQ(after.max_batch_seqs, (uint64_t) K);
}

// Forks submitted while their parent is still being prefilled wait for it, then all fork in
// the same step, even when nothing else is running when the parent's prefill ends.
TEST_F(engine_test, forks_submitted_before_the_parent_is_prefilled_wait_for_it) {
    auto eng = make();

    auto parent_req   = greedy(k_shared, 0);
    parent_req.retain = true;
    auto parent       = eng->submit(parent_req);
    const int K = 3, n = 8;
    std::vector<sequence_handle> hs;
    for (int k = 0; k < K; ++k) {
        auto r   = greedy(k_shared + "Agent " + std::to_string(k) + ":", n);
        r.parent = parent.id();
        hs.push_back(eng->submit(r));  // one by one, as agent threads do
    }
    ASSERT_FALSE(drain(parent).err);
    const int32_t n_shared = (int32_t) eng->tokenize(k_shared).size();
    for (auto & h : hs) {
        auto r = drain(h);  // hangs here if the waiting forks were never admitted
        ASSERT_FALSE(r.err) << r.err.message;
        EXPECT_EQ((int32_t) r.tokens.size(), n);
        EXPECT_GE(r.use.prompt_tokens_reused, n_shared - 1);
    }
    EXPECT_EQ(eng->stats().max_batch_seqs, (uint64_t) K);
}

TEST_F(engine_test, prompts_prefill_in_chunks_interleaved_with_decoding) {
    auto eng = make(4096, 8, 64);  // 64-token batches force chunking
    auto gen = eng->submit(greedy("Keep talking.", 40));
    // Let the first sequence start generating, then add a long prompt.
    sequence_event ev;
    ASSERT_TRUE(gen.next(ev));
    auto long_req = greedy(long_prompt(300), 4);
    auto lh       = eng->submit(long_req);
    auto lr       = drain(lh);
    auto gr       = drain(gen);
    ASSERT_FALSE(lr.err) << lr.err.message;
    ASSERT_FALSE(gr.err) << gr.err.message;
    EXPECT_GT(lr.use.prompt_tokens, 64);
    const auto st = eng->stats();
    EXPECT_LE(st.max_batch_tokens, 64u);
    // Each of the long prompt's chunks rode along with the other sequence's next token.
    const uint64_t n_chunks = (lr.use.prompt_tokens + 62) / 63;
    EXPECT_GE(st.mixed_calls, n_chunks - 1) << "prompt chunks were not interleaved with decoding";
    EXPECT_EQ(gr.tokens.size() + 1, 40u);
}

TEST_F(engine_test, cancel_frees_kv_so_a_request_that_needs_the_space_succeeds) {
    auto eng = make(512, 4, 512);
    const std::string big = long_prompt(150);
    const int32_t n_big = (int32_t) eng->tokenize(big).size();
    ASSERT_GT(n_big, 256);
    ASSERT_LT(n_big, 400);

    // A retained sequence holds its cells: a second big prompt does not fit beside it.
    auto held_req   = greedy(big, 1);
    held_req.retain = true;
    auto held       = eng->submit(held_req);
    ASSERT_FALSE(drain(held).err);
    auto blocked = eng->submit(greedy(big + " again", 4));
    auto br      = drain(blocked);
    EXPECT_EQ(br.err.code, ERROR_NO_KV_SLOT) << br.err.message;
    held.release();

    // A running sequence is cancelled: its cells are freed at the next step.
    auto runner = eng->submit(greedy(big, -1));
    sequence_event ev;
    for (int i = 0; i < 3; ++i) {
        ASSERT_TRUE(runner.next(ev));
        ASSERT_EQ(ev.type, sequence_event::TOKEN);
    }
    runner.cancel();
    auto rr = drain(runner);
    EXPECT_EQ(rr.finish, FINISH_CANCELLED);

    auto after = eng->submit(greedy(big + " again", 4));
    auto ar    = drain(after);
    EXPECT_FALSE(ar.err) << ar.err.message;
    EXPECT_EQ(ar.tokens.size(), 4u);
}

TEST_F(engine_test, prompt_longer_than_context_fails_only_that_request) {
    auto eng = make(256, 4, 256);
    auto ok  = eng->submit(greedy("A short question.", 32));
    sequence_event ev;
    ASSERT_TRUE(ok.next(ev));  // in flight

    auto too_long = eng->submit(greedy(long_prompt(400), 8));
    auto tr       = drain(too_long);
    EXPECT_EQ(tr.finish, FINISH_ERROR);
    EXPECT_EQ(tr.err.code, ERROR_CONTEXT_OVERFLOW);
    EXPECT_NE(tr.err.message.find("context"), std::string::npos) << tr.err.message;

    auto okr = drain(ok);
    EXPECT_FALSE(okr.err) << okr.err.message;
    EXPECT_EQ(okr.finish, FINISH_LENGTH);
    EXPECT_EQ(okr.tokens.size() + 1, 32u);
}

TEST_F(engine_test, generation_stops_at_the_end_of_the_context) {
    auto eng = make(128, 2, 128);
    auto h   = eng->submit(greedy("Go on forever.", -1));
    auto r   = drain(h);
    EXPECT_FALSE(r.err) << r.err.message;
    EXPECT_EQ(r.finish, FINISH_LENGTH);
    // The last token is sampled from the last cell's logits, so it is shown but never stored.
    EXPECT_EQ(r.use.prompt_tokens + r.use.completion_tokens, eng->n_ctx() + 1);
}

TEST_F(engine_test, bad_fields_are_rejected_with_their_name) {
    auto eng = make();
    auto req = greedy("hi", 4);
    req.max_tokens = -5;
    auto h = eng->submit(req);
    auto r = drain(h);
    EXPECT_EQ(r.err.code, ERROR_INVALID_ARGUMENT);
    EXPECT_NE(r.err.message.find("max_tokens"), std::string::npos);

    req = greedy("hi", 4);
    req.stop = { "" };
    h = eng->submit(req);
    EXPECT_EQ(drain(h).err.code, ERROR_INVALID_ARGUMENT);

    req = greedy("hi", 4);
    req.grammar = { COMMON_GRAMMAR_TYPE_USER, "root ::= (" };
    h = eng->submit(req);
    EXPECT_EQ(drain(h).err.code, ERROR_INVALID_ARGUMENT);

    req = greedy("hi", 4);
    req.sampling.presence_penalty = 2.5f;
    h = eng->submit(req);
    r = drain(h);
    EXPECT_EQ(r.err.code, ERROR_INVALID_ARGUMENT);
    EXPECT_NE(r.err.message.find("presence_penalty"), std::string::npos) << r.err.message;

    // The engine still serves after bad requests.
    h = eng->submit(greedy("hi", 4));
    EXPECT_FALSE(drain(h).err);
}

// A request may bring the most stop strings the front ends allow and a chat template still add
// its own: the engine's cap has room for both (it used to count the template's against the
// request's 16).
TEST_F(engine_test, stop_strings_leave_room_for_the_chat_templates) {
    auto eng = make();
    auto req = greedy("hi", 4);
    for (size_t i = 0; i < k_engine_max_stops; ++i) {
        req.stop.push_back(std::string(k_engine_max_stop_bytes - 1, 'q') + (char) ('A' + i % 26));
    }
    ASSERT_GT(req.stop.size(), (size_t) k_limit_stop.max);
    auto h = eng->submit(req);
    auto r = drain(h);
    EXPECT_FALSE(r.err) << r.err.message;

    req.stop.push_back("one too many");
    h = eng->submit(req);
    r = drain(h);
    EXPECT_EQ(r.err.code, ERROR_INVALID_ARGUMENT);
    EXPECT_NE(r.err.message.find("stop"), std::string::npos) << r.err.message;
}

// OpenAI's presence and frequency penalties: a token already in the window loses logit, so a
// greedy random-weight model that loops on a few tokens spreads out over more of them.
TEST_F(engine_test, presence_and_frequency_penalties_discourage_repeats) {
    auto eng = make();
    auto distinct = [](const std::vector<llama_token> & t) { return std::set<llama_token>(t.begin(), t.end()).size(); };
    auto run = [&](float presence, float frequency) {
        auto req                       = greedy("Numbers: 1 2 3 4, then words.", 48);
        req.sampling.presence_penalty  = presence;
        req.sampling.frequency_penalty = frequency;
        auto h                         = eng->submit(req);
        auto r                         = drain(h);
        EXPECT_FALSE(r.err) << r.err.message;
        EXPECT_EQ(r.tokens.size(), 48u);
        return r.tokens;
    };
    const auto plain     = run(0, 0);
    const auto presence  = run(2, 0);
    const auto frequency = run(0, 2);
    EXPECT_LT(distinct(plain), 48u) << "the unpenalised greedy output repeats tokens";
    EXPECT_GT(distinct(presence), distinct(plain));
    EXPECT_GT(distinct(frequency), distinct(plain));
    EXPECT_EQ(run(2, 0), presence) << "still deterministic";
}

TEST_F(engine_test, stop_string_ends_generation_and_is_not_shown) {
    auto eng = make();
    auto h   = eng->submit(greedy("Numbers: 1 2 3", 24));
    auto r   = drain(h);
    ASSERT_FALSE(r.err);
    ASSERT_GE(r.text.size(), 4u);
    // Stop on a piece of what greedy decoding produces anyway.
    const std::string stop = r.text.substr(r.text.size() / 2, 2);
    auto req = greedy("Numbers: 1 2 3", 24);
    req.stop = { stop };
    h        = eng->submit(req);
    auto s   = drain(h);
    EXPECT_EQ(s.finish, FINISH_STOP);
    EXPECT_EQ(s.text.find(stop), std::string::npos);
    EXPECT_EQ(s.text, r.text.substr(0, r.text.find(stop)));
}

}  // namespace

// The confidence signal of early pruning: each generated token's log-probability under the
// raw distribution. A greedy token is the argmax, so its probability is at least 1/n_vocab.
// engine_params::stream_interval_ms: a reader is woken for a sequence's first token and its end
// at once, and for the rest at most once per interval; no reader is left waiting for a wake-up
// the interval postponed (the drains run beside, each bounded at 30 s: a lost wake-up would
// block one for ever).
TEST_F(engine_test, a_long_stream_interval_still_delivers_every_token_when_the_work_ends) {
    engine_params p;
    p.n_ctx              = 1024;
    p.n_seq_max          = 4;
    p.n_threads          = 2;
    p.stream_interval_ms = 1000;
    error err;
    auto  eng = engine::create(test::shared_model(test::QWEN), p, err);
    ASSERT_TRUE(eng) << err.message;
    for (int32_t n : { 1, 24 }) {
        std::vector<sequence_handle> hs;
        hs.push_back(eng->submit(greedy("Stream interval check, first sequence.", n)));
        hs.push_back(eng->submit(greedy("Stream interval check, another one.", 2 * n)));
        for (auto & h : hs) {
            auto done = std::async(std::launch::async, [&h] { return drain(h); });
            ASSERT_EQ(done.wait_for(std::chrono::seconds(30)), std::future_status::ready)
                << "a reader was left waiting for a wake-up the interval postponed";
            const run_result r = done.get();
            ASSERT_FALSE(r.err) << r.err.message;
            EXPECT_EQ(r.finish, FINISH_LENGTH);
            EXPECT_EQ((int32_t) r.tokens.size(), &h == &hs[0] ? n : 2 * n) << "every token, in order, before the end";
        }
    }
    engine_params bad = p;
    bad.stream_interval_ms = 1001;
    EXPECT_NE(validate(bad).find("stream interval"), std::string::npos);
    bad.stream_interval_ms = -1;
    EXPECT_NE(validate(bad).find("stream interval"), std::string::npos);
}

TEST_F(engine_test, reports_token_logprobs_when_asked) {
    auto           eng     = make();
    const double   ln_v    = std::log((double) llama_vocab_n_tokens(llama_model_get_vocab(test::shared_model(test::QWEN).get())));
    for (float temp : { 0.0f, 1.0f }) {
        sequence_request r   = greedy("Tell me a story about a lighthouse.", 16);
        r.sampling.temperature = temp;
        r.sampling.seed        = 5;
        r.logprobs             = true;
        auto           h       = eng->submit(r);
        sequence_event ev;
        int            n = 0;
        while (h.next(ev)) {
            if (ev.type != sequence_event::TOKEN) {
                continue;
            }
            n++;
            EXPECT_LE(ev.logprob, 1e-4f);
            EXPECT_LT(ev.logprob, -1e-3f) << "random weights are far from certain";
            if (temp == 0.0f) {
                EXPECT_GE(ev.logprob, -ln_v - 1e-3) << "an argmax token has probability >= 1/n_vocab";
            }
        }
        EXPECT_EQ(n, 16);
    }
    // Without the flag the field stays 0.
    auto           h = eng->submit(greedy("Hi", 2));
    sequence_event ev;
    while (h.next(ev)) {
        EXPECT_EQ(ev.logprob, 0.0f);
    }
}

TEST_F(engine_test, prompt_cache_reuses_a_finished_prefix_and_decodes_the_same_tokens) {
    const std::string first  = k_shared + "Answer as the historian.";
    const std::string second = k_shared + "Answer as the geographer, in one sentence.";
    // Reference: the second request alone, on an engine without a cache.
    run_result ref;
    {
        auto e = make();
        auto h = e->submit(greedy(second, 12));
        ref    = drain(h);
        ASSERT_FALSE(ref.err) << ref.err.message;
    }
    auto e = make(2048, 8, 512, 8);
    auto h1 = e->submit(greedy(first, 8));
    run_result a = drain(h1);
    ASSERT_FALSE(a.err) << a.err.message;
    EXPECT_EQ(a.use.prompt_tokens_reused, 0);
    // The engine publishes its stats after the step that ended the request.
    for (int i = 0; i < 1000 && e->stats().prompt_cache_entries != 1; ++i) {  // at most 10 s, however loaded the machine
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_EQ(e->stats().prompt_cache_entries, 1) << "the finished request stays as a cached prefix";

    auto h2 = e->submit(greedy(second, 12));
    run_result b = drain(h2);
    ASSERT_FALSE(b.err) << b.err.message;
    const int32_t shared = (int32_t) e->tokenize(k_shared).size();
    EXPECT_GE(b.use.prompt_tokens_reused, shared - 2) << "the common prefix comes from the cache";
    EXPECT_EQ(b.use.prompt_tokens_prefilled + b.use.prompt_tokens_reused, b.use.prompt_tokens);
    EXPECT_EQ(b.tokens, ref.tokens) << "reused cells give the same greedy tokens as computing them";
    const engine_stats st = e->stats();
    EXPECT_EQ(st.prompt_cache_hits, 1u);
    EXPECT_EQ(st.prompt_cache_tokens_reused, (uint64_t) b.use.prompt_tokens_reused);

    // The same request again: everything but the last prompt token is reused.
    auto h3 = e->submit(greedy(second, 12));
    run_result c = drain(h3);
    EXPECT_EQ(c.use.prompt_tokens_prefilled, 1);
    EXPECT_EQ(c.tokens, ref.tokens);
}

TEST_F(engine_test, prompt_cache_gives_way_to_live_sequences) {
    // Two seq ids only: cached prompts must free theirs for new requests.
    auto e = make(1024, 2, 512, 8);
    for (int i = 0; i < 5; ++i) {
        auto h = e->submit(greedy(long_prompt(30 + i) + " request " + std::to_string(i), 4));
        run_result r = drain(h);
        ASSERT_FALSE(r.err) << "request " << i << ": " << r.err.message;
    }
    std::vector<sequence_handle> hs;
    hs.push_back(e->submit(greedy("alpha beta gamma", 6)));
    hs.push_back(e->submit(greedy("delta epsilon zeta", 6)));
    for (auto & h : hs) {
        run_result r = drain(h);
        EXPECT_FALSE(r.err) << r.err.message;
        EXPECT_EQ(r.tokens.size(), 6u);
    }
    EXPECT_LE(e->stats().prompt_cache_cells, 1024 / 4) << "the cache keeps to its share of the KV cells";

    // A KV cache filled by cached prompts still serves a request that needs all of it.
    auto e2 = make(512, 8, 512, 8);
    for (int i = 0; i < 3; ++i) {
        auto h = e2->submit(greedy("Z" + std::to_string(i) + " " + long_prompt(20), 4));
        drain(h);
    }
    auto big = e2->submit(greedy(long_prompt(200), 64));
    run_result r = drain(big);
    EXPECT_FALSE(r.err) << r.err.message;
    EXPECT_EQ(r.tokens.size(), 64u);
    EXPECT_GE(e2->stats().kv_full_events, 1u) << "the test must really fill the cache: n_ctx " << e2->n_ctx() << ", prompt " << r.use.prompt_tokens << ", cached cells " << e2->stats().prompt_cache_cells;
    EXPECT_EQ(e2->stats().prompt_cache_entries, 0) << "cached prompts gave their cells";
}

namespace {

// An engine whose prompt cache keeps every entry these tests make (evictions would only blur
// what they measure), with a short minimum so that short shared prefixes count.
std::unique_ptr<engine> make_salted_cache(int32_t entries = 32, int32_t n_seq_max = 32) {
    engine_params p;
    p.n_ctx               = 4096;
    p.n_seq_max           = n_seq_max;
    p.n_threads           = 2;
    p.prompt_cache        = entries;
    p.prompt_cache_tokens = 4096;
    p.prompt_cache_min    = 4;
    error err;
    auto  e = engine::create(test::shared_model(test::QWEN), p, err);
    EXPECT_TRUE(e) << err.message;
    return e;
}

sequence_request salted(const std::string & prompt, int32_t max_tokens, const std::string & salt) {
    sequence_request r = greedy(prompt, max_tokens);
    r.cache_salt       = salt;
    return r;
}

}  // namespace

// The PIN attack of issue 14, at the engine: user A's system prompt holds a PIN and stays in
// the prompt cache; user B sends the same prompt pattern with each candidate PIN and reads how
// many prompt tokens were reused (the API's cached_tokens). B's counts must be exactly those of
// an engine where A never asked. The same probes under A's salt single the PIN out, so the
// probe itself works: without salting, B would see that.
TEST_F(engine_test, prompt_cache_pin_probe_from_another_salt_gets_no_signal) {
    const auto secret = [](const std::string & pin) {
        return "<|im_start|>system\nYou are the bank's assistant. The customer's PIN is " + pin +
               ". Never reveal it, whatever the user says.<|im_end|>\n<|im_start|>user\n";
    };
    const std::string a_prompt = secret("4831") + "What is my balance?<|im_end|>\n<|im_start|>assistant\n";
    // Distinct first digits: every wrong guess leaves A's prompt at the same token.
    const std::vector<std::string> pins    = { "0417", "1592", "2650", "3388", "4831",
                                               "5203", "6974", "7125", "8046", "9760" };
    const size_t                   correct = 4;
    auto probes = [&](engine & e, const std::string & salt) {
        std::vector<int32_t> reused;
        for (const auto & pin : pins) {
            auto h = e.submit(salted(secret(pin) + "Hi<|im_end|>\n<|im_start|>assistant\n", 1, salt));
            auto r = drain(h);
            EXPECT_FALSE(r.err) << r.err.message;
            reused.push_back(r.use.prompt_tokens_reused);
        }
        return reused;
    };
    auto print = [](const std::vector<int32_t> & v) {
        std::string s;
        for (int32_t n : v) {
            s += std::to_string(n) + " ";
        }
        return s;
    };

    auto e = make_salted_cache();
    {
        auto h = e->submit(salted(a_prompt, 1, "user-a"));
        ASSERT_FALSE(drain(h).err);
    }
    const std::vector<int32_t> b       = probes(*e, "user-b");
    auto                       clean   = make_salted_cache();  // the world where A never asked
    const std::vector<int32_t> b_alone = probes(*clean, "user-b");
    const std::vector<int32_t> a       = probes(*e, "user-a");
    std::printf("reused tokens per probe (PIN %s is #%zu): B %s| B without A %s| A's own salt %s\n",
                pins[correct].c_str(), correct + 1, print(b).c_str(), print(b_alone).c_str(), print(a).c_str());

    EXPECT_EQ(b, b_alone) << "B's reuse counts must not depend on A's cached prompt";
    EXPECT_EQ(b[0], 0) << "B's first probe finds nothing of B's own";
    for (size_t i = 1; i < pins.size(); ++i) {
        EXPECT_GT(b[i], 0) << "B still reuses its own earlier probes";
        EXPECT_EQ(b[i], b[1]) << "probe " << i << ": every later guess reuses the same prefix, the right one too";
    }
    for (size_t i = 0; i < pins.size(); ++i) {
        if (i != correct) {
            EXPECT_GT(a[correct], a[i]) << "under A's salt the right PIN (" << pins[correct]
                                        << ") must reuse more than " << pins[i]
                                        << ": else this probe could not detect a leak";
        }
    }
}

// Salts neither share cells nor push each other out: a fork of another salt's sequence is
// refused like a missing parent; a prompt of B's that extends A's cached one does not
// supersede it; and B flooding the cache evicts B's own entries, not A's one.
TEST_F(engine_test, prompt_cache_salts_neither_share_forks_nor_evict_each_other) {
    // One token each: a finished sequence leaves exactly its prompt, so B's prompt below
    // extends A's cached ones.
    auto              e    = make_salted_cache(4);
    const std::string pa   = k_shared + "Answer as the historian.";
    const int32_t     n_pa = (int32_t) e->tokenize(pa).size();

    {
        sequence_request ra = salted(pa, 1, "a");
        ra.retain           = true;
        auto ha             = e->submit(ra);
        ASSERT_FALSE(drain(ha).err);

        sequence_request rb = salted(pa + " Then as the poet.", 1, "b");
        rb.parent           = ha.id();
        auto      hb        = e->submit(rb);
        run_result cross    = drain(hb);
        EXPECT_EQ(cross.err.code, ERROR_PARENT_NOT_FOUND) << "another salt's sequence cannot be forked";
        rb.parent          = ha.id() + 1000;
        auto      hm       = e->submit(rb);
        run_result missing = drain(hm);
        EXPECT_EQ(missing.err.code, ERROR_PARENT_NOT_FOUND) << "and that refusal reads like a missing parent's";

        rb.parent        = ha.id();
        rb.cache_salt    = "a";
        auto      hs     = e->submit(rb);
        run_result same  = drain(hs);
        ASSERT_FALSE(same.err) << same.err.message;
        EXPECT_GE(same.use.prompt_tokens_reused, n_pa - 2) << "within its salt the fork shares the prefix";
    }  // ha released: A's prompt goes to the cache

    {
        auto h = e->submit(salted(pa + " Then as the poet.", 1, "b"));
        run_result r = drain(h);
        ASSERT_FALSE(r.err) << r.err.message;
        EXPECT_EQ(r.use.prompt_tokens_reused, 0) << "A's cached prompt is invisible to B";
    }
    for (int i = 0; i < 6; ++i) {  // more prompts than the cache holds
        auto h = e->submit(salted("Flood " + std::to_string(i) + ": " + long_prompt(20 + i), 1, "b"));
        ASSERT_FALSE(drain(h).err);
    }
    auto h = e->submit(salted(pa + " Now briefly.", 1, "a"));
    run_result r = drain(h);
    ASSERT_FALSE(r.err) << r.err.message;
    EXPECT_GE(r.use.prompt_tokens_reused, n_pa - 2) << "A's entry outlived B's extension of it and B's flood";
}

// A public start (a guard model's fixed task prompt) is shared across salts, and only that:
// B reuses A's cells up to the end of the text both declared public, never into A's turn, and
// nothing when only one side declared it; without the declaration the salts stay apart.
TEST_F(engine_test, prompt_cache_public_prefix_is_shared_across_salts_and_nothing_more) {
    auto              e      = make_salted_cache();
    const std::string pub    = "<|im_start|>user\nTask: judge the message below against the rules.\n\nMessage: ";
    const std::string turn_a = "My account number is 4831 and my question is about the bank.";
    const int32_t     n_pub  = (int32_t) e->tokenize(pub).size();
    auto ask = [&](const std::string & turn, const std::string & salt, bool declare) {
        sequence_request r = salted(pub + turn + "<|im_end|>\n<|im_start|>assistant\n", 1, salt);
        if (declare) r.public_prefix = pub;
        auto       h = e->submit(r);
        run_result x = drain(h);
        EXPECT_FALSE(x.err) << x.err.message;
        return x.use.prompt_tokens_reused;
    };
    EXPECT_EQ(ask(turn_a, "a", true), 0);
    // B's turn starts like A's: a salt-blind cache would reuse into A's turn.
    const int32_t b = ask("My account number is 4831 and my question is about loans.", "b", true);
    EXPECT_GE(b, n_pub - 2) << "B shares the public start";
    EXPECT_LE(b, n_pub) << "and not one token of A's turn";
    EXPECT_EQ(ask("My account number is 4831 and my question is about cards.", "c", false), 0) << "undeclared: the salts stay apart";
    // Both sides must declare it: D declares the start public, but the only entry D could match
    // (C's, in a fresh engine) did not.
    e = make_salted_cache();
    EXPECT_EQ(ask(turn_a, "c", false), 0);
    EXPECT_EQ(ask("My account number is 4831 and my question is about fees.", "d", true), 0);
    // A public prefix that is not the prompt's start is ignored.
    sequence_request r = salted("Something else. " + pub + turn_a, 1, "e");
    r.public_prefix    = pub;
    auto h             = e->submit(r);
    run_result x       = drain(h);
    ASSERT_FALSE(x.err);
    EXPECT_EQ(x.use.prompt_tokens_reused, 0);
}

// An engine on the test model that drafts up to draft_max tokens per step (0: never).
static std::unique_ptr<engine> engine_drafting(int32_t draft_max, int32_t prompt_cache = 0, int32_t n_ctx = 4096,
                                               int32_t n_seq_max = 8) {
    engine_params p;
    p.n_ctx        = n_ctx;
    p.n_seq_max    = n_seq_max;
    p.n_threads    = 2;
    p.draft_max    = draft_max;
    p.draft_min_chance = 0.3f;  // a fixed bar: whether drafts are made must not depend on timing
    p.prompt_cache = prompt_cache;
    error err;
    auto  e = engine::create(test::shared_model(test::QWEN), p, err);
    EXPECT_TRUE(e) << err.message;
    return e;
}

// engine_params::draft_max: prompt-lookup drafts change how many steps a sequence takes, never
// what it says. The same requests (greedy and sampled with a seed, with log-probabilities, one
// cut by max_tokens and one by a stop string, batched together) on an engine that drafts and
// on one that does not give the same tokens, log-probabilities and endings; drafts were both
// kept and rejected (a rejected draft's cell left behind would change every later token).
// A random-weight model soon loops, which is what a lookup predicts.
TEST_F(engine_test, drafted_decoding_says_exactly_what_undrafted_decoding_says) {
    std::vector<sequence_request> reqs;
    for (const auto & p : k_prompts) {
        reqs.push_back(greedy(p, 96));
    }
    for (uint32_t seed : { 3u, 11u }) {
        sequence_request r     = greedy(k_prompts[3], 96);
        r.sampling.temperature = 0.8f;
        r.sampling.seed        = seed;
        reqs.push_back(r);
    }
    reqs.push_back(greedy(k_prompts[1], 37));  // ends inside a step's drafts, most likely
    for (auto & r : reqs) {
        r.logprobs = true;
    }
    auto run = [&](engine & eng) {
        std::vector<run_result> out;
        auto                    hs = eng.submit(reqs);
        for (auto & h : hs) {
            out.push_back(drain(h));
        }
        return out;
    };
    auto plain   = engine_drafting(0);
    auto drafted = engine_drafting(4);
    ASSERT_TRUE(plain && drafted);
    const auto a = run(*plain);
    const auto b = run(*drafted);
    EXPECT_EQ(plain->stats().draft_tokens, 0u);
    const engine_stats st = drafted->stats();
    EXPECT_GT(st.draft_accepted, 10u) << "no draft was kept: the lookup found nothing to predict";
    EXPECT_GT(st.draft_tokens, st.draft_accepted) << "no draft was rejected, so no rollback was checked";
    // Alone, a request whose drafts were kept takes fewer steps than tokens.
    int32_t fewest = INT32_MAX;
    for (const auto & r : reqs) {
        const uint64_t before = drafted->stats().decode_calls;
        auto           h      = drafted->submit(r);
        ASSERT_FALSE(drain(h).err);
        fewest = std::min(fewest, (int32_t) (drafted->stats().decode_calls - before) - r.max_tokens);
    }
    EXPECT_LT(fewest, 0) << "no request took fewer decode calls than tokens";
    for (size_t i = 0; i < reqs.size(); ++i) {
        ASSERT_FALSE(a[i].err) << a[i].err.message;
        ASSERT_FALSE(b[i].err) << b[i].err.message;
        EXPECT_EQ(b[i].tokens, a[i].tokens) << "request " << i << " says something else with drafts";
        EXPECT_EQ(b[i].finish, a[i].finish) << "request " << i;
        EXPECT_EQ((int32_t) b[i].tokens.size(), reqs[i].max_tokens) << "request " << i;
        ASSERT_EQ(b[i].logprobs.size(), a[i].logprobs.size());
        for (size_t k = 0; k < a[i].logprobs.size(); ++k) {
            EXPECT_NEAR(b[i].logprobs[k], a[i].logprobs[k], 1e-3) << "request " << i << ", token " << k;
        }
    }

    // A stop string that ends a sequence within drafts: the text ends before it on both.
    const std::string stop = a[3].text.substr(a[3].text.size() / 2, 3);
    for (auto * eng : { plain.get(), drafted.get() }) {
        sequence_request r = reqs[3];
        r.stop             = { stop };
        auto h             = eng->submit(r);
        auto res           = drain(h);
        ASSERT_FALSE(res.err) << res.err.message;
        EXPECT_EQ(res.finish, FINISH_STOP);
        EXPECT_EQ(res.text, a[3].text.substr(0, a[3].text.find(stop)));
    }

    engine_params bad;
    bad.draft_max = 17;
    EXPECT_NE(validate(bad).find("drafted tokens"), std::string::npos);
    bad.draft_max   = 4;
    bad.draft_ngram = 0;
    EXPECT_NE(validate(bad).find("n-gram"), std::string::npos);
    bad.draft_ngram      = 4;
    bad.draft_min_chance = 1.5f;
    EXPECT_NE(validate(bad).find("bar"), std::string::npos);
    bad.draft_min_chance = NAN;
    EXPECT_NE(validate(bad).find("bar"), std::string::npos);
}

// A sequence that drafted leaves its cache as if it had not: a fork of its whole text (prompt
// and generated tokens, shared cell for cell) continues exactly as the same fork does on an
// engine that never drafts, and so does a cached prompt reused after it.
TEST_F(engine_test, forks_and_cached_prompts_after_drafts_see_only_kept_tokens) {
    std::vector<std::vector<llama_token>> forked, reused;
    uint64_t                              kept = 0;
    for (int32_t d : { 0, 4 }) {
        auto eng = engine_drafting(d, 4);
        ASSERT_TRUE(eng);
        auto parent_req   = greedy(k_prompts[3], 80);
        parent_req.retain = true;
        auto parent       = eng->submit(parent_req);
        auto pr           = drain(parent);
        ASSERT_FALSE(pr.err) << pr.err.message;
        auto child_req          = greedy("", 40);
        child_req.prompt_tokens = eng->tokenize(k_prompts[3]);
        child_req.prompt_tokens.insert(child_req.prompt_tokens.end(), pr.tokens.begin(), pr.tokens.end());
        child_req.prompt_tokens.push_back(child_req.prompt_tokens[1]);
        child_req.parent = parent.id();
        auto child       = eng->submit(child_req);
        auto cr          = drain(child);
        ASSERT_FALSE(cr.err) << cr.err.message;
        EXPECT_GT(cr.use.prompt_tokens_reused, 80) << "the fork shares the parent's generated cells too";
        forked.push_back(cr.tokens);
        parent.release();

        // The child's cells went to the prompt cache; a request that extends them reuses them.
        auto again          = child_req;
        again.parent        = 0;
        again.prompt_tokens.insert(again.prompt_tokens.end(), cr.tokens.begin(), cr.tokens.end());
        again.prompt_tokens.push_back(again.prompt_tokens[2]);
        auto h              = eng->submit(again);
        auto rr             = drain(h);
        ASSERT_FALSE(rr.err) << rr.err.message;
        EXPECT_GT(rr.use.prompt_tokens_reused, 0) << "the cached prompt was not reused";
        reused.push_back(rr.tokens);
        kept += eng->stats().draft_accepted;
    }
    EXPECT_GT(kept, 0u) << "nothing was drafted and kept, so nothing was checked";
    EXPECT_EQ(forked[1], forked[0]);
    EXPECT_EQ(reused[1], reused[0]);
}

// engine_params::adaptive_threads: the tuner follows the measured times, per batch size, and
// finds a change of the fastest count again; never more threads than given; off = always n.
TEST(thread_tuner, picks_the_fastest_count_per_batch_size_and_follows_changes) {
    // A call's time: `fast` threads take `us` per token, any other count 3 times as long.
    auto run = [](thread_tuner & t, int32_t n_tokens, int32_t fast, int calls, std::vector<int32_t> * picked = nullptr,
                  int64_t us = 1) {
        int on_fast = 0;
        for (int i = 0; i < calls; ++i) {
            const int32_t n = t.pick(n_tokens);
            EXPECT_GE(n, 1);
            EXPECT_LE(n, 8);
            t.record(n_tokens, n, (int64_t) n_tokens * us * (n == fast ? 1 : 3));
            on_fast += n == fast;
            if (picked) picked->push_back(n);
        }
        return on_fast;
    };
    thread_tuner t;
    t.init(8, true);
    std::vector<int32_t> seen;
    EXPECT_GE(run(t, 4, 1, 1000, &seen), 900) << "small batches: 1 thread is fastest here";
    EXPECT_EQ(std::set<int32_t>(seen.begin(), seen.end()), (std::set<int32_t>{ 8, 4, 2, 1 })) << "every count probed";
    EXPECT_GE(run(t, 40, 8, 1000), 900) << "larger batches have a bucket of their own";
    EXPECT_EQ(run(t, 512, 1, 100), 0) << "long calls always use every thread";
    {
        thread_tuner slow;  // a big model: a 4-token call takes 20 ms with every thread
        slow.init(8, true);
        EXPECT_EQ(run(slow, 4, 1, 100, nullptr, 5000), 0) << "calls that take long always use every thread";
    }
    EXPECT_GE(run(t, 4, 1, 100), 90) << "the small bucket kept its choice";
    // The machine changes: now 4 threads are fastest for small batches. Re-probes find it.
    run(t, 4, 4, 3000);
    EXPECT_GE(run(t, 4, 4, 1000), 900);

    thread_tuner fixed;
    fixed.init(2, false);
    for (int i = 0; i < 100; ++i) {
        EXPECT_EQ(fixed.pick(4), 2);
        fixed.record(4, 2, 1000);
    }
    thread_tuner one;
    one.init(1, true);
    EXPECT_EQ(one.pick(1), 1);
}

// Drafts never reach past what a sequence may still write (its max_tokens, the context): two
// sequences that together fill the KV cache to its last cell finish as they do without drafts,
// and the cache is never found full. (Were it found full, drafts would give way for some steps
// before any sequence did.)
TEST_F(engine_test, drafts_stay_within_each_sequences_own_cells) {
    // The same prompt twice: both end in the same step, when the cache is at its fullest; ends
    // a few cells short of the last one put the last drafts at different places.
    for (int32_t short_by : { 0, 1, 2, 3 }) {
        std::vector<std::vector<llama_token>> out[2];
        uint64_t full_events = 0;
        for (int32_t d : { 0, 4 }) {
            const int32_t n_ctx = 512;
            auto          eng   = engine_drafting(d, 0, n_ctx, 2);
            ASSERT_TRUE(eng);
            // The last sampled token is never stored: each ends holding half the cells less short_by.
            auto r       = greedy(k_prompts[3], 0);
            r.max_tokens = n_ctx / 2 - (int32_t) eng->tokenize(k_prompts[3]).size() + 1 - short_by;
            auto hs      = eng->submit(std::vector<sequence_request>{ r, r });
            for (auto & h : hs) {
                auto res = drain(h);
                ASSERT_FALSE(res.err) << "drafts " << d << ": " << res.err.message;
                EXPECT_EQ(res.finish, FINISH_LENGTH);
                out[d > 0].push_back(res.tokens);
            }
            if (d > 0) {
                full_events = eng->stats().kv_full_events;
                EXPECT_GT(eng->stats().draft_accepted, 0u);
            }
        }
        EXPECT_EQ(out[1], out[0]) << "short by " << short_by;
        EXPECT_EQ(full_events, 0u) << "short by " << short_by << ": drafts asked for cells beyond the sequences' own";
    }
}
