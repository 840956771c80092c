#include "troupe/actors/supervisor.hpp"

#include <caf/all.hpp>

#include "troupe/actors/cuda_worker.hpp"
#include "troupe/actors/device_worker.hpp"
#include "troupe/model/log.hpp"

namespace troupe {

namespace {

using self_ptr = supervisor_actor::stateful_pointer<supervisor_state>;

void spawn_child(self_ptr self, int32_t index) {
  auto& st = self->state;
  auto& c = st.children.at(size_t(index));
  auto gen = ++c.generation;
  auto me = caf::actor_cast<supervisor_actor>(self);
  // Linked: our exit handler learns of its death; if we go, it goes.
  if (st.setup->workers[size_t(index)].device == device_class::cuda)
    c.handle = self->spawn<caf::linked + caf::detached>(cuda_worker_impl, st.env, index, gen,
                                                        st.balancer, st.monitor, me, st.bus);
  else  // on the scheduler: its tasks run on a thread it owns (or, in tests, in its handler)
    c.handle = self->spawn<caf::linked>(device_worker_impl, st.env, index, gen, st.balancer,
                                        st.monitor, me, st.bus);
  c.alive = true;
  self->send(st.balancer, worker_up_msg{index, gen, c.handle, std::nullopt, nullptr});
  self->send(st.monitor, worker_state_msg{index, "up", c.restarts, gen});
  event_batch events{*st.gate};
  events.add("worker.up", 0, index,
             st.setup->workers[size_t(index)].name + " generation " + std::to_string(gen));
  events.flush(self, st.bus);
}

void escalate(self_ptr self, const std::string& why) {
  auto& st = self->state;
  st.escalated = true;
  troupe::logger().critical("supervisor: {}; escalating: the runtime stops accepting tasks", why);
  self->send(st.escalation, escalate_msg{why});
}

/// A child is gone (crashed, killed, or declared unresponsive): reclaim, then restart or escalate.
void child_lost(self_ptr self, int32_t index, const std::string& reason) {
  auto& st = self->state;
  auto& c = st.children.at(size_t(index));
  c.alive = false;
  auto crashed = c.last_crash.generation == c.generation ? c.last_crash : crash_report_msg{};
  auto why = crashed.task != 0 ? crashed.what : reason;
  auto at = crashed.task != 0 ? crashed.at : clock::now();
  troupe::logger().warn("supervisor: worker {} (generation {}) lost: {}", index, c.generation, why);
  if (crashed.device_lost) {
    // A poisoned GPU context is unusable for the rest of this process: restarting would only
    // crash again. Retire the worker; the other devices carry on. (A node process would exit
    // here for its parent to restart it: issue of the multi-process runtime.)
    why = st.setup->workers[size_t(index)].name +
          " out of service until the process restarts: " + "its GPU context is poisoned (" + why +
          ")";
    st.env.gauges->retire(size_t(index));
    troupe::logger().error("supervisor: {}", why);
  }
  self->send(st.balancer, worker_lost_msg{index, c.generation, crashed.task, why, at,
                                          crashed.device_lost, crashed.also_running});
  event_batch events{*st.gate};
  events.add("worker.down", crashed.task, index, why);
  if (crashed.device_lost) {
    self->send(st.monitor, worker_state_msg{index, "down", c.restarts, c.generation});
    events.flush(self, st.bus);
    return;
  }
  if (st.escalated) {
    events.flush(self, st.bus);
    return;
  }
  // Restart intensity is per supervisor, as in Erlang/OTP: at most N restarts of any child
  // within the window T; one more and the supervisor gives up and escalates. The actor clock:
  // tests drive it.
  auto backoff = st.budget->on_child_lost(self->clock().now());
  if (!backoff) {
    self->send(st.monitor, worker_state_msg{index, "down", c.restarts, c.generation});
    events.flush(self, st.bus);
    escalate(self, std::to_string(st.budget->recent()) + " restarts within " +
                       std::to_string(st.budget->period().count()) + " ms, the limit is " +
                       std::to_string(st.budget->limit()));
    return;
  }
  ++c.restarts;
  self->send(st.monitor, worker_state_msg{index, "restarting", c.restarts, c.generation});
  events.add("worker.restarting", 0, index, "in " + std::to_string(backoff->count()) + " ms");
  events.flush(self, st.bus);
  if (backoff->count() == 0)
    spawn_child(self, index);
  else
    self->delayed_send(self, *backoff, restart_msg{index});
}

}  // namespace

supervisor_actor::behavior_type supervisor_impl(
    supervisor_actor::stateful_pointer<supervisor_state> self, worker_env env,
    balancer_actor balancer, monitor_actor monitor, escalation_actor escalation,
    event_bus_actor bus) {
  auto& st = self->state;
  st.env = std::move(env);
  st.setup = st.env.setup.get();
  st.gate = st.env.gate.get();
  auto* setup = st.setup;
  st.balancer = std::move(balancer);
  st.monitor = std::move(monitor);
  st.escalation = std::move(escalation);
  st.bus = std::move(bus);
  st.children.resize(setup->workers.size());
  st.budget.emplace(setup->cfg.restart_intensity, setup->cfg.restart_period,
                    setup->cfg.restart_backoff, setup->cfg.restart_backoff_max);
  self->set_exit_handler([=](caf::exit_msg& em) {
    auto& st = self->state;
    for (size_t i = 0; i < st.children.size(); ++i) {
      auto& c = st.children[i];
      if (c.alive && em.source == c.handle.address()) {
        child_lost(self, int32_t(i), "worker exited: " + to_string(em.reason));
        return;
      }
    }
    self->quit(em.reason);  // not a child: a shutdown request (or our parent died)
  });
  // Workers of other processes are supervised there; membership reports their ups and downs.
  for (size_t i = 0; i < st.children.size(); ++i)
    if (!setup->workers[i].remote()) spawn_child(self, int32_t(i));
  return {
      [=](const crash_report_msg& msg) {
        self->state.children.at(size_t(msg.worker)).last_crash = msg;
      },
      [=](const unresponsive_msg& msg) {
        auto& st = self->state;
        auto& c = st.children.at(size_t(msg.worker));
        if (!c.alive || c.generation != msg.generation) return;
        // A detached worker stuck in a kernel cannot be preempted: fence it off (unlink, kill,
        // results of its generation are ignored) and start a replacement right away.
        self->unlink_from(c.handle);
        self->send_exit(c.handle, caf::exit_reason::kill);
        child_lost(self, msg.worker,
                   "no heartbeat for " + std::to_string(int64_t(msg.silent_ms)) + " ms");
      },
      [=](const restart_msg& msg) {
        auto& st = self->state;
        if (!st.escalated && !st.children.at(size_t(msg.worker)).alive)
          spawn_child(self, msg.worker);
      },
  };
}

}  // namespace troupe
