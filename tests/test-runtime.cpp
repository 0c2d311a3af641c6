// app/runtime.h, the composition root of the front ends: it loads a model with its checks and
// progress, describes it as the engine's loader does, and starts the engine, the local backend
// and the assistant over them once.

#include "test-models.h"

#include "app/runtime.h"
#include "engine/model.h"

#include <gtest/gtest.h>

#include <fstream>

using namespace muse;

TEST(runtime, loads_describes_and_starts_the_model) {
    set_log_verbosity(0);
    runtime_model_options mo;
    mo.path = test::model_path(test::GLIMMER);
    float last = -1;
    mo.progress = [&](float f) { last = f; return true; };
    error err;
    auto  rt = runtime::load(mo, err);
    ASSERT_TRUE(rt) << err.message;
    EXPECT_FALSE(err);
    EXPECT_FLOAT_EQ(last, 1.0f);

    // The description is the loader's, field by field.
    const model_info &        i = test::shared_model(test::GLIMMER).info();
    const model_description & d = rt->describe();
    EXPECT_EQ(d.architecture, i.architecture);
    EXPECT_EQ(d.description, i.description);
    EXPECT_EQ(d.template_family, i.template_family);
    EXPECT_EQ(d.n_params, i.n_params);
    EXPECT_EQ(d.n_ctx_train, i.n_ctx_train);
    EXPECT_EQ(d.n_layer, i.n_layer);
    EXPECT_EQ(d.n_vocab, i.n_vocab);
    EXPECT_EQ(d.supports_reasoning, i.supports_reasoning);
    EXPECT_FALSE(d.has_projector);
    EXPECT_EQ(rt->n_ctx(), 0);  // no engine yet

    runtime_engine_options eo;
    eo.n_ctx     = 1024;
    eo.n_threads = 2;
    eo.n_seq_max = 4;
    ASSERT_FALSE(rt->start(eo, assistant_params{ 1u << 20, 2 }));
    EXPECT_EQ(rt->n_ctx(), 1024);
    // The assistant runs on the runtime's backend, which runs this model on this engine.
    EXPECT_EQ(&rt->door().get_backend(), &rt->get_backend());
    const backend_caps c = rt->get_backend().caps();
    EXPECT_EQ(c.name, "local");
    EXPECT_EQ(c.model, d.description);
    EXPECT_EQ(c.n_ctx, 1024);
    // The assistant has the settings it was given: n over its max_n is refused.
    ask_input in;
    in.request.messages = { { "user", "hi" } };
    in.request.opt.mode = MODE_INSTANT;
    in.n                = 3;
    ask_refusal why;
    EXPECT_TRUE(rt->door().check(in, &why));
    EXPECT_EQ(why.field, "n");

    // Once only.
    EXPECT_TRUE(rt->start(eo));
    EXPECT_EQ(rt->n_ctx(), 1024);
}

TEST(runtime, load_and_start_errors_are_values) {
    runtime_model_options mo;
    mo.path = test::scratch_dir() + "/no-such-model.gguf";
    error err;
    EXPECT_FALSE(runtime::load(mo, err));
    EXPECT_EQ(err.code, ERROR_FILE_NOT_FOUND);

    mo.path = test::scratch_dir() + "/runtime-not-a-model.gguf";
    std::ofstream(mo.path) << "not a model at all, just text\n";
    err = {};
    EXPECT_FALSE(runtime::load(mo, err));
    EXPECT_EQ(err.code, ERROR_NOT_GGUF);

    // An engine the model cannot have: the error comes back and nothing is started.
    mo.path = test::model_path(test::GLIMMER);
    auto rt = runtime::load(mo, err);
    ASSERT_TRUE(rt) << err.message;
    runtime_engine_options eo;
    eo.n_ctx     = 1024;
    eo.n_seq_max = 100000;
    const error e = rt->start(eo);
    EXPECT_TRUE(e);
    EXPECT_EQ(rt->n_ctx(), 0);
    eo.n_seq_max = 4;
    EXPECT_FALSE(rt->start(eo)) << "a failed start leaves the runtime startable";
}
