#include "troupe/actors/device_worker.hpp"

#include <algorithm>
#include <caf/all.hpp>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include "troupe/model/log.hpp"
#include "troupe/model/preemption.hpp"
#include "worker_reports.hpp"

namespace troupe {

namespace {

constexpr auto flush_interval = std::chrono::milliseconds(1);

/// Attempt numbers, unique in the process: a timer set for an abandoned runner's attempt must
/// never match an attempt of its replacement.
std::atomic<uint64_t> last_run{0};

std::string limit_text(const task_spec& spec, errc why) {
  if (why == errc::deadline_expired) return "ran past its deadline";
  return "ran past its timeout of " + std::to_string(spec.timeout ? spec.timeout->count() : 0) +
         " ms";
}

}  // namespace

/// The thread that runs one CPU worker's tasks, and what it shares with its actor. Everything
/// the runner sends goes by anon_send to actors it holds handles of: the worker actor itself
/// may be gone (an abandoned runner finishes its task on its own and sends nothing more).
class cpu_runner {
 public:
  struct links {
    setup_ptr setup;
    std::shared_ptr<const event_gate> gate;
    int32_t index = -1;
    uint32_t generation = 0;
    balancer_actor balancer;
    monitor_actor monitor;
    event_bus_actor bus;
    caf::weak_actor_ptr worker;  ///< weak: the runner must not keep its actor alive
  };

  /// The attempt running now, if it has a time limit.
  struct limited_attempt {
    uint64_t run = 0;
    task_ptr task;
    uint32_t attempt = 0;
    time_point started{}, limit{};
    errc why = errc::none;  ///< timed_out or deadline_expired
  };

  /// What an abandoned runner leaves: the attempt it is stuck in and the tasks behind it.
  struct leftovers {
    limited_attempt stuck;
    std::deque<assignment> waiting;
  };

  cpu_runner(links l, bool threaded) : l_(std::move(l)), threaded_(threaded) {}
  cpu_runner(const cpu_runner&) = delete;

  /// Runs tasks on a thread of its own from now on (else run_here runs them on the caller's).
  static void start(const std::shared_ptr<cpu_runner>& me) {
    me->thread_ = std::thread([me] { me->loop(); });
  }

  /// The actor hands over assignments (at most the balancer's credit is ever waiting here,
  /// plus urgent ones). They wait in the queue's order: one that comes with a smaller order key
  /// (higher priority, earlier deadline, ...) goes before those it outranks; equal keys keep
  /// their arrival order.
  template <class Tasks>
  void post(Tasks& tasks) {
    bool wake;
    {
      std::lock_guard<std::mutex> guard{mutex_};
      for (auto& a : tasks) {
        if (inbox_.empty() || !(a.order < inbox_.back().order)) {
          inbox_.push_back(std::move(a));  // the usual case: in order already
          continue;
        }
        auto at = std::upper_bound(inbox_.begin(), inbox_.end(), a.order,
                                   [](double key, const assignment& b) { return key < b.order; });
        inbox_.insert(at, std::move(a));
      }
      wake = sleeping_;
    }
    if (wake) cv_.notify_one();
  }

  /// Without a thread (deterministic tests): runs the tasks now, on the caller's thread. A crash
  /// ends the batch and is returned, for the caller to report at once.
  std::optional<runner_msg> run_here(std::vector<assignment>& tasks) {
    for (auto& a : tasks)
      if (!run_one(a)) return std::exchange(crashed_here_, std::nullopt);
    flush();
    return std::nullopt;
  }

  /// Results finished and not yet sent (a task that runs for hours must not hold back those
  /// finished before it).
  void send_finished() {
    std::vector<attempt_record> out;
    {
      std::lock_guard<std::mutex> guard{mutex_};
      out.swap(outbox_);
    }
    if (!out.empty())
      caf::anon_send(l_.balancer, results_msg{l_.index, l_.generation, std::move(out)});
  }

  /// Work done since the last report, for the worker's heartbeat.
  work_report_msg work_report() {
    return work_report_msg{l_.index, l_.generation, tasks_done_.exchange(0), busy_ns_.exchange(0),
                           running_.load() != 0};
  }

  std::optional<limited_attempt> limited() {
    std::lock_guard<std::mutex> guard{mutex_};
    if (current_.run == 0) return std::nullopt;
    return current_;
  }

  /// Past an attempt's limit: sets its stop flag (ctx.cancelled()) if it is still running.
  bool stop(uint64_t run) {
    std::lock_guard<std::mutex> guard{mutex_};
    if (current_.run != run || abandoned_) return false;
    stop_code_ = current_.why;
    stop_flag_.store(true);
    return true;
  }

  /// Past the grace: if the attempt still runs, the runner is abandoned: it ends on its own when
  /// the implementation returns and sends nothing more. Returns that attempt and the tasks that
  /// waited behind it.
  std::optional<leftovers> abandon(uint64_t run) {
    std::lock_guard<std::mutex> guard{mutex_};
    if (current_.run != run || abandoned_) return std::nullopt;
    abandoned_ = true;
    leftovers out{current_, std::move(inbox_)};
    inbox_.clear();
    if (thread_.joinable()) thread_.detach();  // only the actor's thread touches thread_
    return out;
  }

  /// The actor is going: tasks not started are dropped (the supervisor places them again), the
  /// running one is told to stop. An idle runner is joined; one inside a task is left to end on
  /// its own.
  void shut() {
    bool busy;
    {
      std::lock_guard<std::mutex> guard{mutex_};
      stopping_ = true;
      inbox_.clear();
      stop_code_ = errc::worker_lost;
      stop_flag_.store(true);
      busy = busy_;
    }
    cv_.notify_one();
    if (!thread_.joinable()) return;
    if (busy)
      thread_.detach();
    else
      thread_.join();
  }

 private:
  void loop() {
    assignment a;
    while (next(a))
      if (!run_one(a)) return;
  }

  /// The next assignment; at the end of a batch, sends what it finished and sleeps until the
  /// actor posts. False: stop.
  bool next(assignment& a) {
    std::unique_lock<std::mutex> lock{mutex_};
    if (inbox_.empty() && !stopping_ && !abandoned_) {
      busy_ = false;
      lock.unlock();
      flush();
      lock.lock();
      sleeping_ = true;
      cv_.wait(lock, [&] { return stopping_ || abandoned_ || !inbox_.empty(); });
      sleeping_ = false;
    }
    if (stopping_ || abandoned_) return false;
    a = std::move(inbox_.front());
    inbox_.pop_front();
    busy_ = true;
    return true;
  }

  /// False when the runner must stop: the implementation crashed, or the runner was abandoned.
  bool run_one(const assignment& a) {
    auto& t = *a.task;
    auto now = clock::now();
    auto rec = worker_reports::record_of(a, l_.index);
    if (auto skip = worker_reports::skip_reason(t, now); skip != errc::none) {
      rec.code = skip;
      push(std::move(rec), now);
      return true;
    }
    auto& desc = l_.setup->workers[size_t(l_.index)];
    if (events_.wanted()) events_.add_task("task.started", t, l_.index, t.spec.kind);
    auto run = last_run.fetch_add(1, std::memory_order_relaxed) + 1;
    last_run_here_ = run;
    limited_attempt lim{run, a.task, a.attempt, now, {}, errc::none};
    if (t.spec.timeout) lim.limit = now + *t.spec.timeout, lim.why = errc::timed_out;
    if (t.spec.deadline && (lim.why == errc::none || *t.spec.deadline < lim.limit))
      lim.limit = *t.spec.deadline, lim.why = errc::deadline_expired;
    bool limited = lim.why != errc::none && threaded_;  // run_here: not enforced (see header)
    running_.store(run);
    if (!limited && stop_flag_.load()) {  // set for an earlier attempt: not this one's
      std::lock_guard<std::mutex> guard{mutex_};
      stop_flag_.store(stopping_);
    }
    if (limited) {
      bool near = lim.limit - now < 2 * l_.setup->cfg.heartbeat_interval;
      {
        std::lock_guard<std::mutex> guard{mutex_};
        stop_flag_.store(stopping_);
        current_ = lim;
      }
      // A far limit is armed by the actor's heartbeat when it comes near: no timer per task.
      if (near) tell_worker(runner_msg{runner_msg::what::began, run, t.id, {}});
    }
    task_context ctx{t.spec,      a.attempt,           l_.index,
                     desc.device, &t.cancel_requested, desc.device_index};
    ctx.stop_flag = &stop_flag_;
    bool preemptible = t.spec.preemptible;
    if (preemptible) {  // the balancer may ask it to make way from now on (preemption.hpp)
      t.preempt_requested.store(false);
      t.running_attempt.store(a.attempt);
      ctx.preempt_flag = &t.preempt_requested;
    }
    rec.started = now;
    try {
      if (!host_ && l_.setup->cpu_host && threaded_) host_ = l_.setup->cpu_host(l_.index);
      rec.output = host_ ? host_->run(*t.kind, ctx, t.id) : t.kind->def.cpu(ctx);
    } catch (const task_failure& f) {
      rec.code = f.code;
      rec.message = f.message;
    } catch (...) {
      if (preemptible) stopped_running(t, a.attempt);
      if (!leave_task(limited)) return false;
      crash(t, worker_reports::crash_text(t, std::current_exception()));
      return false;
    }
    if (preemptible) stopped_running(t, a.attempt);
    if (!leave_task(limited)) return false;
    now = clock::now();
    if (limited && stop_flag_.load()) {  // past its limit: whatever it returned, it is over
      rec.code = stop_code_;
      rec.message = limit_text(t.spec, stop_code_) + "; it stopped when told";
      rec.output = {};
    } else if (preemptible && t.preempt_requested.load() &&
               (rec.code == errc::none || rec.code == errc::cancelled) &&
               !t.cancel_requested.load(std::memory_order_relaxed)) {
      // Asked to make way: whatever it returned after that may be cut short, so the attempt
      // is dropped and the queue runs the task again later.
      rec.code = errc::preempted;
      rec.message = "stopped for a more urgent task";
      rec.output = {};
    }
    tasks_done_.fetch_add(1, std::memory_order_relaxed);
    busy_ns_.fetch_add((now - rec.started).count(), std::memory_order_relaxed);
    rec.finished = now;
    push(std::move(rec), now);
    return true;
  }

  /// The attempt returned. False if the runner was abandoned meanwhile: its result is dropped
  /// (the worker already reported the attempt) and the thread ends.
  bool leave_task(bool limited) {
    running_.store(0);
    if (!limited) return true;  // only an attempt with a limit is ever stopped or abandoned
    std::lock_guard<std::mutex> guard{mutex_};
    current_ = {};
    return !abandoned_;
  }

  void push(attempt_record rec, time_point now) {
    {
      std::lock_guard<std::mutex> guard{mutex_};
      outbox_.push_back(std::move(rec));
    }
    if (now >= flush_at_) {
      flush();
      flush_at_ = now + flush_interval;
    }
  }

  /// Events first, then the work report (stats taken after a result include its work), then
  /// the results.
  void flush() {
    events_.flush_from_outside(l_.bus);
    auto report = work_report();
    if (report.tasks != 0 || report.busy_ns != 0) caf::anon_send(l_.monitor, report);
    send_finished();
  }

  void crash(const task_state& t, std::string what) {
    flush();
    runner_msg msg{runner_msg::what::crashed, last_run_here_, t.id, std::move(what)};
    if (!threaded_) {  // run_here: the handler that called it reports at once
      crashed_here_ = std::move(msg);
      return;
    }
    tell_worker(std::move(msg));
  }

  void tell_worker(runner_msg msg) {
    if (auto strong = caf::actor_cast<caf::strong_actor_ptr>(l_.worker))
      caf::anon_send(caf::actor_cast<worker_actor>(strong), std::move(msg));
  }

  const links l_;
  const bool threaded_;
  std::thread thread_;  // touched by the actor's thread only
  std::mutex mutex_;
  std::condition_variable cv_;
  // Under mutex_:
  std::deque<assignment> inbox_;
  std::vector<attempt_record> outbox_;
  bool sleeping_ = false, stopping_ = false, abandoned_ = false;
  bool busy_ = false;  ///< the runner holds an assignment (maybe inside its implementation)
  limited_attempt current_;
  errc stop_code_ = errc::none;  ///< written before stop_flag_ is set
  // Atomics, read without the lock:
  std::atomic<uint64_t> running_{0};  ///< the attempt running now; 0: none
  std::atomic<bool> stop_flag_{false};
  std::atomic<uint64_t> tasks_done_{0};
  std::atomic<int64_t> busy_ns_{0};
  // The runner's own (one thread at a time: its thread, or the actor's in run_here):
  event_batch events_{*l_.gate};
  uint64_t last_run_here_ = 0;
  time_point flush_at_{};
  std::optional<runner_msg> crashed_here_;
  std::unique_ptr<kernel_host> host_;  ///< its child process, with process isolation
};

device_worker_state::~device_worker_state() {
  if (runner) runner->shut();
}

namespace {

using self_ptr = worker_actor::stateful_pointer<device_worker_state>;

std::shared_ptr<cpu_runner> make_runner(self_ptr self) {
  auto& st = self->state;
  bool threaded = st.setup->cfg.detached_workers;
  auto r = std::make_shared<cpu_runner>(
      cpu_runner::links{st.setup, st.gate, st.index, st.generation, st.balancer, st.monitor, st.bus,
                        caf::actor_cast<caf::weak_actor_ptr>(self)},
      threaded);
  if (threaded) cpu_runner::start(r);
  return r;
}

/// Sets the limit timer of the running attempt once its limit is near (within two heartbeats).
void arm_limit(self_ptr self) {
  auto& st = self->state;
  auto lim = st.runner->limited();
  if (!lim || lim->run == st.armed_run) return;
  auto left = lim->limit - clock::now();
  if (left >= 2 * st.setup->cfg.heartbeat_interval) return;
  st.armed_run = lim->run;
  self->delayed_send(self, std::max(left, clock::duration::zero()),
                     runner_msg{runner_msg::what::limit_passed, lim->run, 0, {}});
}

/// Past the grace: the stuck attempt is reported here (its runner never will), and the tasks
/// behind it go to a fresh runner. The worker stays in service.
void abandon_runner(self_ptr self, uint64_t run) {
  auto& st = self->state;
  auto left = st.runner->abandon(run);
  if (!left) return;
  st.runner->send_finished();
  auto& stuck = left->stuck;
  attempt_record rec;
  rec.task = stuck.task;
  rec.attempt = stuck.attempt;
  rec.worker = st.index;
  rec.code = stuck.why;
  rec.message = limit_text(stuck.task->spec, stuck.why) + " and was abandoned " +
                std::to_string(st.setup->cfg.timeout_grace.count()) +
                " ms later, still running (its thread was left to end on its own)";
  rec.started = stuck.started;
  rec.finished = clock::now();
  std::vector<attempt_record> one;
  one.push_back(std::move(rec));
  self->send(st.balancer, results_msg{st.index, st.generation, std::move(one)});
  ++st.abandoned;
  auto what = "abandoned a thread still running task " + std::to_string(stuck.task->id) +
              " (kind '" + stuck.task->spec.kind + "') " +
              std::to_string(st.setup->cfg.timeout_grace.count()) + " ms past its limit; " +
              std::to_string(st.abandoned) + " so far";
  troupe::logger().warn("worker {}: {}", st.index, what);
  event_batch events{*st.gate};
  if (events.wanted()) events.add("worker.degraded", stuck.task->id, st.index, what);
  events.flush(self, st.bus);
  st.runner = make_runner(self);
  st.runner->post(left->waiting);
}

}  // namespace

worker_actor::behavior_type device_worker_impl(
    worker_actor::stateful_pointer<device_worker_state> self, worker_env env, int32_t index,
    uint32_t generation, balancer_actor balancer, monitor_actor monitor,
    supervisor_actor supervisor, event_bus_actor bus) {
  auto& st = self->state;
  st.link(env, index, generation, std::move(balancer), std::move(monitor), std::move(supervisor),
          std::move(bus));
  st.runner = make_runner(self);
  self->delayed_send(self, env.setup->cfg.heartbeat_interval, heartbeat_tick_msg{});
  return {
      [=](assign_msg& msg) {
        auto& st = self->state;
        if (st.setup->cfg.detached_workers) return st.runner->post(msg.tasks);
        if (auto crashed = st.runner->run_here(msg.tasks)) {
          self->send(st.supervisor, crash_report_msg{st.index,
                                                     st.generation,
                                                     crashed->task,
                                                     std::move(crashed->text),
                                                     clock::now(),
                                                     false,
                                                     {}});
          self->quit(caf::make_error(caf::sec::runtime_error));
        }
      },
      [=](const batch_flush_msg&) {},  // CPU workers never batch
      [=](const gpu_done_msg&) {},
      [=](const heartbeat_tick_msg&) {
        // From the actor, never from the runner: a worker inside a long task is alive.
        auto& st = self->state;
        self->send(st.monitor, st.runner->work_report());  // before the results it covers
        st.runner->send_finished();
        arm_limit(self);
        self->delayed_send(self, st.setup->cfg.heartbeat_interval, heartbeat_tick_msg{});
      },
      [=](runner_msg& msg) {
        auto& st = self->state;
        using what = runner_msg::what;
        switch (msg.event) {
          case what::began:
            return arm_limit(self);
          case what::limit_passed:
            if (st.runner->stop(msg.run)) {
              msg.event = what::grace_passed;
              self->delayed_send(self, st.setup->cfg.timeout_grace, std::move(msg));
            }
            return;
          case what::grace_passed:
            return abandon_runner(self, msg.run);
          case what::crashed:
            self->send(st.supervisor, crash_report_msg{st.index,
                                                       st.generation,
                                                       msg.task,
                                                       std::move(msg.text),
                                                       clock::now(),
                                                       false,
                                                       {}});
            self->quit(caf::make_error(caf::sec::runtime_error));
            return;
        }
      },
  };
}

}  // namespace troupe
