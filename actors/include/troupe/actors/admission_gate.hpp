#pragma once
// The queue bound, shared by the threads that submit and the queue actor that finishes tasks:
// submitters take places (and task ids) before a task reaches any actor, the queue gives them
// back when tasks end. A concurrent object with a narrow interface, not actor state: submitting
// callers are not actors, and making each submit wait for the queue's answer would add a
// round trip to every task. Everything else about a task lives inside the actors.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>

#include "troupe/model/config.hpp"
#include "troupe/model/errors.hpp"
#include "troupe/model/task.hpp"

namespace troupe {

class admission_gate {
 public:
  admission_gate(uint64_t bound, overflow_policy overflow, std::chrono::milliseconds block_timeout)
      : bound_(bound), overflow_(overflow), block_timeout_(block_timeout) {}
  explicit admission_gate(const runtime_config& cfg)
      : admission_gate(cfg.queue_bound, cfg.overflow, cfg.block_timeout) {}

  /// n consecutive task ids, the first returned.
  task_id take_ids(uint64_t n) { return next_id_.fetch_add(n, std::memory_order_relaxed); }
  /// Ids from here on are at least `first` (a restarted head continues after its journal).
  void ids_from(task_id first) {
    auto now = next_id_.load(std::memory_order_relaxed);
    while (now < first && !next_id_.compare_exchange_weak(now, first)) {
    }
  }
  task_id next_id() const { return next_id_.load(std::memory_order_relaxed); }
  /// Takes n places at once if all n fit under the bound: returns n, else 0 (nothing taken).
  uint64_t reserve(uint64_t n);
  /// Takes one place; with overflow = block waits for one up to block_timeout. False: full.
  bool admit_one();
  /// n admitted tasks ended (or n reserved places were not used). Wakes waiters only at the
  /// transitions they wait for (idle, room under the bound), not on every task.
  void release(uint64_t n);
  /// Waits until no admitted task is left; false on timeout.
  bool wait_idle(std::chrono::milliseconds timeout);

  void count_submitted(uint64_t n) { submitted_.fetch_add(n, std::memory_order_relaxed); }
  void count_rejected() { rejected_.fetch_add(1, std::memory_order_relaxed); }

  /// From now on submits are refused with `why`; the first reason given stays (a supervisor
  /// that gave up, then the shutdown that follows, still reads "gave up").
  void stop_accepting(errc why) {
    auto none = errc::none;
    refusal_.compare_exchange_strong(none, why);
    accepting_.store(false, std::memory_order_release);
  }
  bool accepting() const { return accepting_.load(std::memory_order_acquire); }
  errc refusal() const {
    auto why = refusal_.load();
    return why == errc::none ? errc::shutting_down : why;
  }

  uint64_t bound() const { return bound_; }
  overflow_policy overflow() const { return overflow_; }
  uint64_t in_system() const { return in_system_.load(std::memory_order_relaxed); }
  uint64_t submitted() const { return submitted_.load(std::memory_order_relaxed); }
  uint64_t rejected() const { return rejected_.load(std::memory_order_relaxed); }
  /// Threads waiting in admit_one() or wait_idle() right now.
  int waiters() const { return waiters_.load(std::memory_order_acquire); }

 private:
  const uint64_t bound_;
  const overflow_policy overflow_;
  const std::chrono::milliseconds block_timeout_;
  // Written per batch by submitters and per handler by the queue: separate cache lines, so the
  // two sides do not bounce one line between cores.
  alignas(64) std::atomic<task_id> next_id_{1};
  std::atomic<uint64_t> submitted_{0}, rejected_{0};
  alignas(64) std::atomic<uint64_t> in_system_{0};  ///< admitted and not yet finished
  std::atomic<bool> accepting_{true};
  std::atomic<errc> refusal_{errc::none};
  // Waiters for in_system to fall (overflow = block, wait_idle). Notified only when someone
  // waits, so the hot path pays one relaxed load.
  std::mutex wait_mutex_;
  std::condition_variable wait_cv_;
  std::atomic<int> waiters_{0};
};

}  // namespace troupe
