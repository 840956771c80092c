#include "troupe/actors/device_worker.hpp"

#include <spdlog/spdlog.h>

#include <caf/all.hpp>

#include "troupe/batching.hpp"
#include "troupe/kernels.hpp"

namespace troupe {

namespace {

using self_ptr = worker_actor::stateful_pointer<device_worker_state>;
constexpr auto flush_interval = std::chrono::milliseconds(1);

void report(self_ptr self, bool busy) {
  auto& st = self->state;
  self->send(st.monitor, work_report_msg{st.index, st.generation, st.tasks_since_report,
                                         st.busy_ns_since_report, busy});
  st.tasks_since_report = 0;
  st.busy_ns_since_report = 0;
}

void flush(self_ptr self, std::vector<attempt_record>& records, event_batch& events, bool busy) {
  auto& st = self->state;
  events.flush(self, st.bus);
  report(self, busy);  // before the results, so stats taken after a result include its work
  if (!records.empty()) {
    self->send(st.balancer, results_msg{st.index, st.generation, std::move(records)});
    records.clear();
  }
}

/// Runs assignments and reports them: results in batches (every millisecond of a long run, and
/// at the end), heartbeats with the work done. A crash of an implementation reports what ran,
/// sends a crash report and quits the worker, so that the supervisor gives it a fresh start.
class runner {
 public:
  explicit runner(self_ptr self, size_t expected)
      : self_(self), st_(self->state), events_(st_.core->events), now_(clock::now()) {
    records_.reserve(expected);
    flush_at_ = now_ + flush_interval;
  }
  ~runner() {
    if (!crashed_) flush(self_, records_, events_, false);
  }
  bool crashed() const { return crashed_; }

  /// Records the task as skipped if it must not start; returns whether it may run.
  bool may_start(const assignment& a) {
    auto& t = *a.task;
    errc skip = errc::none;
    if (t.cancel_requested.load(std::memory_order_relaxed))
      skip = errc::cancelled;  // the queue has already recorded why
    else if (t.spec.deadline && *t.spec.deadline <= now_)
      skip = errc::deadline_expired;
    if (skip == errc::none) return true;
    auto rec = record(a);
    rec.code = skip;
    push(std::move(rec));
    return false;
  }

  void run_one(const assignment& a) {
    if (!may_start(a)) return;
    auto& t = *a.task;
    auto& desc = st_.core->workers[size_t(st_.index)];
    if (events_.wanted()) events_.add("task.started", t.id, st_.index, t.spec.kind);
    task_context ctx{t.spec,      a.attempt,           st_.index,
                     desc.device, &t.cancel_requested, desc.device_index};
    auto rec = record(a);
    rec.started = now_;
    try {
      rec.output = desc.device == device_class::cpu ? t.kind->def.cpu(ctx) : t.kind->def.cuda(ctx);
    } catch (const task_failure& f) {
      rec.code = f.code;
      rec.message = f.message;
    } catch (...) {
      return crash(t, std::current_exception());
    }
    finish(std::move(rec), true);
  }

  /// One launch for tasks that share a batch key (dynamic batching on CUDA workers).
  void run_group(const std::vector<assignment>& group) {
    std::vector<const assignment*> go;
    for (auto& a : group)
      if (may_start(a)) go.push_back(&a);
    if (go.empty()) return;
    if (go.size() == 1) return run_one(*go.front());
    auto& desc = st_.core->workers[size_t(st_.index)];
    auto& first = *go.front()->task;
    std::vector<const task_spec*> specs;
    for (auto* a : go) {
      specs.push_back(&a->task->spec);
      if (events_.wanted())
        events_.add("task.started", a->task->id, st_.index,
                    first.spec.kind + " (batch of " + std::to_string(go.size()) + ")");
    }
    task_context ctx{first.spec,  go.front()->attempt,     st_.index,
                     desc.device, &first.cancel_requested, desc.device_index};
    auto started = now_;
    std::vector<task_output> outs;
    errc code = errc::none;
    std::string message;
    try {
      outs = first.kind->def.cuda_batch(specs, ctx);
      if (outs.size() != go.size()) {
        code = errc::task_failed_permanently;
        message = "batched implementation returned " + std::to_string(outs.size()) +
                  " outputs for " + std::to_string(go.size()) + " tasks";
      }
    } catch (const task_failure& f) {
      code = f.code;
      message = f.message;
    } catch (...) {
      return crash(first, std::current_exception());
    }
    now_ = clock::now();
    // Each task is charged its share of the launch: the performance model learns per-task time.
    auto share = (now_ - started) / int64_t(go.size());
    for (size_t i = 0; i < go.size(); ++i) {
      auto rec = record(*go[i]);
      rec.code = code;
      rec.message = message;
      if (code == errc::none) rec.output = std::move(outs[i]);
      rec.started = now_ - share;
      finish(std::move(rec), false);
    }
    st_.tasks_since_report += go.size();  // busy time counts once for the launch

    st_.busy_ns_since_report += (now_ - started).count();
  }

 private:
  attempt_record record(const assignment& a) const {
    attempt_record rec;
    rec.task = a.task;
    rec.attempt = a.attempt;
    rec.worker = st_.index;
    return rec;
  }

  /// measure: the task ran alone, so its run time is its busy time (a batch is measured once).
  void finish(attempt_record rec, bool measure) {
    if (measure) {
      now_ = clock::now();
      ++st_.tasks_since_report;
      st_.busy_ns_since_report += (now_ - rec.started).count();
    }
    rec.finished = now_;
    push(std::move(rec));
  }

  void push(attempt_record rec) {
    records_.push_back(std::move(rec));
    if (now_ >= flush_at_) {
      flush(self_, records_, events_, true);
      flush_at_ = now_ + flush_interval;
    }
  }

  void crash(const task_state& t, std::exception_ptr ep) {
    std::string what = "unknown exception";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    crashed_ = true;
    bool device_lost = false;
#ifdef TROUPE_WITH_CUDA
    if (st_.core->workers[size_t(st_.index)].device == device_class::cuda)
      device_lost = kernels::cuda::release_after_crash();
#endif
    flush(self_, records_, events_, false);
    self_->send(st_.supervisor, crash_report_msg{st_.index, st_.generation, t.id,
                                                 "task kind '" + t.spec.kind + "' threw: " + what,
                                                 clock::now(), device_lost});
    self_->quit(caf::make_error(caf::sec::runtime_error));
  }

  self_ptr self_;
  device_worker_state& st_;
  event_batch events_;
  std::vector<attempt_record> records_;
  time_point now_, flush_at_;
  bool crashed_ = false;
};

bool batches(const device_worker_state& st, const assignment& a) {
  auto& def = a.task->kind->def;
  return st.core->cfg.batching_enabled && def.cuda_batch && def.batch_key &&
         st.core->workers[size_t(st.index)].device == device_class::cuda;
}

/// Runs every waiting batchable task, merged by batch key.
void run_waiting(self_ptr self) {
  auto& st = self->state;
  if (st.waiting.empty()) return;
  auto waiting = std::move(st.waiting);
  st.waiting.clear();
  std::vector<std::string> keys;
  for (auto& a : waiting) keys.push_back(a.task->kind->def.batch_key(a.task->spec));
  runner run{self, waiting.size()};
  for (auto& group : plan_batches(keys, st.core->cfg.batch_max_tasks)) {
    std::vector<assignment> members;
    for (auto i : group) members.push_back(waiting[i]);
    run.run_group(members);
    if (run.crashed()) return;
  }
  st.last_launch_end = clock::now();
}

}  // namespace

worker_actor::behavior_type device_worker_impl(
    worker_actor::stateful_pointer<device_worker_state> self, runtime_core* core, int32_t index,
    uint32_t generation, balancer_actor balancer, monitor_actor monitor,
    supervisor_actor supervisor, event_bus_actor bus) {
  auto& st = self->state;
  st.core = core;
  st.index = index;
  st.generation = generation;
  st.balancer = std::move(balancer);
  st.monitor = std::move(monitor);
  st.supervisor = std::move(supervisor);
  st.bus = std::move(bus);
  self->delayed_send(self, core->cfg.heartbeat_interval, heartbeat_tick_msg{});
  return {
      [=](assign_msg& msg) {
        auto& st = self->state;
        {
          runner run{self, msg.tasks.size()};
          for (auto& a : msg.tasks) {
            if (batches(st, a)) {
              st.waiting.push_back(std::move(a));
              continue;
            }
            run.run_one(a);
            if (run.crashed()) return;
          }
        }
        // Batchable tasks wait for company, unless a batch is full. On a busy device they wait
        // only for the assignments already in the mailbox (a flush message queued behind them);
        // an idle device waits up to batch_max_delay for its first few requests to gather.
        if (st.waiting.size() >= st.core->cfg.batch_max_tasks) {
          run_waiting(self);
        } else if (!st.waiting.empty() && !st.flush_armed) {
          st.flush_armed = true;
          bool busy = clock::now() - st.last_launch_end < st.core->cfg.batch_max_delay;
          if (busy)
            self->send(self, batch_flush_msg{});
          else
            self->delayed_send(self, st.core->cfg.batch_max_delay, batch_flush_msg{});
        }
      },
      [=](const batch_flush_msg&) {
        self->state.flush_armed = false;
        run_waiting(self);
      },
      [=](const heartbeat_tick_msg&) {
        report(self, false);
        self->delayed_send(self, self->state.core->cfg.heartbeat_interval, heartbeat_tick_msg{});
      },
  };
}

}  // namespace troupe
