#include "troupe/actors/event_bus.hpp"

#include <caf/all.hpp>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "troupe/model/log.hpp"

namespace troupe {

/// One subscriber's bounded queue and the thread that runs its callback, in seq order.
class subscriber_queue {
 public:
  subscriber_queue(uint64_t id, std::string prefix, event_callback callback, size_t capacity,
                   std::shared_ptr<event_gate> gate)
      : state_(std::make_shared<state>(capacity, gate)) {
    thread_ = std::thread([s = state_, id, prefix = std::move(prefix), cb = std::move(callback)] {
      std::unique_lock<std::mutex> lock{s->mutex};
      for (;;) {
        s->cv.wait(lock, [&] { return s->stopping || !s->events.empty(); });
        if (s->events.empty()) {  // stopping, and all delivered
          s->finished = true;
          s->cv.notify_all();
          return;
        }
        auto e = std::move(s->events.front());
        s->events.pop_front();
        s->size.store(s->events.size(), std::memory_order_relaxed);
        // Caught up to half its queue: events are worth building for it again.
        if (s->saturated && s->events.size() <= s->capacity / 2) s->set_saturated(false);
        lock.unlock();
        try {
          cb(e);
        } catch (const std::exception& ex) {
          troupe::logger().warn("event subscriber {} ('{}') threw: {}", id, prefix, ex.what());
        }
        lock.lock();
      }
    });
  }
  /// Delivers what is queued and joins (the runtime shuts down: callbacks end before it), but
  /// waits at most drain_limit for a callback that does not return: then the rest is dropped
  /// and shutdown goes on without it.
  ~subscriber_queue() {
    if (!thread_.joinable()) return;
    stop(false);
    std::unique_lock<std::mutex> lock{state_->mutex};
    if (state_->cv.wait_for(lock, drain_limit, [&] { return state_->finished; })) {
      lock.unlock();
      thread_.join();
      return;
    }
    state_->events.clear();
    lock.unlock();
    troupe::logger().warn(
        "event subscriber still inside its callback after {} s: shutdown goes on without it",
        drain_limit.count());
    thread_.detach();
  }
  static constexpr std::chrono::seconds drain_limit{5};
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
      state_->gate->dropped.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    {
      std::lock_guard<std::mutex> guard{state_->mutex};
      if (state_->events.size() >= state_->capacity) {
        state_->gate->dropped.fetch_add(1, std::memory_order_relaxed);
        if (!state_->saturated) state_->set_saturated(true);
        return;
      }
      state_->events.push_back(e);
      state_->size.store(state_->events.size(), std::memory_order_relaxed);
      if (state_->events.size() >= state_->capacity && !state_->saturated)
        state_->set_saturated(true);  // full: stop building events for it until it catches up
    }
    state_->cv.notify_one();
  }

 private:
  struct state {
    state(size_t c, std::shared_ptr<event_gate> g) : capacity(c), gate(std::move(g)) {}
    size_t capacity;
    std::shared_ptr<event_gate> gate;
    bool saturated = false;  ///< counted in gate.saturated; under the mutex
    void set_saturated(bool on) {
      saturated = on;
      if (on)
        gate->saturated.fetch_add(1, std::memory_order_relaxed);
      else
        gate->saturated.fetch_sub(1, std::memory_order_relaxed);
    }
    std::mutex mutex;
    std::condition_variable cv;
    std::deque<event> events;
    std::atomic<size_t> size{0};  ///< events.size(), readable without the lock
    bool stopping = false;
    bool finished = false;  ///< the thread has delivered everything and returned
  };
  void stop(bool discard) {
    {
      std::lock_guard<std::mutex> guard{state_->mutex};
      state_->stopping = true;
      if (discard) state_->events.clear();
      if (state_->saturated) state_->set_saturated(false);  // it no longer counts
    }
    state_->cv.notify_all();
  }
  std::shared_ptr<state> state_;
  std::thread thread_;
};

event_bus_state::~event_bus_state() = default;

event* event_batch::add(std::string topic, task_id task, int32_t worker, std::string detail,
                        std::string node) {
  if (!wanted()) return nullptr;
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
  return &events_.back();
}

event* event_batch::add_task(std::string topic, const task_state& t, int32_t worker,
                             std::string detail) {
  auto* e = add(std::move(topic), t.id, worker, std::move(detail));
  if (e) e->kind = t.spec.kind;
  return e;
}

void event_batch::flush_from_outside(const event_bus_actor& bus) {
  report_skipped();
  if (events_.empty()) return;
  caf::anon_send(bus, publish_msg{std::move(events_)});
  events_.clear();
  now_ns_ = 0;
}

event_bus_actor::behavior_type event_bus_impl(
    event_bus_actor::stateful_pointer<event_bus_state> self, setup_ptr setup,
    std::shared_ptr<event_gate> gate) {
  self->state.setup = std::move(setup);
  self->state.gate = std::move(gate);
  return {
      [=](publish_msg& msg) {
        auto& st = self->state;
        // Events skipped while every subscriber was saturated: numbers nobody gets, so that
        // the next event shows the loss as a jump.
        if (auto skipped = st.gate->skipped.exchange(0, std::memory_order_relaxed)) {
          st.next_seq += skipped;
          st.gate->dropped.fetch_add(skipped, std::memory_order_relaxed);
        }
        // Built after a subscriber opened the gate but here before its subscription: nobody can
        // get them, and numbering them would leave gaps no subscriber could account for.
        if (st.subscriptions.empty()) return;
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
              troupe::logger().warn("event subscriber {} ('{}') threw: {}", id, s.sub.prefix,
                                    ex.what());
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
        if (!msg.direct && st.setup->cfg.detached_workers)
          queue = std::make_shared<subscriber_queue>(id, msg.prefix, std::move(msg.callback),
                                                     st.setup->cfg.subscriber_high_water, st.gate);
        st.subscriptions.emplace(id,
                                 event_bus_state::subscription{std::move(msg), std::move(queue)});
      },
      [=](const unsubscribe_msg& msg) {
        auto& subs = self->state.subscriptions;
        auto i = subs.find(msg.id);
        if (i == subs.end()) return;
        if (i->second.queue) i->second.queue->abandon();
        subs.erase(i);
        self->state.gate->subscribers.fetch_sub(1);
      },
  };
}

}  // namespace troupe
