#pragma once
// event_bus: numbers events without gaps and fans them out to in-process subscribers by topic
// prefix. Runs detached. Each subscriber's callback runs on a thread of its own behind a queue of
// monitor.subscriber_high_water events: past it the subscriber loses events (counted; it sees a
// jump in seq), so a stalled callback never holds the bus nor, through it, the scheduler.
#include <memory>
#include <unordered_map>

#include "troupe/actors/event_gate.hpp"
#include "troupe/actors/messages.hpp"
#include "troupe/actors/runtime_setup.hpp"

namespace troupe {

class subscriber_queue;

struct event_bus_state {
  static inline const char* name = "event_bus";
  setup_ptr setup;
  std::shared_ptr<event_gate> gate;  ///< the bus writes the subscriber counts here
  uint64_t next_seq = 1;
  struct subscription {
    subscribe_msg sub;
    std::shared_ptr<subscriber_queue> queue;  ///< null for a direct one
  };
  std::unordered_map<uint64_t, subscription> subscriptions;
  ~event_bus_state();  ///< delivers what the queues hold, then joins their threads
};

event_bus_actor::behavior_type event_bus_impl(
    event_bus_actor::stateful_pointer<event_bus_state> self, setup_ptr setup,
    std::shared_ptr<event_gate> gate);

}  // namespace troupe
