#pragma once
// State shared by the embedding API (caller threads) and the actors: configuration, registry,
// admission counters. Everything mutable here is atomic or behind its own mutex; the scheduling
// state itself lives inside the actors.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>

#include "troupe/model/config.hpp"
#include "troupe/model/devices.hpp"
#include "troupe/model/errors.hpp"
#include "troupe/model/registry.hpp"

namespace troupe {

class callback_runner;

/// Lets publishers skip building events nobody listens to.
struct event_gate {
  std::atomic<uint32_t> subscribers{0};
  /// Subscribers whose queue is full (a stalled callback). While all are, nobody would get an
  /// event: publishers count them as skipped instead of building them.
  std::atomic<uint32_t> saturated{0};
  /// Events a subscriber lost at its high-water mark (monitor.subscriber_high_water), and events
  /// the head's PUB thread could not take: counted in stats and metrics.snapshot.
  std::atomic<uint64_t> dropped{0};
  /// Events not built while every subscriber was saturated; the bus advances seq past them (so
  /// the subscribers see the gap) and counts them as dropped.
  mutable std::atomic<uint64_t> skipped{0};  // publishers hold the gate as const
  bool active() const {
    auto n = subscribers.load(std::memory_order_relaxed);
    return n != 0 && saturated.load(std::memory_order_relaxed) < n;
  }
};

struct runtime_core {
  runtime_config cfg;
  task_registry registry;
  gpu_inventory gpus;
  std::vector<worker_desc> workers;  ///< fixed at start: CPU workers, then one per GPU
  /// Workers out of service for good (a poisoned GPU context); read by submitters.
  std::unique_ptr<std::atomic<bool>[]> retired;
  /// GPU memory figures per worker (used for GPU workers only), see gpu_memory_gauge.
  std::unique_ptr<gpu_memory_gauge[]> gpu_gauges;
  event_gate events;
  /// Where the queue hands tasks whose submitter gave a callback; null: run them inline (tests
  /// that drive the queue actor alone).
  callback_runner* callbacks = nullptr;

  // Written per batch by submitters and per handler by the queue: separate cache lines, so the
  // two sides do not bounce one line between cores.
  alignas(64) std::atomic<task_id> next_id{1};
  std::atomic<uint64_t> submitted{0}, rejected{0};
  /// Admitted and not yet finished; the queue bound applies to it.
  alignas(64) std::atomic<uint64_t> in_system{0};
  std::atomic<bool> accepting{true};
  std::atomic<errc> refusal{errc::shutting_down};  ///< why submits are refused once !accepting

  // Waiters for in_system to fall (overflow = block, shutdown(drain)). Notified only when
  // someone waits, so the hot path pays one relaxed load.
  std::mutex wait_mutex;
  std::condition_variable wait_cv;
  std::atomic<int> waiters{0};

  /// n admitted tasks have ended (or n reserved places were not used).
  void tasks_finished(uint64_t n) {
    if (n == 0) return;
    auto before = in_system.fetch_sub(n, std::memory_order_acq_rel);
    // Waiters want one of two transitions: idle (shutdown, wait_idle) or room under the bound
    // (overflow = block). Waking them on every task would cost a context switch per task.
    bool idle = before == n, room = before >= cfg.queue_bound && before - n < cfg.queue_bound;
    if ((idle || room) && waiters.load(std::memory_order_acquire) > 0) {
      std::lock_guard<std::mutex> guard{wait_mutex};
      wait_cv.notify_all();
    }
  }
};

}  // namespace troupe
