#pragma once
// runtime::impl, shared by the embedding API (runtime.cpp) and the head process (head.cpp), which
// adds workers of other processes to the same actors. Private to the runtime target.
#include <algorithm>
#include <caf/all.hpp>
#include <deque>
#include <unordered_map>
#include <unordered_set>
#include <variant>

#include "troupe/actors/admission_gate.hpp"
#include "troupe/actors/balancer.hpp"
#include "troupe/actors/callback_runner.hpp"
#include "troupe/actors/event_bus.hpp"
#include "troupe/actors/monitor.hpp"
#include "troupe/actors/queue.hpp"
#include "troupe/actors/supervisor.hpp"
#include "troupe/kernels/builtins.hpp"
#include "troupe/kernels/gpu_discovery.hpp"
#include "troupe/model/gang.hpp"
#include "troupe/model/idempotency_keys.hpp"
#include "troupe/model/ledger.hpp"
#include "troupe/model/log.hpp"
#include "troupe/model/record_pool.hpp"
#include "troupe/runtime.hpp"

namespace troupe {

inline std::unique_ptr<caf::actor_system_config> make_caf_config(const runtime_config& cfg) {
  auto c = std::make_unique<caf::actor_system_config>();
  c->set("scheduler.max-threads", cfg.scheduler_threads);
  c->set("scheduler.policy", caf::atom("stealing"));
  // An idle scheduler thread first spins (aggressive), then polls with 50 us sleeps (moderate),
  // then waits on a condition variable that new work notifies (relaxed). In the moderate phase
  // nothing wakes it: work from other threads (sockets, callers) waits out the sleep. Skip it.
  // Spinning a little longer than CAF's 100 polls spares most wake-ups of a busy runtime
  // (scheduler.spin_polls).
  c->set("work-stealing.aggressive-poll-attempts", size_t{cfg.scheduler_spin_polls});
  c->set("work-stealing.moderate-poll-attempts", size_t{0});
  c->set("logger.console", caf::atom("none"));
  return c;
}

using shared_callback = std::shared_ptr<const result_callback>;

/// Runs the config's triggers on the event bus's thread (one subscription per rule). Follow-up
/// tasks go through the runtime's submit; `rt` is cleared at shutdown, under the mutex.
struct trigger_runner {
  std::mutex mutex;
  runtime* rt = nullptr;
  std::unordered_set<task_id> follow_ups;  ///< their events fire no trigger: no loops
  std::deque<task_id> follow_up_order;     ///< oldest forgotten past follow_up_capacity
  static constexpr size_t follow_up_capacity = 65536;
};

struct runtime::impl {
  // What the actors share, each part with its own rule: the setup is written here, before any
  // actor starts, and read-only after; the admission gate, the event gate and the worker gauges
  // are thread-safe objects, each figure with one writer (see their headers).
  std::shared_ptr<runtime_setup> setup;
  std::shared_ptr<admission_gate> admission;
  std::shared_ptr<event_gate> events = std::make_shared<event_gate>();
  std::shared_ptr<worker_gauges> gauges;
  const runtime_config& cfg() const { return setup->cfg; }
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
  std::mutex keys_mutex;  // idempotency keys: key -> handle, oldest forgotten past the bounds
  std::condition_variable keys_cv;               // a pending key was settled
  std::unordered_set<std::string> keys_pending;  // being admitted by some thread right now
  idempotency_keys keys;                         // (docs/limits-and-timeouts.md)
  bool stopped = false;
  std::mutex stop_mutex;
  std::shared_ptr<trigger_runner> triggers;
  std::shared_ptr<callback_runner> callbacks;  // reset by ~runtime once the actors are gone

  explicit impl(runtime_config cfg) : setup(std::make_shared<runtime_setup>()) {
    setup->cfg = resolve(std::move(cfg));
    admission = std::make_shared<admission_gate>(setup->cfg);
    idempotency_bounds kb;
    kb.max_keys_per_scope = size_t(setup->cfg.cluster.client_max_keys);
    kb.max_bytes_per_scope = setup->cfg.cluster.client_max_key_bytes;
    keys.set_bounds(kb);
  }

  /// remote: workers of node processes (a head), appended after this process's own.
  void start(caf::actor_system& sys, std::vector<worker_desc> remote = {}) {
    system = &sys;
    auto& s = *setup;
    kernels::register_builtins(*s.registry);
    if (s.cfg.cuda != cuda_selection::none) s.gpus = discover_gpus();
    for (auto& why : s.gpus.left_out) troupe::logger().info("troupe: {}", why);
    s.workers = layout_workers(s.cfg, s.gpus);
    for (auto& w : remote) s.workers.push_back(std::move(w));
    std::vector<std::string> names;
    for (auto& w : s.workers) names.push_back(w.name);
    s.reservations =
        reservation_book{s.cfg.reservations, names, clock::now(), std::chrono::system_clock::now()};
    for (auto& g : s.gpus.gpus)
      troupe::logger().info("troupe: GPU {} {} (compute {}.{}), {} MiB, {} MiB free", g.index,
                            g.name, g.cc_major, g.cc_minor, g.total_memory >> 20,
                            g.free_memory >> 20);
    if (s.cfg.cuda != cuda_selection::none && s.gpus.gpus.empty())
      troupe::logger().info("troupe: no GPU worker: {}", s.gpus.note);
    for (auto& w : s.workers) fit_check.add_worker(w.capacity);
    gauges = std::make_shared<worker_gauges>(s.workers.size());
    // Callbacks run on a thread of their own, except in deterministic tests (workers on the
    // cooperative scheduler: everything runs when the test says so).
    if (s.cfg.detached_workers)
      callbacks =
          std::make_shared<callback_runner>([gate = admission](uint64_t n) { gate->release(n); });
    // Dependency order: events, monitor, queue, balancer, then the supervisor and its workers.
    setup_ptr shared = setup;  // from here on read-only
    bus = s.cfg.detached_workers ? sys.spawn<caf::detached>(event_bus_impl, shared, events)
                                 : sys.spawn(event_bus_impl, shared, events);
    monitor = sys.spawn(monitor_impl, shared, events, gauges, admission, bus);
    queue = sys.spawn(queue_impl, shared, events, admission, callbacks, monitor, bus);
    balancer = sys.spawn(balancer_impl, shared, events, gauges, queue, bus);
    supervisor = sys.spawn(supervisor_impl, worker_env{shared, events, gauges}, balancer, monitor,
                           queue, bus);
    caf::anon_send(monitor, supervisor);
    troupe::logger().info(
        "troupe: {} cpu and {} gpu workers, queue bound {}, {} placement", cpu_count(),
        s.workers.size() - cpu_count(), s.cfg.queue_bound,
        s.cfg.placement == placement_policy::least_loaded ? "least_loaded" : "round_robin");
  }

  /// told: false when the rejection was counted and published already (a graph task refused
  /// on its own, whose handle now names the graph's reason).
  task_handle rejected(task_id id, const task_spec& spec, errc code, std::string message,
                       bool told = false) {
    if (!told) admission->count_rejected();
    auto done = std::make_shared<completion>();
    task_result r;
    r.id = id;
    r.kind = spec.kind;
    r.status = outcome::rejected;
    r.error = {code, std::move(message)};
    r.timings.submitted = r.timings.finished = clock::now();
    if (!told && events->subscribers.load(std::memory_order_relaxed) != 0) {
      // Rejected on the submitting thread: the bus numbers it with the others.
      event_batch batch{*events};
      if (auto* e = batch.add("queue.rejected", id, -1,
                              std::string{to_string(code)} + ": " + r.error.message))
        e->kind = spec.kind;
      batch.flush_from_outside(bus);
    }
    done->set(std::move(r));
    return task_handle{id, std::move(done)};
  }

  /// A local worker runs what this process implements; a node's worker what some node said
  /// it runs (a head learns kinds from hellos) or, before any node said, what the head
  /// implements itself (the built-in kinds every node has).
  static bool runs(const kind_entry& kind, const worker_desc& w) {
    return kind.runs_on(w.device) || (w.remote() && kind.runs_remotely_on(w.device));
  }

  bool runs_here(const kind_entry& kind) const {
    for (auto& w : setup->workers)
      if (runs(kind, w)) return true;
    return false;
  }

  /// reservation: the one the task names ("": none; then workers held for good by one are not
  /// counted: the task could never run there); null: reservations aside.
  bool fits_some_worker(const kind_entry& kind, const resources& needs,
                        const std::string* reservation = nullptr) const {
    auto now = clock::now();
    for (size_t w = 0; w < setup->workers.size(); ++w)
      if (!gauges->retired(w) && runs(kind, setup->workers[w]) &&
          fit_check.fits_capacity(int32_t(w), needs) &&
          (!reservation || setup->reservations.could_ever(w, *reservation, now)))
        return true;
    return false;
  }

  /// What makes a gang's specs unfit before their kinds are looked at; none if nothing.
  static error_info gang_problem(const std::vector<task_spec>& specs) {
    if (specs.empty()) return {errc::invalid_params, "a gang needs at least one task"};
    for (size_t i = 0; i < specs.size(); ++i) {
      auto& s = specs[i];
      auto name = graph_task_name(s, i);
      if (!s.after.empty() || !s.inputs.empty())
        return {errc::invalid_params, "task " + name +
                                          " has `after` or `inputs`; a gang's tasks run "
                                          "together, none after another"};
      if (s.preemptible)
        return {errc::invalid_params,
                "task " + name + " is preemptible; a gang runs whole, none of it is stopped"};
    }
    return {};
  }

  /// Why no set of distinct workers in service could ever hold the whole gang at once; none if
  /// one could (the balancer then waits until such workers are free: gang.hpp).
  error_info gang_unplaceable(const std::vector<task_ptr>& tasks) const {
    auto& ws = setup->workers;
    auto now = clock::now();
    auto can = [&](const task_state& t, size_t w) {
      return !gauges->retired(w) && runs(*t.kind, ws[w]) &&
             fit_check.fits_capacity(int32_t(w), t.spec.needs) &&
             setup->reservations.could_ever(w, reservation_of(t.spec), now);
    };
    if (match_gang(tasks.size(), ws.size(), [&](size_t m, size_t w) { return can(*tasks[m], w); }))
      return {};
    size_t usable = 0;
    for (size_t w = 0; w < ws.size(); ++w)
      usable +=
          std::any_of(tasks.begin(), tasks.end(), [&](const task_ptr& t) { return can(*t, w); });
    return {errc::unsatisfiable_resources,
            "a gang of " + std::to_string(tasks.size()) +
                " tasks needs as many distinct workers at once, each able to run its task (and "
                "free of reservations it does not name); " +
                std::to_string(usable) + " of this runtime's " + std::to_string(ws.size()) +
                " workers (" + device_list() + ") can run any of them"};
  }

  size_t cpu_count() const {
    size_t n = 0;
    for (auto& w : setup->workers) n += w.device == device_class::cpu;
    return n;
  }

  std::string device_list() const {
    std::string s = std::to_string(cpu_count()) + " cpu";
    auto gpus = setup->workers.size() - cpu_count();
    if (gpus) s += ", " + std::to_string(gpus) + " cuda";
    return s;
  }

  std::string unsatisfiable(const kind_entry& kind, const resources& n) const {
    std::string s = "task needs " + std::to_string(n.cpu_slots) + " cpu slot(s), " +
                    std::to_string(n.memory_bytes) + " bytes of memory, " +
                    std::to_string(n.gpu_count) + " gpu(s) with " +
                    std::to_string(n.gpu_memory_bytes) + " bytes; workers that run '" +
                    kind.def.name + "':";
    for (size_t i = 0; i < setup->workers.size(); ++i) {
      auto& w = setup->workers[i];
      if (!runs(kind, w)) continue;
      if (gauges->retired(i)) {
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
    for (auto& k : setup->registry->kinds())
      if (auto* e = setup->registry->find(k); e && e->runnable()) s += (s.empty() ? "" : ", ") + k;
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

  submission begin(size_t n, result_callback on_done, bool take_ids = true) {
    submission s;
    if (on_done) s.callback = std::make_shared<const result_callback>(std::move(on_done));
    if (take_ids) s.next_id = admission->take_ids(n);
    s.prepaid = admission->reserve(n);  // 0 if not all fit: then admitted one by one
    return s;
  }

  void end(submission& s) {
    admission->release(s.prepaid);  // places of rejected specs
    admission->count_submitted(s.accepted);
  }

  /// Validates and admits one spec; returns the task record, or a rejected handle.
  /// check_params false: the kind's validate() runs later (a graph task's inputs fill in some).
  std::variant<task_ptr, task_handle> prepare(task_spec&& spec, submission& sub,
                                              bool check_params = true) {
    auto id = sub.next_id++;
    auto now = sub.now;
    auto& last_kind = sub.last_kind;
    if (!admission->accepting()) {
      auto why = admission->refusal();
      return rejected(id, spec, why,
                      why == errc::supervisor_gave_up
                          ? "the runtime stopped accepting tasks: its supervisor gave up"
                          : "the runtime is shutting down");
    }
    // Batches are mostly of one kind: skip the registry's lock for a repeat within one call.
    auto* kind = last_kind && last_kind->def.name == spec.kind ? last_kind
                                                               : setup->registry->find(spec.kind);
    last_kind = kind;
    if (!kind || !kind->runnable())
      return rejected(id, spec, errc::unknown_kind,
                      "unknown task kind '" + spec.kind + "' (known: " + known_kinds() + ")");
    if (!runs_here(*kind))
      return rejected(id, spec, errc::no_implementation,
                      "task kind '" + spec.kind + "' has no implementation for the devices of " +
                          "this runtime (" + device_list() + ")");
    if (auto n = input_bytes(spec); n > setup->cfg.max_payload_bytes)
      return rejected(id, spec, errc::invalid_params,
                      "the task's input (payload and parameters) is " + std::to_string(n) +
                          " bytes, over limits.max_payload_bytes (" +
                          std::to_string(setup->cfg.max_payload_bytes) + ")");
    double cost = 0;
    if (kind->def.validate && check_params) {
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
    if (!setup->reservations.empty()) {
      if (auto why = setup->reservations.refusal(spec, now); !why.empty())
        return rejected(id, spec, errc::invalid_params, why);
      auto name = reservation_of(spec);
      if (!fits_some_worker(*kind, spec.needs, &name) && fits_some_worker(*kind, spec.needs))
        return rejected(id, spec, errc::unsatisfiable_resources,
                        name.empty()
                            ? "the only workers that can run it are held for good by reservations "
                              "it does not name (docs/reservations.md)"
                            : "no worker of reservation '" + name + "' can run it; " +
                                  unsatisfiable(*kind, spec.needs));
    }
    if (!fits_some_worker(*kind, spec.needs))
      return rejected(id, spec, errc::unsatisfiable_resources, unsatisfiable(*kind, spec.needs));
    if (spec.deadline && *spec.deadline <= now)
      return rejected(id, spec, errc::deadline_expired, "the deadline has already passed");
    if (spec.timeout && spec.timeout->count() <= 0)
      return rejected(id, spec, errc::invalid_params,
                      "timeout_ms is " + std::to_string(spec.timeout->count()) +
                          ": it must be at least 1 (leave it out for no timeout)");
    if (sub.prepaid > 0)
      --sub.prepaid;
    else if (!admission->admit_one())
      return rejected(id, spec, errc::queue_full,
                      "queue bound reached: " + std::to_string(cfg().queue_bound) +
                          " tasks admitted and unfinished (queue.bound, overflow = " +
                          (cfg().overflow == overflow_policy::block ? "block" : "reject") + ")");
    auto t = std::allocate_shared<task_state>(pooled<task_state>{});
    t->id = id;
    t->kind = kind;
    t->cost = cost;
    t->max_retries =
        std::min(spec.max_retries.value_or(cfg().max_retries), runtime_config::max_retries_cap);
    t->retry_backoff = spec.retry_backoff.value_or(cfg().retry_backoff);
    t->spec = std::move(spec);
    t->callback = sub.callback;
    t->timings.submitted = now;
    ++sub.accepted;
    return t;
  }

  task_handle track(task_ptr& t) {
    // Aliasing pointer: the handle keeps the task record alive, no extra allocation.
    return task_handle{t->id, std::shared_ptr<const completion>(t, &t->done)};
  }

  /// Idempotency keys. A submit with a key claims it first: if the key names a task, that
  /// task's handle is the answer; if another thread is admitting the same key, it waits for
  /// that (bounded: past block_timeout + 1 s the submit is refused with duplicate_id). The lock
  /// is never held while a spec is validated or admitted.
  enum class key_claim { claimed, known, busy };
  key_claim claim_key(const std::string& key, task_handle& known) {
    std::unique_lock<std::mutex> lock{keys_mutex};
    if (!keys_cv.wait_for(lock, cfg().block_timeout + std::chrono::seconds(1),
                          [&] { return keys_pending.count(key) == 0; }))
      return key_claim::busy;
    if (auto* h = keys.find(key)) {
      known = *h;
      return key_claim::known;
    }
    keys_pending.insert(key);
    return key_claim::claimed;
  }

  /// Ends a claim: remembers the accepted task's handle under the key, for its client (scope:
  /// "" in process), or frees the key (rejected).
  void settle_key(const std::string& key, const task_handle* accepted,
                  const std::string& scope = {}) {
    {
      std::lock_guard<std::mutex> guard{keys_mutex};
      keys_pending.erase(key);
      auto now = clock::now();
      if (accepted) keys.remember(key, scope, *accepted, now);
      // A few entries per call: a task that ended keeps only its result under its key.
      keys.sweep(4, now);
    }
    keys_cv.notify_all();
  }

  task_handle key_busy(task_id id, const task_spec& spec) {
    return rejected(id, spec, errc::duplicate_id,
                    "idempotency key '" + spec.idempotency_key +
                        "': another submit with this key is still being admitted");
  }

  /// submit_batch, with the ids given (one per spec; a head that reserved them, or restores
  /// tasks from its journal) or taken here (ids == nullptr); key_scope: the client whose
  /// idempotency keys these are (a head's client), for its share of the keys.
  std::vector<task_handle> submit_specs(
      std::vector<task_spec>&& specs, result_callback on_done, const std::vector<task_id>* ids,
      const std::string& key_scope = {},
      failure_policy on_failure = failure_policy::cancel_dependents, bool gang = false) {
    if (gang)
      return submit_graph_specs(std::move(specs), std::move(on_done), ids,
                                failure_policy::cancel_graph, true);
    if (has_links(specs))
      return submit_graph_specs(std::move(specs), std::move(on_done), ids, on_failure);
    std::vector<task_handle> handles;
    handles.reserve(specs.size());
    submit_msg msg;
    msg.tasks.reserve(specs.size());
    auto sub = begin(specs.size(), std::move(on_done), ids == nullptr);
    for (size_t i = 0; i < specs.size(); ++i) {
      auto& spec = specs[i];
      if (ids) sub.next_id = (*ids)[i];
      auto key = spec.idempotency_key;
      if (!key.empty()) {  // as in submit(), one spec at a time
        task_handle known;
        auto claim = claim_key(key, known);
        if (claim == key_claim::known) {
          handles.push_back(std::move(known));
          continue;
        }
        if (claim == key_claim::busy) {
          handles.push_back(key_busy(sub.next_id++, spec));
          continue;
        }
      }
      auto r = prepare(std::move(spec), sub);
      if (auto* h = std::get_if<task_handle>(&r)) {
        if (!key.empty()) settle_key(key, nullptr);
        handles.push_back(std::move(*h));
        continue;
      }
      auto& t = std::get<task_ptr>(r);
      handles.push_back(track(t));
      if (!key.empty()) settle_key(key, &handles.back(), key_scope);
      msg.tasks.push_back(std::move(t));
    }
    end(sub);
    if (!msg.tasks.empty()) caf::anon_send(queue, std::move(msg));
    return handles;
  }

  /// A graph: all its tasks are admitted, or none (each then ends rejected, naming the first
  /// problem). Tasks whose parents have not ended wait in the queue (docs/graphs.md). A gang
  /// (docs/reservations.md) is a graph without links whose tasks the balancer places on
  /// distinct workers all at once; one that ends badly ends the others (cancel_graph).
  std::vector<task_handle> submit_graph_specs(std::vector<task_spec>&& specs,
                                              result_callback on_done,
                                              const std::vector<task_id>* ids,
                                              failure_policy on_failure, bool gang = false) {
    auto n = specs.size();
    auto sub = begin(n, std::move(on_done), ids == nullptr);
    auto first_id = sub.next_id;
    auto id_of = [&](size_t i) { return ids ? (*ids)[i] : first_id + i; };
    std::vector<std::string> kinds;  // the specs move into the tasks
    kinds.reserve(n);
    for (auto& s : specs) kinds.push_back(s.kind);
    size_t failed_at = n;  // the task prepare() refused (counted and published there)
    auto refuse_all = [&](const error_info& why) {
      std::vector<task_handle> handles;
      task_spec named;
      for (size_t i = 0; i < n; ++i) {
        named.kind = kinds[i];
        handles.push_back(
            rejected(id_of(i), named, why.code,
                     std::string{gang ? "the gang" : "the graph"} + " was refused: " + why.message,
                     i == failed_at));
      }
      return handles;
    };
    auto why = gang ? gang_problem(specs) : check_links(specs);
    for (size_t i = 0; i < n && !why; ++i)
      if (!specs[i].idempotency_key.empty())
        why = {errc::invalid_params, "task " + graph_task_name(specs[i], i) +
                                         " has an idempotency key; graph tasks cannot (a "
                                         "client's submit token keeps a graph from running twice)"};
    if (why) {
      end(sub);
      return refuse_all(why);
    }
    std::vector<task_ptr> accepted;
    accepted.reserve(n);
    std::vector<task_handle> handles;
    handles.reserve(n);
    for (size_t i = 0; i < n && !why; ++i) {
      sub.next_id = id_of(i);
      auto name = graph_task_name(specs[i], i);
      // Parameters that inputs fill in are checked when the task is released (queue.cpp).
      bool check_params = specs[i].inputs.empty();
      auto r = prepare(std::move(specs[i]), sub, check_params);
      if (auto* h = std::get_if<task_handle>(&r)) {
        why = {h->get().error.code, "task " + name + ": " + h->get().error.message};
        failed_at = i;
        break;
      }
      accepted.push_back(std::move(std::get<task_ptr>(r)));
    }
    if (!why && gang) why = gang_unplaceable(accepted);
    if (why) {  // all or nothing: places of the accepted back, every task rejected
      admission->release(accepted.size());
      sub.accepted -= accepted.size();
      end(sub);
      return refuse_all(why);
    }
    end(sub);
    auto g = std::make_shared<graph_run>();
    g->on_failure = on_failure;
    g->children.resize(n);
    g->waiting.resize(n);
    g->unfinished = n;
    for (uint32_t i = 0; i < n; ++i) {
      auto parents = parents_of(accepted[i]->spec);
      g->waiting[i] = uint32_t(parents.size());
      for (auto p : parents) g->children[p].push_back(i);
      for (auto& in : accepted[i]->spec.inputs)
        if (in.from < n) accepted[in.from]->feeds_inputs = true;
      accepted[i]->graph = g;
      accepted[i]->graph_index = i;
      if (gang) {  // runs once, whole: a retried member would run alone
        accepted[i]->gang = accepted.front()->id;
        accepted[i]->gang_size = uint32_t(n);
        accepted[i]->max_retries = 0;
      }
      handles.push_back(track(accepted[i]));
    }
    g->members = accepted;
    submit_msg msg;
    msg.tasks = std::move(accepted);
    caf::anon_send(queue, std::move(msg));
    return handles;
  }

  void stop(shutdown_mode mode) {
    std::lock_guard<std::mutex> guard{stop_mutex};
    if (stopped) return;
    stopped = true;
    admission->stop_accepting(errc::shutting_down);
    if (mode == shutdown_mode::cancel)
      caf::anon_send(queue, cancel_all_msg{errc::cancelled, "cancelled by shutdown"});
    while (!admission->wait_idle(std::chrono::seconds(10)))
      troupe::logger().info("troupe: shutdown waits for {} unfinished task(s)",
                            admission->in_system());
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

}  // namespace troupe
