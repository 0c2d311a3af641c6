// Image encodings through the generated tiny vision projector: encoded once per image content
// and served from the cache after that.

#include "agents/tools.h"
#include "app/fold-attachments.h"
#include "perception/attachment-set.h"
#include "backend/local-backend.h"
#include "engine/engine.h"
#include "reasoning/orchestrator.h"
#include "engine/logging.h"
#include "engine/vision.h"
#include "test-models.h"

#include "llama.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>

using namespace muse;

namespace {

// A decoded image made in memory; `seed` changes its pixels and so its content hash.
image make_image(int w, int h, int seed) {
    image img;
    img.source = "gen-" + std::to_string(seed) + ".png";
    img.format = "png";
    img.width  = w;
    img.height = h;
    img.rgb.resize((size_t) w * h * 3);
    for (size_t i = 0; i < img.rgb.size(); ++i) {
        img.rgb[i] = (uint8_t) ((i * 7 + (size_t) seed * 31) & 0xFF);
    }
    img.hash = "test-" + std::to_string(seed);  // stands in for the SHA-256 of the file
    return img;
}

std::unique_ptr<model> load_with_projector() {
    log_init(0);
    model_params mp;
    mp.path        = test::model_path(test::QWEN);
    mp.mmproj_path = test::mmproj_path();
    mp.n_threads   = 2;
    error err;
    auto  m = model::load(mp, err);
    EXPECT_TRUE(m) << err.message;
    return m;
}

std::unique_ptr<engine> make_engine(const model & m, int32_t n_ctx) {
    engine_params ep;
    ep.n_ctx     = n_ctx;
    ep.n_threads = 2;
    error err;
    auto  eng = engine::create(m, ep, err);
    EXPECT_TRUE(eng) << err.message;
    return eng;
}

TEST(vision, an_image_is_encoded_once_and_then_served_from_the_cache) {
    auto m = load_with_projector();
    ASSERT_TRUE(m);
    vision_encoder enc(*m);
    error          err;
    const image    a  = make_image(64, 48, 1);
    auto           e1 = enc.encode(a, err);
    ASSERT_TRUE(e1) << err.message;
    EXPECT_GT(e1->n_tokens, 0);
    EXPECT_EQ(e1->n_embd, llama_model_n_embd_inp(m->get()));
    ASSERT_EQ(e1->data.size(), (size_t) e1->n_tokens * e1->n_embd);
    for (float v : e1->data) {
        ASSERT_TRUE(std::isfinite(v));
    }
    auto e2 = enc.encode(a, err);
    ASSERT_TRUE(e2);
    EXPECT_EQ(e1.get(), e2.get()) << "the same content is not encoded again";
    auto e3 = enc.encode(make_image(64, 48, 2), err);
    ASSERT_TRUE(e3);
    EXPECT_NE(e3->data, e1->data) << "different pixels, different embeddings";
    const vision_stats s = enc.stats();
    EXPECT_EQ(s.encodes, 2u);
    EXPECT_EQ(s.hits, 1u);
    EXPECT_GT(s.encode_ms, 0.0);
}

TEST(vision, the_cache_keeps_to_its_size_and_drops_the_oldest) {
    auto m = load_with_projector();
    ASSERT_TRUE(m);
    error          err;
    vision_encoder probe(*m);
    auto           one = probe.encode(make_image(32, 32, 10), err);
    ASSERT_TRUE(one) << err.message;
    const size_t   bytes = one->data.size() * sizeof(float);
    vision_encoder enc(*m, bytes * 2);  // room for two encodings
    for (int seed : { 11, 12, 13 }) {
        ASSERT_TRUE(enc.encode(make_image(32, 32, seed), err)) << err.message;
    }
    EXPECT_LE(enc.stats().cached_bytes, bytes * 2);
    ASSERT_TRUE(enc.encode(make_image(32, 32, 13), err));
    EXPECT_EQ(enc.stats().hits, 1u) << "the newest is kept";
    ASSERT_TRUE(enc.encode(make_image(32, 32, 11), err));
    EXPECT_EQ(enc.stats().encodes, 4u) << "the oldest was dropped and is encoded again";
}

TEST(vision, a_model_without_a_projector_says_what_to_do) {
    vision_encoder enc(test::shared_model(test::QWEN));
    error          err;
    EXPECT_FALSE(enc.encode(make_image(8, 8, 3), err));
    EXPECT_EQ(err.code, ERROR_INVALID_ARGUMENT);
    EXPECT_NE(err.message.find("--mmproj"), std::string::npos) << err.message;
}

using test::drain;
using test::drained;

// A prompt of text, an image's embedding block, and more text, as tokens.
sequence_request image_prompt(const engine & eng, const std::string & before, const image_embedding & img,
                              const std::string & after, int32_t max_tokens) {
    sequence_request r;
    r.prompt_tokens = eng.tokenize(before);
    prompt_embedding pe;
    pe.at    = (int32_t) r.prompt_tokens.size();
    pe.block = std::make_shared<image_embedding>(img);
    r.embeddings.push_back(pe);
    r.prompt_tokens.resize(r.prompt_tokens.size() + img.n_tokens, 0);  // placeholders
    const auto tail = eng.tokenize(after);
    r.prompt_tokens.insert(r.prompt_tokens.end(), tail.begin(), tail.end());
    r.sampling.temperature = 0;
    r.max_tokens           = max_tokens;
    r.logprobs             = true;
    return r;
}

// An image in a shared prefix is decoded into the KV cache once; agents forked after it reuse
// it and compute only their own text, and produce what they would alone.
TEST(vision, an_image_in_a_shared_prefix_is_decoded_once_for_every_fork) {
    auto m = load_with_projector();
    ASSERT_TRUE(m);
    error err;
    auto  eng = make_engine(*m, 2048);
    ASSERT_TRUE(eng);
    vision_encoder enc(*m);
    auto           img = enc.encode(make_image(64, 48, 7), err);
    ASSERT_TRUE(img) << err.message;

    const std::string before = "Look at this picture: ", after = " Describe it. Agent";
    auto parent_req   = image_prompt(*eng, before, *img, after, 0);
    parent_req.retain = true;
    auto parent       = eng->submit(parent_req);
    // The forks are submitted while the parent is still being prefilled.
    const int K = 3, n = 6;
    std::vector<sequence_handle> kids;
    for (int k = 0; k < K; ++k) {
        auto r   = image_prompt(*eng, before, *img, after + " " + std::to_string(k) + ":", n);
        r.parent = parent.id();
        kids.push_back(eng->submit(r));
    }
    const drained p = drain(parent);
    ASSERT_FALSE(p.err) << p.err.message;
    EXPECT_EQ(p.use.prompt_tokens_prefilled, (int32_t) parent_req.prompt_tokens.size()) << "the image's positions included";
    const engine_stats after_parent = eng->stats();
    std::vector<drained> forked;
    for (auto & h : kids) {
        forked.push_back(drain(h));
        ASSERT_FALSE(forked.back().err) << forked.back().err.message;
        EXPECT_EQ((int32_t) forked.back().tokens.size(), n);
        EXPECT_GE(forked.back().use.prompt_tokens_reused, (int32_t) parent_req.prompt_tokens.size() - 1);
        EXPECT_LE(forked.back().use.prompt_tokens_prefilled, 8) << "a fork computes only its own words";
    }
    EXPECT_LE(eng->stats().prefill_tokens - after_parent.prefill_tokens, (uint64_t) K * 8)
        << "no image position was decoded again";

    // Alone (no fork, the image decoded again) the first agent writes the same tokens.
    auto alone = eng->submit(image_prompt(*eng, before, *img, after + " 0:", n));
    const drained a = drain(alone);
    ASSERT_FALSE(a.err) << a.err.message;
    EXPECT_GE(a.use.prompt_tokens_prefilled, img->n_tokens);
    EXPECT_EQ(a.tokens, forked[0].tokens);
    ASSERT_FALSE(a.logprobs.empty());
    EXPECT_NEAR(a.logprobs[0], forked[0].logprobs[0], 1e-3) << "the same distribution, forked or alone";
    EXPECT_EQ(enc.stats().encodes, 1u);
    // The image's content reaches the model: another picture, another distribution over the
    // first token (the tiny random model may still pick the same one).
    auto other_img = enc.encode(make_image(64, 48, 8), err);
    ASSERT_TRUE(other_img) << err.message;
    auto other = eng->submit(image_prompt(*eng, before, *other_img, after + " 0:", n));
    const drained o = drain(other);
    ASSERT_FALSE(o.err) << o.err.message;
    ASSERT_FALSE(o.logprobs.empty());
    EXPECT_GT(std::fabs(o.logprobs[0] - a.logprobs[0]), 1e-4) << o.logprobs[0] << " vs " << a.logprobs[0];

    // A prompt that ends inside the image takes its first token from the image's last row.
    auto tail_req = image_prompt(*eng, before, *img, "", 2);
    tail_req.prompt_tokens.resize(tail_req.embeddings[0].at + img->n_tokens);
    auto tail = eng->submit(tail_req);
    const drained t = drain(tail);
    ASSERT_FALSE(t.err) << t.err.message;
    EXPECT_EQ(t.tokens.size(), 2u);
}

TEST(vision, embedding_blocks_that_do_not_fit_the_request_are_refused) {
    auto m = load_with_projector();
    ASSERT_TRUE(m);
    error err;
    auto  eng = make_engine(*m, 1024);
    ASSERT_TRUE(eng);
    vision_encoder enc(*m);
    auto           img = enc.encode(make_image(16, 16, 9), err);
    ASSERT_TRUE(img);
    auto bad = image_prompt(*eng, "x ", *img, " y", 1);
    auto wrong = std::make_shared<image_embedding>(*img);
    wrong->n_embd += 1;
    bad.embeddings[0].block = wrong;
    auto h = eng->submit(bad);
    drained d = drain(h);
    ASSERT_TRUE(d.err);
    EXPECT_NE(d.err.message.find("does not match the model"), std::string::npos) << d.err.message;
    auto out = image_prompt(*eng, "x ", *img, "", 1);
    out.prompt_tokens.resize(out.prompt_tokens.size() - 1);  // the block runs past the prompt
    h = eng->submit(out);
    d = drain(h);
    ASSERT_TRUE(d.err);
    EXPECT_NE(d.err.message.find("inside the prompt"), std::string::npos) << d.err.message;
}

// Contemplating on a message with an image: the image is encoded once and decoded into the KV
// cache once, in the shared prefix; every solver and the synthesiser fork after it.
TEST(vision, contemplating_agents_share_one_encoding_of_the_image) {
    auto m = load_with_projector();
    ASSERT_TRUE(m);
    error err;
    auto  eng = make_engine(*m, 4096);
    ASSERT_TRUE(eng);
    local_backend be(*eng);
    orchestrator  orch(be, builtin_tools());
    ask_request   req;
    chat_message  user;
    user.role    = "user";
    user.content = "What does the picture show?";
    user.images.push_back(std::make_shared<image>(make_image(64, 48, 21)));
    req.messages.push_back(user);
    req.opt.mode          = MODE_CONTEMPLATING;
    req.opt.agents        = 3;
    req.opt.planner       = false;
    req.opt.prune         = false;
    req.opt.budget        = 6;
    req.opt.answer_tokens = 6;
    const engine_stats before = eng->stats();
    ask_result         res    = orch.run(req);
    const engine_stats after  = eng->stats();
    ASSERT_FALSE(res.err) << res.err.message;
    int agents = 0;
    for (const auto & t : res.agents) {
        agents += t.kind == AGENT_SOLVER;
        if (t.kind == AGENT_SOLVER) {
            EXPECT_GE(t.prompt_tokens_reused, res.use.shared_prefix_tokens - 16) << "the image came with the prefix";
        }
    }
    EXPECT_EQ(agents, 3);
    const vision_stats vs = be.vision_counters();
    EXPECT_EQ(vs.encodes, 1u) << "one projector run for every agent";
    EXPECT_GE(vs.hits, 3u);
    error e2;
    auto  emb = vision_encoder(*m).encode(make_image(64, 48, 21), e2);
    ASSERT_TRUE(emb);
    EXPECT_EQ(after.embedding_tokens - before.embedding_tokens, (uint64_t) emb->n_tokens)
        << "the image's positions were decoded once, not once per agent";

    // A model without a projector refuses images with what to do.
    auto text_eng = make_engine(test::shared_model(test::QWEN), 4096);
    ASSERT_TRUE(text_eng);
    local_backend text_be(*text_eng);
    chat_request  cr;
    cr.messages   = { user };
    cr.max_tokens = 2;
    chat_result r = collect(*text_be.start(cr));
    ASSERT_TRUE(r.err);
    EXPECT_NE(r.err.message.find("no vision projector"), std::string::npos) << r.err.message;
}

// --image on a vision model: the picture rides on the message (the model sees it) with a short
// caption, and read_image_text gives its OCR text for small print.
TEST(vision, attachments_send_images_to_a_vision_model_with_an_ocr_tool) {
    const std::string path = std::string(::testing::TempDir()) + "muse-vision-note.png";
    const std::string cmd  = "convert -size 420x100 xc:white -font DejaVu-Sans -fill black -pointsize 30 "
                            "-annotate +15+60 'Order 7310 shipped' " + path + " 2>&1";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    auto att = std::make_shared<attachment_set>();
    ASSERT_FALSE(att->add_image_file(path));
    std::remove(path.c_str());

    ask_request req;
    req.messages      = { { "user", "What does the note say?" } };
    tool_registry reg = builtin_tools();
    fold_attachments(att, req, reg, true);
    ASSERT_EQ(req.messages[0].images.size(), 1u);
    EXPECT_NE(req.messages[0].content.find("- image 1: muse-vision-note.png, 420x100 png"), std::string::npos)
        << req.messages[0].content;
    EXPECT_EQ(req.messages[0].content.find("<image source"), std::string::npos) << "no OCR block: the model sees the picture";
    EXPECT_NE(std::find(req.opt.tools.begin(), req.opt.tools.end(), "read_image_text"), req.opt.tools.end());
    tool_output o = reg.call("read_image_text", R"({"image": 1})");
    ASSERT_TRUE(o.ok) << o.text;
    EXPECT_NE(o.text.find("7310"), std::string::npos) << o.text;
    o = reg.call("read_image_text", R"({"image": 2})");
    EXPECT_FALSE(o.ok);
    EXPECT_NE(o.text.find("numbered 1 to 1"), std::string::npos) << o.text;
    EXPECT_EQ(att->to_json(true)[0]["delivered_as"], "vision");

    // And the request runs on the model with the projector: the image goes through it.
    auto m = load_with_projector();
    ASSERT_TRUE(m);
    error err;
    auto  eng = make_engine(*m, 2048);
    ASSERT_TRUE(eng);
    local_backend be(*eng);
    orchestrator  orch(be, reg);
    req.opt.mode          = MODE_THINKING;
    req.opt.budget        = 4;
    req.opt.answer_tokens = 4;
    req.opt.tools.clear();  // random weights would call tools at random
    const engine_stats before = eng->stats();
    ask_result         res    = orch.run(req);
    ASSERT_FALSE(res.err) << res.err.message;
    EXPECT_EQ(be.vision_counters().encodes, 1u);
    EXPECT_GT(eng->stats().embedding_tokens, before.embedding_tokens);
}

}  // namespace
