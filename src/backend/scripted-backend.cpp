#include "scripted-backend.h"

#include "core/limits.h"

#include <atomic>
#include <deque>

namespace muse {

namespace {

// Splits text into word-sized pieces that concatenate back to it; each counts as a token.
std::vector<std::string> pieces(const std::string & text) {
    std::vector<std::string> out;
    std::string cur;
    for (char c : text) {
        if (c == ' ' && !cur.empty()) {
            out.push_back(cur);
            cur.clear();
        }
        cur += c;
    }
    if (!cur.empty()) {
        out.push_back(cur);
    }
    return out;
}

int32_t count_words(const std::vector<chat_message> & msgs) {
    int32_t n = 0;
    for (const auto & m : msgs) {
        n += (int32_t) pieces(m.content).size() + 1;
    }
    return n;
}

class scripted_stream : public chat_stream {
  public:
    scripted_stream(uint64_t id, std::deque<chat_event> evs) : sid(id), events(std::move(evs)) {}

    uint64_t id() const override { return sid; }

    bool next(chat_event & ev) override {
        if (events.empty()) {
            return false;
        }
        if (cancelled && events.front().type != chat_event::DONE) {
            // Like the engine: the usage counts the tokens delivered before the cancel.
            chat_event done;
            done.type                  = chat_event::DONE;
            done.finish                = FINISH_CANCELLED;
            done.use                   = events.back().use;
            done.use.completion_tokens = delivered;
            events.clear();
            events.push_back(std::move(done));
        }
        ev = std::move(events.front());
        events.pop_front();
        delivered += ev.type != chat_event::DONE;
        return true;
    }

    void cancel() override { cancelled = true; }

  private:
    uint64_t               sid;
    std::deque<chat_event> events;
    std::atomic<bool>      cancelled{ false };
    int32_t                delivered = 0;  // token events handed out
};

chat_event done_event(finish_reason r, usage u, error err = {}) {
    chat_event ev;
    ev.type   = chat_event::DONE;
    ev.finish = r;
    ev.use    = u;
    ev.err    = std::move(err);
    return ev;
}

}  // namespace

scripted_backend::scripted_backend(std::vector<scripted_reply> r) : replies(std::move(r)) {}

void scripted_backend::add(scripted_reply r) {
    std::lock_guard<std::mutex> lk(mu);
    replies.push_back(std::move(r));
}

void scripted_backend::set_responder(std::function<scripted_reply(const chat_request &)> fn) {
    std::lock_guard<std::mutex> lk(mu);
    responder = std::move(fn);
}

std::vector<chat_request> scripted_backend::requests() const {
    std::lock_guard<std::mutex> lk(mu);
    return seen;
}

std::unique_ptr<chat_stream> scripted_backend::start(const chat_request & req) {
    // The responder runs outside the lock, so that a test's responder may wait for another
    // request that a parallel agent is about to start.
    std::unique_lock<std::mutex> lk(mu);
    seen.push_back(req);
    const uint64_t id = next_id++;
    std::deque<chat_event> evs;
    usage use;
    use.prompt_tokens           = count_words(req.messages);
    use.prompt_tokens_prefilled = use.prompt_tokens;

    // The same request checks as the local backend, so orchestration tests see real errors.
    error err = check_request(req, !caps_set || caps_set->fork);
    if (!err && req.fork_from != 0 && started.count(req.fork_from) == 0) {
        err = { ERROR_PARENT_NOT_FOUND, "fork parent " + std::to_string(req.fork_from) + " is not live or retained" };
    }
    if (err) {
        evs.push_back(done_event(FINISH_ERROR, use, std::move(err)));
        return std::make_unique<scripted_stream>(id, std::move(evs));
    }
    if (req.fork_from != 0) {
        use.prompt_tokens_reused    = use.prompt_tokens / 2;
        use.prompt_tokens_prefilled = use.prompt_tokens - use.prompt_tokens_reused;
    }
    // Scripted streams end at once, so every earlier stream counts as forkable.
    started.insert(id);

    scripted_reply reply;
    if (responder) {
        auto fn = responder;
        lk.unlock();
        reply = fn(req);
        lk.lock();
    } else if (next_reply < replies.size()) {
        reply = replies[next_reply++];
    } else {
        reply.err = { ERROR_INTERNAL, "scripted backend: no reply left for request " + std::to_string(id) };
    }
    if (reply.err) {
        evs.push_back(done_event(FINISH_ERROR, use, reply.err));
        return std::make_unique<scripted_stream>(id, std::move(evs));
    }

    const int32_t limit = req.max_tokens < 0 ? INT32_MAX : req.max_tokens;
    int32_t       n     = 0;
    bool          cut   = false;
    const bool    think = req.reasoning != REASONING_OFF && req.json_schema.empty();
    if (think) {
        int32_t n_reason = 0;
        for (auto & p : pieces(reply.reasoning)) {
            if (n >= limit) { cut = true; break; }
            if (req.reasoning_budget >= 0 && n_reason >= req.reasoning_budget) {
                break;  // budget forcing: reasoning ends, the answer follows
            }
            evs.push_back(chat_event::delta(chat_event::REASONING, p));
            n++;
            n_reason++;
        }
    }
    std::string content = reply.content;
    for (const auto & s : req.stop) {
        if (auto pos = content.find(s); pos != std::string::npos) {
            content.resize(pos);
        }
    }
    for (auto & p : pieces(content)) {
        if (n >= limit) { cut = true; break; }
        evs.push_back(chat_event::delta(chat_event::CONTENT, p));
        n++;
    }
    for (size_t i = 0; i < reply.tool_calls.size() && !cut; ++i) {
        chat_event ev;
        ev.type            = chat_event::TOOL_CALL;
        ev.tool_call_index = (int) i;
        ev.tool_call       = reply.tool_calls[i];
        evs.push_back(std::move(ev));
        n++;
    }
    use.completion_tokens = n;
    if (req.logprobs) {
        size_t k = 0;
        for (auto & ev : evs) {
            ev.logprobs = { k < reply.logprobs.size() ? reply.logprobs[k] : 0.0f };
            k++;
        }
    }
    evs.push_back(done_event(cut ? FINISH_LENGTH : FINISH_STOP, use));
    return std::make_unique<scripted_stream>(id, std::move(evs));
}

void scripted_backend::set_caps(backend_caps c) {
    std::lock_guard<std::mutex> lk(mu);
    caps_set = std::move(c);
}

backend_caps scripted_backend::caps() const {
    {
        std::lock_guard<std::mutex> lk(mu);
        if (caps_set) return *caps_set;
    }
    backend_caps c;
    c.name      = "scripted";
    c.model     = "scripted replies";
    c.fork      = true;
    c.reasoning = true;
    c.grammar   = true;
    c.logprobs  = true;
    c.n_ctx     = 1 << 20;
    return c;
}

}  // namespace muse
