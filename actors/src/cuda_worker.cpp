#include "troupe/actors/cuda_worker.hpp"

#include <algorithm>
#include <caf/all.hpp>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "troupe/kernels/builtins.hpp"
#include "troupe/model/batching.hpp"
#include "troupe/model/gpu_pool.hpp"
#include "troupe/model/log.hpp"
#include "worker_reports.hpp"

namespace troupe {

/// The lanes of one GPU worker: threads that each run one launch at a time and tell the worker
/// when it ends. The worker posts only while a lane is free, so at most `count` jobs wait here.
class gpu_lanes {
 public:
  using run_fn = std::function<void(gpu_job&)>;

  gpu_lanes(size_t count, run_fn run, caf::weak_actor_ptr owner)
      : shared_(std::make_shared<shared>()) {
    shared_->done.assign(count, false);
    for (size_t i = 0; i < count; ++i)
      threads_.emplace_back([s = shared_, run, owner, i] { loop(*s, run, owner, i); });
  }
  ~gpu_lanes() { stop(); }

  void post(std::shared_ptr<gpu_job> job) {
    {
      std::lock_guard<std::mutex> guard{shared_->mutex};
      shared_->jobs.push_back(std::move(job));
    }
    shared_->cv.notify_all();
  }

  /// Launches not started are dropped (the supervisor requeues the worker's tasks). Idle lanes
  /// end at once and are joined; one still inside a launch gets `patience` to finish it, then is
  /// left to end on its own (detached): a hung kernel must not hold the worker's exit, and with
  /// it the supervisor's restart. Safe to call twice.
  void stop(std::chrono::milliseconds patience = std::chrono::milliseconds(1000)) {
    if (stopped_) return;
    stopped_ = true;
    std::unique_lock<std::mutex> lock{shared_->mutex};
    shared_->stopping = true;
    shared_->jobs.clear();
    shared_->cv.notify_all();
    auto all_done = [&] {
      return std::all_of(shared_->done.begin(), shared_->done.end(), [](bool d) { return d; });
    };
    shared_->cv.wait_for(lock, patience, all_done);
    auto done = shared_->done;
    lock.unlock();
    for (size_t i = 0; i < threads_.size(); ++i) {
      if (!threads_[i].joinable()) continue;
      if (done[i] && threads_[i].get_id() != std::this_thread::get_id())
        threads_[i].join();
      else
        threads_[i].detach();  // it holds only what it shares (and the setup and gauges, by
                               // shared pointer)
    }
  }

 private:
  struct shared {
    std::mutex mutex;
    std::condition_variable cv;
    std::deque<std::shared_ptr<gpu_job>> jobs;
    bool stopping = false;
    std::vector<bool> done;  ///< per lane: its thread has returned
  };

  static void loop(shared& s, const run_fn& run, const caf::weak_actor_ptr& owner, size_t lane) {
    for (;;) {
      std::shared_ptr<gpu_job> job;
      {
        std::unique_lock<std::mutex> lock{s.mutex};
        s.cv.wait(lock, [&] { return s.stopping || !s.jobs.empty(); });
        if (s.stopping) {
          s.done[lane] = true;
          s.cv.notify_all();
          return;
        }
        job = std::move(s.jobs.front());
        s.jobs.pop_front();
      }
      run(*job);
      if (auto strong = caf::actor_cast<caf::strong_actor_ptr>(owner))
        caf::anon_send(caf::actor_cast<worker_actor>(strong), gpu_done_msg{job->id});
    }
  }

  std::shared_ptr<shared> shared_;
  std::vector<std::thread> threads_;
  bool stopped_ = false;
};

cuda_worker_state::~cuda_worker_state() {
  if (lanes) lanes->stop();
}

namespace {

using self_ptr = worker_actor::stateful_pointer<cuda_worker_state>;

/// Runs one launch on the calling lane and records its outcome in the job. Never throws.
/// cache: the worker's GPU cache (null on fake GPUs and without CUDA).
void run_on_lane(const worker_env& env, int32_t index,
                 [[maybe_unused]] const std::shared_ptr<void>& cache, gpu_job& job) {
  auto& desc = env.setup->workers[size_t(index)];
  auto& gauge = env.gauges->gpu(size_t(index));
  static host_gpu_allocator host_memory;  // fake GPUs
  job.started = clock::now();
  std::unique_ptr<task_gpu_memory> memory;
  try {
    gpu_allocator* allocator = &host_memory;
    void* stream = nullptr;
#ifdef TROUPE_WITH_CUDA
    if (!desc.fake) {
      kernels::cuda::attach_lane(std::static_pointer_cast<kernels::cuda::gpu_cache>(cache));
      allocator = &kernels::cuda::lane_allocator(desc.device_index);
      stream = kernels::cuda::lane_stream(desc.device_index);
    }
#endif
    uint64_t reserved = 0;
    for (auto& a : job.tasks) reserved += a.task->spec.needs.gpu_memory_bytes;
    memory = std::make_unique<task_gpu_memory>(*allocator, reserved, &gauge.task_bytes);
    auto& first = *job.tasks.front().task;
    task_context ctx{first.spec,
                     job.tasks.front().attempt,
                     index,
                     device_class::cuda,
                     &first.cancel_requested,
                     desc.device_index,
                     stream,
                     memory.get()};
    if (job.batched) {
      std::vector<const task_spec*> specs;
      for (auto& a : job.tasks) specs.push_back(&a.task->spec);
      job.outputs = first.kind->def.cuda_batch(specs, ctx);
      if (job.outputs.size() != job.tasks.size())
        throw task_failure{errc::task_failed_permanently,
                           "batched implementation returned " + std::to_string(job.outputs.size()) +
                               " outputs for " + std::to_string(job.tasks.size()) + " tasks"};
    } else {
      job.outputs.push_back(first.kind->def.cuda(ctx));
    }
  } catch (const task_failure& f) {
    job.code = f.code;
    job.message = f.message;
    job.outputs.clear();
  } catch (...) {
    job.crash = std::current_exception();
  }
#ifdef TROUPE_WITH_CUDA
  // What a failed launch left queued must end before its memory and staging are reused.
  if (!desc.fake && job.code != errc::none && !job.crash) kernels::cuda::settle_lane();
#endif
  memory.reset();  // every byte of the launch goes back to the pool
#ifdef TROUPE_WITH_CUDA
  if (job.crash && !desc.fake) job.device_lost = kernels::cuda::release_after_crash();
#endif
  job.finished = clock::now();
}

bool batches(const cuda_worker_state& st, const assignment& a) {
  auto& def = a.task->kind->def;
  return st.setup->cfg.batching_enabled && def.cuda_batch && def.batch_key;
}

void add_busy(cuda_worker_state& st, time_point now) {
  if (st.running.empty()) return;
  st.busy_ns_since_report += (now - st.busy_since).count();
  st.busy_since = now;
}

/// Hands tasks to a free lane; the ones that must not start any more end here.
void launch(self_ptr self, std::vector<assignment> tasks, bool batched, event_batch& events,
            std::vector<attempt_record>& records) {
  auto& st = self->state;
  auto now = clock::now();
  std::vector<assignment> go;
  for (auto& a : tasks) {
    if (auto skip = worker_reports::skip_reason(*a.task, now); skip != errc::none) {
      auto rec = worker_reports::record_of(a, st.index);
      rec.code = skip;
      rec.finished = now;
      records.push_back(std::move(rec));
    } else {
      go.push_back(std::move(a));
    }
  }
  if (go.empty()) return;
  auto job = std::make_shared<gpu_job>();
  job->id = st.next_job++;
  job->batched = batched && go.size() > 1;
  if (events.wanted(go.size())) {
    auto& kind = go.front().task->spec.kind;
    auto detail = job->batched ? kind + " (batch of " + std::to_string(go.size()) + ")" : kind;
    for (auto& a : go) events.add_task("task.started", *a.task, st.index, detail);
  }
  job->tasks = std::move(go);
  if (st.running.empty()) st.busy_since = now;
  job->queued_at = now;
  st.running.emplace(job->id, job);
  st.lanes->post(std::move(job));
}

/// Fills free lanes with tasks that do not batch, in arrival order, and with batchable tasks in
/// groups of one key when a group is full, the GPU is busy (they gathered during the running
/// launches) or the wait for company is over; an idle GPU arms that wait. Batchable tasks that
/// have waited batching.max_delay_us go first.
void pump(self_ptr self) {
  auto& st = self->state;
  auto& cfg = st.setup->cfg;
  event_batch events{*st.gate};
  std::vector<attempt_record> records;
  auto now = clock::now();
  auto free_lanes = [&] { return cfg.cuda_streams > st.running.size(); };
  auto launch_ready = [&] {
    while (free_lanes() && !st.ready.empty()) {
      std::vector<assignment> one{std::move(st.ready.front())};
      st.ready.pop_front();
      launch(self, std::move(one), false, events, records);
    }
  };
  auto launch_batches = [&] {
    if (!free_lanes() || st.waiting.empty() ||
        !(st.waiting.size() >= cfg.batch_max_tasks || !st.running.empty() || st.delay_expired))
      return;
    auto groups = plan_batches(st.waiting_keys, cfg.batch_max_tasks);
    std::vector<bool> taken(st.waiting.size(), false);
    for (auto& group : groups) {
      if (!free_lanes()) break;
      std::vector<assignment> members;
      for (auto i : group) members.push_back(st.waiting[i]), taken[i] = true;
      launch(self, std::move(members), true, events, records);
    }
    std::vector<assignment> left;
    std::vector<std::string> left_keys;
    for (size_t i = 0; i < st.waiting.size(); ++i) {
      if (taken[i]) continue;
      left.push_back(std::move(st.waiting[i]));
      left_keys.push_back(std::move(st.waiting_keys[i]));
    }
    st.waiting.swap(left);
    st.waiting_keys.swap(left_keys);
    st.delay_expired = false;
    st.waiting_since = now;
  };
  // Tasks that do not batch take free lanes first, unless batchable ones have waited longer
  // than batching.max_delay_us: then they go first, so that neither kind can starve the other.
  if (!st.waiting.empty() && now - st.waiting_since >= cfg.batch_max_delay) {
    st.delay_expired = true;
    launch_batches();
    launch_ready();
  } else {
    launch_ready();
    launch_batches();
  }
  if (!st.waiting.empty() && st.running.empty() && !st.flush_armed) {
    st.flush_armed = true;
    self->delayed_send(self, cfg.batch_max_delay, batch_flush_msg{});
  }
  events.flush(self, st.bus);
  if (!records.empty())
    self->send(st.balancer, results_msg{st.index, st.generation, std::move(records)});
}

void finish(self_ptr self, gpu_job& job) {
  auto& st = self->state;
  auto now = clock::now();
  std::vector<attempt_record> records;
  event_batch events{*st.gate};
  if (job.crash) {
    auto& first = *job.tasks.front().task;
    st.crashed = true;
    worker_reports::flush(self, st, records, events, false);
    crash_report_msg report{
        st.index, st.generation,   first.id, worker_reports::crash_text(first, job.crash),
        now,      job.device_lost, {}};
    // The rest of the batch ran in the launch that crashed: charged an attempt too. With a
    // poisoned context the other lanes' launches may be what faulted (the error is the
    // context's, whichever lane saw it first): charged as well.
    for (size_t i = 1; i < job.tasks.size(); ++i)
      report.also_running.push_back(job.tasks[i].task->id);
    if (job.device_lost)
      for (auto& [id, other] : st.running)
        for (auto& a : other->tasks) report.also_running.push_back(a.task->id);
    self->send(st.supervisor, std::move(report));
    self->quit(caf::make_error(caf::sec::runtime_error));
    return;
  }
  // Each task of a batch is charged its share of the launch: the performance model learns
  // per-task time.
  auto share = (job.finished - job.started) / int64_t(job.tasks.size());
  for (size_t i = 0; i < job.tasks.size(); ++i) {
    auto rec = worker_reports::record_of(job.tasks[i], st.index);
    rec.code = job.code;
    rec.message = job.message;
    if (job.code == errc::none) rec.output = std::move(job.outputs[i]);
    rec.started = job.batched ? job.finished - share : job.started;
    rec.finished = job.finished;
    records.push_back(std::move(rec));
  }
  st.tasks_since_report += job.tasks.size();
  worker_reports::flush(self, st, records, events, !st.running.empty());
}

}  // namespace

worker_actor::behavior_type cuda_worker_impl(worker_actor::stateful_pointer<cuda_worker_state> self,
                                             worker_env env, int32_t index, uint32_t generation,
                                             balancer_actor balancer, monitor_actor monitor,
                                             supervisor_actor supervisor, event_bus_actor bus) {
  auto& st = self->state;
  st.link(env, index, generation, std::move(balancer), std::move(monitor), std::move(supervisor),
          std::move(bus));
  std::shared_ptr<void> cache;  // held by the lanes: freed with the last of them
#ifdef TROUPE_WITH_CUDA
  auto& desc = env.setup->workers[size_t(index)];
  if (!desc.fake) {
    auto made = kernels::cuda::make_gpu_cache(desc.device_index, &env.gauges->gpu(size_t(index)),
                                              env.setup->cfg.gpu_cache_bytes);
    // The cache writes into the gauge until it is freed, which may be at the exit of a lane
    // thread that outlived this worker and its runtime: it keeps the gauges alive until then.
    cache = std::shared_ptr<void>(made.get(), [made, gauges = env.gauges](void*) mutable {
      made.reset();
      gauges.reset();
    });
    // Detached: the driver call blocks this worker's thread only. Again at every heartbeat.
    kernels::cuda::sample_device_memory(desc.device_index, env.gauges->gpu(size_t(index)));
  }
#endif
  st.lanes = std::make_shared<gpu_lanes>(
      env.setup->cfg.cuda_streams,
      [env, index, cache](gpu_job& job) { run_on_lane(env, index, cache, job); },
      caf::actor_cast<caf::weak_actor_ptr>(self->ctrl()));
  // Lanes end with the worker: a launch not started is requeued by the supervisor.
  self->attach_functor([lanes = st.lanes] { lanes->stop(); });
  self->delayed_send(self, env.setup->cfg.heartbeat_interval, heartbeat_tick_msg{});
  return {
      [=](assign_msg& msg) {
        auto& st = self->state;
        for (auto& a : msg.tasks) {
          if (!batches(st, a)) {
            st.ready.push_back(std::move(a));
            continue;
          }
          if (st.waiting.empty()) st.waiting_since = clock::now();
          st.waiting_keys.push_back(a.task->kind->def.batch_key(a.task->spec));  // once per task
          st.waiting.push_back(std::move(a));
        }
        pump(self);
      },
      [=](const gpu_done_msg& done) {
        auto& st = self->state;
        auto i = st.running.find(done.job);
        if (i == st.running.end() || st.crashed) return;
        add_busy(st, clock::now());
        auto job = std::move(i->second);
        st.running.erase(i);
        finish(self, *job);
        if (!st.crashed) pump(self);
      },
      [=](const batch_flush_msg&) {
        auto& st = self->state;
        st.flush_armed = false;
        st.delay_expired = true;
        pump(self);
      },
      [=](const heartbeat_tick_msg&) {
        auto& st = self->state;
        add_busy(st, clock::now());
#ifdef TROUPE_WITH_CUDA
        auto& desc = st.setup->workers[size_t(st.index)];
        if (!desc.fake)
          kernels::cuda::sample_device_memory(desc.device_index, st.gauges->gpu(size_t(st.index)));
#endif
        // A launch running past the heartbeat timeout is taken as hung, like a CPU worker
        // stuck in a task: the worker falls silent, the monitor reports it, the supervisor
        // replaces it (its lanes are left to end on their own).
        auto now = clock::now();
        bool hung = std::any_of(st.running.begin(), st.running.end(), [&](const auto& j) {
          return j.second->queued_at + st.setup->cfg.heartbeat_timeout < now;
        });
        if (!hung) worker_reports::heartbeat(self, st, !st.running.empty());
        self->delayed_send(self, st.setup->cfg.heartbeat_interval, heartbeat_tick_msg{});
      },
      [=](const runner_msg&) {},  // CPU workers only
  };
}

}  // namespace troupe
