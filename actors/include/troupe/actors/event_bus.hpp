#pragma once
// event_bus: fans events out to in-process subscribers by topic prefix, numbering them without
// gaps. Runs detached: subscriber callbacks are user code and must not stall the scheduler.
#include <unordered_map>

#include "troupe/actors/core.hpp"
#include "troupe/actors/messages.hpp"

namespace troupe {

struct event_bus_state {
  static inline const char* name = "event_bus";
  runtime_core* core = nullptr;
  uint64_t next_seq = 1;
  std::unordered_map<uint64_t, subscribe_msg> subscriptions;
};

event_bus_actor::behavior_type event_bus_impl(
    event_bus_actor::stateful_pointer<event_bus_state> self, runtime_core* core);

}  // namespace troupe
