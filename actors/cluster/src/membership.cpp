#include "troupe/actors/cluster/membership.hpp"

#include <caf/all.hpp>
#include <unordered_set>

#include "troupe/model/frame_split.hpp"
#include "troupe/model/log.hpp"
#include "troupe/model/preemption.hpp"
#include "troupe/transport/framer.hpp"

namespace troupe {

namespace {

using self_ptr = membership_actor::stateful_pointer<membership_state>;
using hello_verdict = node_liveness::hello_verdict;
using message_verdict = node_liveness::message_verdict;
using transition = node_liveness::transition;

/// Stands in the balancer's worker table for one worker of a node process.
worker_actor::behavior_type remote_worker_impl(worker_actor::pointer self, int32_t index,
                                               uint32_t generation, membership_actor membership) {
  return {
      [=](assign_msg& msg) {
        self->send(membership, remote_assign_msg{index, generation, std::move(msg.tasks)});
      },
      [](const heartbeat_tick_msg&) {},
      [](const batch_flush_msg&) {},
      [](const gpu_done_msg&) {},
      [](const runner_msg&) {},
  };
}

void send_error(self_ptr self, const std::string& peer, uint64_t corr, wire::wire_errc code,
                const std::string& message) {
  auto& st = self->state;
  st.send(st.framer->make(&peer, wire::msg_type::error, wire::error{code, message}, corr));
}

int32_t node_index(const membership_state& st, const std::string& name) {
  for (size_t i = 0; i < st.nodes.size(); ++i)
    if (st.nodes[i].cfg->name == name) return int32_t(i);
  return -1;
}

/// A remote attempt is over for the head (reported, or reclaimed): it no longer shows running,
/// so the balancer does not pick it to make way, and a request to make way ends with it.
void attempt_over(membership_state::node_view& node, task_id id, const assignment& a) {
  a.task->preempt_requested.store(false, std::memory_order_relaxed);
  if (node.preemptible_running.erase(id)) stopped_running(*a.task, a.attempt);
}

/// Asks the node to stop the running preemptible attempts the balancer picked to make way for
/// a more urgent task (it set their preempt_requested as it placed that task): one cancel frame
/// with `preempt`, each attempt asked once.
void ask_to_make_way(self_ptr self, membership_state::node_view& node) {
  auto& st = self->state;
  wire::cancel out;
  out.preempt = true;
  std::vector<membership_state::node_view::placed*> asked;
  for (auto id : node.preemptible_running) {
    auto i = node.in_flight.find(id);
    if (i == node.in_flight.end() || i->second.asked_to_make_way ||
        !i->second.a.task->preempt_requested.load(std::memory_order_relaxed))
      continue;
    asked.push_back(&i->second);
    out.ids.push_back(id);
  }
  // Not sent (the outbound queue is full): asked again at the next heartbeat.
  if (!out.ids.empty() && st.send(st.framer->make(&node.peer, wire::msg_type::cancel, out)))
    for (auto* p : asked) p->asked_to_make_way = true;
}

/// A more urgent task placed on a node's worker before the head saw what runs there (the
/// heartbeat comes later than the start) waits behind a preemptible attempt: once it is seen
/// running, the task that runs next on that worker asks it to make way, as the balancer would
/// have as it placed the task.
void catch_up_preemption(const membership_state& st, const membership_state::node_view& node) {
  auto order = st.setup->cfg.order;
  if (!preempts_by(order) || node.preemptible_running.empty()) return;
  struct lane {
    const assignment* next = nullptr;  ///< the waiting task that runs next there
    std::vector<const assignment*> running;
  };
  std::unordered_map<int32_t, lane> lanes;
  for (auto& [id, p] : node.in_flight) {
    auto& l = lanes[p.worker];
    if (node.preemptible_running.count(id))
      l.running.push_back(&p.a);
    else if (!p.a.task->cancel_requested.load(std::memory_order_relaxed) &&
             (!l.next || p.a.order < l.next->order))
      l.next = &p.a;  // a cancelled task will not run: it asks nothing
  }
  for (auto& [w, l] : lanes) {
    if (!l.next || l.running.empty()) continue;
    auto victim = preemption_victim(
        l.running.size(),
        [&](size_t i) {
          return held_attempt_of(*l.running[i]->task, l.running[i]->order, true, order);
        },
        preemption_rank(l.next->task->spec, order), l.next->order, st.setup->cfg.max_preemptions);
    if (victim) l.running[*victim]->task->preempt_requested.store(true, std::memory_order_relaxed);
  }
}

/// What the node's heartbeat says runs now, preemptible: shown running on the head's task_state
/// (as a local CPU worker shows it), the rest no longer; then the requests to make way that
/// wait for it go out.
void note_running(self_ptr self, membership_state::node_view& node, const wire::heartbeat& hb) {
  auto& st = self->state;
  std::unordered_set<task_id> running;
  for (auto id : hb.preemptible_running) {
    auto i = node.in_flight.find(id);
    if (i == node.in_flight.end() || !i->second.a.task->spec.preemptible ||
        st.setup->workers[size_t(i->second.worker)].device != device_class::cpu)
      continue;  // a GPU kernel cannot be stopped, whatever a node says
    running.insert(id);
    auto& t = *i->second.a.task;
    // Newly seen running: a request to make way left from an earlier attempt of the same
    // number (the balancer may set it as that one ended) is not this one's.
    if (!node.preemptible_running.count(id) && !i->second.asked_to_make_way)
      t.preempt_requested.store(false, std::memory_order_relaxed);
    t.running_attempt.store(i->second.a.attempt, std::memory_order_relaxed);
  }
  for (auto id : node.preemptible_running) {
    if (running.count(id)) continue;
    if (auto i = node.in_flight.find(id); i != node.in_flight.end())
      stopped_running(*i->second.a.task, i->second.a.attempt);
  }
  node.preemptible_running.swap(running);
  catch_up_preemption(self->state, node);
  ask_to_make_way(self, node);
}

/// The node's workers are gone (node dead, left, or back with a new epoch): the balancer gets
/// their tasks back and releases their reservations. The node's liveness says which.
void node_lost(self_ptr self, size_t n, const std::string& reason) {
  auto& st = self->state;
  auto& node = st.nodes[n];
  auto now = clock::now();
  event_batch events{*st.gate};
  // Before the balancer gets the tasks back: one placed again elsewhere must not be marked
  // over by this afterwards.
  for (auto& [id, p] : node.in_flight) attempt_over(node, id, p.a);
  for (auto w : node.workers) {
    auto& slot = st.slots[size_t(w)];
    if (!slot.up) continue;
    slot.up = false;
    slot.assigned = 0;
    self->send(st.balancer, worker_lost_msg{w, slot.generation, 0, reason, now, false, {}});
    self->send(st.monitor, worker_state_msg{w, "down", slot.restarts, slot.generation});
    if (slot.proxy) self->send_exit(slot.proxy, caf::exit_reason::user_shutdown);
    slot.proxy = nullptr;
    events.add("worker.down", 0, w, reason);
  }
  node.in_flight.clear();
  events.add("node.left", 0, -1, reason, node.cfg->name);
  events.flush(self, st.bus);
}

void bring_up(self_ptr self, int32_t w) {
  auto& st = self->state;
  auto& slot = st.slots[size_t(w)];
  ++slot.generation;
  slot.up = true;
  slot.proxy =
      self->spawn(remote_worker_impl, w, slot.generation, caf::actor_cast<membership_actor>(self));
  self->send(st.balancer, worker_up_msg{w, slot.generation, slot.proxy, slot.capacity, slot.kinds});
  self->send(st.monitor, worker_state_msg{w, "up", slot.restarts, slot.generation});
  event_batch events{*st.gate};
  events.add("worker.up", 0, w, st.setup->workers[size_t(w)].name,
             st.setup->workers[size_t(w)].node);
  events.flush(self, st.bus);
}

/// A node's GPU workers' memory, as its heartbeat reports it, into the head's gauges (stats).
void show_gpu_memory(membership_state& st, const membership_state::node_view& node,
                     const std::vector<wire::gpu_memory_report>& gpus) {
  for (auto& r : gpus) {
    if (r.worker < 0 || size_t(r.worker) >= node.workers.size()) continue;
    auto w = size_t(node.workers[size_t(r.worker)]);
    if (st.setup->workers[w].device != device_class::cuda) continue;
    auto& g = st.gauges->gpu(w);
    g.task_bytes.store(r.in_use, std::memory_order_relaxed);
    g.cache_bytes.store(r.cache, std::memory_order_relaxed);
    g.device_used.store(r.device_used, std::memory_order_relaxed);
    g.device_total.store(r.device_total, std::memory_order_relaxed);
    // The gauge holds a static string: only the known sources are kept.
    g.device_source.store(r.device_source == "nvml"   ? "nvml"
                          : r.device_source == "cuda" ? "cuda"
                                                      : "",
                          std::memory_order_relaxed);
  }
}

/// The kinds of a node's hello, each with the device classes the node runs it on.
using node_kinds = std::vector<std::pair<const kind_entry*, uint8_t>>;

/// The kinds of a node's hello into the head's registry (a kind only nodes have gets an entry
/// without implementation), and for each of its workers the set it runs on its device class.
/// Whether any worker's set changed. The entries do not say yet that a node runs them
/// (announce_kinds does, once the balancer has the workers' sets): a task admitted in between
/// could reach the balancer before the sets and fail.
bool learn_kinds(membership_state& st, const membership_state::node_view& node,
                 const wire::hello& hello, node_kinds& kinds) {
  uint8_t node_devices = 0;  // an older node says no devices per kind: all of its workers'
  for (auto w : node.workers) node_devices |= device_bit(st.setup->workers[size_t(w)].device);
  for (auto& name : hello.kinds) {
    if (name.empty()) continue;
    uint8_t devices = 0;
    if (auto i = hello.kind_devices.find(name); i != hello.kind_devices.end()) {
      for (auto d : i->second) devices |= device_bit(d);
    } else {
      devices = node_devices;
    }
    kinds.emplace_back(st.setup->registry->add_remote(name, 0), devices);
  }
  auto size = st.setup->registry->size();
  bool changed = false;
  for (auto w : node.workers) {
    auto bit = device_bit(st.setup->workers[size_t(w)].device);
    auto set = std::make_shared<std::vector<bool>>(size, false);
    for (auto& [entry, devices] : kinds)
      if (devices & bit) (*set)[entry->index] = true;
    auto& slot = st.slots[size_t(w)];
    if (!slot.kinds || *slot.kinds != *set) changed = true;
    slot.kinds = std::move(set);
  }
  return changed;
}

/// After the workers' sets went to the balancer: admission may now accept the kinds.
void announce_kinds(membership_state& st, const node_kinds& kinds) {
  for (auto& [entry, devices] : kinds) st.setup->registry->add_remote(entry->def.name, devices);
}

void on_hello(self_ptr self, node_hello_msg& msg);

/// The contended node's old connection is gone or silent: the newcomer's hello is taken.
void take_over(self_ptr self, membership_state::node_view& node) {
  auto held = std::move(node.contended->hello);
  node.contended.reset();
  node.peer_gone = true;
  on_hello(self, held);
}

/// The old connection of a contended node is alive: the newcomer is a second process.
void refuse_contender(self_ptr self, membership_state::node_view& node) {
  auto held = std::move(node.contended->hello);
  node.contended.reset();
  auto age = std::chrono::duration_cast<std::chrono::milliseconds>(self->clock().now() -
                                                                   node.liveness.last_heard());
  auto why = "node '" + node.cfg->name + "' is alive on another connection (epoch " +
             std::to_string(node.liveness.epoch()) + ", heard " + std::to_string(age.count()) +
             " ms ago): a second process with this name is refused; stop one of them";
  troupe::logger().error("membership: {}", why);
  send_error(self, held.peer, held.corr, wire::wire_errc::name_taken, why);
}

void on_hello(self_ptr self, node_hello_msg& msg) {
  auto& st = self->state;
  auto& hello = msg.body;
  auto n = node_index(st, hello.node);
  if (n < 0) {
    std::string known;
    for (auto& x : st.nodes) known += (known.empty() ? "" : ", ") + x.cfg->name;
    troupe::logger().warn("membership: hello from unknown node '{}'", hello.node);
    return send_error(self, msg.peer, msg.corr, wire::wire_errc::unknown_node,
                      "the cluster file names no node '" + hello.node + "' (nodes: " + known + ")");
  }
  auto& node = st.nodes[size_t(n)];
  // The head laid out the node's workers from the cluster file; the node must bring the same.
  bool same = hello.workers.size() == node.workers.size();
  for (size_t i = 0; same && i < hello.workers.size(); ++i)
    same = hello.workers[i].device == st.setup->workers[size_t(node.workers[i])].device;
  if (!same) {
    std::string expected;
    for (auto w : node.workers) expected += " " + st.setup->workers[size_t(w)].name;
    troupe::logger().error("membership: node '{}' brings {} workers, the cluster file says{}",
                           hello.node, hello.workers.size(), expected);
    return send_error(self, msg.peer, msg.corr, wire::wire_errc::layout_mismatch,
                      "node '" + hello.node + "' brings " + std::to_string(hello.workers.size()) +
                          " workers, the cluster file lays out:" + expected);
  }
  // Frames to and from the node must fit both ends' limits: they derive from the same key.
  if (hello.max_payload_bytes && hello.max_payload_bytes != st.setup->cfg.max_payload_bytes) {
    auto why = "node '" + hello.node +
               "' has limits.max_payload_bytes = " + std::to_string(hello.max_payload_bytes) +
               ", the head " + std::to_string(st.setup->cfg.max_payload_bytes) +
               " (use one cluster file)";
    troupe::logger().error("membership: {}", why);
    return send_error(self, msg.peer, msg.corr, wire::wire_errc::layout_mismatch, why);
  }
  bool was_live = node.liveness.live();
  auto joined_epoch = node.liveness.epoch();
  if (was_live && msg.peer != node.peer && msg.epoch > joined_epoch && !node.peer_gone) {
    // Another connection claims a node that is alive here. Ask the old connection (a heartbeat):
    // closed, the socket says so at once (peer_gone_msg) and the newcomer takes over; alive, it
    // answers with its own heartbeat and the newcomer is refused.
    if (!node.contended || node.contended->hello.peer != msg.peer) {
      troupe::logger().warn(
          "membership: node '{}' says hello from another connection (epoch {}); "
          "checking whether its joined connection (epoch {}) is still alive",
          hello.node, msg.epoch, joined_epoch);
      node.contended = membership_state::node_view::contender{msg, self->clock().now()};
      wire::heartbeat probe;
      if (node.last_assign) probe.last_assign = node.last_assign;
      st.send(st.framer->make(&node.peer, wire::msg_type::heartbeat, probe));
    }
    return;
  }
  auto verdict = node.liveness.on_hello(msg.epoch, self->clock().now());
  if (verdict == hello_verdict::stale) {
    ++st.stale_frames;
    return send_error(self, msg.peer, msg.corr, wire::wire_errc::stale_epoch,
                      "epoch " + std::to_string(msg.epoch) +
                          (was_live ? " is older than the joined " + std::to_string(joined_epoch)
                                    : std::string{" was declared dead; rejoin with a new one"}));
  }
  if (verdict == hello_verdict::replace)
    node_lost(self, size_t(n), "node rejoined with a new epoch");
  bool fresh = verdict != hello_verdict::welcome_again;
  node.peer = msg.peer;
  node.peer_gone = false;
  node.contended.reset();
  for (size_t i = 0; i < node.workers.size(); ++i)
    st.slots[size_t(node.workers[i])].capacity = hello.workers[i].capacity;
  node.gpus = hello.gpus;
  node.gpu_note = hello.gpu_note;
  node.data_endpoint = hello.data_endpoint;
  node_kinds kinds;
  bool kinds_changed = learn_kinds(st, node, hello, kinds);
  if (!fresh && kinds_changed) {
    // The node added kinds while joined: its workers place them from now on.
    troupe::logger().info("membership: node '{}' now runs {} kind(s)", hello.node,
                          hello.kinds.size());
    for (auto w : node.workers) {
      auto& slot = st.slots[size_t(w)];
      if (slot.up)
        self->send(st.balancer,
                   worker_up_msg{w, slot.generation, slot.proxy, slot.capacity, slot.kinds});
    }
  }
  if (fresh)
    for (auto w : node.workers) bring_up(self, w);
  announce_kinds(st, kinds);  // after the workers' sets went to the balancer
  if (fresh) {
    troupe::logger().info("membership: node '{}' joined (epoch {}, {} workers, join #{})",
                          hello.node, msg.epoch, node.workers.size(), node.liveness.joins());
    event_batch events{*st.gate};
    events.add("node.joined", 0, -1, "epoch " + std::to_string(msg.epoch), hello.node);
    events.flush(self, st.bus);
  }
  wire::welcome w{hello.node, msg.epoch, uint32_t(st.setup->cfg.cluster.heartbeat_interval.count()),
                  uint32_t(node.workers.front())};
  for (auto& [name, key] : st.setup->node_keys) w.data_peers.push_back({name, key});
  st.send(st.framer->make(&msg.peer, wire::msg_type::welcome, w, msg.corr));
}

/// The node, if the message comes from its current incarnation; else refuses it (fencing).
membership_state::node_view* current(self_ptr self, const std::string& peer,
                                     const std::string& name, uint64_t epoch) {
  auto& st = self->state;
  auto n = node_index(st, name);
  if (n < 0) {
    send_error(self, peer, 0, wire::wire_errc::unknown_node, "no node '" + name + "'");
    return nullptr;
  }
  auto& node = st.nodes[size_t(n)];
  auto verdict = node.liveness.on_message(epoch, self->clock().now());
  if (verdict == message_verdict::stale_epoch || verdict == message_verdict::not_joined) {
    bool live = verdict == message_verdict::stale_epoch;
    ++st.stale_frames;
    send_error(self, peer, 0, live ? wire::wire_errc::stale_epoch : wire::wire_errc::not_joined,
               "node '" + name + "' epoch " + std::to_string(epoch) +
                   (live ? " is not the joined epoch " + std::to_string(node.liveness.epoch())
                         : std::string{" has not joined (say hello)"}));
    return nullptr;
  }
  if (verdict == message_verdict::recovered)
    troupe::logger().info("membership: node '{}' is heard again", name);
  return &node;
}

void on_results(self_ptr self, node_results_msg& msg) {
  auto& st = self->state;
  auto* node = current(self, msg.peer, msg.node, msg.epoch);
  if (!node) return;
  auto now = clock::now();
  // One results message per worker, as a local worker would send.
  std::unordered_map<int32_t, std::vector<attempt_record>> by_worker;
  std::unordered_map<int32_t, int64_t> busy;
  // A node's worker starts a task without telling the head (one message fewer per task): its
  // task.started is published when the result arrives, dated when it started, before the
  // terminal event the result leads to.
  event_batch started{*st.gate};
  for (auto& r : msg.body.records) {
    auto i = node->in_flight.find(r.id);
    if (i == node->in_flight.end() || i->second.a.attempt != r.attempt)
      continue;  // reclaimed meanwhile, or a duplicate: the queue has what it needs
    if (r.worker < 0 || size_t(r.worker) >= node->workers.size()) {
      troupe::logger().warn("membership: node '{}' reports task {} on worker {} it does not have",
                            msg.node, r.id, r.worker);
      continue;
    }
    auto w = node->workers[size_t(r.worker)];
    auto& slot = st.slots[size_t(w)];
    if (slot.assigned > 0) --slot.assigned;
    attempt_over(*node, r.id, i->second.a);
    // Started: the node bound what the assign left out. Handed back unstarted: it may no longer
    // keep those outputs, so they go whole from now on.
    if (r.counts_as_attempt) {
      node->kept_inputs += i->second.left_out;
      node->kept_input_bytes += i->second.left_out_bytes;
      node->fetched_inputs += i->second.fetched;
      node->fetched_input_bytes += i->second.fetched_bytes;
    } else if (i->second.left_out > 0) {
      i->second.a.task->inputs_inline = true;
    }
    attempt_record rec;
    rec.task = std::move(i->second.a.task);
    rec.attempt = r.attempt;
    rec.worker = w;
    rec.code = r.code;
    rec.message = std::move(r.message);
    rec.output = std::move(r.output);
    rec.finished = now;
    rec.started = r.counts_as_attempt
                      ? now - std::chrono::nanoseconds(std::max<int64_t>(0, r.run_ns))
                      : time_point{};
    rec.counts_as_attempt = r.counts_as_attempt;
    rec.node_epoch = msg.epoch;
    if (r.counts_as_attempt) {
      if (auto* e = started.add_task("task.started", *rec.task, w, rec.task->spec.kind)) {
        e->node = msg.node;
        e->time_ns -= std::max<int64_t>(0, r.run_ns);
      }
    }
    node->in_flight.erase(i);
    busy[w] += r.run_ns;
    by_worker[w].push_back(std::move(rec));
  }
  started.flush(self, st.bus);
  for (auto& [w, records] : by_worker) {
    auto& slot = st.slots[size_t(w)];
    auto n = records.size();
    self->send(st.balancer, results_msg{w, slot.generation, std::move(records)});
    self->send(st.monitor, work_report_msg{w, slot.generation, n, busy[w], slot.assigned > 0});
  }
}

void on_worker_state(self_ptr self, node_worker_msg& msg) {
  auto& st = self->state;
  auto* node = current(self, msg.peer, msg.node, msg.epoch);
  if (!node) return;
  auto& b = msg.body;
  if (b.worker < 0 || size_t(b.worker) >= node->workers.size()) return;
  auto w = node->workers[size_t(b.worker)];
  auto& slot = st.slots[size_t(w)];
  event_batch events{*st.gate};
  if (b.up) {
    if (slot.up) return;
    ++slot.restarts;
    bring_up(self, w);
  } else {
    if (!slot.up) return;
    slot.up = false;
    slot.assigned = 0;
    // The balancer reclaims this worker's tasks; forget them here so late results are ignored.
    for (auto i = node->in_flight.begin(); i != node->in_flight.end();) {
      if (i->second.worker != w) {
        ++i;
        continue;
      }
      attempt_over(*node, i->first, i->second.a);
      i = node->in_flight.erase(i);
    }
    // A node whose GPU worker retired (poisoned context) exits and is started again with a
    // fresh context: for the head, the worker is restarting, not gone for good.
    self->send(
        st.balancer,
        worker_lost_msg{w, slot.generation, b.crashed_task, b.reason, clock::now(), false, {}});
    self->send(st.monitor, worker_state_msg{w, "restarting", slot.restarts, slot.generation});
    if (slot.proxy) self->send_exit(slot.proxy, caf::exit_reason::user_shutdown);
    slot.proxy = nullptr;
    events.add("worker.down", b.crashed_task, w, b.reason);
  }
  events.flush(self, st.bus);
}

/// Tasks placed on the node that will not be reported: the balancer gets them back as
/// worker_lost records (charged an attempt or not), one results message per worker.
void give_back(self_ptr self, membership_state::node_view& node, const std::vector<task_id>& ids,
               const std::string& why, bool counts_as_attempt) {
  auto& st = self->state;
  std::unordered_map<int32_t, std::vector<attempt_record>> by_worker;
  for (auto id : ids) {
    auto i = node.in_flight.find(id);
    if (i == node.in_flight.end()) continue;
    auto w = i->second.worker;
    auto& slot = st.slots[size_t(w)];
    if (slot.assigned > 0) --slot.assigned;
    attempt_over(node, id, i->second.a);
    attempt_record rec;
    rec.task = std::move(i->second.a.task);
    rec.attempt = i->second.a.attempt;
    rec.worker = w;
    rec.code = errc::worker_lost;
    rec.message = why;
    rec.counts_as_attempt = counts_as_attempt;
    by_worker[w].push_back(std::move(rec));
    node.in_flight.erase(i);
  }
  for (auto& [w, records] : by_worker)
    self->send(st.balancer, results_msg{w, st.slots[size_t(w)].generation, std::move(records)});
}

/// A task the head placed on the node that the node neither holds nor reported, although it has
/// taken in the assign that carried it (or a later one, or a head heartbeat sent after it: the
/// connection keeps order), is lost: a dropped frame, a task the node could not even name, a
/// results message that never arrived. It is charged an attempt (so that a task that is always
/// lost ends) and placed again by its retry policy. A frame still on its way is not lost however
/// long it takes (a large payload on a slow link): nothing after it has arrived either.
void find_lost(self_ptr self, membership_state::node_view& node, const wire::heartbeat& hb) {
  if (!hb.last_assign || node.in_flight.empty()) return;  // a node that does not say
  std::unordered_set<task_id> holding(hb.holding.begin(), hb.holding.end());
  std::vector<task_id> lost;
  for (auto& [id, p] : node.in_flight)
    if (p.frame <= *hb.last_assign && !holding.count(id)) lost.push_back(id);
  if (lost.empty()) return;
  troupe::logger().warn(
      "membership: node '{}' neither holds nor reported {} task(s) placed on it "
      "(first: {}); they are placed again",
      node.cfg->name, lost.size(), lost.front());
  give_back(self, node, lost,
            "node '" + node.cfg->name +
                "' never reported the task (an assign or results message "
                "was lost)",
            true);
}

/// The live node, other than `receiver`, that keeps the outputs of tasks that worker `producer`
/// ran and serves them on a data socket; null if none does.
const membership_state::node_view* serving_peer(const membership_state& st,
                                                const membership_state::node_view& receiver,
                                                int32_t producer) {
  if (st.setup->cfg.cluster.kept_output_bytes == 0 || producer < 0 ||
      size_t(producer) >= st.setup->workers.size())
    return nullptr;
  auto& name = st.setup->workers[size_t(producer)].node;
  if (name.empty() || name == receiver.cfg->name) return nullptr;
  auto n = node_index(st, name);
  if (n < 0) return nullptr;
  auto& peer = st.nodes[size_t(n)];
  if (!peer.liveness.live() || peer.data_endpoint.empty()) return nullptr;
  // A loopback or ipc:// endpoint reaches only the peer's own machine: a receiver that reaches
  // the head elsewhere (its own `head` address) is on another one.
  auto& cluster = st.setup->cfg.cluster;
  auto& receiver_head =
      receiver.cfg->head_endpoint.empty() ? cluster.head_endpoint : receiver.cfg->head_endpoint;
  if (local_only(peer.data_endpoint) && !local_only(receiver_head)) return nullptr;
  return &peer;
}

/// The task as the node gets it: inputs whose values come from outputs this node keeps, or that
/// another node keeps and serves, are left out of the spec and named instead (the node binds or
/// fetches them; docs/graphs.md). Their bytes go to `saved`; those fetched, to `fetched`.
wire::assigned_task assigned(const membership_state& st, const membership_state::node_view& node,
                             const assignment& a, int32_t local, uint64_t& saved, uint32_t& fetched,
                             uint64_t& fetched_bytes) {
  saved = 0;
  fetched = 0;
  fetched_bytes = 0;
  auto& t = *a.task;
  wire::assigned_task out{t.id, a.attempt, local, {}, a.order};
  out.keep_output = st.setup->cfg.cluster.kept_output_bytes > 0 && t.feeds_inputs;
  bool payload_kept = false;
  if (!t.inputs_inline)
    for (auto& h : t.input_homes) {
      if (h.input >= t.spec.inputs.size()) continue;
      wire::kept_input k{h.input, h.parent};
      if (st.setup->node_keeps(node.cfg->name, h.worker)) {
        // The node restarted since it ran the parent: it keeps nothing of that run.
        if (node.liveness.epoch() != h.epoch) continue;
      } else {
        auto* peer = serving_peer(st, node, h.worker);
        if (!peer || peer->liveness.epoch() != h.epoch) continue;
        k.node = peer->cfg->name;
        k.endpoint = peer->data_endpoint;
        k.epoch = h.epoch;
        ++fetched;
        fetched_bytes += h.bytes;
      }
      payload_kept = payload_kept || t.spec.inputs[h.input].param == "payload";
      out.kept_inputs.push_back(std::move(k));
      saved += h.bytes;
    }
  out.spec = t.spec;  // shares the payload's bytes
  if (payload_kept) out.spec.payload.clear();
  for (auto& k : out.kept_inputs)
    if (auto& param = t.spec.inputs[k.input].param; param != "payload")
      out.spec.params.erase(param);
  return out;
}

void on_assign(self_ptr self, remote_assign_msg& msg) {
  auto& st = self->state;
  auto& slot = st.slots.at(size_t(msg.worker));
  // A proxy of an earlier generation: the balancer has already taken these tasks back.
  if (!slot.up || slot.generation != msg.generation) return;
  auto& node = st.nodes[size_t(slot.node)];
  auto local = st.setup->workers[size_t(msg.worker)].node_worker;
  slot.assigned += msg.tasks.size();
  // The monitor shows the worker busy while the node holds tasks of it.
  self->send(st.monitor, work_report_msg{msg.worker, msg.generation, 0, 0, true});
  // Frames of at most limits.max_payload_bytes of inputs: within the node's frame limit.
  auto budget = st.setup->cfg.max_payload_bytes;
  size_t first = 0;
  while (first < msg.tasks.size()) {
    auto end = frame_end(first, msg.tasks.size(), SIZE_MAX, budget,
                         [&](size_t i) { return input_bytes(msg.tasks[i].task->spec); });
    wire::assign out;
    auto frame = st.framer->reserve_id();
    for (size_t i = first; i < end; ++i) {
      auto& a = msg.tasks[i];
      uint64_t left_out_bytes = 0, fetched_bytes = 0;
      uint32_t fetched = 0;
      out.tasks.push_back(assigned(st, node, a, local, left_out_bytes, fetched, fetched_bytes));
      node.in_flight[a.task->id] = {a,
                                    msg.worker,
                                    frame,
                                    false,
                                    uint32_t(out.tasks.back().kept_inputs.size()),
                                    left_out_bytes,
                                    fetched,
                                    fetched_bytes};
    }
    node.last_assign = frame;
    if (!st.send(st.framer->make_with_id(node.peer, frame, wire::msg_type::assign, out))) {
      // The socket's queue is full: give the tasks back unstarted rather than lose them.
      std::vector<task_id> ids;
      for (size_t i = first; i < end; ++i) ids.push_back(msg.tasks[i].task->id);
      give_back(self, node, ids,
                "the head's outbound queue to node '" + node.cfg->name + "' is full", false);
    }
    first = end;
  }
  // The balancer picks what makes way for these as it places them: ask at once.
  if (!node.preemptible_running.empty()) ask_to_make_way(self, node);
}

void on_tick(self_ptr self) {
  auto& st = self->state;
  auto& cc = st.setup->cfg.cluster;
  auto now = self->clock().now();
  for (size_t n = 0; n < st.nodes.size(); ++n) {
    auto& node = st.nodes[n];
    if (node.contended && now - node.contended->since >= 2 * cc.heartbeat_interval &&
        now - node.liveness.last_heard() >= 2 * cc.heartbeat_interval) {
      troupe::logger().info(
          "membership: node '{}': its joined connection is silent; the new "
          "process takes over",
          node.cfg->name);
      take_over(self, node);
    }
    auto silent = now - node.liveness.last_heard();
    auto change = node.liveness.tick(now, cc.suspect_after, cc.dead_after);
    if (change == transition::became_dead) {
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(silent).count();
      troupe::logger().warn("membership: node '{}' silent for {} ms: dead, its tasks go elsewhere",
                            node.cfg->name, ms);
      node_lost(self, n, "node silent for " + std::to_string(ms) + " ms");
      continue;
    }
    if (!node.liveness.live()) continue;
    if (change == transition::became_suspect) {
      troupe::logger().warn("membership: node '{}' is suspect", node.cfg->name);
      event_batch events{*st.gate};
      events.add("node.suspect", 0, -1, "silent", node.cfg->name);
      events.flush(self, st.bus);
    }
    // It names the last assign sent before it: the node, having it, has all of those.
    wire::heartbeat hb;
    if (node.last_assign) hb.last_assign = node.last_assign;
    st.send(st.framer->make(&node.peer, wire::msg_type::heartbeat, hb));
  }
  self->delayed_send(self, cc.heartbeat_interval, membership_tick_msg{});
}

void on_status(self_ptr self, const status_query_msg& q) {
  auto& st = self->state;
  self->request(st.monitor, std::chrono::seconds(5), stats_request{})
      .then(
          [=](runtime_stats& stats) {
            auto& st = self->state;
            wire::status s;
            s.stats = std::move(stats);
            s.stats.submitted = st.admission->submitted();
            s.stats.rejected = st.admission->rejected();
            auto in_system = st.admission->in_system();
            s.stats.queued = std::min<uint64_t>(s.stats.queued, in_system);
            s.stats.in_flight = in_system - s.stats.queued;
            for (auto& w : st.setup->workers) s.worker_nodes.push_back(w.node);
            s.frames_refused = q.frames_refused;
            s.events_endpoint = q.events_endpoint;
            s.last_event_seq = q.last_event_seq;
            s.stale_frames = st.stale_frames;
            auto now = self->clock().now();
            for (auto& node : st.nodes) {
              wire::node_status ns;
              ns.name = node.cfg->name;
              ns.state = to_string(node.liveness.current());
              ns.epoch = node.liveness.epoch();
              ns.joins = node.liveness.joins();
              ns.heartbeat_age_ms =
                  node.liveness.last_heard() == time_point{}
                      ? -1
                      : std::chrono::duration<double, std::milli>(now - node.liveness.last_heard())
                            .count();
              ns.workers = node.workers;
              ns.gpus = node.gpus;
              ns.gpu_note = node.gpu_note;
              ns.kept_inputs = node.kept_inputs;
              ns.kept_input_bytes = node.kept_input_bytes;
              ns.fetched_inputs = node.fetched_inputs;
              ns.fetched_input_bytes = node.fetched_input_bytes;
              ns.preemptible_running = uint32_t(node.preemptible_running.size());
              s.nodes.push_back(std::move(ns));
            }
            st.send(st.framer->make(&q.peer, wire::msg_type::status, s, q.corr));
          },
          [=](caf::error& e) {
            send_error(self, q.peer, q.corr, wire::wire_errc::overloaded,
                       "the monitor did not answer: " + caf::to_string(e));
          });
}

}  // namespace

membership_actor::behavior_type membership_impl(
    membership_actor::stateful_pointer<membership_state> self, setup_ptr setup,
    std::shared_ptr<const event_gate> gate, std::shared_ptr<worker_gauges> gauges,
    std::shared_ptr<const admission_gate> admission, balancer_actor balancer, monitor_actor monitor,
    event_bus_actor bus, transport::frame_sender send, wire::framer* framer) {
  auto& st = self->state;
  st.setup = setup;
  st.gate = std::move(gate);
  st.gauges = std::move(gauges);
  st.admission = std::move(admission);
  st.balancer = std::move(balancer);
  st.monitor = std::move(monitor);
  st.bus = std::move(bus);
  st.send = std::move(send);
  st.framer = framer;
  st.slots.resize(setup->workers.size());
  for (auto& n : setup->cfg.cluster.nodes) {
    membership_state::node_view v;
    v.cfg = &n;
    st.nodes.push_back(std::move(v));
  }
  for (size_t w = 0; w < setup->workers.size(); ++w) {
    auto& desc = setup->workers[w];
    if (!desc.remote()) continue;
    auto n = node_index(st, desc.node);
    st.slots[w].node = n;
    st.nodes[size_t(n)].workers.push_back(int32_t(w));
  }
  self->delayed_send(self, setup->cfg.cluster.heartbeat_interval, membership_tick_msg{});
  return {
      [=](node_hello_msg& msg) { on_hello(self, msg); },
      [=](node_results_msg& msg) { on_results(self, msg); },
      [=](node_worker_msg& msg) { on_worker_state(self, msg); },
      [=](const node_heartbeat_msg& msg) {
        auto* node = current(self, msg.peer, msg.node, msg.epoch);
        // Heard from the old connection a heartbeat interval after the newcomer's hello: it is
        // alive (one sent just before it died may still arrive right after the hello).
        if (node && node->contended && msg.peer == node->peer &&
            self->clock().now() - node->contended->since >=
                self->state.setup->cfg.cluster.heartbeat_interval)
          refuse_contender(self, *node);
        if (node) show_gpu_memory(self->state, *node, msg.body.gpus);
        if (node && !msg.leaving) find_lost(self, *node, msg.body);
        if (node && !msg.leaving) note_running(self, *node, msg.body);
        if (node && msg.leaving) {
          troupe::logger().info("membership: node '{}' leaves", msg.node);
          node->liveness.mark_left();
          node_lost(self, size_t(node_index(self->state, msg.node)), "node left");
        }
      },
      [=](const status_query_msg& q) { on_status(self, q); },
      [=](remote_assign_msg& msg) { on_assign(self, msg); },
      [=](const membership_tick_msg&) { on_tick(self); },
      [=](const peer_gone_msg& msg) {
        auto& st = self->state;
        for (auto& node : st.nodes) {
          if (node.peer != msg.peer || node.peer.empty()) continue;
          node.peer_gone = true;
          if (!node.contended) continue;
          troupe::logger().info(
              "membership: node '{}': its joined connection is closed; the new "
              "process takes over",
              node.cfg->name);
          take_over(self, node);
        }
      },
      [=](const cancel_remote_msg& msg) {
        auto& st = self->state;
        for (auto& node : st.nodes) {
          wire::cancel out;
          for (auto id : msg.ids)
            if (node.in_flight.count(id)) out.ids.push_back(id);
          if (!out.ids.empty()) st.send(st.framer->make(&node.peer, wire::msg_type::cancel, out));
        }
      },
  };
}

}  // namespace troupe
