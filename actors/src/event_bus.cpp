#include "troupe/actors/event_bus.hpp"

#include <spdlog/spdlog.h>

#include <caf/all.hpp>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

namespace troupe {

/// One subscriber's bounded queue and the thread that runs its callback, in seq order.
class subscriber_queue {
 public:
  subscriber_queue(uint64_t id, std::string prefix, event_callback callback, size_t capacity,
                   std::atomic<uint64_t>& dropped)
      : state_(std::make_shared<state>(capacity, dropped)) {
    thread_ = std::thread([s = state_, id, prefix = std::move(prefix), cb = std::move(callback)] {
      std::unique_lock<std::mutex> lock{s->mutex};
      for (;;) {
        s->cv.wait(lock, [&] { return s->stopping || !s->events.empty(); });
        if (s->events.empty()) return;  // stopping, and all delivered
        auto e = std::move(s->events.front());
        s->events.pop_front();
        s->size.store(s->events.size(), std::memory_order_relaxed);
        lock.unlock();
        try {
          cb(e);
        } catch (const std::exception& ex) {
          spdlog::warn("event subscriber {} ('{}') threw: {}", id, prefix, ex.what());
        }
        lock.lock();
      }
    });
  }
  /// Delivers what is queued, then joins (the runtime shuts down: callbacks end before it).
  ~subscriber_queue() {
    if (!thread_.joinable()) return;
    stop(false);
    thread_.join();
  }
  /// Unsubscribed: what is queued is dropped, and the bus does not wait for a callback that may
  /// be stalled; the thread ends after it on its own.
  void abandon() {
    stop(true);
    thread_.detach();
  }
  /// Never waits for the subscriber: at the high-water mark the event is dropped and counted.
  void push(const event& e) {
    // A stalled subscriber's queue stays full: drop without taking its lock.
    if (state_->size.load(std::memory_order_relaxed) >= state_->capacity) {
      state_->dropped.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    {
      std::lock_guard<std::mutex> guard{state_->mutex};
      if (state_->events.size() >= state_->capacity) {
        state_->dropped.fetch_add(1, std::memory_order_relaxed);
        return;
      }
      state_->events.push_back(e);
      state_->size.store(state_->events.size(), std::memory_order_relaxed);
    }
    state_->cv.notify_one();
  }

 private:
  struct state {
    state(size_t c, std::atomic<uint64_t>& d) : capacity(c), dropped(d) {}
    size_t capacity;
    std::atomic<uint64_t>& dropped;  // the runtime's; outlives the bus
    std::mutex mutex;
    std::condition_variable cv;
    std::deque<event> events;
    std::atomic<size_t> size{0};  ///< events.size(), readable without the lock
    bool stopping = false;
  };
  void stop(bool discard) {
    {
      std::lock_guard<std::mutex> guard{state_->mutex};
      state_->stopping = true;
      if (discard) state_->events.clear();
    }
    state_->cv.notify_one();
  }
  std::shared_ptr<state> state_;
  std::thread thread_;
};

event_bus_state::~event_bus_state() = default;

void event_batch::add(std::string topic, task_id task, int32_t worker, std::string detail,
                      std::string node) {
  if (!wanted()) return;
  if (events_.empty()) {
    events_.reserve(16);
    now_ns_ = std::chrono::duration_cast<std::chrono::nanoseconds>(
                  std::chrono::system_clock::now().time_since_epoch())
                  .count();
  }
  event e;
  e.time_ns = now_ns_;
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
  now_ns_ = 0;
}

event_bus_actor::behavior_type event_bus_impl(
    event_bus_actor::stateful_pointer<event_bus_state> self, runtime_core* core) {
  self->state.core = core;
  return {
      [=](publish_msg& msg) {
        auto& st = self->state;
        for (auto& e : msg.events) {
          e.seq = st.next_seq++;
          for (auto& [id, s] : st.subscriptions) {
            if (e.topic.compare(0, s.sub.prefix.size(), s.sub.prefix) != 0) continue;
            if (s.queue) {
              s.queue->push(e);
              continue;
            }
            try {
              s.sub.callback(e);
            } catch (const std::exception& ex) {
              spdlog::warn("event subscriber {} ('{}') threw: {}", id, s.sub.prefix, ex.what());
            }
          }
        }
      },
      [=](subscribe_msg& msg) {
        // The gate was opened by the caller (runtime::subscribe) already.
        auto& st = self->state;
        auto id = msg.id;
        std::shared_ptr<subscriber_queue> queue;
        // Deterministic tests (workers on the scheduler) want callbacks inside the bus's step.
        if (!msg.direct && st.core->cfg.detached_workers)
          queue = std::make_shared<subscriber_queue>(id, msg.prefix, std::move(msg.callback),
                                                     st.core->cfg.subscriber_high_water,
                                                     st.core->events.dropped);
        st.subscriptions.emplace(id,
                                 event_bus_state::subscription{std::move(msg), std::move(queue)});
      },
      [=](const unsubscribe_msg& msg) {
        auto& subs = self->state.subscriptions;
        auto i = subs.find(msg.id);
        if (i == subs.end()) return;
        if (i->second.queue) i->second.queue->abandon();
        subs.erase(i);
        self->state.core->events.subscribers.fetch_sub(1);
      },
  };
}

}  // namespace troupe
