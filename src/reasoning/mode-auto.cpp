// Auto: the router picks one of the other modes per request from cheap text features
// (reasoning/router.h); with router_model, a route step also asks the model for a one-word
// classification among the registry's modes. The chosen mode's steps are added after it.

#include "modes.h"

namespace muse {

namespace {

bool is_choice(const mode_traits & t) {
    return !t.routes;
}

// The mode picked, adjusted to what the request needs, announced, and built after `after`.
void choose(ask_context & ctx, step_graph & g, int after, ask_mode m, std::string reason) {
    {
        std::lock_guard<std::mutex> lk(ctx.mu);
        ctx.result.mode_reason = std::move(reason);
    }
    announce_mode(ctx, m);
    find_mode(ctx.result.mode).build(ctx, g, after);
}

void run_router_model(ask_context & ctx, step_graph & g, int self, ask_mode features_mode, const std::string & reason) {
    const auto  choices = modes_where(is_choice);
    std::string kinds, grammar;
    for (size_t i = 0; i < choices.size(); ++i) {
        kinds += std::string(i == 0                    ? ""
                             : i + 1 == choices.size() ? " or "
                                                       : ", ") +
                 choices[i]->name() + " (" + choices[i]->purpose() + ")";
        grammar += std::string(i == 0 ? "root ::= " : " | ") + "\"" + choices[i]->name() + "\"";
    }
    agent_call spec;
    spec.kind    = AGENT_ROUTER;
    spec.role    = "router";
    spec.request = base_request(ctx, REASONING_OFF, "low");
    spec.request.tools.clear();
    spec.request.messages =
        with_suffix(ctx.req.messages, "---\nDo not answer the request. Classify how much reasoning it needs: " + kinds +
                                          ". Reply with one word.");
    spec.request.grammar              = grammar;
    spec.request.max_tokens           = 8;
    spec.request.sampling.temperature = 0;
    const std::string said            = ctx.trace(ctx.run_agent(spec)).answer;
    ask_mode          m;
    if (parse_ask_mode(said, m) && is_choice(find_mode(m).traits())) {
        choose(ctx, g, self, m, reason + "; the model classified it as " + said);
    } else {
        choose(ctx, g, self, features_mode,
               reason + "; the model's classification was unusable ('" + said + "'), features decide");
    }
}

class auto_mode_t : public mode {
  public:
    ask_mode     id() const override { return MODE_AUTO; }
    const char * name() const override { return "auto"; }
    const char * purpose() const override { return ""; }
    mode_traits  traits() const override {
        mode_traits t;
        t.routes              = true;
        t.allows_client_tools = true;
        t.allows_json_schema  = true;
        t.allows_n            = true;
        t.builtin_tools       = true;
        return t;
    }

    void build(ask_context & ctx, step_graph & g, int after) const override {
        const ask_request & req = ctx.req;
        route_decision      d =
            route_request(req.route_text.empty() ? request_text(req.messages) : req.route_text, req.attachments);
        if (!req.opt.router_model) {
            choose(ctx, g, after, d.mode, d.reason);
            return;
        }
        {
            std::lock_guard<std::mutex> lk(ctx.mu);
            ctx.result.mode        = d.mode;  // until the model's answer
            ctx.result.mode_reason = d.reason;
        }
        const ask_mode features_mode = d.mode;
        g.add("route", after >= 0 ? std::vector<int>{ after } : std::vector<int>{},
              [&ctx, features_mode, reason = d.reason](step_graph & g, int self) {
                  run_router_model(ctx, g, self, features_mode, reason);
              });
    }
};

}  // namespace

const mode & auto_mode() {
    static const auto_mode_t m;
    return m;
}

}  // namespace muse
