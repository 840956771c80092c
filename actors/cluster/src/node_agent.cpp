#include "troupe/actors/cluster/node_agent.hpp"

#include <algorithm>
#include <caf/all.hpp>
#include <map>
#include <tuple>

#include "troupe/model/frame_split.hpp"
#include "troupe/model/graph.hpp"
#include "troupe/model/log.hpp"
#include "troupe/model/record_pool.hpp"
#include "troupe/transport/framer.hpp"

namespace troupe {

namespace {

using self_ptr = node_agent_actor::stateful_pointer<node_agent_state>;

/// Epochs only grow, also across restarts of the process: wall-clock nanoseconds.
uint64_t new_epoch(uint64_t previous) {
  auto now = uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count());
  return std::max(previous + 1, now);
}

template <class Body>
void send_head(self_ptr self, wire::msg_type type, const Body& body) {
  auto& st = self->state;
  // A lost results message is found by the head: the next heartbeat no longer holds its tasks.
  if (!st.send(st.framer->make(nullptr, type, body)))
    troupe::logger().warn("node {}: outbound queue full, a {} message to the head is lost", st.node,
                          wire::to_string(type));
}

/// A heartbeat with what the node holds (the head finds lost assignments by it) and the GPU
/// workers' memory as measured here (the head shows it in its status).
wire::heartbeat node_heartbeat(const node_agent_state& st) {
  wire::heartbeat h;
  h.last_assign = st.last_assign;
  for (auto& w : st.workers)
    for (auto& [id, task] : w.running) {
      h.holding.push_back(id);
      // The worker marks a preemptible attempt running while it runs (device_worker).
      if (task->attempts != 0 &&
          task->running_attempt.load(std::memory_order_relaxed) == task->attempts)
        h.preemptible_running.push_back(id);
    }
  for (size_t w = 0; w < st.setup->workers.size(); ++w) {
    if (st.setup->workers[w].device != device_class::cuda) continue;
    auto& g = st.gauges->gpu(w);
    auto load = [](const std::atomic<uint64_t>& v) { return v.load(std::memory_order_relaxed); };
    h.gpus.push_back({int32_t(w), load(g.task_bytes), load(g.cache_bytes), load(g.device_used),
                      load(g.device_total), g.device_source.load(std::memory_order_relaxed)});
  }
  return h;
}

void say_hello(self_ptr self) {
  auto& st = self->state;
  wire::hello h;
  h.node = st.node;
  for (auto& w : st.setup->workers)
    h.workers.push_back({w.name, w.device, w.device_index, w.capacity});
  st.kinds_announced = st.setup->registry->size();
  h.kinds = st.setup->registry->kinds();
  for (auto& k : h.kinds) {
    auto* entry = st.setup->registry->find(k);
    auto& devices = h.kind_devices[k];
    for (auto d : {device_class::cpu, device_class::cuda})
      if (entry && entry->runs_on(d)) devices.push_back(d);
  }
  h.max_payload_bytes = st.setup->cfg.max_payload_bytes;
  h.gpus = st.setup->gpus.gpus;
  h.gpu_note = st.setup->gpus.note;
  h.data_endpoint = st.links.endpoint;
  send_head(self, wire::msg_type::hello, h);
}

/// Forget the old incarnation and ask to join as a new one.
void rejoin(self_ptr self, const std::string& why) {
  auto& st = self->state;
  st.joined = false;
  st.last_assign = 0;  // a restarted head numbers its frames from 1 again
  st.epoch = new_epoch(st.epoch);
  st.framer->set_epoch(st.epoch);
  // What runs now was reclaimed by the head; its results would be refused as stale.
  for (auto& w : st.workers) {
    w.running.clear();
    w.held.clear();
  }
  // A head that restarted without its journal numbers tasks anew: an output kept under an id
  // could be taken for another task's.
  st.kept->clear();
  st.fetching.clear();
  st.asked.clear();
  troupe::logger().warn("node {}: {}; joining again as epoch {}", st.node, why, st.epoch);
  say_hello(self);
}

void deliver(self_ptr self, size_t w, std::vector<assignment> tasks) {
  auto& slot = self->state.workers[w];
  if (tasks.empty()) return;
  if (!slot.up) {
    for (auto& a : tasks) slot.held.push_back(std::move(a));
    return;
  }
  self->send(slot.handle, assign_msg{std::move(tasks)});
}

/// A task of an assign that the node answers for without running it.
template <class Task>
wire::attempt_result refusal(const Task& t, errc code, std::string message,
                             bool counts_as_attempt = true) {
  wire::attempt_result r;
  r.id = t.id;
  r.attempt = t.attempt;
  r.worker = std::max(0, t.worker);
  r.code = code;
  r.message = std::move(message);
  r.counts_as_attempt = counts_as_attempt;
  return r;
}

/// What the kind's validate says is wrong with the spec; empty if nothing (or no validate).
std::string invalid(const kind_entry& kind, task_spec& spec) {
  if (!kind.def.validate) return {};
  try {
    kind.def.validate(spec);
  } catch (const task_failure& f) {
    return f.message.empty() ? std::string{to_string(f.code)} : f.message;
  } catch (const std::exception& e) {
    return e.what();
  }
  return {};
}

/// Binds the inputs the head left out of the spec from the outputs this node keeps. What is
/// missing, if anything: then the task goes back unstarted, and the head sends it whole.
std::string bind_kept_inputs(node_agent_state& st, wire::assigned_task& t) {
  std::vector<uint32_t> bound;  // by parent (its index in the graph): one bind binds all its inputs
  for (auto& k : t.kept_inputs) {
    if (k.input >= t.spec.inputs.size())
      return "kept input " + std::to_string(k.input) + " is not one of the task's " +
             std::to_string(t.spec.inputs.size()) + " inputs";
    if (!k.node.empty()) continue;  // another node keeps it: fetched (start_fetching)
    auto& in = t.spec.inputs[k.input];
    if (std::find(bound.begin(), bound.end(), in.from) != bound.end()) continue;
    auto out = st.kept->find(k.task);
    if (!out)
      return "node '" + st.node + "' no longer keeps the output of task " + std::to_string(k.task) +
             " (input '" + in.param + "')";
    if (auto e = bind_inputs(t.spec, in.from, "#" + std::to_string(k.task), *out,
                             st.setup->cfg.max_payload_bytes))
      return e.message;
    bound.push_back(in.from);
  }
  return {};
}

/// Task `id` no longer waits for the outputs it missed: a later task that needs one of them
/// asks for it again instead of waiting for an answer meant for this one.
void forget_asked(node_agent_state& st, task_id id, const node_agent_state::awaiting_inputs& held) {
  for (auto& k : held.missing) {
    auto a = st.asked.find(k.task);
    if (a == st.asked.end()) continue;
    a->second.erase(std::remove(a->second.begin(), a->second.end(), id), a->second.end());
    if (a->second.empty()) st.asked.erase(a);
  }
}

/// A task held for inputs from other nodes ends here without running: handed back unstarted
/// (the head sends its inputs whole next time), failed when its kind refuses it, or cancelled.
void end_fetching(self_ptr self, task_id id, errc code, const std::string& why) {
  auto& st = self->state;
  auto f = st.fetching.find(id);
  if (f == st.fetching.end()) return;
  forget_asked(st, id, f->second);
  auto& slot = st.workers[f->second.worker];
  if (auto r = slot.running.find(id); r != slot.running.end() && r->second == f->second.task)
    slot.running.erase(r);
  wire::results out;
  wire::attempt_result r;
  r.id = id;
  r.attempt = f->second.attempt;
  r.worker = int32_t(f->second.worker);
  r.code = code;
  r.message = why;
  r.counts_as_attempt = code != errc::worker_lost;
  out.records.push_back(std::move(r));
  st.fetching.erase(f);
  if (code == errc::worker_lost)
    troupe::logger().info("node {}: task {} goes back to the head: {}", st.node, id, why);
  if (st.joined) send_head(self, wire::msg_type::results, out);
}

/// Every input of a held task has arrived: check it as any task and give it to its worker.
void fetched_all(self_ptr self, task_id id) {
  auto& st = self->state;
  auto f = st.fetching.find(id);
  if (f == st.fetching.end()) return;
  auto& h = f->second;
  auto& slot = st.workers[h.worker];
  auto r = slot.running.find(id);
  if (r == slot.running.end() || r->second != h.task) {  // reclaimed meanwhile (a lost worker)
    forget_asked(st, id, h);
    st.fetching.erase(f);
    return;
  }
  if (auto why = invalid(*h.task->kind, h.task->spec); !why.empty())
    return end_fetching(self, id, errc::invalid_params,
                        "task kind '" + h.task->spec.kind + "': " + why);
  std::vector<assignment> one{{std::move(h.task), h.attempt, h.order}};
  auto w = h.worker;
  st.fetching.erase(f);
  deliver(self, w, std::move(one));
}

/// Asks the nodes that keep a task's inputs for them (one request per node); the task waits in
/// `fetching` until they arrive, cluster.fetch_timeout at most.
void start_fetching(self_ptr self, task_ptr task, const wire::assigned_task& t) {
  auto& st = self->state;
  auto& held = st.fetching[t.id];
  held = {task,      size_t(t.worker),
          t.attempt, t.order,
          {},        self->clock().now() + st.setup->cfg.cluster.fetch_timeout};
  std::map<std::tuple<std::string, std::string, uint64_t>, std::vector<wire::output_request>>
      requests;
  for (auto& k : t.kept_inputs) {
    if (k.node.empty()) continue;
    held.missing.push_back(k);
    auto& waiting = st.asked[k.task];
    // Another task already waits for that output: its answer serves both.
    waiting.erase(std::remove_if(waiting.begin(), waiting.end(),
                                 [&](task_id w) { return st.fetching.count(w) == 0; }),
                  waiting.end());
    bool first = waiting.empty();
    if (std::find(waiting.begin(), waiting.end(), t.id) == waiting.end()) waiting.push_back(t.id);
    if (!first) continue;
    auto& to = requests[{k.node, k.endpoint, k.epoch}];
    if (to.empty() || to.back().tasks.size() >= max_outputs_per_request) to.emplace_back();
    to.back().epoch = k.epoch;
    to.back().tasks.push_back(k.task);
  }
  for (auto& [to, reqs] : requests)
    for (auto& req : reqs) {
      auto& [node, endpoint, epoch] = to;
      bool sent = st.links.to_peer &&
                  st.links.to_peer(node, endpoint,
                                   st.framer->make(nullptr, wire::msg_type::output_request, req));
      if (sent) continue;
      for (auto parent : req.tasks) {
        auto waiting = std::move(st.asked[parent]);
        st.asked.erase(parent);
        for (auto id : waiting)
          end_fetching(self, id, errc::worker_lost,
                       "node '" + st.node + "' cannot ask node '" + node + "' at " + endpoint +
                           " for the output of task " + std::to_string(parent) +
                           ": the head sends it");
      }
    }
}

/// Another node's answer to a fetch: bind it into every task that waits for it.
void on_peer_reply(self_ptr self, peer_reply_msg& msg) {
  auto& st = self->state;
  auto& reply = msg.body;
  auto a = st.asked.find(reply.task);
  if (a == st.asked.end()) return;  // answered already, or no task waits any more
  // Only the node asked, under the epoch the head named, answers for that output (a task id of
  // another incarnation of a head or node is another task).
  for (auto id : a->second)
    if (auto f = st.fetching.find(id); f != st.fetching.end())
      for (auto& k : f->second.missing)
        if (k.task == reply.task && (k.node != msg.from || k.epoch != msg.epoch)) return;
  auto waiting = std::move(a->second);
  st.asked.erase(a);
  for (auto id : waiting) {
    auto f = st.fetching.find(id);
    if (f == st.fetching.end()) continue;
    auto& h = f->second;
    if (!reply.found) {
      end_fetching(self, id, errc::worker_lost,
                   "node '" + msg.from + "' no longer keeps the output of task " +
                       std::to_string(reply.task) +
                       (reply.message.empty() ? std::string{} : " (" + reply.message + ")") +
                       ": the head sends it");
      continue;
    }
    auto of_reply = [&](const wire::kept_input& k) { return k.task == reply.task; };
    auto k = std::find_if(h.missing.begin(), h.missing.end(), of_reply);
    if (k == h.missing.end()) continue;
    // One bind binds every input the task takes from that parent.
    auto from = h.task->spec.inputs.at(k->input).from;
    h.missing.erase(std::remove_if(h.missing.begin(), h.missing.end(), of_reply), h.missing.end());
    if (auto e = bind_inputs(h.task->spec, from, "#" + std::to_string(reply.task), reply.output,
                             st.setup->cfg.max_payload_bytes))
      end_fetching(self, id, errc::invalid_params, e.message);
    else if (h.missing.empty())
      fetched_all(self, id);
  }
}

/// Tasks whose inputs did not arrive within cluster.fetch_timeout go back to the head.
void expire_fetches(self_ptr self) {
  auto& st = self->state;
  auto now = self->clock().now();
  std::vector<task_id> late;
  for (auto& [id, h] : st.fetching)
    if (now >= h.deadline) late.push_back(id);
  for (auto id : late) {
    auto& h = st.fetching.at(id);
    std::string from = h.missing.empty() ? std::string{"?"} : h.missing.front().node;
    end_fetching(self, id, errc::worker_lost,
                 "node '" + from + "' did not send a kept input within cluster.fetch_timeout_ms (" +
                     std::to_string(st.setup->cfg.cluster.fetch_timeout.count()) +
                     " ms): the head sends it");
  }
}

/// Tasks of an assign the node could not read fail alone, typed; the rest of the frame runs.
void refuse_unreadable(self_ptr self, const std::vector<wire::unreadable_task>& tasks) {
  auto& st = self->state;
  wire::results out;
  for (auto& t : tasks) {
    troupe::logger().warn("node {}: cannot read task {} of an assign: {}", st.node, t.id, t.reason);
    out.records.push_back(refusal(t, errc::invalid_params,
                                  "node '" + st.node + "' cannot read the task: " + t.reason));
  }
  if (!out.records.empty()) send_head(self, wire::msg_type::results, out);
}

void on_assign(self_ptr self, head_assign_msg& msg) {
  auto& st = self->state;
  refuse_unreadable(self, msg.unreadable);
  if (!st.joined) {
    // The head counts us joined (our welcome is on its way or was lost): hand the tasks back
    // unstarted, so that they are placed again uncharged instead of waiting forever.
    wire::results back;
    for (auto& t : msg.body.tasks) {
      back.records.push_back(refusal(t, errc::worker_lost,
                                     "node '" + st.node + "' had not seen its welcome yet", false));
    }
    if (!back.records.empty()) send_head(self, wire::msg_type::results, back);
    return;
  }
  st.last_assign = std::max(st.last_assign, msg.frame_id);
  std::vector<std::vector<assignment>> per_worker(st.workers.size());
  wire::results refused;
  for (auto& t : msg.body.tasks) {
    auto* kind = st.setup->registry->find(t.spec.kind);
    if (!kind || t.worker < 0 || size_t(t.worker) >= st.workers.size() ||
        !kind->runs_on(st.setup->workers[size_t(t.worker)].device)) {
      refused.records.push_back(
          refusal(t, kind ? errc::task_failed_permanently : errc::unknown_kind,
                  kind ? "node '" + st.node + "' has no worker " + std::to_string(t.worker) +
                             " that runs '" + t.spec.kind + "'"
                       : "node '" + st.node + "' does not know task kind '" + t.spec.kind + "'"));
      continue;
    }
    if (auto why = bind_kept_inputs(st, t); !why.empty()) {
      refused.records.push_back(refusal(t, errc::worker_lost, why + ": the head sends it", false));
      continue;
    }
    bool remote = std::any_of(t.kept_inputs.begin(), t.kept_inputs.end(),
                              [](auto& k) { return !k.node.empty(); });
    // The head cannot check a kind only nodes have (it has no code of it): the node does,
    // once every input is bound.
    if (!remote) {
      if (auto why = invalid(*kind, t.spec); !why.empty()) {
        refused.records.push_back(
            refusal(t, errc::invalid_params, "task kind '" + t.spec.kind + "': " + why));
        continue;
      }
    }
    auto task = std::allocate_shared<task_state>(pooled<task_state>{});
    task->id = t.id;
    task->kind = kind;
    task->spec = std::move(t.spec);
    task->attempts = t.attempt;
    task->keep_output = t.keep_output;
    auto& slot = st.workers[size_t(t.worker)];
    slot.running[t.id] = task;
    if (remote) {
      start_fetching(self, std::move(task), t);
      continue;
    }
    per_worker[size_t(t.worker)].push_back({std::move(task), t.attempt, t.order});
  }
  for (size_t w = 0; w < per_worker.size(); ++w) deliver(self, w, std::move(per_worker[w]));
  if (!refused.records.empty()) send_head(self, wire::msg_type::results, refused);
}

void on_results(self_ptr self, results_msg& msg) {
  auto& st = self->state;
  auto& slot = st.workers.at(size_t(msg.worker));
  if (msg.generation != slot.generation) return;  // a replaced worker: reported lost already
  // Every frame stays within the head's frame limit: outputs over limits.max_payload_bytes end
  // their task here (output_too_large), and records go in frames of at most that many bytes.
  auto budget = st.setup->cfg.max_payload_bytes;
  std::vector<wire::attempt_result> all;
  all.reserve(msg.records.size());
  for (auto& rec : msg.records) {
    auto i = slot.running.find(rec.task->id);
    if (i == slot.running.end() || i->second != rec.task) continue;  // from an old epoch
    slot.running.erase(i);
    wire::attempt_result r;
    r.id = rec.task->id;
    r.attempt = rec.attempt;
    r.worker = msg.worker;
    r.code = rec.code;
    r.message = std::move(rec.message);
    r.output = std::move(rec.output);
    r.run_ns = rec.started == time_point{} ? 0 : (rec.finished - rec.started).count();
    r.counts_as_attempt = rec.counts_as_attempt;
    if (auto too_large = output_over_limit(r.output, budget)) {
      r.code = too_large.code;
      r.message = std::move(too_large.message);
      r.output = {};
    }
    if (rec.task->keep_output && r.code == errc::none) st.kept->keep(r.id, r.output);
    all.push_back(std::move(r));
  }
  if (!st.joined) return;
  for (size_t first = 0; first < all.size();) {
    auto end = frame_end(first, all.size(), SIZE_MAX, budget, [&](size_t i) {
      return output_bytes(all[i].output) + all[i].message.size();
    });
    wire::results out;
    out.records.assign(std::make_move_iterator(all.begin() + long(first)),
                       std::make_move_iterator(all.begin() + long(end)));
    send_head(self, wire::msg_type::results, out);
    first = end;
  }
}

}  // namespace

std::vector<wire::output_reply> answer_output_request(kept_outputs& kept, uint64_t epoch,
                                                      const wire::output_request& request,
                                                      uint64_t max_bytes) {
  std::vector<wire::output_reply> out;
  if (request.tasks.size() > max_outputs_per_request) return out;
  std::vector<task_id> seen;
  uint64_t bytes = 0;
  for (auto id : request.tasks) {
    if (std::find(seen.begin(), seen.end(), id) != seen.end()) continue;  // one answer each
    seen.push_back(id);
    wire::output_reply r;
    r.task = id;
    if (request.epoch != epoch) {
      r.message =
          "asked for epoch " + std::to_string(request.epoch) + ", this is " + std::to_string(epoch);
    } else if (auto found = kept.find(id); !found) {
      r.message = "not kept (never, or dropped at cluster.kept_output_bytes)";
    } else if (bytes + output_bytes(*found) > max_bytes) {
      r.message = "over the " + std::to_string(max_bytes) + " bytes one request may take";
    } else {
      bytes += output_bytes(*found);
      r.kept = std::move(found);
      r.found = true;
    }
    out.push_back(std::move(r));
  }
  return out;
}

node_agent_actor::behavior_type node_agent_impl(
    node_agent_actor::stateful_pointer<node_agent_state> self, setup_ptr setup,
    std::shared_ptr<const worker_gauges> gauges, std::string node, transport::frame_sender send,
    wire::framer* framer, std::function<void(const std::string&)> fatal, node_data_links links) {
  auto& st = self->state;
  st.links = std::move(links);
  st.setup = setup;
  st.gauges = std::move(gauges);
  st.node = std::move(node);
  st.send = std::move(send);
  st.framer = framer;
  st.fatal = std::move(fatal);
  st.workers.resize(setup->workers.size());
  st.kept = st.links.kept ? st.links.kept
                          : std::make_shared<kept_outputs>(setup->cfg.cluster.kept_output_bytes);
  st.epoch = new_epoch(0);
  framer->set_epoch(st.epoch);
  st.head_heard = self->clock().now();
  // No tick yet: the node sends the first one (which says hello) once its socket thread can
  // hand this actor the head's answer. A hello sent earlier could be welcomed, and assigned
  // tasks, before anyone could receive them.
  return {
      [](const dispatch_msg&) {},  // nodes have no queue: the head dispatches
      [=](results_msg& msg) { on_results(self, msg); },
      [=](worker_up_msg& msg) {
        auto& st = self->state;
        auto& slot = st.workers.at(size_t(msg.worker));
        slot.handle = std::move(msg.handle);
        slot.generation = msg.generation;
        slot.up = true;
        auto held = std::move(slot.held);
        slot.held.clear();
        deliver(self, size_t(msg.worker), std::move(held));
        // A worker still starting when the node joined is up for the head already: its tasks
        // wait in `held`. Only one the head was told is down must be announced.
        if (slot.head_told_down && st.joined) {
          slot.head_told_down = false;
          send_head(self, wire::msg_type::worker_state,
                    wire::worker_state{msg.worker, true, 0, {}, false});
        }
      },
      [=](const worker_lost_msg& msg) {
        auto& st = self->state;
        auto& slot = st.workers.at(size_t(msg.worker));
        if (msg.generation != slot.generation) return;
        slot.up = false;
        // The head reclaims everything it placed on this worker: the crashed task is charged
        // an attempt, the others are placed again.
        slot.running.clear();
        slot.held.clear();
        for (auto f = st.fetching.begin(); f != st.fetching.end();) {
          if (f->second.worker != size_t(msg.worker)) {
            ++f;
            continue;
          }
          forget_asked(st, f->first, f->second);
          f = st.fetching.erase(f);
        }
        slot.head_told_down = st.joined;
        if (st.joined)
          send_head(
              self, wire::msg_type::worker_state,
              wire::worker_state{msg.worker, false, msg.crashed_task, msg.reason, msg.retired});
        // A poisoned GPU context cannot be fixed inside this process: exit, so that the parent
        // (troupe up) starts the node again with fresh contexts. The head re-places its tasks.
        if (msg.retired && st.fatal)
          st.fatal("GPU worker " + std::to_string(msg.worker) + " retired: " + msg.reason);
      },
      [=](const escalate_msg& msg) {
        auto& st = self->state;
        troupe::logger().critical("node {}: supervisor gave up: {}", st.node, msg.reason);
        if (st.fatal) st.fatal("supervisor gave up: " + msg.reason);
      },
      [=](head_assign_msg& msg) {
        self->state.head_heard = self->clock().now();
        on_assign(self, msg);
      },
      [=](const head_welcome_msg& msg) {
        auto& st = self->state;
        st.head_heard = self->clock().now();
        if (msg.body.epoch != st.epoch) return;  // answers an older hello
        if (!st.joined)
          troupe::logger().info("node {}: joined the head as epoch {} (workers {}..{})", st.node,
                                st.epoch, msg.body.first_worker,
                                msg.body.first_worker + st.workers.size() - 1);
        st.joined = true;
        if (st.links.know_peers) st.links.know_peers(msg.body.data_peers);
        // Workers that went down before the welcome (not those still starting): the head
        // counts them as up.
        for (size_t w = 0; w < st.workers.size(); ++w) {
          auto& slot = st.workers[w];
          slot.head_told_down = !slot.up && slot.generation > 0;
          if (!slot.head_told_down) continue;
          send_head(self, wire::msg_type::worker_state,
                    wire::worker_state{int32_t(w), false, 0, "down at join", false});
        }
      },
      [=](const head_heartbeat_msg& msg) {
        auto& st = self->state;
        st.head_heard = self->clock().now();
        // The head's heartbeat follows its assigns on the same connection: every assign up to
        // the one it names has arrived (or was lost on the way).
        if (st.joined && msg.last_assign)
          st.last_assign = std::max(st.last_assign, *msg.last_assign);
      },
      [=](const head_cancel_msg& msg) {
        // The worker skips a cancelled task it has not started; a running one may poll the flag.
        // Asked to make way, a running preemptible attempt sees its token set and the worker
        // reports it preempted (one that has not started yet is not touched: it may run).
        // One still waiting for its inputs ends now: it would only wait to be skipped.
        if (!msg.body.preempt)
          for (auto id : msg.body.ids)
            end_fetching(self, id, errc::cancelled, "cancelled while fetching its inputs");
        for (auto& w : self->state.workers)
          for (auto id : msg.body.ids)
            if (auto i = w.running.find(id); i != w.running.end()) {
              auto& t = *i->second;
              if (!msg.body.preempt)
                t.cancel_requested.store(true, std::memory_order_relaxed);
              else if (t.running_attempt.load(std::memory_order_relaxed) == t.attempts)
                t.preempt_requested.store(true, std::memory_order_relaxed);
            }
      },
      [=](peer_reply_msg& msg) { on_peer_reply(self, msg); },
      [=](const head_error_msg& msg) {
        auto& st = self->state;
        auto& e = msg.body;
        troupe::logger().warn("node {}: the head refused a message: {}: {}", st.node,
                              wire::to_string(e.code), e.message);
        if (e.code == wire::wire_errc::unknown_node || e.code == wire::wire_errc::layout_mismatch ||
            e.code == wire::wire_errc::name_taken || e.code == wire::wire_errc::forbidden) {
          if (st.fatal) st.fatal(e.message);
        } else if (e.code == wire::wire_errc::stale_epoch ||
                   e.code == wire::wire_errc::not_joined) {
          if (st.joined) rejoin(self, "the head does not know this epoch");
        }
      },
      [=](const node_tick_msg&) {
        auto& st = self->state;
        auto& cc = st.setup->cfg.cluster;
        if (!st.joined) {
          say_hello(self);  // until welcomed
        } else if (self->clock().now() - st.head_heard > cc.dead_after) {
          rejoin(self, "the head is silent");
        } else if (st.setup->registry->size() != st.kinds_announced) {
          say_hello(self);  // kinds added since: the same epoch, the head learns them
        } else {
          send_head(self, wire::msg_type::heartbeat, node_heartbeat(st));
        }
        expire_fetches(self);
        self->delayed_send(self, cc.heartbeat_interval, node_tick_msg{});
      },
  };
}

}  // namespace troupe
