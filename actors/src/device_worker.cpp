#include "troupe/actors/device_worker.hpp"

#include <caf/all.hpp>

#include "troupe/model/log.hpp"
#include "worker_reports.hpp"

namespace troupe {

namespace {

using self_ptr = worker_actor::stateful_pointer<device_worker_state>;
constexpr auto flush_interval = std::chrono::milliseconds(1);

/// Runs assignments and reports them: results in batches (every millisecond of a long run, and
/// at the end), heartbeats with the work done. A crash of an implementation reports what ran,
/// sends a crash report and quits the worker, so that the supervisor gives it a fresh start.
class runner {
 public:
  explicit runner(self_ptr self, size_t expected)
      : self_(self), st_(self->state), events_(*st_.gate), now_(clock::now()) {
    records_.reserve(expected);
    flush_at_ = now_ + flush_interval;
  }
  ~runner() {
    if (!crashed_) worker_reports::flush(self_, st_, records_, events_, false);
  }
  bool crashed() const { return crashed_; }

  void run_one(const assignment& a) {
    auto& t = *a.task;
    auto rec = worker_reports::record_of(a, st_.index);
    if (auto skip = worker_reports::skip_reason(t, now_); skip != errc::none) {
      rec.code = skip;
      return push(std::move(rec));
    }
    auto& desc = st_.setup->workers[size_t(st_.index)];
    if (events_.wanted()) events_.add_task("task.started", t, st_.index, t.spec.kind);
    task_context ctx{t.spec,      a.attempt,           st_.index,
                     desc.device, &t.cancel_requested, desc.device_index};
    rec.started = now_;
    try {
      rec.output = t.kind->def.cpu(ctx);
    } catch (const task_failure& f) {
      rec.code = f.code;
      rec.message = f.message;
    } catch (...) {
      return crash(t, std::current_exception());
    }
    now_ = clock::now();
    ++st_.tasks_since_report;
    st_.busy_ns_since_report += (now_ - rec.started).count();
    rec.finished = now_;
    push(std::move(rec));
  }

 private:
  void push(attempt_record rec) {
    records_.push_back(std::move(rec));
    if (now_ >= flush_at_) {
      worker_reports::flush(self_, st_, records_, events_, true);
      flush_at_ = now_ + flush_interval;
    }
  }

  void crash(const task_state& t, std::exception_ptr ep) {
    crashed_ = true;
    worker_reports::flush(self_, st_, records_, events_, false);
    self_->send(st_.supervisor, crash_report_msg{st_.index,
                                                 st_.generation,
                                                 t.id,
                                                 worker_reports::crash_text(t, ep),
                                                 clock::now(),
                                                 false,
                                                 {}});
    self_->quit(caf::make_error(caf::sec::runtime_error));
  }

  self_ptr self_;
  device_worker_state& st_;
  event_batch events_;
  std::vector<attempt_record> records_;
  time_point now_, flush_at_;
  bool crashed_ = false;
};

}  // namespace

worker_actor::behavior_type device_worker_impl(
    worker_actor::stateful_pointer<device_worker_state> self, worker_env env, int32_t index,
    uint32_t generation, balancer_actor balancer, monitor_actor monitor,
    supervisor_actor supervisor, event_bus_actor bus) {
  auto& st = self->state;
  st.link(env, index, generation, std::move(balancer), std::move(monitor), std::move(supervisor),
          std::move(bus));
  self->delayed_send(self, env.setup->cfg.heartbeat_interval, heartbeat_tick_msg{});
  return {
      [=](assign_msg& msg) {
        runner run{self, msg.tasks.size()};
        for (auto& a : msg.tasks) {
          run.run_one(a);
          if (run.crashed()) return;
        }
      },
      [=](const batch_flush_msg&) {},  // CPU workers never batch
      [=](const gpu_done_msg&) {},
      [=](const heartbeat_tick_msg&) {
        worker_reports::heartbeat(self, self->state, false);
        self->delayed_send(self, self->state.setup->cfg.heartbeat_interval, heartbeat_tick_msg{});
      },
  };
}

}  // namespace troupe
