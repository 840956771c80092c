#include "troupe/head.hpp"

#include <algorithm>
#include <deque>
#include <limits>
#include <optional>
#include <unordered_set>

#include "journal.hpp"
#include "journal_queue.hpp"
#include "runtime_impl.hpp"
#include "troupe/actors/cluster/membership.hpp"
#include "troupe/model/event_log.hpp"
#include "troupe/model/frame_split.hpp"
#include "troupe/model/log_limiter.hpp"
#include "troupe/transport/codec.hpp"
#include "troupe/transport/curve.hpp"
#include "troupe/transport/framer.hpp"
#include "troupe/transport/socket_thread.hpp"

namespace troupe {

std::vector<worker_desc> cluster_workers(const runtime_config& cfg) {
  std::vector<worker_desc> out;
  for (auto& n : cfg.cluster.nodes) {
    auto view = resolve(node_view(cfg, n.name, "cluster"));
    // A node's GPUs are known to the head only by index until the node joins: capacity open.
    gpu_inventory gpus;
    for (auto idx : n.cuda_devices) {
      gpu_device g;
      g.index = idx;
      g.total_memory = g.free_memory = uint64_t(1) << 62;
      gpus.gpus.push_back(g);
    }
    auto workers = layout_workers(view, gpus);
    for (size_t i = 0; i < workers.size(); ++i) {
      auto& w = workers[i];
      w.name = n.name + "/" + w.name;
      w.node = n.name;
      w.node_worker = int32_t(i);
      out.push_back(std::move(w));
    }
  }
  return out;
}

struct head::impl {
  runtime_config cfg;
  std::unique_ptr<troupe::runtime> rt;
  wire::limits lim;
  wire::limits lim_control;  ///< headers and messages without payloads (a hostile one is cheap)
  wire::framer framer{"head"};
  zmq::context_t ctx{1};
  /// With keys (security.head_key): admits connections by key before any socket binds, and
  /// tags their messages "role:name" (docs/security.md).
  std::unique_ptr<transport::zap_handler> zap;
  bool secured = false;
  std::string server_secret;  ///< the head's CURVE secret key; "" without keys
  std::unique_ptr<transport::socket_thread> sock;
  membership_actor membership;
  std::atomic<uint64_t> frames_in{0}, refused{0};
  // Events: published on the PUB socket from the event bus's thread, and kept for catching up.
  std::unique_ptr<transport::socket_thread> pub;
  std::mutex log_mutex;
  event_log log;
  uint64_t subscription = 0;
  static constexpr size_t replay_batch = 10000;  ///< events per replay reply
  // Results finished on the runtime's threads, gathered per client until the socket thread
  // turns them into frames: one frame carries every result that finished meanwhile.
  std::mutex results_mutex;
  std::unordered_map<std::string, wire::result> results_pending;
  bool results_wake = false;
  /// Tasks submitted through the socket and not finished: who gets the result (the routing id
  /// of a client; a fetch from another connection takes it over).
  /// A task stays here until its record is journalled and sent (send_results), not only until
  /// it ends: a fetch in between must find it (pending), not call it unknown.
  struct open_task {
    std::string owner;
    bool ended = false;  ///< its result waits in results_pending
  };
  std::unordered_map<task_id, open_task> open;
  /// Per client (its key with keys, its connection without): its open tasks (under
  /// results_mutex) and a token bucket of submits (socket thread), bounded by
  /// cluster.client_max_in_flight and cluster.client_submit_rate.
  struct client_account {
    size_t open = 0;
    double tokens = 0;
    std::chrono::steady_clock::time_point refilled{};  ///< {}: the bucket was never used
  };
  std::unordered_map<std::string, client_account> accounts;

  /// Who a task's owner is, for the per-client bounds.
  std::string client_of(const std::string& owner) const {
    if (!secured) return owner;
    return owner.substr(0, owner.find('\n'));
  }
  /// Under results_mutex: a task opened or closed for its owner's account.
  void opened(task_id id, const std::string& owner) {
    if (open.emplace(id, open_task{owner}).second) ++accounts[client_of(owner)].open;
  }
  void closed(task_id id) {
    auto i = open.find(id);
    if (i == open.end()) return;
    auto a = accounts.find(client_of(i->second.owner));
    // An account with nothing open and a full bucket holds nothing worth keeping.
    if (a != accounts.end() && a->second.open > 0 && --a->second.open == 0 &&
        !cfg.cluster.client_submit_rate)
      accounts.erase(a);
    open.erase(i);
  }
  static constexpr size_t results_per_frame = 1024;
  std::mutex stop_mutex;
  bool stopped = false;

  // Durability (docs/durability.md). The journal, once started, is used on its queue's thread
  // only; null without a journal (cluster.journal = "off").
  std::unique_ptr<journal_queue> jq;
  uint64_t incarnation = 0;
  /// Submit tokens seen (owner routing id + token): a re-sent submit gets the same ids.
  std::unordered_map<std::string, std::vector<task_id>> tokens;
  std::deque<std::string> token_order;
  size_t max_tokens = 100000;
  /// Tasks of an earlier incarnation not yet handed to the runtime: their kind is not known
  /// until a node that runs it joins (or restore_grace passes). Socket thread only.
  std::vector<std::pair<task_id, task_spec>> to_restore;
  /// Graphs of an earlier incarnation, each handed on whole (restore_held).
  struct held_graph {
    std::vector<task_id> ids;      ///< of the tasks still to run
    std::vector<task_spec> specs;  ///< theirs, linked among themselves
    failure_policy on_failure = failure_policy::cancel_dependents;
    std::vector<task_result> ended;  ///< tasks of it that cannot run any more
    bool gang = false;               ///< a gang (docs/reservations.md), queued again whole
  };
  std::vector<held_graph> graphs_to_restore;
  std::chrono::steady_clock::time_point restore_until;

  explicit impl(runtime_config c) : cfg(std::move(c)), log(cfg.cluster.event_ring) {
    lim = wire::limits::for_payload(cfg.max_payload_bytes);
    lim.max_tasks_per_submit = cfg.cluster.max_tasks_per_submit;
    lim_control = lim.control();
    // The journal first: a head that cannot keep its promises does not start.
    journal::start_state resumed;
    std::unique_ptr<troupe::journal> jnl;
    if (!cfg.cluster.journal.empty()) {
      journal_options jo;
      jo.path = cfg.cluster.journal;
      jo.keep_results = cfg.cluster.journal_keep_results;
      jo.keep_for = cfg.cluster.journal_keep;
      jo.keep_submits = max_tokens;
      jo.full_sync = cfg.cluster.journal_full_sync;
      jnl = std::make_unique<troupe::journal>(jo);
      resumed = jnl->start(wall_clock_ns());
      incarnation = resumed.incarnation;
    } else {
      incarnation = wall_clock_ns();
    }
    framer.set_epoch(incarnation);
    rt.reset(new troupe::runtime(head_view(cfg), cluster_workers(cfg)));
    auto& ri = *rt->impl_;
    // Without a journal nothing says which ids an earlier head gave out: start far from them
    // (milliseconds since 1970 times 2^20: a later start is higher unless the one before gave
    // out more than a million ids per millisecond it ran).
    ri.admission->ids_from(jnl ? resumed.next_id
                               : task_id(std::max<uint64_t>(1, (incarnation / 1000000) << 20)));
    for (auto& t : resumed.tokens) remember_token(t.owner, t.token, std::move(t.ids));
    auto resumed_tasks = resume(resumed.open, jnl.get());
    // Behind the disk by this much, submits are refused (overloaded) until it catches up; at
    // least two of the largest frames, so that one always fits.
    if (jnl)
      jq = std::make_unique<journal_queue>(
          std::move(jnl), std::max<size_t>(size_t(256) << 20, 2 * lim.max_frame_bytes));
    server_secret = start_security();
    transport::socket_options so;
    so.type = zmq::socket_type::router;
    so.endpoint = cfg.cluster.head_endpoint;
    so.server_keys = {server_secret, "troupe"};
    so.handshake_ms = int(cfg.cluster.security.handshake.count());
    // Connections waiting to be accepted: zmq's 100 leaves a burst of connecting peers half-open
    // for seconds (the kernel caps it at net.core.somaxconn).
    so.listen_backlog = 4096;
    so.bind = true;
    so.name = "troupe-head";
    so.max_outbound = cfg.cluster.max_outbound;
    // zmq itself drops (and disconnects) beyond twice our limit; up to it we answer with an error.
    so.max_message_bytes = int64_t(lim.max_frame_bytes) * 2;
    // A client that reconnects (same routing id) gets its results on the new connection. With
    // keys, a routing id in use is not handed to another connection (which could belong to
    // another key): the newcomer is refused until the old connection closes, and ZMTP
    // heartbeats close one whose peer vanished within seconds.
    so.router_handover = !secured;
    if (secured)
      so.zmtp_heartbeat_ms = int(std::max<int64_t>(1000, cfg.cluster.heartbeat_interval.count()));
    so.tick = cfg.cluster.heartbeat_interval;  // restores held back for their kind
    // A node's connection found closed: a restarted node with its name takes over at once.
    so.on_unroutable = [this](const std::string& peer) {
      if (membership) caf::anon_send(membership, peer_gone_msg{peer});
    };
    try {
      sock = std::make_unique<transport::socket_thread>(
          ctx, so, [this](transport::multipart& m) { on_message(m); },
          [this] {
            restore_held();
            send_results();
          });
    } catch (...) {
      rt->shutdown(shutdown_mode::cancel);
      throw;
    }
    membership = ri.system->spawn(
        membership_impl, setup_ptr{ri.setup}, ri.events, ri.gauges, ri.admission, ri.balancer,
        ri.monitor, ri.bus,
        [s = sock.get()](transport::multipart&& m) { return s->send(std::move(m)); }, &framer);
    if (!cfg.cluster.events_endpoint.empty()) start_publishing();
    troupe::logger().info("head: listening on {} for {} node(s), incarnation {}", sock->endpoint(),
                          cfg.cluster.nodes.size(), incarnation);
    if (jq)
      troupe::logger().info(
          "head: journal {}: {} unfinished task(s) resumed, {} result(s) kept ({} compacted), "
          "next task id {}",
          cfg.cluster.journal, resumed_tasks, resumed.records, resumed.dropped, resumed.next_id);
    else
      troupe::logger().info(
          "head: no journal (cluster.journal = \"off\"): a restart loses "
          "what is in flight");
    sock->wake();  // the first round restores what can be
  }

  /// Keys configured: the ZAP handler with every allowed key, and the head's secret key for
  /// its server sockets. None: checks the head binds loopback only (or insecure says so), and
  /// returns "" (no CURVE).
  std::string start_security() {
    auto& sec = cfg.cluster.security;
    if (!sec.enabled()) {
      for (auto* ep : {&cfg.cluster.head_endpoint, &cfg.cluster.events_endpoint})
        if (!ep->empty() && !local_only(*ep) && !sec.insecure)
          throw config_error("cluster file", 0, "security.head_key",
                             "the head would listen on " + *ep +
                                 " without keys, open to anyone who reaches it: set "
                                 "security.head_key (troupe keygen; docs/security.md), bind "
                                 "loopback or ipc://, or set security.insecure = true");
      troupe::logger().warn(
          "head: unauthenticated (no security.head_key): anyone who reaches {} is trusted{}",
          cfg.cluster.head_endpoint,
          sec.insecure ? " (security.insecure = true)" : "; loopback only");
      return {};
    }
    auto head_keys = transport::read_key_pair(sec.head_key);
    std::unordered_map<std::string, transport::zap_peer> by_key;
    auto allow = [&](const std::string& key_text, peer_role role, const std::string& name) {
      auto key = transport::read_public_key(key_text);
      transport::zap_peer peer{to_string(role), name};
      auto [at, added] = by_key.emplace(key, peer);
      if (!added && at->second.user_id() != peer.user_id())
        throw config_error("cluster file", 0, "security.allow",
                           "one key for two identities: " + at->second.user_id() + " and " +
                               peer.user_id() + " (" + key_text + ")");
    };
    for (auto& n : cfg.cluster.nodes) {
      allow(n.key + ".pub", peer_role::node, n.name);
      // Each welcome names them: who may fetch kept outputs from a node's data socket.
      rt->impl_->setup->node_keys[n.name] = transport::read_public_key(n.key + ".pub");
    }
    for (auto& a : sec.allow) allow(a.key, a.role, a.name);
    zap = std::make_unique<transport::zap_handler>(
        ctx, std::move(by_key),
        [](const std::string& domain, const transport::zap_peer& peer) {
          if (domain == "troupe") return true;  // each message is then checked by role
          if (domain == "troupe-events") return peer.role == "subscriber" || peer.role == "admin";
          return false;
        },
        "head");
    secured = true;
    troupe::logger().info("head: CURVE on, {} key(s) allowed ({} node(s), {} other)",
                          cfg.cluster.nodes.size() + sec.allow.size(), cfg.cluster.nodes.size(),
                          sec.allow.size());
    return head_keys.secret_key;
  }

  static uint64_t wall_clock_ns() {
    return uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count());
  }

  /// Tasks of the journal without a terminal record: decoded now, handed to the runtime on the
  /// socket thread (restore_held) once their kind is known. Their owners are known at once, so
  /// that a fetch finds them pending. Returns how many.
  size_t resume(std::vector<journal::open_frame>& frames, journal* jnl) {
    restore_until = std::chrono::steady_clock::now() + 2 * cfg.cluster.dead_after;
    auto now_unix_ms = int64_t(wall_clock_ns() / 1000000);
    // What this head wrote under other limits (the file changed meanwhile) still reads.
    auto journal_limits = wire::limits::for_payload(max_config_payload_bytes);
    journal_limits.max_tasks_per_submit = std::numeric_limits<uint32_t>::max();
    std::lock_guard<std::mutex> guard{results_mutex};
    size_t graph_tasks = 0;
    for (auto& f : frames) {
      std::vector<task_spec> specs;
      auto decoded_at = clock::now();
      std::string unreadable;
      auto on_failure = failure_policy::cancel_dependents;
      bool gang = false;
      try {
        auto msg = wire::decode<wire::submit>(f.body.data(), f.body.size(), journal_limits);
        specs = std::move(msg.tasks);
        on_failure = msg.on_failure.value_or(on_failure);
        gang = msg.gang;
      } catch (const wire::decode_error& e) {
        unreadable = e.what();  // written by a broken head: each task ends here, named
      }
      std::sort(f.finished.begin(), f.finished.end());
      auto is_open = [&](uint32_t i) {
        return !std::binary_search(f.finished.begin(), f.finished.end(), f.first_id + i);
      };
      auto adjust = [&](task_spec& spec) {
        label_client(spec, f.owner);
        // Deadlines count from when the head received the frame, in wall-clock time.
        if (spec.deadline) {
          auto left_then =
              std::chrono::duration_cast<std::chrono::milliseconds>(*spec.deadline - decoded_at);
          spec.deadline = clock::now() + std::chrono::milliseconds(f.received_unix_ms +
                                                                   left_then.count() - now_unix_ms);
        }
        if (!spec.idempotency_key.empty())
          spec.idempotency_key = scoped_key(f.owner, spec.idempotency_key);
      };
      if (specs.size() == f.count && gang) {
        graph_tasks += resume_gang(f, std::move(specs), is_open, adjust);
        continue;
      }
      if (specs.size() == f.count && has_links(specs)) {
        graph_tasks += resume_graph(f, std::move(specs), on_failure, is_open, adjust, jnl);
        continue;
      }
      for (uint32_t i = 0; i < f.count; ++i) {
        task_id id = f.first_id + i;
        if (!is_open(i)) continue;
        task_spec spec;
        if (i < specs.size()) {
          spec = std::move(specs[i]);
        } else {
          spec.kind = "(unreadable in the journal: " +
                      (unreadable.empty() ? std::string{"the frame has fewer tasks"} : unreadable) +
                      ")";
        }
        adjust(spec);
        opened(id, f.owner);
        to_restore.emplace_back(id, std::move(spec));
      }
    }
    return to_restore.size() + graph_tasks;
  }

  /// A graph of an earlier incarnation (under results_mutex): what is left of it, held as one
  /// submission; its tasks whose parents ended in a way that stops them end when it is handed
  /// on (restore_held). Returns how many of its tasks had not ended.
  template <class IsOpen, class Adjust>
  size_t resume_graph(const journal::open_frame& f, std::vector<task_spec> specs,
                      failure_policy on_failure, IsOpen& is_open, Adjust& adjust, journal* jnl) {
    std::vector<bool> open(specs.size());
    size_t count = 0;
    for (uint32_t i = 0; i < specs.size(); ++i) {
      open[i] = is_open(i);
      if (!open[i]) continue;
      adjust(specs[i]);
      opened(f.first_id + i, f.owner);
      ++count;
    }
    std::vector<std::string> kinds;
    for (auto& s : specs) kinds.push_back(s.kind);
    auto rest = remainder_of(
        std::move(specs), open, on_failure,
        [&](uint32_t i) { return kept_result(jnl, f.first_id + i); }, cfg.max_payload_bytes);
    held_graph h;
    h.on_failure = on_failure;
    for (auto i : rest.kept) h.ids.push_back(f.first_id + i);
    h.specs = std::move(rest.specs);
    for (auto& [i, r] : rest.ended) {
      r.id = f.first_id + i;
      r.kind = kinds[i];
      r.timings.submitted = r.timings.finished = clock::now();
      h.ended.push_back(std::move(r));
    }
    graphs_to_restore.push_back(std::move(h));
    return count;
  }

  /// A gang of an earlier incarnation (under results_mutex): queued again whole if none of it
  /// had ended; else what had not ended ends failed (a gang runs whole, once: its members that
  /// ran are not run again alone). Returns how many of its tasks had not ended.
  template <class IsOpen, class Adjust>
  size_t resume_gang(const journal::open_frame& f, std::vector<task_spec> specs, IsOpen& is_open,
                     Adjust& adjust) {
    bool whole = true;
    for (uint32_t i = 0; i < specs.size(); ++i) whole = whole && is_open(i);
    held_graph h;
    h.on_failure = failure_policy::cancel_graph;
    h.gang = true;
    size_t count = 0;
    for (uint32_t i = 0; i < specs.size(); ++i) {
      if (!is_open(i)) continue;
      auto id = f.first_id + i;
      adjust(specs[i]);
      opened(id, f.owner);
      ++count;
      if (whole) {
        h.ids.push_back(id);
        h.specs.push_back(std::move(specs[i]));
        continue;
      }
      task_result r;
      r.id = id;
      r.kind = specs[i].kind;
      r.status = outcome::failed;
      r.error = {errc::worker_lost,
                 "the head restarted while its gang ran (some of the gang had ended); a gang "
                 "runs whole, once: submit it again"};
      r.timings.submitted = r.timings.finished = clock::now();
      h.ended.push_back(std::move(r));
    }
    graphs_to_restore.push_back(std::move(h));
    return count;
  }

  /// A task's terminal record as the journal keeps it (for a graph task's inputs at a restart).
  std::optional<task_result> kept_result(journal* jnl, task_id id) const {
    if (!jnl) return std::nullopt;
    std::optional<journal::stored_record> record;
    journalled("a restart", [&] { record = jnl->record_of(id); });
    if (!record) return std::nullopt;
    try {
      auto limits = wire::limits::for_payload(max_config_payload_bytes);
      auto r = wire::decode<wire::result>(record->body.data(), record->body.size(), limits);
      for (auto& t : r.tasks)
        if (t.id == id) return std::move(t);
    } catch (const wire::decode_error&) {
    }
    return std::nullopt;
  }

  /// Hands resumed tasks to the runtime: those whose kind some node runs now, and all of them
  /// once restore_until has passed (then an unknown kind ends its task unknown_kind).
  void restore_held() {
    if (to_restore.empty() && graphs_to_restore.empty()) return;
    bool last_call = std::chrono::steady_clock::now() >= restore_until;
    auto& reg = rt->registry();
    // No more than the queue has room for: new submits may have filled it, and a resumed task
    // must not end queue_full. (Submits come on this thread too: the room only grows meanwhile.)
    auto& gate = *rt->impl_->admission;
    auto room = gate.bound() > gate.in_system() ? gate.bound() - gate.in_system() : 0;
    // A graph goes whole, once every kind of it runs somewhere (or on the last call, when one
    // that cannot fit ends queue_full rather than wait for ever).
    std::vector<held_graph> graphs_later;
    for (auto& g : graphs_to_restore) {
      for (auto& r : g.ended) on_done(r);
      g.ended.clear();
      if (g.ids.empty()) continue;
      bool kinds_known = std::all_of(g.specs.begin(), g.specs.end(), [&](const task_spec& s) {
        auto* kind = reg.find(s.kind);
        return kind && kind->runnable();
      });
      if (!last_call && (!kinds_known || g.ids.size() > room)) {
        graphs_later.push_back(std::move(g));
        continue;
      }
      room -= std::min(room, uint64_t(g.ids.size()));
      troupe::logger().info("head: a {} of an earlier incarnation queued again ({} task(s))",
                            g.gang ? "gang" : "graph", g.ids.size());
      auto handles = rt->impl_->submit_specs(
          std::move(g.specs), [this](const task_result& r) { on_done(r); }, &g.ids, {},
          g.on_failure, g.gang);
      settle_restored(g.ids, handles);
    }
    graphs_to_restore = std::move(graphs_later);
    if (to_restore.empty()) return;
    std::vector<task_id> ids;
    std::vector<task_spec> specs;
    std::vector<std::pair<task_id, task_spec>> later;
    for (auto& [id, spec] : to_restore) {
      auto* kind = reg.find(spec.kind);
      if (ids.size() < room && (last_call || (kind && kind->runnable()))) {
        ids.push_back(id);
        specs.push_back(std::move(spec));
      } else {
        later.emplace_back(id, std::move(spec));
      }
    }
    to_restore = std::move(later);
    if (ids.empty()) return;
    troupe::logger().info(
        "head: {} task(s) of an earlier incarnation queued again{}", ids.size(),
        to_restore.empty() ? "" : " (others wait for a node that runs their kind)");
    auto handles = rt->impl_->submit_specs(
        std::move(specs), [this](const task_result& r) { on_done(r); }, &ids);
    settle_restored(ids, handles);
  }

  /// Resumed tasks the runtime did not take end here, with the reason.
  void settle_restored(const std::vector<task_id>& ids, const std::vector<task_handle>& handles) {
    for (size_t i = 0; i < handles.size(); ++i) {
      auto& hd = handles[i];
      if (hd.id() != ids[i]) {
        // Its idempotency key names another task now: it ends, saying which.
        task_result r;
        r.id = ids[i];
        r.status = outcome::failed;
        r.error = {errc::duplicate_id,
                   "resumed after a restart of the head, its idempotency key "
                   "names task " +
                       std::to_string(hd.id()) + " now"};
        r.timings.submitted = r.timings.finished = clock::now();
        on_done(r);
      } else if (hd.ready() && hd.get().status == outcome::rejected &&
                 hd.get().error.code != errc::shutting_down) {
        // Accepted by the earlier incarnation: it ends as failed, with the reason. (Shutting
        // down: it stays unfinished in the journal for the next start.)
        auto r = hd.get();
        r.status = r.error.code == errc::deadline_expired ? outcome::expired : outcome::failed;
        on_done(r);
      }
    }
  }

  /// A cancel of tasks still held back after a restart: they end cancelled here.
  void cancel_held(const std::vector<task_id>& ids) {
    if (to_restore.empty() && graphs_to_restore.empty()) return;
    std::unordered_set<task_id> wanted(ids.begin(), ids.end());
    auto cancelled = [](task_id id, const std::string& kind) {
      task_result r;
      r.id = id;
      r.kind = kind;
      r.status = outcome::cancelled;
      r.error = {errc::cancelled, "cancelled before it was queued again after a restart"};
      r.timings.submitted = r.timings.finished = clock::now();
      return r;
    };
    // In a held graph, what is left once these end, by its policy.
    for (auto& g : graphs_to_restore) {
      std::vector<bool> open(g.ids.size(), true);
      bool any = false;
      for (size_t k = 0; k < g.ids.size(); ++k)
        if (wanted.count(g.ids[k])) open[k] = false, any = true;
      if (!any) continue;
      std::vector<std::string> kinds;
      for (auto& s : g.specs) kinds.push_back(s.kind);
      auto rest = remainder_of(
          std::move(g.specs), open, g.on_failure,
          [&](uint32_t k) { return std::optional<task_result>{cancelled(g.ids[k], kinds[k])}; },
          cfg.max_payload_bytes);
      for (size_t k = 0; k < open.size(); ++k)
        if (!open[k]) on_done(cancelled(g.ids[k], kinds[k]));
      for (auto& [k, r] : rest.ended) {
        r.id = g.ids[k];
        r.kind = kinds[k];
        r.timings.submitted = r.timings.finished = clock::now();
        on_done(r);
      }
      std::vector<task_id> kept;
      for (auto k : rest.kept) kept.push_back(g.ids[k]);
      g.ids = std::move(kept);
      g.specs = std::move(rest.specs);
    }
    if (to_restore.empty()) return;
    std::vector<std::pair<task_id, task_spec>> kept;
    for (auto& [id, spec] : to_restore) {
      if (!wanted.count(id)) {
        kept.emplace_back(id, std::move(spec));
        continue;
      }
      task_result r;
      r.id = id;
      r.kind = spec.kind;
      r.status = outcome::cancelled;
      r.error = {errc::cancelled, "cancelled before it was queued again after a restart"};
      r.timings.submitted = r.timings.finished = clock::now();
      on_done(r);
    }
    to_restore = std::move(kept);
  }

  /// The client a task counts for in fair share (queue.order = "fair"): with keys, the name of
  /// its key (whatever label it sent); without, its own `client` label, or its connection.
  void label_client(task_spec& spec, const std::string& owner) const {
    if (cfg.order != queue_order::fair) return;  // (a label per task costs an allocation)
    if (secured) {
      auto user = client_of(owner);
      spec.labels["client"] = user.substr(user.find(':') + 1);
    } else if (!spec.labels.count("client")) {
      spec.labels["client"] = printable(owner);
    }
  }

  /// A client's idempotency key, scoped by its identity (length first: no two pairs collide).
  static std::string scoped_key(const std::string& owner, const std::string& key) {
    return std::to_string(owner.size()) + ':' + owner + '/' + key;
  }

  /// A result for its owner, sent (and journalled) on the socket thread's next round.
  void on_done(const task_result& r) {
    bool wake = false;
    {
      std::lock_guard<std::mutex> guard{results_mutex};
      auto i = open.find(r.id);
      if (i == open.end() || i->second.ended) return;  // its terminal record was given already
      i->second.ended = true;
      auto& out = results_pending[i->second.owner];
      out.latency_ms.push_back(
          std::chrono::duration<double, std::milli>(r.timings.finished - r.timings.submitted)
              .count());
      out.tasks.push_back(r);
      wake = !results_wake;
      results_wake = true;
    }
    if (wake) sock->wake();
  }

  size_t open_count() {
    std::lock_guard<std::mutex> guard{results_mutex};
    return open.size();
  }

  static std::string token_key(const std::string& owner, uint64_t token) {
    return owner + '/' + std::to_string(token);
  }

  void remember_token(const std::string& owner, uint64_t token, std::vector<task_id> ids) {
    auto key = token_key(owner, token);
    if (!tokens.emplace(key, std::move(ids)).second) return;
    token_order.push_back(std::move(key));
    if (token_order.size() > max_tokens) {
      tokens.erase(token_order.front());
      token_order.pop_front();
    }
  }

  /// Journal trouble is loud but does not stop the head: tasks still run, only the promise
  /// to survive a restart is broken (logged at error level).
  template <class F>
  static void journalled(const char* what, F&& write) {
    try {
      write();
    } catch (const std::exception& e) {
      troupe::logger().error("head: journal: {} not recorded: {}", what, e.what());
    }
  }

  /// Runs `then` once what `write` puts in the journal is there: on the journal's thread, in
  /// the order of posting (so replies that depend on the journal leave in that order), or here
  /// and now without a journal. Both are copied into the job: wrap move-only state in a
  /// shared_ptr.
  template <class Write, class Then>
  void after_journal(const char* what, size_t bytes, Write write, Then then) {
    if (!jq) return then();
    jq->post(
        [what, write = std::move(write), then = std::move(then)](journal& j) mutable {
          journalled(what, [&] { write(j); });
          then();
        },
        bytes);
  }

  void start_publishing() {
    transport::socket_options po;
    // XPUB: with keys, each subscriber gets only the topics its key may follow.
    po.type = zmq::socket_type::xpub;
    po.endpoint = cfg.cluster.events_endpoint;
    if (secured)
      po.grant_subscription = [this](const std::string& user, const std::string& asked) {
        return grant_subscription(user, asked);
      };
    po.bind = true;
    po.name = "troupe-pub";
    po.max_outbound = cfg.cluster.max_outbound;
    po.high_water_mark = int(cfg.cluster.event_high_water);
    po.server_keys = {server_secret, "troupe-events"};
    po.handshake_ms = int(cfg.cluster.security.handshake.count());
    try {
      pub = std::make_unique<transport::socket_thread>(ctx, po, [](transport::multipart&) {});
    } catch (...) {
      stop(shutdown_mode::cancel);
      throw;
    }
    // The event bus calls this on its own thread, in sequence order: recording and handing the
    // frames to the PUB thread never waits on a subscriber (PUB drops at the high-water mark).
    subscription = rt->subscribe_direct("", [this](const event& published) {
      event e = published;  // stamped: subscribers tell this head's sequence from a restarted one's
      e.incarnation = incarnation;
      {
        std::lock_guard<std::mutex> guard{log_mutex};
        log.record(e);
      }
      // The PUB thread's own queue full: lost for every subscriber (they see a gap), counted.
      if (!pub->send({std::string_view{e.topic}, std::string_view{wire::encode(e)}}))
        rt->count_dropped_events(1);
    });
    troupe::logger().info("head: publishing events on {}", pub->endpoint());
  }

  /// Who sent a message. With keys, `user` is the "role:name" the ZAP handler gave its
  /// connection, and tasks belong to `owner` = user + '\n' + routing id: results go to the
  /// connection, ownership follows the key. Without keys both are the routing id.
  struct caller {
    std::string peer, user, owner;
    std::string_view role() const { return std::string_view{user}.substr(0, user.find(':')); }
    std::string_view name() const {
      auto colon = user.find(':');
      return colon == std::string::npos ? std::string_view{}
                                        : std::string_view{user}.substr(colon + 1);
    }
  };

  /// The topic prefixes a subscriber key may follow (security.allow topics); null: every topic
  /// (no keys, an admin, a subscriber without topics).
  const std::vector<std::string>* topics_of(const std::string& user) const {
    if (!secured) return nullptr;
    auto colon = user.find(':');
    if (colon == std::string::npos || user.compare(0, colon, "subscriber") != 0) return nullptr;
    for (auto& a : cfg.cluster.security.allow)
      if (a.role == peer_role::subscriber &&
          user.compare(colon + 1, std::string::npos, a.name) == 0)
        return a.topics.empty() ? nullptr : &a.topics;
    return nullptr;
  }
  static bool starts_with(const std::string& s, const std::string& prefix) {
    return s.compare(0, prefix.size(), prefix) == 0;
  }
  /// Whether a topic (or, for a family such as "task.", all of its topics) may be followed.
  static bool covered(const std::vector<std::string>& topics, const std::string& topic) {
    return std::any_of(topics.begin(), topics.end(),
                       [&](const std::string& p) { return starts_with(topic, p); });
  }
  /// On the PUB thread: what a subscription for `asked` becomes for this key. Asked for more
  /// than it may follow ("" is everything), it gets its prefixes; asked for less, what it asked.
  std::vector<std::string> grant_subscription(const std::string& user, const std::string& asked) {
    auto* topics = topics_of(user);
    if (!topics) return {asked};
    std::vector<std::string> out;
    for (auto& p : *topics) {
      auto& g = starts_with(p, asked) ? p : starts_with(asked, p) ? asked : std::string{};
      if (!g.empty() && std::find(out.begin(), out.end(), g) == out.end()) out.push_back(g);
    }
    if (out.empty())
      troupe::logger().info("head: {} subscribed to '{}', none of its topics: it gets nothing",
                            user, asked);
    return out;
  }

  void on_replay_request(const caller& c, const wire::header& h, uint64_t since) {
    wire::replay r;
    {
      std::lock_guard<std::mutex> guard{log_mutex};
      auto got = log.since(since, replay_batch);
      r.complete = got.has_value();
      if (got) r.events = std::move(*got);
      r.last_seq = log.last_seq();
    }
    if (auto* topics = topics_of(c.user)) {
      // Its events only, and through which seq they were looked at (it asks on from there).
      r.through = r.events.empty() ? r.last_seq : r.events.back().seq;
      r.events.erase(std::remove_if(r.events.begin(), r.events.end(),
                                    [&](const event& e) { return !covered(*topics, e.topic); }),
                     r.events.end());
    }
    sock->send(framer.make(&c.peer, wire::msg_type::replay, r, h.id));
  }
  void on_snapshot_request(const caller& c, const wire::header& h) {
    wire::snapshot s;
    {
      std::lock_guard<std::mutex> guard{log_mutex};
      s.state = log.snapshot();
    }
    // A key limited to some topics: a part of the state only where a prefix covers its family.
    if (auto* topics = topics_of(c.user)) {
      s.topics = *topics;
      if (!covered(*topics, "task.")) s.state.tasks.clear(), s.state.finished.clear();
      if (!covered(*topics, "worker.")) s.state.workers.clear();
      if (!covered(*topics, "node.")) s.state.nodes.clear();
    }
    sock->send(framer.make(&c.peer, wire::msg_type::snapshot, s, h.id));
  }

  void refuse(const std::string& peer, uint64_t corr, wire::wire_errc code,
              const std::string& why) {
    refused.fetch_add(1, std::memory_order_relaxed);
    // A peer sending bad frames in a loop must not flood the log (every refusal is still
    // answered and counted).
    uint64_t unshown = 0;
    bool log = refusal_log.allow(unshown);
    if (unshown > 0) troupe::logger().warn("head: {} more refused message(s) not shown", unshown);
    if (log)
      troupe::logger().warn("head: refused a message from peer {}: {}: {}", printable(peer),
                            wire::to_string(code), why);
    sock->send(framer.make(&peer, wire::msg_type::error, wire::error{code, why}, corr));
  }
  log_limiter refusal_log;  // socket thread only

  /// A submit or fetch while the journal's queue is at its bound: nothing of it was taken.
  void refuse_journal_behind(const std::string& peer, uint64_t corr, const char* what) {
    refuse(peer, corr, wire::wire_errc::overloaded,
           "the head's journal is " + std::to_string(jq->queued_bytes() >> 20) +
               " MiB behind the disk; " + what + " again later");
  }

  static std::string printable(const std::string& id) {
    static const char* hex = "0123456789abcdef";
    std::string s;
    for (unsigned char c : id) s += hex[c >> 4], s += hex[c & 15];
    return s;
  }

  /// The routing id an owner's results go to.
  std::string peer_of(const std::string& owner) const {
    if (!secured) return owner;
    auto nl = owner.find('\n');
    return nl == std::string::npos ? owner : owner.substr(nl + 1);
  }

  /// Whether `c` may see or cancel a task of `owner`: always without keys; with keys, its own
  /// tasks (same key), or any with an admin key.
  bool may_touch(const caller& c, const std::string& owner) const {
    if (!secured || c.role() == "admin") return true;
    auto nl = owner.find('\n');
    return nl != std::string::npos && std::string_view{owner}.substr(0, nl) == c.user;
  }

  /// Why this key may not send this message, or "" if it may. Node messages come only from the
  /// key of the node they name; clients submit, cancel and fetch; subscribers replay and take
  /// snapshots; an admin may do all but speak for a node.
  std::string forbidden(const caller& c, wire::msg_type type, const std::string& node) const {
    if (!secured) return {};
    auto role = c.role();
    auto no = [&] {
      return std::string{role == "admin" ? "an " : "a "} + std::string{role} + " key ('" +
             std::string{c.name()} + "') may not send '" + wire::to_string(type) + "'";
    };
    switch (type) {
      case wire::msg_type::hello:
      case wire::msg_type::heartbeat:
      case wire::msg_type::bye:
      case wire::msg_type::results:
      case wire::msg_type::worker_state:
        if (role != "node") return no();
        if (c.name() != node)
          return "the key of node '" + std::string{c.name()} + "' may not speak for node '" + node +
                 "'";
        return {};
      case wire::msg_type::submit:
      case wire::msg_type::cancel:
      case wire::msg_type::fetch:
        return role == "client" || role == "admin" ? std::string{} : no();
      case wire::msg_type::replay_request:
      case wire::msg_type::snapshot_request:
        return role == "subscriber" || role == "admin" ? std::string{} : no();
      default:
        return {};  // status, error: anyone let in
    }
  }

  void on_message(transport::multipart& m) {
    frames_in.fetch_add(1, std::memory_order_relaxed);
    if (m.empty()) return;
    caller c;
    c.peer.assign(static_cast<const char*>(m[0].data()), m[0].size());
    const auto& peer = c.peer;
    if (secured) {
      c.user = transport::user_id_of(m.back());
      // The ZAP handler let nobody in without a key: a message without one is a bug, not a peer.
      if (c.user.empty()) return;
      c.owner = c.user + '\n' + c.peer;
    } else {
      c.owner = c.peer;
    }
    if (m.size() != 3)
      return refuse(peer, 0, wire::wire_errc::malformed,
                    "expected 2 frames (header, body), got " + std::to_string(m.size() - 1));
    wire::header h;
    try {
      h = wire::decode_header(m[1].data(), m[1].size(), lim_control);
    } catch (const wire::decode_error& e) {
      return refuse(peer, 0, e.code(), e.what());
    }
    auto& body = m[2];
    try {
      std::optional<wire::hello> hello;
      // Only a node key's hello is worth decoding (a body costs many times its size).
      if (h.type == wire::msg_type::hello && secured && c.role() != "node")
        return refuse(peer, h.id, wire::wire_errc::forbidden, forbidden(c, h.type, h.from));
      if (h.type == wire::msg_type::hello) hello = decode_control<wire::hello>(body);
      if (auto why = forbidden(c, h.type, hello ? hello->node : h.from); !why.empty())
        return refuse(peer, h.id, wire::wire_errc::forbidden, why);
      switch (h.type) {
        case wire::msg_type::hello:
          return caf::anon_send(membership, node_hello_msg{peer, h.epoch, h.id, std::move(*hello)});
        case wire::msg_type::heartbeat:
          return caf::anon_send(membership,
                                node_heartbeat_msg{peer, h.from, h.epoch, false,
                                                   decode_control<wire::heartbeat>(body)});
        case wire::msg_type::bye:
          return caf::anon_send(membership, node_heartbeat_msg{peer, h.from, h.epoch, true, {}});
        case wire::msg_type::results:
          return caf::anon_send(
              membership, node_results_msg{peer, h.from, h.epoch, decode<wire::results>(body)});
        case wire::msg_type::worker_state:
          return caf::anon_send(
              membership,
              node_worker_msg{peer, h.from, h.epoch, decode_control<wire::worker_state>(body)});
        case wire::msg_type::submit:
          return on_submit(c, h, body);
        case wire::msg_type::cancel:
          return on_cancel(c, h, decode_control<wire::cancel>(body).ids);
        case wire::msg_type::fetch:
          return on_fetch(c, h, decode_control<wire::fetch>(body));
        case wire::msg_type::replay_request:
          return on_replay_request(c, h, decode_control<wire::replay_request>(body).since);
        case wire::msg_type::snapshot_request:
          decode_control<wire::snapshot_request>(body);
          return on_snapshot_request(c, h);
        case wire::msg_type::status_request: {
          decode_control<wire::status_request>(body);
          uint64_t last_seq = 0;
          {
            std::lock_guard<std::mutex> guard{log_mutex};
            last_seq = log.last_seq();
          }
          if (topics_of(c.user)) {
            // A key limited to some topics learns where the events are, not the cluster.
            wire::status s;
            s.events_endpoint = pub ? pub->endpoint() : "";
            s.last_event_seq = last_seq;
            sock->send(framer.make(&peer, wire::msg_type::status, s, h.id));
            return;
          }
          return caf::anon_send(membership, status_query_msg{peer, h.id, refused.load(),
                                                             pub ? pub->endpoint() : "", last_seq});
        }
        case wire::msg_type::error: {
          auto e = decode_control<wire::error>(body);
          troupe::logger().warn("head: peer {} ({}) reports: {}: {}", printable(peer), h.from,
                                wire::to_string(e.code), e.message);
          return;
        }
        default:
          return refuse(
              peer, h.id, wire::wire_errc::unexpected,
              std::string{"the head does not take '"} + wire::to_string(h.type) + "' messages");
      }
    } catch (const wire::decode_error& e) {
      refuse(peer, h.id, e.code(), e.what());
    }
  }

  template <class Body>
  Body decode(const zmq::message_t& body) {
    return wire::decode<Body>(body.data(), body.size(), lim);
  }
  template <class Body>
  Body decode_control(const zmq::message_t& body) {
    return wire::decode<Body>(body.data(), body.size(), lim_control);
  }

  /// On the socket thread: frames for the results gathered since the last round.
  void send_results() {
    std::unordered_map<std::string, wire::result> ready;
    {
      std::lock_guard<std::mutex> guard{results_mutex};
      if (results_pending.empty()) return;
      ready.swap(results_pending);
      results_wake = false;
    }
    auto sent = std::make_shared<std::vector<task_id>>();
    for (auto& [peer, res] : ready)
      for (auto& t : res.tasks) sent->push_back(t.id);
    // Journalled, then sent; then a fetch finds them in the journal, no longer open.
    send_to_owners(ready, true, [this, sent] {
      std::lock_guard<std::mutex> guard{results_mutex};
      for (auto id : *sent) closed(id);
    });
  }

  /// Frames of at most results_per_frame results and limits.max_payload_bytes of outputs (a
  /// client with the same limit accepts every one), journalled as they are sent, in one
  /// transaction, before any goes out (record); `then` runs after they are sent.
  template <class Then>
  void send_to_owners(std::unordered_map<std::string, wire::result>& ready, bool record,
                      Then then) {
    auto budget = cfg.max_payload_bytes;
    struct outgoing {
      std::string owner;  // a copy: `ready` is gone when a journalled send runs
      zmq::message_t body;
      std::vector<task_id> ids;
    };
    auto out_ptr = std::make_shared<std::vector<outgoing>>();
    auto& out = *out_ptr;
    size_t bytes = 0;
    for (auto& [owner, res] : ready) {
      size_t at = 0;
      while (at < res.tasks.size()) {
        auto end = frame_end(at, res.tasks.size(), results_per_frame, budget, [&](size_t i) {
          return output_bytes(res.tasks[i].output) + res.tasks[i].error.message.size();
        });
        outgoing o{owner, {}, {}};
        for (size_t i = at; i < end; ++i) o.ids.push_back(res.tasks[i].id);
        if (at == 0 && end == res.tasks.size()) {
          o.body = wire::encode_message(res);
        } else {
          wire::result part;
          part.tasks.assign(std::make_move_iterator(res.tasks.begin() + long(at)),
                            std::make_move_iterator(res.tasks.begin() + long(end)));
          part.latency_ms.assign(res.latency_ms.begin() + long(at),
                                 res.latency_ms.begin() + long(end));
          o.body = wire::encode_message(part);
        }
        bytes += o.body.size();
        out.push_back(std::move(o));
        at = end;
      }
    }
    auto send = [this, out_ptr, then = std::move(then)] {
      for (auto& o : *out_ptr) {
        auto peer = peer_of(o.owner);
        sock->send(framer.make_encoded(&peer, wire::msg_type::result, std::move(o.body)));
      }
      then();
    };
    if (!record) return send();
    after_journal(
        "terminal records", bytes,
        [out_ptr](journal& j) {
          std::vector<journal::batch> batches;
          batches.reserve(out_ptr->size());
          for (auto& o : *out_ptr)
            batches.push_back({{static_cast<const char*>(o.body.data()), o.body.size()},
                               std::move(o.ids),
                               o.owner});
          j.finished(batches);
        },
        std::move(send));
  }

  /// Cancels the caller's tasks; with keys, ids of others' tasks (and of tasks not submitted
  /// through the socket) are left alone and named in a forbidden error, unless it is an admin.
  void on_cancel(const caller& c, const wire::header& h, std::vector<task_id> ids) {
    if (secured && c.role() != "admin") {
      std::vector<task_id> mine, others;
      {
        std::lock_guard<std::mutex> guard{results_mutex};
        for (auto id : ids) {
          auto i = open.find(id);
          // A task that is over cannot be cancelled anyway: only open ones of others are named.
          if (i == open.end() || may_touch(c, i->second.owner))
            mine.push_back(id);
          else
            others.push_back(id);
        }
      }
      if (!others.empty())
        refuse(c.peer, h.id, wire::wire_errc::forbidden,
               std::to_string(others.size()) + " task(s) of another key left alone (first " +
                   std::to_string(others.front()) + ")");
      ids = std::move(mine);
      // Ids that are not open (finished, or never given out) may belong to anyone: the runtime
      // is asked only for ids this caller owns.
      std::lock_guard<std::mutex> guard{results_mutex};
      ids.erase(std::remove_if(ids.begin(), ids.end(), [&](task_id id) { return !open.count(id); }),
                ids.end());
    }
    cancel_held(ids);
    for (auto id : ids) rt->cancel(id);
    caf::anon_send(membership, cancel_remote_msg{std::move(ids)});
  }

  /// The body is taken (it goes to the journal as it came).
  void on_submit(const caller& c, const wire::header& h, zmq::message_t& received) {
    const auto& peer = c.peer;
    const auto& owner = c.owner;
    // Refused before decoding when the journal is this far behind the disk: the client may
    // send it again (nothing of it was taken).
    if (jq && !jq->has_room(received.size())) return refuse_journal_behind(peer, h.id, "submit");
    auto msg = decode<wire::submit>(received);
    if (msg.token) {
      if (auto known = tokens.find(token_key(owner, msg.token)); known != tokens.end()) {
        // Sent again (its answer was lost, or an earlier incarnation took it): the same ids,
        // once the first submit's are on disk.
        auto reply = std::make_shared<transport::multipart>(
            framer.make(&peer, wire::msg_type::submitted, wire::submitted{known->second}, h.id));
        after_journal(
            "nothing", 0, [](journal&) {}, [this, reply] { sock->send(std::move(*reply)); });
        return;
      }
    }
    auto n = msg.tasks.size();
    // Ids first, and their owner known before any of them can finish.
    auto first = rt->impl_->admission->take_ids(n);
    std::vector<task_id> ids(n);
    for (size_t i = 0; i < n; ++i) ids[i] = first + i;
    wire::result rejected;
    {
      std::lock_guard<std::mutex> guard{results_mutex};
      // Over the client's bounds: the rest of the frame is rejected at the door (each task
      // gets its id and a terminal record, queue_full naming the bound).
      std::string why;
      auto allowed = within_client_bounds(client_of(owner), n, why);
      // A graph or a gang is taken whole or not at all.
      if (allowed < n && (has_links(msg.tasks) || msg.gang)) allowed = 0;
      for (size_t i = allowed; i < n; ++i) {
        task_result r;
        r.id = ids[i];
        r.kind = msg.tasks[i].kind;
        r.status = outcome::rejected;
        r.error = {errc::queue_full, why};
        r.timings.submitted = r.timings.finished = clock::now();
        rejected.tasks.push_back(std::move(r));
        rejected.latency_ms.push_back(0);
      }
      if (allowed < n) msg.tasks.resize(allowed);
      for (size_t i = 0; i < allowed; ++i) opened(ids[i], owner);
    }
    auto over_bounds = rejected.tasks.size();
    // Keys are the client's own: two clients may use the same key for different tasks.
    for (auto& spec : msg.tasks) {
      if (!spec.idempotency_key.empty())
        spec.idempotency_key = scoped_key(owner, spec.idempotency_key);
      label_client(spec, owner);
    }
    auto received_unix_ms = int64_t(wall_clock_ns() / 1000000);
    std::vector<task_id> accepted_ids(ids.begin(), ids.begin() + long(n - over_bounds));
    auto handles = rt->impl_->submit_specs(
        std::move(msg.tasks), [this](const task_result& r) { on_done(r); }, &accepted_ids,
        client_of(owner), msg.on_failure.value_or(failure_policy::cancel_dependents), msg.gang);
    wire::submitted reply;
    reply.ids.reserve(n);
    std::vector<task_handle> named;  // earlier tasks that keys named (each once)
    std::vector<task_id> no_record;
    {
      std::lock_guard<std::mutex> guard{results_mutex};
      for (size_t i = 0; i < handles.size(); ++i) {
        auto& hd = handles[i];
        reply.ids.push_back(hd.id());
        if (hd.id() != ids[i]) {  // an idempotency key named an earlier task: that one answers
          closed(ids[i]);
          no_record.push_back(ids[i]);
          if (std::none_of(named.begin(), named.end(),
                           [&](const task_handle& k) { return k.id() == hd.id(); }))
            named.push_back(hd);
          continue;
        }
        // Rejected at the door: no callback will come; the result follows the ids right away.
        if (hd.ready() && hd.get().status == outcome::rejected) {
          closed(ids[i]);
          rejected.tasks.push_back(hd.get());
          rejected.latency_ms.push_back(0);
        }
      }
      for (size_t i = handles.size(); i < n; ++i) reply.ids.push_back(ids[i]);
    }
    // What the journal job keeps until it ran (the body as it came: tasks decode from it again
    // after a restart).
    struct accepted_frame {
      zmq::message_t body, rejected_body;
      journal::frame f;
      journal::batch rejected_batch;
      std::vector<task_id> no_record;
      task_id next_id = 0;
      transport::multipart submitted, results;
      std::vector<task_handle> named;
    };
    auto a = std::make_shared<accepted_frame>();
    a->body = std::move(received);
    if (!rejected.tasks.empty()) a->rejected_body = wire::encode_message(rejected);
    a->f.owner = owner;
    a->f.token = msg.token;
    a->f.first_id = first;
    a->f.count = uint32_t(n);
    a->f.received_unix_ms = received_unix_ms;
    a->f.body = {static_cast<const char*>(a->body.data()), a->body.size()};
    if (!no_record.empty()) a->f.reply = reply.ids;
    a->rejected_batch.body = {static_cast<const char*>(a->rejected_body.data()),
                              a->rejected_body.size()};
    for (auto& r : rejected.tasks) a->rejected_batch.ids.push_back(r.id);
    a->no_record = std::move(no_record);
    a->next_id = rt->impl_->admission->next_id();
    if (msg.token) remember_token(owner, msg.token, reply.ids);
    a->submitted = framer.make(&peer, wire::msg_type::submitted, reply, h.id);
    if (!rejected.tasks.empty()) {
      zmq::message_t copy;
      copy.copy(a->rejected_body);
      a->results = framer.make_encoded(&peer, wire::msg_type::result, std::move(copy));
    }
    a->named = std::move(named);
    // On disk before the client hears of it: the frame and the records of the rejected. (The
    // tasks may already run: a head killed right now never answered, the client sends the
    // submit again, and they run again.)
    auto bytes = a->body.size() + a->rejected_body.size();
    after_journal(
        "accepted tasks", bytes,
        [a](journal& j) {
          a->rejected_batch.owner = a->f.owner;
          j.accepted(a->f, a->rejected_batch, a->no_record, a->next_id);
        },
        [this, a] {
          sock->send(std::move(a->submitted));
          if (!a->results.empty()) sock->send(std::move(a->results));
          // An earlier task a key named that is over, its result sent already (no longer open;
          // decided here, after every earlier send): its result goes again, after the ids.
          // (Still open: its result is on its way to its owner, this client.)
          wire::result known;
          {
            std::lock_guard<std::mutex> guard{results_mutex};
            for (auto& k : a->named)
              if (k.ready() && !open.count(k.id())) {
                known.tasks.push_back(k.get());
                known.latency_ms.push_back(0);
              }
          }
          if (!known.tasks.empty()) {
            std::unordered_map<std::string, wire::result> again;
            again.emplace(a->f.owner, std::move(known));
            send_to_owners(again, false, [] {});  // in frames within the limits
          }
        });
  }

  /// Under results_mutex: how many of n new tasks the client may have (all, or fewer at its
  /// in-flight bound or when its submit rate is spent; `why` then names the bound).
  size_t within_client_bounds(const std::string& client, size_t n, std::string& why) {
    auto& cl = cfg.cluster;
    auto& acc = accounts[client];
    size_t allowed = n;
    if (cl.client_max_in_flight > 0 && acc.open + allowed > cl.client_max_in_flight) {
      allowed = acc.open < cl.client_max_in_flight ? cl.client_max_in_flight - acc.open : 0;
      why = "this client has " + std::to_string(acc.open) + " tasks in flight, at most " +
            std::to_string(cl.client_max_in_flight) + " (cluster.client_max_in_flight)";
    }
    if (cl.client_submit_rate > 0) {
      // A bucket of one second's worth, refilled continuously.
      auto now = std::chrono::steady_clock::now();
      double rate = double(cl.client_submit_rate);
      bool fresh = acc.refilled == std::chrono::steady_clock::time_point{};
      acc.tokens =
          fresh ? rate
                : std::min(rate,
                           acc.tokens +
                               rate * std::chrono::duration<double>(now - acc.refilled).count());
      acc.refilled = now;
      if (double(allowed) > acc.tokens) {
        allowed = size_t(acc.tokens);
        why = "this client submits faster than " + std::to_string(cl.client_submit_rate) +
              " tasks/s (cluster.client_submit_rate)";
      }
      acc.tokens -= double(allowed);
    }
    // The account map is bounded by the clients that have tasks open (or a bucket not full).
    if (accounts.size() > 65536)
      for (auto i = accounts.begin(); i != accounts.end();)
        i = i->second.open == 0 && &i->second != &acc ? accounts.erase(i) : std::next(i);
    return allowed;
  }

  /// Where a client's tasks are: results of finished ones are sent again (from the journal),
  /// running ones will send theirs to this connection, and unknown ones are named. Answered
  /// after the journal has what finished before it came (in the journal's order).
  void on_fetch(const caller& c, const wire::header& h, wire::fetch&& f) {
    send_results();  // what finished meanwhile is journalled and sent first
    if (!jq) return answer_fetch(c, h.id, f.ids, nullptr);
    // Counted against the journal queue's bound as about a record read per id: a flood of
    // fetches is refused, not queued ahead of everyone's results.
    auto bytes = f.ids.size() * 1024;
    if (!jq->has_room(bytes)) return refuse_journal_behind(c.peer, h.id, "fetch");
    auto ids = std::make_shared<std::vector<task_id>>(std::move(f.ids));
    jq->post([this, c, corr = h.id, ids](journal& j) { answer_fetch(c, corr, *ids, &j); }, bytes);
  }

  /// On the journal's thread, or the socket thread without a journal (jnl null).
  void answer_fetch(const caller& c, uint64_t corr, const std::vector<task_id>& ids, journal* jnl) {
    const auto& peer = c.peer;
    size_t not_theirs = 0;
    wire::fetched reply;
    std::unordered_map<std::string, wire::result> found;
    std::unordered_map<int64_t, std::pair<wire::result, std::unordered_map<task_id, size_t>>>
        batches;
    for (auto id : ids) {
      {
        std::lock_guard<std::mutex> guard{results_mutex};
        if (auto i = open.find(id); i != open.end()) {
          // Its result goes to its owner; another identity may fetch it once it is finished.
          // With keys, another key does not learn it exists.
          if (may_touch(c, i->second.owner))
            reply.pending.push_back(id);
          else
            reply.unknown.push_back(id), ++not_theirs;
          continue;
        }
      }
      std::optional<journal::stored_record> record;
      if (jnl) journalled("a fetch", [&] { record = jnl->record_of(id); });
      if (!record || !may_touch(c, record->owner)) {
        if (record) ++not_theirs;
        reply.unknown.push_back(id);
        continue;
      }
      try {
        // The result message that carried it (decoded once per fetch): its record goes again.
        auto b = batches.find(record->batch);
        if (b == batches.end()) {
          auto r = wire::decode<wire::result>(record->body.data(), record->body.size(), lim);
          std::unordered_map<task_id, size_t> at;
          for (size_t i = 0; i < r.tasks.size(); ++i) at[r.tasks[i].id] = i;
          b = batches.emplace(record->batch, std::make_pair(std::move(r), std::move(at))).first;
        }
        auto& [r, at] = b->second;
        auto& out = found[c.owner];
        if (auto i = at.find(id); i != at.end()) {
          out.tasks.push_back(r.tasks[i->second]);
          out.latency_ms.push_back(i->second < r.latency_ms.size() ? r.latency_ms[i->second] : 0);
        }
      } catch (const wire::decode_error& e) {
        troupe::logger().error("head: journal: the record of task {} is unreadable: {}", id,
                               e.what());
        reply.unknown.push_back(id);
      }
    }
    if (not_theirs > 0)
      troupe::logger().warn("head: {} asked for {} task(s) of other keys: answered unknown", c.user,
                            not_theirs);
    if (reply.unknown.size() > not_theirs) {
      // Worth a line: a client is about to end these result_lost.
      std::string some;
      for (size_t i = 0; i < reply.unknown.size() && i < 5; ++i)
        some += (i ? ", " : "") + std::to_string(reply.unknown[i]);
      troupe::logger().warn(
          "head: a fetch from {} asks for {} task(s) this head does not know "
          "({}{}); {} open, {} results kept",
          printable(peer), reply.unknown.size(), some, reply.unknown.size() > 5 ? ", ..." : "",
          open_count(), jnl ? jnl->records() : 0);
    }
    send_to_owners(found, false, [] {});  // journalled already
    sock->send(framer.make(&peer, wire::msg_type::fetched, reply, corr));
  }

  void stop(shutdown_mode mode) {
    std::lock_guard<std::mutex> guard{stop_mutex};
    if (stopped) return;
    stopped = true;
    if (jq && mode == shutdown_mode::cancel) {
      // What the shutdown cancels is not over for the clients: it stays unfinished in the
      // journal and runs when the head starts again.
      std::lock_guard<std::mutex> results_guard{results_mutex};
      open.clear();
      accounts.clear();
    }
    rt->shutdown(mode);
    if (subscription) rt->unsubscribe(subscription);
    auto& ri = *rt->impl_;
    caf::anon_send_exit(membership, caf::exit_reason::user_shutdown);
    {
      caf::scoped_actor self{*ri.system};
      self->wait_for(membership);
    }
    membership = nullptr;
    // The socket's thread first: nothing is posted to the journal after it ended. Then what
    // finished meanwhile, and everything posted, is written (and sent, if the socket still
    // can: a client fetches the rest from the next head).
    sock->stop();
    if (jq) {
      send_results();
      jq->stop();
    }
    if (pub) pub->stop();
  }
};

head::head(runtime_config cfg) : impl_(std::make_unique<impl>(std::move(cfg))) {}

head::~head() {
  impl_->stop(shutdown_mode::cancel);
  impl_->sock.reset();
  impl_->rt.reset();  // the event bus (its callback uses pub) is gone after this
  impl_->pub.reset();
}

const std::string& head::endpoint() const {
  return impl_->sock->endpoint();
}

troupe::runtime& head::runtime() {
  return *impl_->rt;
}

head_counters head::counters() const {
  return {impl_->frames_in.load(), impl_->refused.load(), impl_->sock->dropped()};
}

void head::shutdown(shutdown_mode mode) {
  impl_->stop(mode);
}

}  // namespace troupe
