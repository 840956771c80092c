#include "troupe/runtime.hpp"

#include "runtime_impl.hpp"

namespace troupe {

/// Subscribes one callback per rule of the config: each matching event fires its rule once.
void runtime::start_triggers() {
  auto& rt = *this;
  auto& impl = *impl_;
  if (impl.cfg().triggers.empty()) return;
  auto runner = std::make_shared<trigger_runner>();
  runner->rt = &rt;
  impl.triggers = runner;
  for (auto& rule : impl.cfg().triggers) {
    // On the bus's own thread, like the head's publisher: a rule sees every event, none is
    // lost to a subscriber queue's bound. A follow-up submit with overflow = "block" may hold
    // the bus for at most queue.block_timeout_ms.
    rt.subscribe_direct(rule.topic, [runner, rule, bus = impl.bus](const event& e) {
      std::lock_guard<std::mutex> guard{runner->mutex};
      if (!runner->rt || !matches(rule, e) || (e.task && runner->follow_ups.count(e.task))) return;
      switch (rule.action) {
        case trigger_action::log:
          troupe::logger().warn("{}", describe_match(rule, e));
          break;
        case trigger_action::alert:  // this thread is the bus's: it numbers the alert next
          caf::anon_send(bus, publish_msg{{alert_for(rule, e)}});
          break;
        case trigger_action::submit: {
          auto h = runner->rt->submit(follow_up_for(rule, e));
          if (h.ready() && !h.get().ok())
            troupe::logger().warn("trigger '{}': follow-up task refused: {}", rule.name,
                                  h.get().error.message);
          runner->follow_ups.insert(h.id());
          runner->follow_up_order.push_back(h.id());
          if (runner->follow_up_order.size() > trigger_runner::follow_up_capacity) {
            runner->follow_ups.erase(runner->follow_up_order.front());
            runner->follow_up_order.pop_front();
          }
          break;
        }
      }
    });
  }
  troupe::logger().info("troupe: {} trigger(s) from the config", impl.cfg().triggers.size());
}

runtime::runtime(runtime_config cfg) : impl_(std::make_unique<impl>(std::move(cfg))) {
  apply_log_level(impl_->cfg().log_level);
  impl_->own_cfg = make_caf_config(impl_->cfg());
  impl_->own_system = std::make_unique<caf::actor_system>(*impl_->own_cfg);
  impl_->start(*impl_->own_system);
  start_triggers();
}

runtime::runtime(runtime_config cfg, std::vector<worker_desc> remote_workers)
    : impl_(std::make_unique<impl>(std::move(cfg))) {
  apply_log_level(impl_->cfg().log_level);
  impl_->own_cfg = make_caf_config(impl_->cfg());
  impl_->own_system = std::make_unique<caf::actor_system>(*impl_->own_cfg);
  impl_->start(*impl_->own_system, std::move(remote_workers));
  start_triggers();
}

runtime::runtime(caf::actor_system& system, runtime_config cfg)
    : impl_(std::make_unique<impl>(std::move(cfg))) {
  apply_log_level(impl_->cfg().log_level);
  impl_->start(system);
  start_triggers();
}

std::unique_ptr<runtime> runtime::from_file(const std::string& path) {
  return std::make_unique<runtime>(load_config(path));
}

runtime::~runtime() {
  shutdown(shutdown_mode::drain);
  // A detached actor's thread lives until its last handle is gone: drop ours before the system
  // waits for those threads.
  impl_->bus = nullptr;
  impl_->monitor = nullptr;
  impl_->queue = nullptr;
  impl_->balancer = nullptr;
  impl_->supervisor = nullptr;
  impl_->own_system.reset();
  // The queue is gone (with an owned system): nothing posts callbacks any more.
  if (impl_->own_cfg) {
    impl_->callbacks.reset();
  }
}

task_registry& runtime::registry() {
  return *impl_->setup->registry;
}
const gpu_inventory& runtime::gpus() const {
  return impl_->setup->gpus;
}
const runtime_config& runtime::config() const {
  return impl_->setup->cfg;
}

task_handle runtime::submit(task_spec spec, result_callback on_done) {
  auto key = spec.idempotency_key;
  if (!key.empty()) {  // two threads with the same key get the same task, never two
    task_handle known;
    switch (impl_->claim_key(key, known)) {
      case impl::key_claim::known:
        return known;
      case impl::key_claim::busy:
        return impl_->key_busy(impl_->admission->take_ids(1), spec);
      case impl::key_claim::claimed:
        break;
    }
  }
  auto sub = impl_->begin(1, std::move(on_done));
  auto r = impl_->prepare(std::move(spec), sub);
  impl_->end(sub);
  if (auto* h = std::get_if<task_handle>(&r)) {
    if (!key.empty()) impl_->settle_key(key, nullptr);
    return *h;
  }
  auto& t = std::get<task_ptr>(r);
  auto h = impl_->track(t);
  if (!key.empty()) impl_->settle_key(key, &h);
  caf::anon_send(impl_->queue, submit_msg{{std::move(t)}});
  return h;
}

std::vector<task_handle> runtime::submit_batch(std::vector<task_spec> specs,
                                               result_callback on_done) {
  return impl_->submit_specs(std::move(specs), std::move(on_done), nullptr);
}

graph_handle runtime::submit_graph(graph_spec graph, result_callback on_done) {
  std::vector<std::string> names;
  for (auto& t : graph.tasks) names.push_back(t.name);
  linked_graph linked;
  if (auto why = link_graph(std::move(graph), linked)) {
    // Refused before any task was made: each still gets an id and a rejected handle.
    auto first = impl_->admission->take_ids(names.size());
    std::vector<task_handle> handles;
    task_spec none;
    for (size_t i = 0; i < names.size(); ++i)
      handles.push_back(
          impl_->rejected(first + i, none, why.code, "the graph was refused: " + why.message));
    return graph_handle{std::move(names), std::move(handles), std::move(why)};
  }
  auto handles = impl_->submit_specs(std::move(linked.specs), std::move(on_done), nullptr, {},
                                     linked.on_failure);
  return graph_handle{std::move(linked.names), std::move(handles)};
}

std::vector<task_handle> runtime::submit_gang(std::vector<task_spec> tasks,
                                              result_callback on_done) {
  return impl_->submit_specs(std::move(tasks), std::move(on_done), nullptr, {},
                             failure_policy::cancel_graph, true);
}

void runtime::cancel(const graph_handle& graph) {
  for (auto& t : graph.tasks())
    if (!t.ready()) caf::anon_send(impl_->queue, cancel_msg{t.id()});
}

void runtime::cancel(task_id id) {
  caf::anon_send(impl_->queue, cancel_msg{id});
}

uint64_t runtime::subscribe(std::string prefix, event_callback callback) {
  auto id = impl_->next_subscription.fetch_add(1);
  // Counted here, synchronously, so that events published right after this call are not
  // skipped by the gate; the bus adds the subscription before it handles any later publish.
  impl_->events->subscribers.fetch_add(1);
  caf::anon_send(impl_->bus, subscribe_msg{id, std::move(prefix), std::move(callback)});
  return id;
}

uint64_t runtime::subscribe_direct(std::string prefix, event_callback callback) {
  auto id = impl_->next_subscription.fetch_add(1);
  impl_->events->subscribers.fetch_add(1);
  subscribe_msg msg{id, std::move(prefix), std::move(callback)};
  msg.direct = true;
  caf::anon_send(impl_->bus, std::move(msg));
  return id;
}

void runtime::count_dropped_events(uint64_t n) {
  impl_->events->dropped.fetch_add(n, std::memory_order_relaxed);
}

void runtime::unsubscribe(uint64_t id) {
  caf::anon_send(impl_->bus, unsubscribe_msg{id});
}

runtime_stats runtime::stats() {
  runtime_stats s;
  caf::scoped_actor self{*impl_->system};
  self->request(impl_->monitor, std::chrono::seconds(5), stats_request{})
      .receive([&](runtime_stats& r) { s = std::move(r); },
               [&](caf::error& e) {
                 troupe::logger().warn("troupe: stats request failed: {}", caf::to_string(e));
               });
  s.submitted = impl_->admission->submitted();
  s.rejected = impl_->admission->rejected();
  auto in_system = impl_->admission->in_system();
  s.queued = std::min<uint64_t>(s.queued, in_system);
  s.in_flight = in_system - s.queued;
  return s;
}

void runtime::shutdown(shutdown_mode mode) {
  if (auto t = impl_->triggers) {  // no follow-up task once shutting down
    std::lock_guard<std::mutex> guard{t->mutex};
    t->rt = nullptr;
  }
  impl_->stop(mode);
}

bool runtime::wait_idle(std::chrono::milliseconds timeout) {
  return impl_->admission->wait_idle(timeout);
}

}  // namespace troupe
