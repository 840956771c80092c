#include "troupe/runtime.hpp"

#include <spdlog/spdlog.h>

#include <caf/all.hpp>
#include <deque>
#include <unordered_map>

#include "troupe/actors/balancer.hpp"
#include "troupe/actors/core.hpp"
#include "troupe/actors/event_bus.hpp"
#include "troupe/actors/monitor.hpp"
#include "troupe/actors/queue.hpp"
#include "troupe/actors/supervisor.hpp"
#include "troupe/kernels.hpp"
#include "troupe/ledger.hpp"

namespace troupe {

using shared_callback = std::shared_ptr<const result_callback>;

struct runtime::impl {
  runtime_core core;
  std::unique_ptr<caf::actor_system_config> own_cfg;
  std::unique_ptr<caf::actor_system> own_system;
  caf::actor_system* system = nullptr;
  resource_ledger fit_check;  // capacities only: answers "could this ever run here?"

  event_bus_actor bus;
  monitor_actor monitor;
  queue_actor queue;
  balancer_actor balancer;
  supervisor_actor supervisor;

  std::atomic<uint64_t> next_subscription{1};
  std::mutex keys_mutex;  // idempotency keys: key -> handle, oldest evicted past the bound
  std::unordered_map<std::string, task_handle> keys;
  std::deque<std::string> key_order;
  static constexpr size_t key_capacity = 65536;
  bool stopped = false;
  std::mutex stop_mutex;

  explicit impl(runtime_config cfg) { core.cfg = resolve(std::move(cfg)); }

  void start(caf::actor_system& sys) {
    system = &sys;
    kernels::register_builtins(core.registry);
    if (core.cfg.cuda != cuda_selection::none) core.gpus = discover_gpus();
    core.workers = layout_workers(core.cfg, core.gpus);
    for (auto& g : core.gpus.gpus)
      spdlog::info("troupe: GPU {} {} (compute {}.{}), {} MiB, {} MiB free", g.index, g.name,
                   g.cc_major, g.cc_minor, g.total_memory >> 20, g.free_memory >> 20);
    if (core.cfg.cuda != cuda_selection::none && core.gpus.gpus.empty())
      spdlog::info("troupe: no GPU worker: {}", core.gpus.note);
    for (auto& w : core.workers) fit_check.add_worker(w.capacity);
    core.retired = std::make_unique<std::atomic<bool>[]>(core.workers.size());
    // Dependency order: events, monitor, queue, balancer, then the supervisor and its workers.
    bus = core.cfg.detached_workers ? sys.spawn<caf::detached>(event_bus_impl, &core)
                                    : sys.spawn(event_bus_impl, &core);
    monitor = sys.spawn(monitor_impl, &core, uint32_t(core.workers.size()));
    queue = sys.spawn(queue_impl, &core, monitor, bus);
    balancer = sys.spawn(balancer_impl, &core, queue, bus);
    supervisor = sys.spawn(supervisor_impl, &core, balancer, monitor, queue, bus);
    caf::anon_send(monitor, supervisor);
    spdlog::info(
        "troupe: {} cpu and {} gpu workers, queue bound {}, {} placement", core.cfg.cpu_workers,
        core.workers.size() - core.cfg.cpu_workers, core.cfg.queue_bound,
        core.cfg.placement == placement_policy::least_loaded ? "least_loaded" : "round_robin");
  }

  task_handle rejected(task_id id, const task_spec& spec, errc code, std::string message) {
    core.rejected.fetch_add(1, std::memory_order_relaxed);
    auto done = std::make_shared<completion>();
    task_result r;
    r.id = id;
    r.kind = spec.kind;
    r.status = outcome::rejected;
    r.error = {code, std::move(message)};
    r.timings.submitted = r.timings.finished = clock::now();
    done->set(std::move(r));
    return task_handle{id, std::move(done)};
  }

  bool runs_here(const kind_entry& kind) const {
    for (auto& w : core.workers)
      if (kind.runs_on(w.device)) return true;
    return false;
  }

  bool fits_some_worker(const kind_entry& kind, const resources& needs) const {
    for (size_t w = 0; w < core.workers.size(); ++w)
      if (!core.retired[w] && kind.runs_on(core.workers[w].device) &&
          fit_check.fits_capacity(int32_t(w), needs))
        return true;
    return false;
  }

  std::string device_list() const {
    std::string s = std::to_string(core.cfg.cpu_workers) + " cpu";
    auto gpus = core.workers.size() - core.cfg.cpu_workers;
    if (gpus) s += ", " + std::to_string(gpus) + " cuda";
    return s;
  }

  std::string unsatisfiable(const kind_entry& kind, const resources& n) const {
    std::string s = "task needs " + std::to_string(n.cpu_slots) + " cpu slot(s), " +
                    std::to_string(n.memory_bytes) + " bytes of memory, " +
                    std::to_string(n.gpu_count) + " gpu(s) with " +
                    std::to_string(n.gpu_memory_bytes) + " bytes; workers that run '" +
                    kind.def.name + "':";
    for (size_t i = 0; i < core.workers.size(); ++i) {
      auto& w = core.workers[i];
      if (!kind.runs_on(w.device)) continue;
      if (core.retired[i]) {
        s += " " + w.name + " (out of service)";
        continue;
      }
      s += " " + w.name + " (" + std::to_string(w.capacity.cpu_slots) + " slot, " +
           std::to_string(w.capacity.memory_bytes) + " bytes, " +
           std::to_string(w.capacity.gpu_count) + " gpu, " +
           std::to_string(w.capacity.gpu_memory_bytes) + " gpu bytes)";
    }
    return s;
  }

  std::string known_kinds() const {
    std::string s;
    for (auto& k : core.registry.kinds()) s += (s.empty() ? "" : ", ") + k;
    return s;
  }

  /// What one submit or submit_batch call shares between its specs, so that the per-task path
  /// touches no shared atomic: ids and queue places are taken for the whole call at once.
  struct submission {
    shared_callback callback;
    const kind_entry* last_kind = nullptr;  // batches are mostly of one kind
    time_point now = clock::now();          // one submission time for the whole call
    task_id next_id = 0;
    uint64_t prepaid = 0;  // places under the bound taken in advance, not yet used
    uint64_t accepted = 0;
  };

  submission begin(size_t n, result_callback on_done) {
    submission s;
    if (on_done) s.callback = std::make_shared<const result_callback>(std::move(on_done));
    s.next_id = core.next_id.fetch_add(n, std::memory_order_relaxed);
    auto before = core.in_system.fetch_add(n, std::memory_order_acq_rel);
    if (before + n <= core.cfg.queue_bound)
      s.prepaid = n;
    else
      core.tasks_finished(n);  // not all fit: admit one by one (reject or block per task)
    return s;
  }

  void end(submission& s) {
    core.tasks_finished(s.prepaid);  // places of rejected specs
    core.submitted.fetch_add(s.accepted, std::memory_order_relaxed);
  }

  /// Validates and admits one spec; returns the task record, or a rejected handle.
  std::variant<task_ptr, task_handle> prepare(task_spec&& spec, submission& sub) {
    auto id = sub.next_id++;
    auto now = sub.now;
    auto& last_kind = sub.last_kind;
    if (!core.accepting.load(std::memory_order_acquire)) {
      auto why = core.refusal.load();
      return rejected(id, spec, why,
                      why == errc::supervisor_gave_up
                          ? "the runtime stopped accepting tasks: its supervisor gave up"
                          : "the runtime is shutting down");
    }
    // Batches are mostly of one kind: skip the registry's lock for a repeat within one call.
    auto* kind =
        last_kind && last_kind->def.name == spec.kind ? last_kind : core.registry.find(spec.kind);
    last_kind = kind;
    if (!kind)
      return rejected(id, spec, errc::unknown_kind,
                      "unknown task kind '" + spec.kind + "' (known: " + known_kinds() + ")");
    if (!runs_here(*kind))
      return rejected(id, spec, errc::no_implementation,
                      "task kind '" + spec.kind + "' has no implementation for the devices of " +
                          "this runtime (" + device_list() + ")");
    double cost = 0;
    if (kind->def.validate) {
      try {
        cost = kind->def.validate(spec);
      } catch (const task_failure& f) {
        return rejected(id, spec, f.code == errc::none ? errc::invalid_params : f.code,
                        "task kind '" + spec.kind + "': " + f.message);
      } catch (const std::exception& e) {
        return rejected(id, spec, errc::invalid_params,
                        "task kind '" + spec.kind + "': " + e.what());
      }
    }
    if (!fits_some_worker(*kind, spec.needs))
      return rejected(id, spec, errc::unsatisfiable_resources, unsatisfiable(*kind, spec.needs));
    if (spec.deadline && *spec.deadline <= now)
      return rejected(id, spec, errc::deadline_expired, "the deadline has already passed");
    if (sub.prepaid > 0)
      --sub.prepaid;
    else if (!admit())
      return rejected(id, spec, errc::queue_full,
                      "queue bound reached: " + std::to_string(core.cfg.queue_bound) +
                          " tasks admitted and unfinished (queue.bound, overflow = " +
                          (core.cfg.overflow == overflow_policy::block ? "block" : "reject") + ")");
    auto t = std::make_shared<task_state>();
    t->id = id;
    t->kind = kind;
    t->cost = cost;
    t->max_retries = spec.max_retries.value_or(core.cfg.max_retries);
    t->retry_backoff = spec.retry_backoff.value_or(core.cfg.retry_backoff);
    t->spec = std::move(spec);
    t->callback = sub.callback;
    t->timings.submitted = now;
    ++sub.accepted;
    return t;
  }

  /// Takes one place under the queue bound, waiting with overflow = block.
  bool admit() {
    auto bound = core.cfg.queue_bound;
    auto n = core.in_system.fetch_add(1, std::memory_order_acq_rel);
    if (n < bound) return true;
    core.in_system.fetch_sub(1, std::memory_order_acq_rel);
    if (core.cfg.overflow != overflow_policy::block) return false;
    std::unique_lock<std::mutex> lock{core.wait_mutex};
    core.waiters.fetch_add(1);
    bool ok = core.wait_cv.wait_for(lock, core.cfg.block_timeout, [&] {
      auto cur = core.in_system.load();
      while (cur < bound)
        if (core.in_system.compare_exchange_weak(cur, cur + 1)) return true;
      return false;
    });
    core.waiters.fetch_sub(1);
    return ok;
  }

  task_handle track(task_ptr& t) {
    // Aliasing pointer: the handle keeps the task record alive, no extra allocation.
    return task_handle{t->id, std::shared_ptr<const completion>(t, &t->done)};
  }

  std::optional<task_handle> known_key(const std::string& key) {
    if (key.empty()) return std::nullopt;
    std::lock_guard<std::mutex> guard{keys_mutex};
    auto i = keys.find(key);
    if (i == keys.end()) return std::nullopt;
    return i->second;
  }

  void remember_key(const std::string& key, const task_handle& h) {
    if (key.empty()) return;
    std::lock_guard<std::mutex> guard{keys_mutex};
    if (!keys.emplace(key, h).second) return;
    key_order.push_back(key);
    if (key_order.size() > key_capacity) {
      keys.erase(key_order.front());
      key_order.pop_front();
    }
  }

  bool wait_idle(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock{core.wait_mutex};
    core.waiters.fetch_add(1);
    bool ok = core.wait_cv.wait_for(lock, timeout, [&] { return core.in_system.load() == 0; });
    core.waiters.fetch_sub(1);
    return ok;
  }

  void stop(shutdown_mode mode) {
    std::lock_guard<std::mutex> guard{stop_mutex};
    if (stopped) return;
    stopped = true;
    core.accepting = false;
    if (mode == shutdown_mode::cancel)
      caf::anon_send(queue, cancel_all_msg{errc::cancelled, "cancelled by shutdown"});
    while (!wait_idle(std::chrono::seconds(10)))
      spdlog::info("troupe: shutdown waits for {} unfinished task(s)", core.in_system.load());
    // Reverse dependency order. The supervisor takes its linked workers along.
    for (auto a : {caf::actor_cast<caf::actor>(supervisor), caf::actor_cast<caf::actor>(balancer),
                   caf::actor_cast<caf::actor>(queue), caf::actor_cast<caf::actor>(monitor),
                   caf::actor_cast<caf::actor>(bus)})
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    if (!own_system) return;  // attached: the system's owner awaits the actors
    caf::scoped_actor self{*system};
    for (auto a : {caf::actor_cast<caf::actor>(supervisor), caf::actor_cast<caf::actor>(balancer),
                   caf::actor_cast<caf::actor>(queue), caf::actor_cast<caf::actor>(monitor),
                   caf::actor_cast<caf::actor>(bus)})
      self->wait_for(a);
  }
};

namespace {
std::unique_ptr<caf::actor_system_config> make_caf_config(const runtime_config& cfg) {
  auto c = std::make_unique<caf::actor_system_config>();
  c->set("scheduler.max-threads", cfg.scheduler_threads);
  c->set("scheduler.policy", caf::atom("stealing"));
  c->set("logger.console", caf::atom("none"));
  return c;
}

void apply_log_level(const std::string& level) {
  spdlog::set_level(spdlog::level::from_str(level));
}
}  // namespace

runtime::runtime(runtime_config cfg) : impl_(std::make_unique<impl>(std::move(cfg))) {
  apply_log_level(impl_->core.cfg.log_level);
  impl_->own_cfg = make_caf_config(impl_->core.cfg);
  impl_->own_system = std::make_unique<caf::actor_system>(*impl_->own_cfg);
  impl_->start(*impl_->own_system);
}

runtime::runtime(caf::actor_system& system, runtime_config cfg)
    : impl_(std::make_unique<impl>(std::move(cfg))) {
  apply_log_level(impl_->core.cfg.log_level);
  impl_->start(system);
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
}

task_registry& runtime::registry() {
  return impl_->core.registry;
}
const gpu_inventory& runtime::gpus() const {
  return impl_->core.gpus;
}
const runtime_config& runtime::config() const {
  return impl_->core.cfg;
}

task_handle runtime::submit(task_spec spec, result_callback on_done) {
  if (auto h = impl_->known_key(spec.idempotency_key)) return *h;
  auto key = spec.idempotency_key;
  auto sub = impl_->begin(1, std::move(on_done));
  auto r = impl_->prepare(std::move(spec), sub);
  impl_->end(sub);
  if (auto* h = std::get_if<task_handle>(&r)) return *h;
  auto& t = std::get<task_ptr>(r);
  auto h = impl_->track(t);
  impl_->remember_key(key, h);
  caf::anon_send(impl_->queue, submit_msg{{std::move(t)}});
  return h;
}

std::vector<task_handle> runtime::submit_batch(std::vector<task_spec> specs,
                                               result_callback on_done) {
  std::vector<task_handle> handles;
  handles.reserve(specs.size());
  submit_msg msg;
  msg.tasks.reserve(specs.size());
  auto sub = impl_->begin(specs.size(), std::move(on_done));
  for (auto& spec : specs) {
    if (auto h = impl_->known_key(spec.idempotency_key)) {
      handles.push_back(*h);
      continue;
    }
    auto key = spec.idempotency_key;
    auto r = impl_->prepare(std::move(spec), sub);
    if (auto* h = std::get_if<task_handle>(&r)) {
      handles.push_back(std::move(*h));
      continue;
    }
    auto& t = std::get<task_ptr>(r);
    handles.push_back(impl_->track(t));
    impl_->remember_key(key, handles.back());
    msg.tasks.push_back(std::move(t));
  }
  impl_->end(sub);
  if (!msg.tasks.empty()) caf::anon_send(impl_->queue, std::move(msg));
  return handles;
}

void runtime::cancel(task_id id) {
  caf::anon_send(impl_->queue, cancel_msg{id});
}

uint64_t runtime::subscribe(std::string prefix, event_callback callback) {
  auto id = impl_->next_subscription.fetch_add(1);
  // Counted here, synchronously, so that events published right after this call are not
  // skipped by the gate; the bus adds the subscription before it handles any later publish.
  impl_->core.events.subscribers.fetch_add(1);
  caf::anon_send(impl_->bus, subscribe_msg{id, std::move(prefix), std::move(callback)});
  return id;
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
                 spdlog::warn("troupe: stats request failed: {}", caf::to_string(e));
               });
  s.submitted = impl_->core.submitted.load();
  s.rejected = impl_->core.rejected.load();
  auto in_system = impl_->core.in_system.load();
  s.queued = std::min<uint64_t>(s.queued, in_system);
  s.in_flight = in_system - s.queued;
  return s;
}

void runtime::shutdown(shutdown_mode mode) {
  impl_->stop(mode);
}

bool runtime::wait_idle(std::chrono::milliseconds timeout) {
  return impl_->wait_idle(timeout);
}

}  // namespace troupe
