#pragma once
// A request's work as a graph of steps, and the one executor that runs it. A mode builds the
// graph (each step usually runs one agent, or prefills a prompt that agents fork); a step may
// add steps while it runs (the plan step adds the plan's sub-tasks), so the graph grows as the
// request learns what it needs. The executor owns the threads (one per running step), the
// cancellation (steps not started when the request is cancelled never start; running steps
// end through the cancel callbacks of their agents, so nothing polls), and the step timings.
//
//   muse::step_graph g;
//   int a = g.add("prefix", {}, [&](muse::step_graph &, int) { prefill(); });
//   g.add("plan", { a }, [&](muse::step_graph & g, int self) {
//       plan p = make_plan();
//       for (auto & t : p.tasks) g.add("subtasks", { self }, run_task(t));  // grows the graph
//   });
//   std::vector<muse::step_timing> timings;
//   g.execute(cancel, t0, timings);  // returns when every step has ended or been skipped
//
// Thread safety: add() and halt() may be called from any thread, also from running steps;
// execute() runs once, on one thread. A step's `start` runs on the executor's thread, in the
// order the steps were added, before the step's own thread starts: what must happen in a
// fixed order among steps that become ready together (reserving an agent's slot) goes there.

#include "core/cancel.h"

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace muse {

// A named span of the request's work, on the request's clock: steps that share a timing name
// form one span (from the first one's start to the last one's end).
struct step_timing {
    std::string step;
    double      start_ms = 0, end_ms = 0;
};

class step_graph {
  public:
    using run_fn   = std::function<void(step_graph & g, int self)>;
    using start_fn = std::function<void()>;

    step_graph()                               = default;
    step_graph(const step_graph &)             = delete;
    step_graph & operator=(const step_graph &) = delete;

    // Adds a step that runs once every step in `after` has ended (ids returned by add; a
    // running step may name itself: the new step waits for it to end). `timing` names the span
    // the step counts in ("" = none). Returns the step's id, or -1 when `after` names a step
    // that does not exist.
    int add(std::string timing, std::vector<int> after, run_fn run, start_fn start = nullptr);

    // No step starts from now on; running steps end on their own (a step that failed the request).
    void halt();

    // Runs the graph to its end: every step whose dependencies have ended starts on a thread of
    // its own; a cancel (or halt) skips every step not yet started, and so its dependents.
    // Timings are appended in the order their spans started.
    void execute(const cancel_token & cancel, std::chrono::steady_clock::time_point t0,
                 std::vector<step_timing> & timings);

    // Steps that ran, and that were skipped (cancel or halt), after execute().
    int ran() const;
    int skipped() const;
    // A step that threw: the first one's message ("" when none did); the graph halts on it.
    std::string failure() const;

  private:
    enum state_t { WAITING, RUNNING, DONE, SKIPPED };
    struct node {
        std::string      timing;
        std::vector<int> after;
        run_fn           run;
        start_fn         start;
        state_t          state = WAITING;
    };
    bool ready(const node & n) const;                              // under mu
    void mark(const std::string & timing, double ms, bool start);  // under mu

    mutable std::mutex       mu;
    std::condition_variable  cv;
    std::vector<node>        nodes;
    bool                     halted  = false;
    int                      running = 0;
    int                      n_ran = 0, n_skipped = 0;
    std::string              failed;
    std::vector<step_timing> spans;
};

}  // namespace muse
