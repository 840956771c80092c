#pragma once
// A one-shot result slot, set once by the runtime and read through any number of task handles.
// Cheaper than std::promise + shared_future on the hot path (no separate allocation, no
// call_once); the mutex and condition variable are touched only when somebody actually waits.
// A waiter spins briefly before it sleeps: most embedded tasks finish within the spin, and a
// sleeping caller costs a futex wake on the completing thread and a wake-up of its own (each
// 5-15 us on a virtual machine), which is most of a short task's round trip.
#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "troupe/model/task.hpp"

namespace troupe {

class completion {
 public:
  /// Called once. Wakes waiters, if any.
  void set(task_result r) {
    result_ = std::move(r);
    done_.store(true);  // seq_cst, paired with waiting_ below (store, then load, on each side)
    if (waiting_.load()) {
      // Taking the lock orders this wake-up after a waiter's check of done_; notifying after
      // releasing it spares the woken waiter from blocking on the mutex we still hold.
      { std::lock_guard<std::mutex> guard{mutex_}; }
      cv_.notify_all();
    }
  }
  bool ready() const { return done_.load(std::memory_order_acquire); }
  /// Blocks until set; the result stays valid as long as the completion lives.
  const task_result& wait() const {
    if (!spin_until_ready(clock::now() + spin_budget)) {
      std::unique_lock<std::mutex> lock{mutex_};
      waiting_.store(true);
      cv_.wait(lock, [&] { return done_.load(); });
    }
    return result_;
  }
  /// True if set before the deadline.
  bool wait_until(time_point deadline) const {
    if (spin_until_ready(std::min(deadline, clock::now() + spin_budget))) return true;
    std::unique_lock<std::mutex> lock{mutex_};
    waiting_.store(true);
    return cv_.wait_until(lock, deadline, [&] { return done_.load(); });
  }

 private:
  /// How long a waiter spins before it sleeps: about two wake-ups on a virtual machine.
  static constexpr std::chrono::microseconds spin_budget{30};

  bool spin_until_ready(time_point until) const {
    for (unsigned i = 1;; ++i) {
      if (ready()) return true;
      if (i % 64 == 0) {
        if (clock::now() >= until) return false;
        std::this_thread::yield();  // lets a thread that shares this core finish the task
      }
    }
  }

  task_result result_;
  std::atomic<bool> done_{false};
  mutable std::atomic<bool> waiting_{false};
  mutable std::mutex mutex_;
  mutable std::condition_variable cv_;
};

/// A submitted task. Rejected submissions get a handle too, already finished with
/// outcome::rejected and an error naming the problem.
class task_handle {
 public:
  task_handle() = default;
  task_handle(task_id id, std::shared_ptr<const completion> c) : id_(id), done_(std::move(c)) {}
  task_id id() const { return id_; }
  bool valid() const { return done_ != nullptr; }
  /// Blocks until the task's terminal record exists.
  const task_result& get() const { return done_->wait(); }
  bool ready() const { return done_->ready(); }
  /// True if the result exists by the deadline.
  bool wait_until(time_point deadline) const { return done_->wait_until(deadline); }
  /// The result if it arrives within the timeout.
  std::optional<task_result> wait_for(std::chrono::milliseconds timeout) const {
    if (!wait_until(clock::now() + timeout)) return std::nullopt;
    return done_->wait();
  }

 private:
  task_id id_ = 0;
  std::shared_ptr<const completion> done_;
};

}  // namespace troupe
