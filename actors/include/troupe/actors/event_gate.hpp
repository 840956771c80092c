#pragma once
// The event bus's published subscriber count: lets publishers skip building events nobody
// listens to. The bus (and the runtime's subscribe calls) write it; publishers only read it and
// count what they skipped.
#include <atomic>
#include <cstdint>

namespace troupe {

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

}  // namespace troupe
