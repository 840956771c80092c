#include "troupe/actors/device_worker.hpp"

#include <caf/all.hpp>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include "troupe/model/log.hpp"
#include "worker_reports.hpp"

namespace troupe {

namespace {

using self_ptr = worker_actor::stateful_pointer<device_worker_state>;
constexpr auto flush_interval = std::chrono::milliseconds(1);

std::string limit_text(const task_state& t, errc why) {
  if (why == errc::deadline_expired) return "ran past its deadline";
  return "ran past its timeout of " + std::to_string(t.spec.timeout ? t.spec.timeout->count() : 0) +
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

  explicit cpu_runner(links l) : l_(std::move(l)) {}
  cpu_runner(const cpu_runner&) = delete;

  /// Runs tasks on a thread of its own from now on (else run_here runs them on the caller's).
  void start_thread(std::shared_ptr<cpu_runner> me) {
    thread_ = std::thread([me] { me->loop(); });
  }

  /// The actor hands over assignments (at most the balancer's credit is ever waiting here).
  void post(std::vector<assignment>& tasks) {
    bool wake;
    {
      std::lock_guard<std::mutex> guard{mutex_};
      for (auto& a : tasks) inbox_.push_back(std::move(a));
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

  /// Results the runner finished but has not sent yet (it sends when its batch ends or every
  /// millisecond; a task that runs for hours must not hold back those finished before it).
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

  /// Past an attempt's limit: sets its stop flag (ctx.cancelled()) if it is still running.
  bool stop(uint64_t run, errc why) {
    std::lock_guard<std::mutex> guard{mutex_};
    if (running_.load() != run || abandoned_) return false;
    stop_code_ = why;
    stop_flag_.store(true);
    return true;
  }

  /// Past the grace: if the attempt still runs, the runner is abandoned (it ends on its own when
  /// the implementation returns, and sends nothing more). True if it was.
  bool abandon(uint64_t run) {
    std::lock_guard<std::mutex> guard{mutex_};
    if (running_.load() != run || abandoned_) return false;
    abandoned_ = true;
    quit_.store(true);
    return true;
  }

  /// The actor is going: tasks not started are dropped (the supervisor places them again). An
  /// idle runner is joined; one inside a task is left to end on its own.
  void shut() {
    bool busy;
    {
      std::lock_guard<std::mutex> guard{mutex_};
      stopping_ = true;
      quit_.store(true);
      inbox_.clear();
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
    std::vector<assignment> work;
    while (take(work)) {
      for (auto& a : work)
        if (stopping() || !run_one(a)) return end_batch(work);
      flush();
      end_batch(work);
    }
  }

  bool stopping() const { return quit_.load(std::memory_order_acquire); }

  void end_batch(std::vector<assignment>& work) {
    work.clear();
    std::lock_guard<std::mutex> guard{mutex_};
    busy_ = false;
  }

  /// Waits for assignments. No spinning first: measured on 2 vCPUs, a runner that spun 50 us
  /// before sleeping took the core the scheduler needed (one task's round trip 38-40 us against
  /// 15-22 us without). False: stop.
  bool take(std::vector<assignment>& work) {
    std::unique_lock<std::mutex> lock{mutex_};
    sleeping_ = true;
    cv_.wait(lock, [&] { return stopping_ || !inbox_.empty(); });
    sleeping_ = false;
    if (stopping_) return false;
    work.assign(std::make_move_iterator(inbox_.begin()), std::make_move_iterator(inbox_.end()));
    inbox_.clear();
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
    auto run = ++runs_;
    std::optional<time_point> limit;
    errc why = errc::none;
    if (t.spec.timeout) limit = now + *t.spec.timeout, why = errc::timed_out;
    if (t.spec.deadline && (!limit || *t.spec.deadline < *limit))
      limit = *t.spec.deadline, why = errc::deadline_expired;
    stop_flag_.store(false);
    running_.store(run);
    if (limit) {
      // This attempt may be abandoned: nothing finished before it may wait behind it.
      flush();
      tell_worker(runner_msg{runner_msg::what::began, run, a.task, a.attempt, *limit, why, {}});
    }
    task_context ctx{t.spec,      a.attempt,           l_.index,
                     desc.device, &t.cancel_requested, desc.device_index};
    ctx.stop_flag = &stop_flag_;
    rec.started = now;
    try {
      rec.output = t.kind->def.cpu(ctx);
    } catch (const task_failure& f) {
      rec.code = f.code;
      rec.message = f.message;
    } catch (...) {
      if (!leave_task(limit.has_value())) return false;
      crash(a, worker_reports::crash_text(t, std::current_exception()));
      return false;
    }
    if (!leave_task(limit.has_value())) return false;
    now = clock::now();
    if (stop_flag_.load()) {  // past its limit: whatever it returned, it is over
      rec.code = stop_code_;
      rec.message = limit_text(t, stop_code_) + "; it stopped when told";
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
    if (!limited) {  // only an attempt with a limit is ever stopped or abandoned
      running_.store(0);
      return true;
    }
    std::lock_guard<std::mutex> guard{mutex_};
    running_.store(0);
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

  void crash(const assignment& a, std::string what) {
    flush();
    runner_msg msg{
        runner_msg::what::crashed, runs_, a.task, a.attempt, {}, errc::none, std::move(what)};
    if (!thread_.joinable()) {  // run_here: the handler that called it quits at once
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
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<assignment> inbox_;              // under mutex_
  std::vector<attempt_record> outbox_;        // under mutex_
  bool sleeping_ = false, stopping_ = false;  // under mutex_
  bool busy_ = false;                 // under mutex_: the runner holds work (maybe inside a task)
  bool abandoned_ = false;            // under mutex_
  errc stop_code_ = errc::none;       // written under mutex_ before stop_flag_ is set
  std::atomic<bool> quit_{false};     // stopping_ || abandoned_, read without the lock
  std::atomic<uint64_t> running_{0};  // the attempt running now; 0: none
  std::atomic<bool> stop_flag_{false};
  std::atomic<uint64_t> tasks_done_{0};
  std::atomic<int64_t> busy_ns_{0};
  // The runner's own (one thread at a time: its thread, or the actor's in run_here).
  event_batch events_{*l_.gate};
  uint64_t runs_ = 0;
  time_point flush_at_{};
  std::optional<runner_msg> crashed_here_;
};

device_worker_state::~device_worker_state() {
  if (runner) runner->shut();
}

worker_actor::behavior_type device_worker_impl(
    worker_actor::stateful_pointer<device_worker_state> self, worker_env env, int32_t index,
    uint32_t generation, balancer_actor balancer, monitor_actor monitor,
    supervisor_actor supervisor, event_bus_actor bus) {
  auto& st = self->state;
  st.link(env, index, generation, balancer, monitor, std::move(supervisor), bus);
  st.runner = std::make_shared<cpu_runner>(cpu_runner::links{
      st.setup, st.gate, index, generation, std::move(balancer), std::move(monitor), std::move(bus),
      caf::actor_cast<caf::weak_actor_ptr>(self)});
  if (st.setup->cfg.detached_workers) st.runner->start_thread(st.runner);
  self->delayed_send(self, env.setup->cfg.heartbeat_interval, heartbeat_tick_msg{});
  return {
      [=](assign_msg& msg) {
        auto& st = self->state;
        if (st.setup->cfg.detached_workers) return st.runner->post(msg.tasks);
        if (auto crashed = st.runner->run_here(msg.tasks)) {
          self->send(st.supervisor, crash_report_msg{st.index,
                                                     st.generation,
                                                     crashed->task->id,
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
        st.runner->send_finished();
        self->send(st.monitor, st.runner->work_report());
        self->delayed_send(self, st.setup->cfg.heartbeat_interval, heartbeat_tick_msg{});
      },
      [=](runner_msg& msg) {
        auto& st = self->state;
        using what = runner_msg::what;
        switch (msg.event) {
          case what::began: {
            auto wait = std::max(msg.limit - clock::now(), clock::duration::zero());
            msg.event = what::limit_passed;
            self->delayed_send(self, wait, std::move(msg));
            return;
          }
          case what::limit_passed:
            if (st.runner->stop(msg.run, msg.why)) {
              msg.event = what::grace_passed;
              self->delayed_send(self, st.setup->cfg.timeout_grace, std::move(msg));
            }
            return;
          case what::grace_passed: {
            if (!st.runner->abandon(msg.run)) return;
            // The attempt is over for the runtime: reported here, since the runner never will.
            st.runner->send_finished();
            auto& t = *msg.task;
            attempt_record rec;
            rec.task = msg.task;
            rec.attempt = msg.attempt;
            rec.worker = st.index;
            rec.code = msg.why;
            rec.message = limit_text(t, msg.why) + " and was abandoned " +
                          std::to_string(st.setup->cfg.timeout_grace.count()) +
                          " ms later, still running (its worker was replaced)";
            rec.started = rec.finished = clock::now();
            std::vector<attempt_record> one;
            one.push_back(std::move(rec));
            self->send(st.balancer, results_msg{st.index, st.generation, std::move(one)});
            self->send(st.supervisor,
                       crash_report_msg{st.index,
                                        st.generation,
                                        t.id,
                                        "task " + std::to_string(t.id) + " of kind '" +
                                            t.spec.kind + "' abandoned past its limit",
                                        clock::now(),
                                        false,
                                        {}});
            self->quit(caf::make_error(caf::sec::runtime_error));
            return;
          }
          case what::crashed:
            self->send(st.supervisor, crash_report_msg{st.index,
                                                       st.generation,
                                                       msg.task->id,
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
