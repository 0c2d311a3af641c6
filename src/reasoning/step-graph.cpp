#include "step-graph.h"

#include <algorithm>
#include <exception>

namespace muse {

int step_graph::add(std::string timing, std::vector<int> after, run_fn run, start_fn start) {
    std::lock_guard<std::mutex> lk(mu);
    for (int d : after) {
        if (d < 0 || d >= (int)nodes.size()) {
            return -1;
        }
    }
    node n;
    n.timing = std::move(timing);
    n.after  = std::move(after);
    n.run    = std::move(run);
    n.start  = std::move(start);
    nodes.push_back(std::move(n));
    cv.notify_all();
    return (int)nodes.size() - 1;
}

void step_graph::halt() {
    std::lock_guard<std::mutex> lk(mu);
    halted = true;
    cv.notify_all();
}

int step_graph::ran() const {
    std::lock_guard<std::mutex> lk(mu);
    return n_ran;
}

int step_graph::skipped() const {
    std::lock_guard<std::mutex> lk(mu);
    return n_skipped;
}

std::string step_graph::failure() const {
    std::lock_guard<std::mutex> lk(mu);
    return failed;
}

bool step_graph::ready(const node & n) const {
    for (int d : n.after) {
        if (nodes[d].state != DONE && nodes[d].state != SKIPPED) {
            return false;
        }
    }
    return true;
}

void step_graph::mark(const std::string & timing, double ms, bool start) {
    if (timing.empty()) {
        return;
    }
    for (auto & s : spans) {
        if (s.step == timing) {
            if (!start) {
                s.end_ms = std::max(s.end_ms, ms);
            }
            return;
        }
    }
    spans.push_back({ timing, ms, start ? 0 : ms });
}

void step_graph::execute(const cancel_token & cancel, std::chrono::steady_clock::time_point t0,
                         std::vector<step_timing> & timings) {
    auto now_ms = [t0] {
        return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    };
    std::vector<std::thread>     threads;
    std::unique_lock<std::mutex> lk(mu);
    for (;;) {
        bool progressed = false;
        for (size_t i = 0; i < nodes.size(); ++i) {
            if (nodes[i].state != WAITING || !ready(nodes[i])) {
                continue;
            }
            progressed = true;
            // A skipped step counts as ended, so that its dependents are skipped in turn.
            if (halted || cancel.stop_requested()) {
                nodes[i].state = SKIPPED;
                n_skipped++;
                continue;
            }
            nodes[i].state = RUNNING;
            running++;
            n_ran++;
            mark(nodes[i].timing, now_ms(), true);
            run_fn   run   = nodes[i].run;  // nodes may grow (and move) while the step runs
            start_fn start = nodes[i].start;
            lk.unlock();
            std::string what;
            try {
                if (start)
                    start();
            } catch (const std::exception & e) {
                what = e.what();
            } catch (...) {
                what = "unknown exception";
            }
            const int id = (int)i;
            threads.emplace_back([this, id, run = std::move(run), what, now_ms]() mutable {
                if (what.empty()) {
                    try {
                        if (run)
                            run(*this, id);
                    } catch (const std::exception & e) {
                        what = e.what();
                    } catch (...) {
                        what = "unknown exception";
                    }
                }
                std::lock_guard<std::mutex> g(mu);
                if (!what.empty()) {
                    halted = true;
                    if (failed.empty())
                        failed = what;
                }
                nodes[id].state = DONE;
                running--;
                mark(nodes[id].timing, now_ms(), false);
                cv.notify_all();
            });
            lk.lock();
        }
        if (progressed) {
            continue;  // an ended or skipped step may have made others ready
        }
        if (running == 0) {
            break;  // every step has ended or was skipped
        }
        cv.wait(lk);  // woken by a step that ends, or one that adds or halts
    }
    for (const auto & s : spans) {
        timings.push_back(s);
    }
    lk.unlock();
    for (auto & t : threads) {
        t.join();
    }
}

}  // namespace muse
