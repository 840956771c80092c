#include "troupe/actors/queue.hpp"

#include <algorithm>
#include <caf/all.hpp>

#include "troupe/actors/callback_runner.hpp"
#include "troupe/model/log.hpp"
#include "troupe/model/retry_policy.hpp"

namespace troupe {

namespace {

using self_ptr = queue_actor::stateful_pointer<queue_state>;

double ms_between(time_point a, time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

const char* topic_of(outcome o) {
  switch (o) {
    case outcome::completed:
      return "task.completed";
    case outcome::failed:
      return "task.failed";
    case outcome::cancelled:
      return "task.cancelled";
    case outcome::expired:
      return "task.expired";
    default:
      return "task.unknown";
  }
}

class queue_logic {
 public:
  // One clock for everything the queue decides (arrival, aging, backoff, deadlines): the actor
  // clock, which is steady_clock in production and the test coordinator's clock in tests.
  explicit queue_logic(self_ptr self) : now_(self->clock().now()), self_(self), st_(self->state) {
    events_.bind(*st_.gate);
  }

  ~queue_logic() {
    if (!st_.report.records.empty() || st_.report.retries || st_.report.duplicates ||
        st_.report.preempted || !st_.report.detection_ms.empty() ||
        !st_.report.recovery_ms.empty()) {
      st_.report.queued = st_.ready->size();
      self_->send(st_.monitor, std::move(st_.report));
      st_.report = finished_msg{};
    }
    events_.flush(self_, st_.bus);
    // Callers learn of a result only after the monitor and the subscribers were told, so that
    // stats() taken right after a result include it. Callbacks run on the callback runner's
    // thread: a slow one holds up no task. Such a task counts as finished once it ran.
    uint64_t finished_now = 0;
    std::vector<std::pair<task_ptr, task_result>> with_callback;
    for (auto& [t, r] : done_) {
      if (t->callback && *t->callback) {
        with_callback.emplace_back(std::move(t), std::move(r));
        continue;
      }
      t->done.set(std::move(r));
      ++finished_now;
    }
    if (!with_callback.empty() && !st_.callbacks) {  // no runner: run them here
      for (auto& [t, r] : with_callback) run_callback_then_set(*t, r);
      finished_now += with_callback.size();
      with_callback.clear();
    }
    st_.admission->release(finished_now);
    if (!with_callback.empty()) st_.callbacks->post(std::move(with_callback));
  }

  /// The one place a task ends. Later terminal records of the same task are duplicates.
  /// The caller's completion and callback run when the handler ends (see ~queue_logic).
  void finalize(task_ptr t, outcome o, error_info err, task_output out = {}) {
    if (t->finished) return;  // ended meanwhile (a graph's end may end others of a batch)
    auto now = now_;
    t->finished = true;
    urgent_back(*t);
    t->cancel_requested.store(true, std::memory_order_relaxed);  // a worker skips it if unstarted
    t->timings.finished = now;
    task_result r;
    r.id = t->id;
    r.kind = t->spec.kind;
    r.status = o;
    r.output = std::move(out);
    r.error = std::move(err);
    r.attempts = t->attempts;
    r.timings = t->timings;
    st_.live.erase(t->id);
    st_.report.records.push_back(finished_record{&t->kind->def.name, o, t->attempts,
                                                 (now - t->timings.submitted).count(),
                                                 t->timings.submitted, now});
    if (t->failure_detected != time_point{}) {
      st_.report.handling_ms.push_back(ms_between(t->failure_detected, now));
      t->failure_detected = {};
    }
    if (o == outcome::completed && t->first_failure != time_point{})
      st_.report.recovery_ms.push_back(ms_between(t->first_failure, now));
    if (o == outcome::failed) {
      st_.dead_letters.push_back(t->id);
      while (st_.dead_letters.size() > st_.setup->cfg.dead_letter_capacity)
        st_.dead_letters.pop_front();
    }
    if (events_.wanted())
      events_.add_task(
          topic_of(o), *t, r.timings.worker,
          r.error ? std::string{to_string(r.error.code)} + ": " + r.error.message : t->spec.kind);
    // Its gang may wait in the balancer, holding workers: they go now.
    if (t->gang != 0 && t->at == task_state::place::dispatched) nudge_balancer();
    if (t->graph) member_ended(*t, r);
    done_.emplace_back(std::move(t), std::move(r));
    settle_graphs();
  }

  // --- graphs (docs/graphs.md) ------------------------------------------------------------
  // A member's end is applied to its children at once (inputs bound, parents counted); what
  // that ends or releases is done from a work list, so that a long chain unwinds in a loop,
  // not in nested calls.

  struct graph_step {
    task_ptr task;
    bool release = false;  ///< true: all its parents ended, it may run; false: end it
    outcome end_as = outcome::cancelled;
    error_info why;
  };

  void member_ended(task_state& t, const task_result& r) {
    auto& g = *t.graph;
    auto i = t.graph_index;
    if (g.unfinished > 0) --g.unfinished;
    bool ok = r.status == outcome::completed;
    auto name = graph_task_name(t.spec, i);
    auto upstream = [&] {
      return error_info{errc::upstream_failed,
                        "task " + name + " (#" + std::to_string(t.id) + ") ended " +
                            to_string(r.status) +
                            (r.error ? ": " + std::string{to_string(r.error.code)} + ": " +
                                           r.error.message.substr(0, 200)
                                     : std::string{})};
    };
    if (!ok && g.on_failure == failure_policy::cancel_graph) {
      auto why = upstream();
      for (auto& m : g.members)
        if (!m->finished && m.get() != &t)
          graph_todo_.push_back({m, false, outcome::cancelled, why});
    }
    for (auto c : g.children[i]) {
      auto& child = g.members[c];
      if (child->finished) continue;
      bool takes_input = std::any_of(child->spec.inputs.begin(), child->spec.inputs.end(),
                                     [&](const task_input& in) { return in.from == i; });
      if (!ok && (g.on_failure != failure_policy::run_what_can || takes_input)) {
        graph_todo_.push_back({child, false, outcome::cancelled, upstream()});
        continue;
      }
      if (ok && takes_input) {
        // Bytes taken as a payload are shared with the parent's result, not copied; a value
        // is copied once, into the child's parameters.
        if (auto e =
                bind_inputs(child->spec, i, name, r.output, st_.setup->cfg.max_payload_bytes)) {
          graph_todo_.push_back({child, false, outcome::failed, std::move(e)});
          continue;
        }
        // Where the values are besides here: the balancer weighs moving them, and the node
        // that ran the parent keeps its output (membership then leaves them out of the assign).
        for (uint32_t k = 0; k < child->spec.inputs.size(); ++k)
          if (auto& in = child->spec.inputs[k]; in.from == i)
            child->input_homes.push_back(
                {k, t.id, r.timings.worker, bound_input_bytes(in, r.output), t.output_epoch});
      }
      if (g.waiting[c] > 0 && --g.waiting[c] == 0)
        graph_todo_.push_back({child, true, outcome::cancelled, {}});
    }
    if (g.unfinished == 0) g.members.clear();  // they point back to the graph
  }

  /// Works off what graph ends caused (each step may add more). Runs once per outermost
  /// finalize: nested calls only add to the list.
  void settle_graphs() {
    if (settling_ || graph_todo_.empty()) return;
    settling_ = true;
    while (!graph_todo_.empty()) {
      auto step = std::move(graph_todo_.back());
      graph_todo_.pop_back();
      auto& t = step.task;
      if (t->finished) continue;
      if (!step.release) {
        finalize(t, step.end_as, std::move(step.why));
        continue;
      }
      release(t);
    }
    settling_ = false;
  }

  /// A graph task whose parents have all ended: its parameters are complete now, so the kind
  /// checks them (at submit they could not be), then it joins the ready queue.
  void release(const task_ptr& t) {
    if (!t->spec.inputs.empty()) {
      if (auto n = input_bytes(t->spec); n > st_.setup->cfg.max_payload_bytes) {
        finalize(
            t, outcome::failed,
            {errc::invalid_params, "with its inputs, the task's input is " + std::to_string(n) +
                                       " bytes, over limits.max_payload_bytes (" +
                                       std::to_string(st_.setup->cfg.max_payload_bytes) + ")"});
        return;
      }
      if (t->kind && t->kind->def.validate) {
        try {
          t->cost = t->kind->def.validate(t->spec);
        } catch (const task_failure& f) {
          finalize(t, outcome::failed,
                   {f.code == errc::none ? errc::invalid_params : f.code,
                    "task kind '" + t->spec.kind + "' (with its inputs): " + f.message});
          return;
        } catch (const std::exception& e) {
          finalize(t, outcome::failed,
                   {errc::invalid_params,
                    "task kind '" + t->spec.kind + "' (with its inputs): " + e.what()});
          return;
        }
      }
    }
    t->timings.queued = now_;
    enqueue(t, now_);
    if (events_.wanted()) events_.add_task("task.queued", *t);
  }

  /// A retried or requeued task keeps its original arrival time: its age counts for it, so a
  /// failure costs the backoff, not another trip through the whole queue.
  void enqueue(const task_ptr& t, time_point arrival) {
    st_.live.insert(t);
    t->at = task_state::place::queued;
    st_.ready->push(t, arrival);
  }

  void admit(std::vector<task_ptr>& tasks) {
    auto now = now_;
    for (auto& t : tasks) {
      if (st_.escalated) {
        finalize(t, outcome::failed, {errc::supervisor_gave_up, st_.escalation});
        continue;
      }
      if (t->spec.deadline) st_.deadlines.emplace(*t->spec.deadline, t);
      if (t->graph && t->graph->waiting[t->graph_index] > 0) {  // runs once its parents end
        st_.live.insert(t);
        t->at = task_state::place::waiting;
        if (events_.wanted()) events_.add_task("task.submitted", *t, -1, t->spec.kind);
        continue;
      }
      t->timings.queued = now;
      enqueue(t, now);
      if (events_.wanted(2)) {
        events_.add_task("task.submitted", *t, -1, t->spec.kind);
        events_.add_task("task.queued", *t);
      }
    }
    arm_deadline_timer();
  }

  /// Sends the balancer as many ready tasks as it asked for; then, beyond its demand, those
  /// more urgent than what it was already given (the order holds for what workers hold too).
  void pump() {
    if (st_.ready->empty()) return;
    dispatch_msg out;
    while (st_.demand > 0) {
      auto t = next_ready();
      if (!t) break;
      st_.frontier = std::max(st_.frontier, t->order_key);
      out.tasks.push_back(dispatch(t));
      --st_.demand;
    }
    if (!out.tasks.empty()) self_->send(st_.balancer, std::move(out));
    if (st_.setup->cfg.order == queue_order::fifo) return;  // nothing arrives ahead of others
    dispatch_msg urgent;
    urgent.urgent = true;
    auto budget = uint32_t(2 * st_.setup->workers.size());
    while (st_.urgent_out < budget) {
      auto* head = st_.ready->peek();
      if (!head || head->order_key >= st_.frontier) break;
      auto t = next_ready();
      if (!t) break;
      t->urgent = true;
      ++st_.urgent_out;
      urgent.tasks.push_back(dispatch(t));
    }
    if (!urgent.tasks.empty()) self_->send(st_.balancer, std::move(urgent));
  }

  /// The next ready task that still has to run (those cancelled or expired meanwhile end here).
  task_ptr next_ready() {
    while (auto t = st_.ready->pop()) {
      if (t->finished) continue;  // cancelled or expired while queued
      if (t->spec.deadline && *t->spec.deadline <= now_) {
        finalize(t, outcome::expired, {errc::deadline_expired, "deadline passed while queued"});
        continue;
      }
      return t;
    }
    return nullptr;
  }

  assignment dispatch(const task_ptr& t) {
    ++t->attempts;
    t->at = task_state::place::dispatched;
    return assignment{t, t->attempts, t->order_key};
  }

  /// Makes the balancer look at its waiting gangs again (an empty dispatch): one ended, or a
  /// member's deadline passed.
  void nudge_balancer() {
    if (!st_.balancer) return;
    dispatch_msg nudge;
    nudge.urgent = true;  // (the urgent path does not count it against the demand)
    self_->send(st_.balancer, std::move(nudge));
  }

  /// An urgent task is back (a record of it, or its end): its place in the budget is free.
  void urgent_back(task_state& t) {
    if (!t.urgent) return;
    t.urgent = false;
    if (st_.urgent_out > 0) --st_.urgent_out;
  }

  void complete(std::vector<attempt_record>& records) {
    auto now = now_;
    for (auto& rec : records) {
      auto& t = rec.task;
      if (t->finished) {
        ++st_.report.duplicates;
        continue;
      }
      urgent_back(*t);
      if (rec.started != time_point{}) {
        if (t->failure_detected != time_point{}) {
          st_.report.handling_ms.push_back(ms_between(t->failure_detected, rec.started));
          t->failure_detected = {};
        }
        t->timings.started = rec.started;
        t->timings.ran_until = rec.finished;
        t->timings.worker = rec.worker;
        t->output_epoch = rec.node_epoch;
        if (rec.code == errc::none && t->kind)
          st_.model.observe(t->kind->index, t->cost,
                            std::chrono::duration<double>(rec.finished - rec.started).count());
      }
      if (rec.code == errc::none) {
        if (auto too_large = output_over_limit(rec.output, st_.setup->cfg.max_payload_bytes)) {
          finalize(t, outcome::failed, std::move(too_large));  // the same output every time
          continue;
        }
        finalize(t, outcome::completed, {}, std::move(rec.output));
        continue;
      }
      if (rec.code == errc::deadline_expired) {
        finalize(t, outcome::expired,
                 {rec.code, rec.message.empty() ? "deadline passed before the task started"
                                                : std::move(rec.message)});
        continue;
      }
      if (rec.code == errc::cancelled) {  // normally finalized already by cancel()
        finalize(t, outcome::cancelled, {rec.code, "cancelled"});
        continue;
      }
      // A record of an attempt the task is no longer in (its worker was lost meanwhile and the
      // task queued again): nothing to undo.
      bool current = t->at == task_state::place::dispatched && rec.attempt == t->attempts;
      if ((rec.code == errc::preempted || !rec.counts_as_attempt) && !current) continue;
      if (rec.code == errc::preempted) {  // made way for a more urgent task: queued again
        --t->attempts;
        ++t->preemptions;
        ++st_.report.preempted;
        if (events_.wanted()) events_.add_task("task.preempted", *t, rec.worker, rec.message);
        enqueue(t, t->timings.queued);
        continue;
      }
      if (!rec.counts_as_attempt && t->gang != 0) {  // alone it would wait for its gang forever
        finalize(t, outcome::failed,
                 {rec.code, rec.message + " (before it started; a gang runs whole, once)"});
        continue;
      }
      if (!rec.counts_as_attempt) {  // never started on a worker that died: same attempt again
        --t->attempts;
        enqueue(t, t->timings.queued);
        continue;
      }
      st_.report.detection_ms.push_back(ms_between(rec.finished, now));
      t->failure_detected = now;
      if (t->first_failure == time_point{}) t->first_failure = now;
      t->last_error = {rec.code, rec.message};
      remember_attempt(*t, rec);
      auto next = decide_retry(rec.code, t->attempts, t->max_retries, t->retry_backoff,
                               st_.setup->cfg.retry_backoff_max, now, t->spec.deadline);
      if (next.what == retry_decision::verdict::fail) {
        auto msg = rec.message;
        if (is_retryable(rec.code))
          msg += " (gave up after " + std::to_string(t->attempts) + " attempts)";
        if (t->history.size() > 1) {
          msg += "; attempts:";
          for (auto& h : t->history) msg += " " + h + ";";
          msg.pop_back();
        }
        finalize(t, outcome::failed, {rec.code, std::move(msg)});
        continue;
      }
      if (next.what == retry_decision::verdict::expire) {
        finalize(
            t, outcome::expired,
            {errc::deadline_expired, "deadline passes before the next attempt: " + rec.message});
        continue;
      }
      auto backoff = next.backoff;
      ++st_.report.retries;
      if (events_.wanted())
        events_.add_task("task.retrying", *t, rec.worker,
                         std::string{to_string(rec.code)} + ": " + rec.message);
      if (backoff.count() == 0) {
        enqueue(t, t->timings.queued);
      } else {
        t->at = task_state::place::backoff;
        self_->delayed_send(self_, backoff, retry_msg{t});
      }
    }
  }

  /// A failed attempt, for the task's history; a crash, a loss or a timeout also sends the next
  /// attempt to another worker when one can run it.
  void remember_attempt(task_state& t, const attempt_record& rec) {
    constexpr size_t kept = 8, message_chars = 160;
    std::string where = rec.worker >= 0 && size_t(rec.worker) < st_.setup->workers.size()
                            ? st_.setup->workers[size_t(rec.worker)].name
                            : std::string{"no worker"};
    auto text = rec.message.size() > message_chars ? rec.message.substr(0, message_chars) + "..."
                                                   : rec.message;
    if (t.history.size() == kept) t.history.erase(t.history.begin());
    t.history.push_back("#" + std::to_string(rec.attempt) + " on " + where + ": " +
                        to_string(rec.code) + " (" + text + ")");
    bool worker_at_fault = rec.code == errc::kernel_crashed || rec.code == errc::worker_lost ||
                           rec.code == errc::timed_out;
    t.avoid_worker = worker_at_fault ? rec.worker : -1;
  }

  void cancel_live(errc reason, const std::string& message, outcome o) {
    for (auto& t : st_.live.all()) finalize(t, o, {reason, message});
  }

  void arm_deadline_timer() {
    auto now = now_;
    while (!st_.deadlines.empty()) {
      auto& [at, t] = st_.deadlines.top();
      if (t->finished) {
        st_.deadlines.pop();
        continue;
      }
      if (at <= now) {
        auto task = t;
        st_.deadlines.pop();
        // A dispatched task is checked by its worker before it starts; a gang member that
        // waits in the balancer for its gang, by the balancer, told now.
        if (st_.live.find(task->id) && task->at != task_state::place::dispatched)
          finalize(task, outcome::expired,
                   {errc::deadline_expired, "deadline passed while queued"});
        else if (task->gang != 0 && !task->finished)
          nudge_balancer();
        continue;
      }
      if (at < st_.timer_at) {
        st_.timer_at = at;
        self_->delayed_send(self_, at - now, deadline_tick_msg{});
      }
      break;
    }
  }

  event_batch events_{};

 private:
  std::vector<std::pair<task_ptr, task_result>> done_;
  std::vector<graph_step> graph_todo_;
  bool settling_ = false;
  time_point now_;  ///< one clock read per handler run: the batch is handled in microseconds
  self_ptr self_;
  queue_state& st_;
};

}  // namespace

queue_actor::behavior_type queue_impl(queue_actor::stateful_pointer<queue_state> self,
                                      setup_ptr setup, std::shared_ptr<const event_gate> gate,
                                      std::shared_ptr<admission_gate> admission,
                                      std::shared_ptr<callback_runner> callbacks,
                                      monitor_actor monitor, event_bus_actor bus) {
  auto& st = self->state;
  st.setup = std::move(setup);
  st.gate = std::move(gate);
  st.admission = std::move(admission);
  st.callbacks = std::move(callbacks);
  st.monitor = std::move(monitor);
  st.bus = std::move(bus);
  auto* state = &st;  // lives as long as the actor, and so does its ready queue
  st.ready = make_ready_queue(
      st.setup->cfg.order, st.setup->cfg.aging_interval,
      [state](const task_state& t) {
        return t.kind ? state->model.estimate_s(t.kind->index, t.cost) : 0.0;
      },
      st.setup->cfg.shares);
  return {
      [=](submit_msg& msg) {
        queue_logic q{self};
        q.admit(msg.tasks);
        q.pump();
      },
      [=](const cancel_msg& msg) {
        auto* found = self->state.live.find(msg.id);
        if (!found) return;
        auto t = *found;  // a copy: finalize() erases the entry
        queue_logic q{self};
        q.finalize(t, outcome::cancelled, {errc::cancelled, "cancelled by the caller"});
        q.pump();  // under run_what_can, tasks after it may run now
      },
      [=](const cancel_all_msg& msg) {
        queue_logic q{self};
        q.cancel_live(msg.reason, msg.message, outcome::cancelled);
      },
      [=](retry_msg& msg) {
        if (msg.task->finished) return;
        queue_logic q{self};
        q.enqueue(msg.task, msg.task->timings.queued);
        q.pump();
      },
      [=](const deadline_tick_msg&) {
        self->state.timer_at = time_point::max();
        queue_logic q{self};
        q.arm_deadline_timer();
        q.pump();
      },
      [=](const demand_msg& msg, balancer_actor& balancer) {
        self->state.balancer = std::move(balancer);
        self->state.demand += msg.tasks;
        queue_logic q{self};
        q.pump();
      },
      [=](completions_msg& msg) {
        queue_logic q{self};
        q.complete(msg.records);
        q.pump();
      },
      [=](const escalate_msg& msg) {
        auto& st = self->state;
        st.escalated = true;
        st.escalation = msg.reason;
        st.admission->stop_accepting(errc::supervisor_gave_up);
        queue_logic q{self};
        q.cancel_live(errc::supervisor_gave_up, msg.reason, outcome::failed);
      },
  };
}

}  // namespace troupe
