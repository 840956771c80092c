#include "troupe/actors/balancer.hpp"

#include <algorithm>
#include <caf/all.hpp>
#include <cmath>
#include <limits>

#include "troupe/model/gang.hpp"
#include "troupe/model/log.hpp"
#include "troupe/model/preemption.hpp"

namespace troupe {

namespace {

using self_ptr = balancer_actor::stateful_pointer<balancer_state>;

double backlog_target_s(const balancer_state& st) {
  return std::chrono::duration<double>(st.setup->cfg.worker_backlog).count();
}

/// floor: tasks the worker may hold whatever its estimated backlog (its credit floor).
bool has_room(const balancer_state& st, const balancer_state::worker_slot& w, size_t floor) {
  return w.up && w.held_for == 0 && w.in_flight.size() < st.setup->cfg.worker_prefetch &&
         (w.in_flight.size() < floor || w.backlog_s < backlog_target_s(st));
}

/// Performance-model key: the same kind runs at different speeds on different devices.
uint32_t model_key(const task_state& t, device_class d) {
  return t.kind->index * 2 + uint32_t(d);
}

/// Whether the worker has the task's kind for its device class: a local worker by this process's
/// registry, a remote one by what its node said.
bool runs_kind(const balancer_state& st, size_t w, const task_state& t) {
  if (!st.setup->workers[w].remote()) return t.kind->runs_on(st.setup->workers[w].device);
  auto& kinds = st.workers[w].kinds;
  // No hello yet (it is down): the kind is judged again when it comes up.
  if (!kinds) return t.kind->runs_on(st.setup->workers[w].device);
  return t.kind->index < kinds->size() && (*kinds)[t.kind->index];
}

/// Whether the reservations let the task run on worker w now (reservations.hpp).
bool reserved_ok(const balancer_state& st, size_t w, const task_state& t) {
  auto& book = st.setup->reservations;
  return book.empty() || book.allows(w, reservation_of(t.spec), clock::now());
}

/// Whether they ever will (false: the reservation it names ended, or holds w for good).
bool reserved_ever(const balancer_state& st, size_t w, const task_state& t) {
  auto& book = st.setup->reservations;
  return book.empty() || book.could_ever(w, reservation_of(t.spec), clock::now());
}

/// Whether some worker still in service (other than `except`) could ever run the task.
bool runnable_somewhere(const balancer_state& st, const task_state& t, int32_t except = -1) {
  for (size_t w = 0; w < st.workers.size(); ++w)
    if (int32_t(w) != except && !st.workers[w].retired && runs_kind(st, w, t) &&
        st.ledger.fits_capacity(int32_t(w), t.spec.needs) && reserved_ever(st, w, t))
      return true;
  return false;
}

bool can_take(balancer_state& st, size_t w, const task_state& t) {
  // Its last attempt crashed, was lost or timed out here: elsewhere if anywhere else can.
  if (t.avoid_worker == int32_t(w) && runnable_somewhere(st, t, int32_t(w))) return false;
  auto& desc = st.setup->workers[w];
  // A batching GPU's large floor is there to fill launches: it holds for tasks that batch only.
  // Others are placed by estimated finish like anywhere else (a GPU flooded with gemm tasks
  // past its backlog made mixed CPU + GPU runs slower than CPU alone).
  auto floor = st.workers[w].min_tasks;
  if (desc.device == device_class::cuda && !(t.kind->def.batch_key && t.kind->def.cuda_batch))
    floor = std::min(floor, 2 * size_t(st.setup->cfg.cuda_streams));
  return runs_kind(st, w, t) && has_room(st, st.workers[w], floor) &&
         st.ledger.can_reserve(int32_t(w), t.spec.needs) && reserved_ok(st, w, t);
}

/// How long a graph task's inputs take to reach worker w (docs/graphs.md, "Where data moves"):
/// the head holds every output, so its own workers have them; a node's worker has those its
/// node produced (and keeps), the rest come at balancer.link_bytes_per_s.
double moving_s(const balancer_state& st, size_t w, const task_state& t) {
  if (t.input_homes.empty()) return 0;
  auto& node = st.setup->workers[w].node;
  if (node.empty()) return 0;
  uint64_t bytes = 0;
  for (auto& h : t.input_homes)
    if (!st.setup->node_keeps(node, h.worker)) bytes += h.bytes;
  return double(bytes) / double(st.setup->cfg.link_bytes_per_s);
}

/// The worker a task goes to, or -1 if none has room for it now (the placer decides).
int32_t choose(balancer_state& st, task_state& t) {
  return st.placement.choose(
      st.workers.size(), [&](size_t w) { return can_take(st, w, t); },
      [&](size_t w) {
        return st.model.estimate_s(model_key(t, st.setup->workers[w].device), t.cost);
      },
      [&](size_t w) { return st.workers[w].backlog_s; },
      [&](size_t w) { return moving_s(st, w, t); }, t.estimate_s);
}

/// Shows a GPU worker's reserved memory and capacity to the monitor (stats, metrics).
void show_reserved(const balancer_state& st, int32_t w) {
  if (st.setup->workers[size_t(w)].device != device_class::cuda) return;
  auto& g = st.gauges->gpu(size_t(w));
  g.reserved.store(st.ledger.reserved_gpu_memory(w), std::memory_order_relaxed);
  g.capacity.store(st.ledger.capacity(w).gpu_memory_bytes, std::memory_order_relaxed);
}

/// Whether some worker, in service or retired, has the task's kind.
bool known_somewhere(const balancer_state& st, const task_state& t) {
  for (size_t w = 0; w < st.workers.size(); ++w)
    if (runs_kind(st, w, t)) return true;
  return false;
}

/// The running attempt on worker w that makes way for a task of higher priority or earlier
/// deadline (by queue.order), if one may (preemption.hpp). CPU workers mark preemptible attempts
/// running; for a node's workers membership does, from the node's heartbeats.
std::optional<size_t> victim_on(const balancer_state& st, size_t w, const assignment& urgent) {
  auto order = st.setup->cfg.order;
  if (!preempts_by(order)) return std::nullopt;
  auto& held = st.workers[w].in_flight;
  return preemption_victim(
      held.size(),
      [&](size_t i) {
        auto& t = *held[i].task;
        return held_attempt_of(t, held[i].order,
                               t.running_attempt.load(std::memory_order_relaxed) == held[i].attempt,
                               order);
      },
      preemption_rank(urgent.task->spec, order), urgent.order, st.setup->cfg.max_preemptions);
}

/// Sends what one placement round decided: the tasks no worker can run back to the queue, the
/// assignments to their workers, the events to the bus.
void send_round(self_ptr self, completions_msg& unrunnable, std::vector<assign_msg>& batches,
                event_batch& events) {
  auto& st = self->state;
  if (!unrunnable.records.empty()) self->send(st.queue, std::move(unrunnable));
  for (size_t w = 0; w < batches.size(); ++w)
    if (!batches[w].tasks.empty()) self->send(st.workers[w].handle, std::move(batches[w]));
  events.flush(self, st.bus);
}

/// Commits a placement: the task's resources reserved on worker w, its estimate added to the
/// worker's backlog, the assignment held there and added to the worker's batch.
void place_on(balancer_state& st, int32_t w, assignment&& a, std::vector<assign_msg>& batches,
              event_batch& events) {
  auto& t = *a.task;
  auto& slot = st.workers[size_t(w)];
  st.ledger.reserve(w, t.id, t.spec.needs);
  show_reserved(st, w);
  slot.backlog_s += t.estimate_s;
  slot.in_flight.push_back(a);
  if (events.wanted()) events.add_task("task.placed", t, w);
  batches[size_t(w)].tasks.push_back(std::move(a));
}

/// The record that ends an attempt no worker in service can run.
attempt_record unrunnable_record(const assignment& a, errc code, std::string message) {
  attempt_record rec;
  rec.task = a.task;
  rec.attempt = a.attempt;
  rec.code = code;
  rec.message = std::move(message);
  rec.started = rec.finished = clock::now();
  return rec;
}

void place_pending(self_ptr self) {
  auto& st = self->state;
  if (st.pending.empty()) return;
  completions_msg unrunnable;
  std::vector<assign_msg> batches(st.workers.size());
  event_batch events{*st.gate};
  std::deque<assignment> waiting;
  while (!st.pending.empty()) {
    auto a = std::move(st.pending.front());
    st.pending.pop_front();
    auto& t = *a.task;
    if (t.cancel_requested.load(std::memory_order_relaxed))
      continue;  // cancelled or expired by the queue meanwhile: nothing to run, nothing reserved
    auto w = choose(st, t);
    if (w < 0) {
      if (!runnable_somewhere(st, t)) {  // its only capable workers were retired
        unrunnable.records.push_back(
            known_somewhere(st, t)
                ? unrunnable_record(a, errc::unsatisfiable_resources,
                                    "no worker still in service can run it (see worker.down "
                                    "events, or the reservation it names has ended)")
                // the nodes that had its kind came back without it
                : unrunnable_record(a, errc::unknown_kind,
                                    "no node runs task kind '" + t.spec.kind + "' any more"));
        continue;
      }
      waiting.push_back(std::move(a));
      continue;
    }
    if (auto victim = victim_on(st, size_t(w), a))  // it would wait behind a preemptible task
      st.workers[size_t(w)].in_flight[*victim].task->preempt_requested.store(true);
    place_on(st, w, std::move(a), batches, events);
  }
  st.pending.swap(waiting);
  send_round(self, unrunnable, batches, events);
}

/// Asks the queue for as many tasks as the workers have room for (credit), minus what is already
/// asked for or waiting here.
void request_more(self_ptr self) {
  auto& st = self->state;
  // Workers are full: asking more would only pile up here. Unless workers are held for a gang:
  // what waits may wait for those, while the others have room.
  bool holding = std::any_of(st.workers.begin(), st.workers.end(),
                             [](const balancer_state::worker_slot& w) { return w.held_for != 0; });
  if (!st.pending.empty() && !holding) return;
  auto target = backlog_target_s(st);
  auto typical = std::max(st.typical_task_s, 1e-7);
  uint64_t room = 0;
  for (auto& w : st.workers) {
    auto have = w.in_flight.size(), prefetch = size_t(st.setup->cfg.worker_prefetch);
    if (!w.up || w.held_for != 0 || have >= prefetch) continue;
    // Refill a worker only once it has drained half its credit (or holds fewer than two tasks):
    // batches stay large instead of degenerating into one small demand/dispatch/assign round
    // per result message.
    if (have >= w.min_tasks && (have * 2 > prefetch || w.backlog_s * 2 > target)) continue;
    double by_time = w.backlog_s < target ? std::ceil((target - w.backlog_s) / typical) : 0;
    by_time = std::max(by_time, have < w.min_tasks ? double(w.min_tasks - have) : 0.0);
    room += std::min<uint64_t>(prefetch - have, uint64_t(by_time));
  }
  room -= std::min<uint64_t>(room, st.pending.size());  // (non-zero only while holding)
  if (room > st.requested) {
    auto n = uint32_t(std::min<uint64_t>(room - st.requested, UINT32_MAX));
    st.requested += n;
    self->send(st.queue, demand_msg{n}, caf::actor_cast<balancer_actor>(self));
  }
}

/// Tasks the queue sent beyond the demand, more urgent than what workers hold: each goes to a
/// worker that can run it whatever its credit (the fewest urgent ones there first, then one
/// where it starts at once: idle, or running a preemptible task that makes way for it; then
/// the least loaded), where it runs before the tasks it holds. None can now (resources): it
/// waits at the front of the pending ones.
void place_urgent(self_ptr self, std::vector<assignment>& tasks) {
  auto& st = self->state;
  event_batch events{*st.gate};
  std::vector<assign_msg> batches(st.workers.size());
  for (auto it = tasks.rbegin(); it != tasks.rend(); ++it) {  // (front of pending: last first)
    auto& a = *it;
    auto& t = *a.task;
    if (t.cancel_requested.load(std::memory_order_relaxed)) continue;
    int32_t best = -1;
    std::optional<size_t> best_victim;
    bool best_starts = false;
    for (size_t w = 0; w < st.workers.size(); ++w) {
      auto& slot = st.workers[w];
      if (!slot.up || slot.held_for != 0 || !runs_kind(st, w, t) ||
          !st.ledger.can_reserve(int32_t(w), t.spec.needs) || !reserved_ok(st, w, t) ||
          (t.avoid_worker == int32_t(w) && runnable_somewhere(st, t, int32_t(w))))
        continue;
      auto victim = victim_on(st, w, a);
      bool starts = slot.in_flight.empty() || victim;
      if (best >= 0) {
        auto& b = st.workers[size_t(best)];
        if (slot.urgent != b.urgent ? slot.urgent > b.urgent
            : starts != best_starts ? !starts
                                    : slot.backlog_s >= b.backlog_s)
          continue;
      }
      best = int32_t(w);
      best_victim = victim;
      best_starts = starts;
    }
    if (best < 0) {
      st.pending.push_front(std::move(a));
      continue;
    }
    auto& slot = st.workers[size_t(best)];
    if (best_victim)  // its worker stops it at its cancellation token; the queue requeues it
      slot.in_flight[*best_victim].task->preempt_requested.store(true);
    t.estimate_s =
        st.model.estimate_s(model_key(t, st.setup->workers[size_t(best)].device), t.cost);
    ++slot.urgent;
    a.urgent = true;
    place_on(st, best, std::move(a), batches, events);
  }
  completions_msg none;
  send_round(self, none, batches, events);
}

/// Gangs whose members the queue ended (a member's end ends its gang) go, and so do the holds
/// of gangs that went: before anything is placed, so that no worker stays held for nothing.
void forget_ended_gangs(balancer_state& st) {
  for (auto it = st.gangs.begin(); it != st.gangs.end();) {
    bool ended = std::any_of(it->second.begin(), it->second.end(), [](const assignment& a) {
      return a.task->cancel_requested.load(std::memory_order_relaxed);
    });
    it = ended ? st.gangs.erase(it) : std::next(it);
  }
  for (auto& w : st.workers)
    if (w.held_for != 0 && !st.gangs.count(w.held_for)) w.held_for = 0;
}

/// Gangs (gang.hpp), oldest first: a complete one goes to distinct idle workers all at once
/// if it can; else it holds workers that could take it once they drain (up, and free of
/// reservations it may not use now): they get nothing else. One that no workers in service
/// could ever hold ends unsatisfiable; a member whose deadline passes while it waits ends
/// expired (and the queue ends the rest). Holds are worked out again each time, so a worker
/// that goes down frees its gang to choose others.
void place_gangs(self_ptr self) {
  auto& st = self->state;
  for (auto& w : st.workers) w.held_for = 0;
  if (st.gangs.empty()) return;
  completions_msg unrunnable;
  std::vector<assign_msg> batches(st.workers.size());
  event_batch events{*st.gate};
  auto now = clock::now();
  for (auto it = st.gangs.begin(); it != st.gangs.end();) {
    auto gang = it->first;
    auto& members = it->second;
    bool expired = false;
    for (auto& a : members)
      if (a.task->spec.deadline && *a.task->spec.deadline <= now) {
        unrunnable.records.push_back(unrunnable_record(
            a, errc::deadline_expired, "deadline passed while its gang waited for workers"));
        expired = true;
      }
    if (expired) {
      it = st.gangs.erase(it);
      continue;
    }
    if (members.size() < members.front().task->gang_size) {  // the rest is on its way
      ++it;
      continue;
    }
    auto n = members.size(), nw = st.workers.size();
    auto match = [&](auto&& can) {
      return match_gang(n, nw, [&](size_t m, size_t w) { return can(*members[m].task, w); });
    };
    auto ever = match([&](const task_state& t, size_t w) {
      return !st.workers[w].retired && runs_kind(st, w, t) &&
             st.ledger.fits_capacity(int32_t(w), t.spec.needs) && reserved_ever(st, w, t);
    });
    if (!ever) {
      for (auto& a : members)
        unrunnable.records.push_back(unrunnable_record(
            a, errc::unsatisfiable_resources,
            "a gang of " + std::to_string(n) +
                " tasks: no workers still in service (and free of reservations it may not use) "
                "can hold it at once (see worker.down events)"));
      it = st.gangs.erase(it);
      continue;
    }
    auto free_for = [&](size_t w) {
      auto& slot = st.workers[w];
      return slot.up && (slot.held_for == 0 || slot.held_for == gang);
    };
    auto at_once = match([&](const task_state& t, size_t w) {
      return free_for(w) && st.workers[w].in_flight.empty() && runs_kind(st, w, t) &&
             st.ledger.can_reserve(int32_t(w), t.spec.needs) && reserved_ok(st, w, t);
    });
    if (!at_once) {
      auto hold = match([&](const task_state& t, size_t w) {
        return free_for(w) && runs_kind(st, w, t) &&
               st.ledger.fits_capacity(int32_t(w), t.spec.needs) && reserved_ok(st, w, t);
      });
      if (hold)
        for (auto w : *hold) st.workers[w].held_for = gang;
      ++it;
      continue;
    }
    for (size_t m = 0; m < n; ++m) {
      auto w = (*at_once)[m];
      auto& a = members[m];
      auto& t = *a.task;
      st.workers[w].held_for = 0;
      t.estimate_s = st.model.estimate_s(model_key(t, st.setup->workers[w].device), t.cost);
      // First in its worker's lane whatever is placed there next: the members start together.
      a.order = std::numeric_limits<double>::lowest();
      place_on(st, int32_t(w), std::move(a), batches, events);
    }
    it = st.gangs.erase(it);
  }
  send_round(self, unrunnable, batches, events);
}

/// A tick when the next reservation starts or ends: tasks waiting for its workers may go then.
void arm_reservation_tick(self_ptr self) {
  auto& st = self->state;
  if (st.tick_armed) return;
  auto now = clock::now();
  auto next = st.setup->reservations.next_change(now);
  if (!next) return;
  st.tick_armed = true;
  self->delayed_send(self, *next - now + std::chrono::milliseconds(1), reservation_tick_msg{});
}

void pump(self_ptr self) {
  forget_ended_gangs(self->state);
  place_pending(self);  // what came first (gangs hold their workers from one pump to the next)
  place_gangs(self);
  request_more(self);
}

/// Takes the gang members out of a dispatch: they wait for their whole gang (place_gangs).
void hold_gang_members(balancer_state& st, std::vector<assignment>& tasks) {
  auto is_member = [](const assignment& a) { return a.task->gang != 0; };
  if (std::none_of(tasks.begin(), tasks.end(), is_member)) return;
  auto rest = std::stable_partition(tasks.begin(), tasks.end(),
                                    [&](const assignment& a) { return !is_member(a); });
  for (auto i = rest; i != tasks.end(); ++i) st.gangs[i->task->gang].push_back(std::move(*i));
  tasks.erase(rest, tasks.end());
}

}  // namespace

balancer_actor::behavior_type balancer_impl(balancer_actor::stateful_pointer<balancer_state> self,
                                            setup_ptr setup, std::shared_ptr<const event_gate> gate,
                                            std::shared_ptr<worker_gauges> gauges,
                                            queue_actor queue, event_bus_actor bus) {
  auto& st = self->state;
  st.setup = setup;
  st.gate = std::move(gate);
  st.gauges = std::move(gauges);
  st.placement = placer{setup->cfg.placement};
  st.queue = std::move(queue);
  st.bus = std::move(bus);
  for (auto& w : setup->workers) {
    st.ledger.add_worker(w.capacity);
    st.workers.emplace_back();
    // A GPU worker needs a task for each of its lanes and the next one behind it; a batching
    // one a full launch for each lane and one gathering. Others need two (the next task is
    // there when the current one ends).
    if (w.device == device_class::cuda) {
      auto floor = 2 * size_t(setup->cfg.cuda_streams);
      if (setup->cfg.batching_enabled)
        floor = std::max(floor, (size_t(setup->cfg.cuda_streams) + 1) * setup->cfg.batch_max_tasks);
      st.workers.back().min_tasks = std::min<size_t>(floor, setup->cfg.worker_prefetch);
    }
  }
  arm_reservation_tick(self);
  return {
      [=](dispatch_msg& msg) {
        auto& st = self->state;
        if (msg.urgent) {
          hold_gang_members(st, msg.tasks);
          place_urgent(self, msg.tasks);
          return pump(self);
        }
        st.requested -= std::min<uint32_t>(st.requested, uint32_t(msg.tasks.size()));
        hold_gang_members(st, msg.tasks);
        for (auto& a : msg.tasks) {
          auto& t = *a.task;
          // Sizes the demand only; placement estimates per device.
          auto est = st.model.estimate_s(model_key(t, device_class::cpu), t.cost);
          st.typical_task_s += 0.1 * (est - st.typical_task_s);
          st.pending.push_back(std::move(a));
        }
        pump(self);
      },
      [=](results_msg& msg) {
        auto& st = self->state;
        auto& slot = st.workers.at(size_t(msg.worker));
        if (msg.generation == slot.generation && slot.up) {
          for (auto& rec : msg.records) {
            auto& q = slot.in_flight;
            auto i = (!q.empty() && q.front().task == rec.task)
                         ? q.begin()
                         : std::find_if(q.begin(), q.end(),
                                        [&](const assignment& a) { return a.task == rec.task; });
            if (i == q.end()) continue;
            slot.backlog_s = std::max(0.0, slot.backlog_s - i->task->estimate_s);
            if (i->urgent && slot.urgent > 0) --slot.urgent;
            q.erase(i);
            st.ledger.release(msg.worker, rec.task->id);
            if (rec.code == errc::none && rec.started != time_point{})
              st.model.observe(model_key(*rec.task, st.setup->workers[size_t(msg.worker)].device),
                               rec.task->cost,
                               std::chrono::duration<double>(rec.finished - rec.started).count());
          }
          if (slot.in_flight.empty()) slot.backlog_s = 0, slot.urgent = 0;
          show_reserved(st, msg.worker);
        }  // else: a replaced worker's late results; the queue still sees them (first one wins)
        self->send(st.queue, completions_msg{std::move(msg.records)});
        pump(self);
      },
      [=](worker_up_msg& msg) {
        auto& st = self->state;
        auto& slot = st.workers.at(size_t(msg.worker));
        slot.handle = std::move(msg.handle);
        slot.generation = msg.generation;
        slot.up = true;
        slot.retired = false;
        if (msg.capacity) st.ledger.set_capacity(msg.worker, *msg.capacity);
        slot.kinds = std::move(msg.kinds);
        show_reserved(st, msg.worker);
        st.ledger.set_available(msg.worker, true);
        pump(self);
      },
      [=](reservation_tick_msg) {
        self->state.tick_armed = false;
        arm_reservation_tick(self);
        pump(self);
      },
      [=](const worker_lost_msg& msg) {
        auto& st = self->state;
        auto& slot = st.workers.at(size_t(msg.worker));
        if (msg.generation != slot.generation || !slot.up) return;
        slot.up = false;
        slot.retired = msg.retired;
        st.ledger.release_all(msg.worker);
        show_reserved(st, msg.worker);
        st.ledger.set_available(msg.worker, false);
        // Reclamation: the task that crashed counts as a failed attempt; the one the worker was
        // presumably running when it was killed too; the others never started.
        completions_msg back;
        bool first = true;
        for (auto& a : slot.in_flight) {
          attempt_record rec;
          rec.task = a.task;
          rec.attempt = a.attempt;
          rec.worker = msg.worker;
          rec.started = rec.finished = msg.at;
          bool ran = std::find(msg.also_running.begin(), msg.also_running.end(), a.task->id) !=
                     msg.also_running.end();
          if (ran || (msg.crashed_task != 0 ? a.task->id == msg.crashed_task : first)) {
            rec.code = msg.crashed_task != 0 ? errc::kernel_crashed : errc::worker_lost;
            rec.message = msg.reason;
          } else {
            rec.code = errc::worker_lost;
            rec.counts_as_attempt = false;
            rec.started = {};
          }
          first = false;
          back.records.push_back(std::move(rec));
        }
        slot.in_flight.clear();
        slot.backlog_s = 0;
        slot.urgent = 0;
        if (!back.records.empty()) self->send(st.queue, std::move(back));
        pump(self);
      },
  };
}

}  // namespace troupe
