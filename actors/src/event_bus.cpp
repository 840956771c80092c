#include "troupe/actors/event_bus.hpp"

#include <spdlog/spdlog.h>

#include <caf/all.hpp>

namespace troupe {

void event_batch::add(std::string topic, task_id task, int32_t worker, std::string detail,
                      std::string node) {
  if (!wanted()) return;
  event e;
  e.time_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                  std::chrono::system_clock::now().time_since_epoch())
                  .count();
  e.topic = std::move(topic);
  e.task = task;
  e.worker = worker;
  e.detail = std::move(detail);
  e.node = std::move(node);
  events_.push_back(std::move(e));
}

void event_batch::add_task(std::string topic, const task_state& t, int32_t worker,
                           std::string detail) {
  if (!wanted()) return;
  add(std::move(topic), t.id, worker, std::move(detail));
  events_.back().kind = t.spec.kind;
}

void event_batch::flush_from_outside(const event_bus_actor& bus) {
  if (events_.empty()) return;
  caf::anon_send(bus, publish_msg{std::move(events_)});
  events_.clear();
}

event_bus_actor::behavior_type event_bus_impl(
    event_bus_actor::stateful_pointer<event_bus_state> self, runtime_core* core) {
  self->state.core = core;
  return {
      [=](publish_msg& msg) {
        auto& st = self->state;
        for (auto& e : msg.events) {
          e.seq = st.next_seq++;
          for (auto& [id, sub] : st.subscriptions) {
            if (e.topic.compare(0, sub.prefix.size(), sub.prefix) != 0) continue;
            try {
              sub.callback(e);
            } catch (const std::exception& ex) {
              spdlog::warn("event subscriber {} ('{}') threw: {}", id, sub.prefix, ex.what());
            }
          }
        }
      },
      [=](subscribe_msg& msg) {
        // The gate was opened by the caller (runtime::subscribe) already.
        auto id = msg.id;
        self->state.subscriptions.emplace(id, std::move(msg));
      },
      [=](const unsubscribe_msg& msg) {
        if (self->state.subscriptions.erase(msg.id))
          self->state.core->events.subscribers.fetch_sub(1);
      },
  };
}

}  // namespace troupe
