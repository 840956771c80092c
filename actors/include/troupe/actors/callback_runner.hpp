#pragma once
// Runs the callbacks that callers gave to submit(), on a thread of their own, so that a slow
// callback delays other callbacks but never the queue, the balancer or any worker. One thread:
// callbacks run in the order their tasks finished (a batch's shared callback sees its results
// in that order too). A task's handle becomes ready after its callback returned, as when the
// queue ran callbacks itself: code that waits on the handle sees what the callback did.
//
// Bound: a task counts against the queue bound (queue.bound) until its callback has run, so at
// most that many callbacks wait here; past it, submits are rejected or wait (overflow policy).
// A callback may submit; it must not wait on another task's handle (that handle may be waiting
// for this very thread), nor shut down or destroy its runtime.
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "troupe/model/task_state.hpp"

namespace troupe {

/// Runs a finished task's callback (logging what it throws, never letting it out), then sets
/// the task's result. Used by the runner and by the queue when it has none.
void run_callback_then_set(task_state& t, task_result& r) noexcept;

class callback_runner {
 public:
  /// ran(n): n tasks' callbacks have run (the runtime counts them as finished).
  explicit callback_runner(std::function<void(uint64_t)> ran);
  /// Runs what is still waiting, then joins.
  ~callback_runner();
  callback_runner(const callback_runner&) = delete;
  callback_runner& operator=(const callback_runner&) = delete;

  /// Finished tasks with a callback, and their results: runs each callback, then sets the
  /// task's result. Never blocks on a callback.
  void post(std::vector<std::pair<task_ptr, task_result>> tasks);

 private:
  void loop();
  std::function<void(uint64_t)> ran_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::vector<std::pair<task_ptr, task_result>>> waiting_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace troupe
