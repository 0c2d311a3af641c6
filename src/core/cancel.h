#pragma once
// Cancellation of one request: a source the front end owns, tokens handed down to everything
// that works for the request, and callbacks that run the moment it is cancelled, so that
// nothing polls a flag in a loop.
//
//   muse::cancel_source stop;                        // the front end's (client gone, Ctrl-C)
//   muse::cancel_token  tok = stop.get_token();      // copied into every step and agent
//   muse::cancel_callback cb(tok, [&] { stream->cancel(); });  // runs once, on cancel
//   std::condition_variable_any cv;                   // a wait that wakes on cancel too:
//   cv.wait(lk, tok, [&] { return done; });
//   stop.request_stop();                              // runs every registered callback
//
// These are C++20's std::stop_source / std::stop_token / std::stop_callback: a callback
// registered after the cancel runs at once in the registering thread; its destructor waits
// for it if it is running on another thread, so a callback may touch what outlives its
// registration only.
//
// Thread safety: all of it, from any thread.

#include <functional>
#include <stop_token>

namespace muse {

using cancel_source   = std::stop_source;
using cancel_token    = std::stop_token;
using cancel_callback = std::stop_callback<std::function<void()>>;

}  // namespace muse
