#include "troupe/head.hpp"

#include "runtime_impl.hpp"
#include "troupe/actors/cluster/membership.hpp"
#include "troupe/model/event_log.hpp"
#include "troupe/model/frame_split.hpp"
#include "troupe/transport/codec.hpp"
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
  wire::framer framer{"head"};
  zmq::context_t ctx{1};
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
  static constexpr size_t results_per_frame = 1024;
  std::mutex stop_mutex;
  bool stopped = false;

  explicit impl(runtime_config c) : cfg(std::move(c)), log(cfg.cluster.event_ring) {
    lim = wire::limits::for_payload(cfg.max_payload_bytes);
    lim.max_tasks_per_submit = cfg.cluster.max_tasks_per_submit;
    rt.reset(new troupe::runtime(head_view(cfg), cluster_workers(cfg)));
    auto& ri = *rt->impl_;
    transport::socket_options so;
    so.type = zmq::socket_type::router;
    so.endpoint = cfg.cluster.head_endpoint;
    so.bind = true;
    so.name = "troupe-head";
    so.max_outbound = cfg.cluster.max_outbound;
    // zmq itself drops (and disconnects) beyond twice our limit; up to it we answer with an error.
    so.max_message_bytes = int64_t(lim.max_frame_bytes) * 2;
    try {
      sock = std::make_unique<transport::socket_thread>(
          ctx, so, [this](transport::multipart& m) { on_message(m); }, [this] { send_results(); });
    } catch (...) {
      rt->shutdown(shutdown_mode::cancel);
      throw;
    }
    membership = ri.system->spawn(
        membership_impl, setup_ptr{ri.setup}, ri.events, ri.gauges, ri.admission, ri.balancer,
        ri.monitor, ri.bus,
        [s = sock.get()](transport::multipart&& m) { return s->send(std::move(m)); }, &framer);
    if (!cfg.cluster.events_endpoint.empty()) start_publishing();
    troupe::logger().info("head: listening on {} for {} node(s)", sock->endpoint(),
                          cfg.cluster.nodes.size());
  }

  void start_publishing() {
    transport::socket_options po;
    po.type = zmq::socket_type::pub;
    po.endpoint = cfg.cluster.events_endpoint;
    po.bind = true;
    po.name = "troupe-pub";
    po.max_outbound = cfg.cluster.max_outbound;
    po.high_water_mark = int(cfg.cluster.event_high_water);
    try {
      pub = std::make_unique<transport::socket_thread>(ctx, po, [](transport::multipart&) {});
    } catch (...) {
      stop(shutdown_mode::cancel);
      throw;
    }
    // The event bus calls this on its own thread, in sequence order: recording and handing the
    // frames to the PUB thread never waits on a subscriber (PUB drops at the high-water mark).
    subscription = rt->subscribe_direct("", [this](const event& e) {
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

  void on_replay_request(const std::string& peer, const wire::header& h, uint64_t since) {
    wire::replay r;
    {
      std::lock_guard<std::mutex> guard{log_mutex};
      auto got = log.since(since, replay_batch);
      r.complete = got.has_value();
      if (got) r.events = std::move(*got);
      r.last_seq = log.last_seq();
    }
    sock->send(framer.make(&peer, wire::msg_type::replay, r, h.id));
  }

  void on_snapshot_request(const std::string& peer, const wire::header& h) {
    wire::snapshot s;
    {
      std::lock_guard<std::mutex> guard{log_mutex};
      s.state = log.snapshot();
    }
    sock->send(framer.make(&peer, wire::msg_type::snapshot, s, h.id));
  }

  void refuse(const std::string& peer, uint64_t corr, wire::wire_errc code,
              const std::string& why) {
    refused.fetch_add(1, std::memory_order_relaxed);
    troupe::logger().warn("head: refused a message from peer {}: {}: {}", printable(peer),
                          wire::to_string(code), why);
    sock->send(framer.make(&peer, wire::msg_type::error, wire::error{code, why}, corr));
  }

  static std::string printable(const std::string& id) {
    static const char* hex = "0123456789abcdef";
    std::string s;
    for (unsigned char c : id) s += hex[c >> 4], s += hex[c & 15];
    return s;
  }

  void on_message(transport::multipart& m) {
    frames_in.fetch_add(1, std::memory_order_relaxed);
    if (m.empty()) return;
    std::string peer(static_cast<const char*>(m[0].data()), m[0].size());
    if (m.size() != 3)
      return refuse(peer, 0, wire::wire_errc::malformed,
                    "expected 2 frames (header, body), got " + std::to_string(m.size() - 1));
    wire::header h;
    try {
      h = wire::decode_header(m[1].data(), m[1].size(), lim);
    } catch (const wire::decode_error& e) {
      return refuse(peer, 0, e.code(), e.what());
    }
    auto& body = m[2];
    try {
      switch (h.type) {
        case wire::msg_type::hello:
          return caf::anon_send(membership,
                                node_hello_msg{peer, h.epoch, h.id, decode<wire::hello>(body)});
        case wire::msg_type::heartbeat:
          return caf::anon_send(membership, node_heartbeat_msg{peer, h.from, h.epoch, false,
                                                               decode<wire::heartbeat>(body)});
        case wire::msg_type::bye:
          return caf::anon_send(membership, node_heartbeat_msg{peer, h.from, h.epoch, true, {}});
        case wire::msg_type::results:
          return caf::anon_send(
              membership, node_results_msg{peer, h.from, h.epoch, decode<wire::results>(body)});
        case wire::msg_type::worker_state:
          return caf::anon_send(
              membership, node_worker_msg{peer, h.from, h.epoch, decode<wire::worker_state>(body)});
        case wire::msg_type::submit:
          return on_submit(peer, h, decode<wire::submit>(body));
        case wire::msg_type::cancel: {
          auto ids = decode<wire::cancel>(body).ids;
          for (auto id : ids) rt->cancel(id);
          return caf::anon_send(membership, cancel_remote_msg{std::move(ids)});
        }
        case wire::msg_type::replay_request:
          return on_replay_request(peer, h, decode<wire::replay_request>(body).since);
        case wire::msg_type::snapshot_request:
          decode<wire::snapshot_request>(body);
          return on_snapshot_request(peer, h);
        case wire::msg_type::status_request: {
          decode<wire::status_request>(body);
          uint64_t last_seq = 0;
          {
            std::lock_guard<std::mutex> guard{log_mutex};
            last_seq = log.last_seq();
          }
          return caf::anon_send(membership, status_query_msg{peer, h.id, refused.load(),
                                                             pub ? pub->endpoint() : "", last_seq});
        }
        case wire::msg_type::error: {
          auto e = decode<wire::error>(body);
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

  /// On the socket thread: frames for the results gathered since the last round.
  void send_results() {
    std::unordered_map<std::string, wire::result> ready;
    {
      std::lock_guard<std::mutex> guard{results_mutex};
      if (results_pending.empty()) return;
      ready.swap(results_pending);
      results_wake = false;
    }
    // Frames of at most results_per_frame results and limits.max_payload_bytes of outputs: a
    // client with the same limit accepts every one.
    auto budget = cfg.max_payload_bytes;
    for (auto& [peer, res] : ready) {
      size_t at = 0;
      while (at < res.tasks.size()) {
        auto end = frame_end(at, res.tasks.size(), results_per_frame, budget, [&](size_t i) {
          return output_bytes(res.tasks[i].output) + res.tasks[i].error.message.size();
        });
        if (at == 0 && end == res.tasks.size()) {
          sock->send(framer.make(&peer, wire::msg_type::result, res));
          break;
        }
        wire::result part;
        part.tasks.assign(std::make_move_iterator(res.tasks.begin() + long(at)),
                          std::make_move_iterator(res.tasks.begin() + long(end)));
        part.latency_ms.assign(res.latency_ms.begin() + long(at),
                               res.latency_ms.begin() + long(end));
        sock->send(framer.make(&peer, wire::msg_type::result, part));
        at = end;
      }
    }
  }

  void on_submit(const std::string& peer, const wire::header& h, wire::submit&& msg) {
    // Results go back to whoever submitted, as they finish (from the runtime's threads).
    auto on_done = [this, peer](const task_result& r) {
      bool wake = false;
      {
        std::lock_guard<std::mutex> guard{results_mutex};
        auto& out = results_pending[peer];
        out.latency_ms.push_back(
            std::chrono::duration<double, std::milli>(r.timings.finished - r.timings.submitted)
                .count());
        out.tasks.push_back(r);
        wake = !results_wake;
        results_wake = true;
      }
      if (wake) sock->wake();
    };
    auto handles = rt->submit_batch(std::move(msg.tasks), on_done);
    wire::submitted ids;
    ids.ids.reserve(handles.size());
    wire::result rejected;
    for (auto& hd : handles) {
      ids.ids.push_back(hd.id());
      // Rejected at the door: no callback will come; the result follows the ids right away.
      if (hd.ready() && hd.get().status == outcome::rejected) {
        rejected.tasks.push_back(hd.get());
        rejected.latency_ms.push_back(0);
      }
    }
    sock->send(framer.make(&peer, wire::msg_type::submitted, ids, h.id));
    if (!rejected.tasks.empty()) sock->send(framer.make(&peer, wire::msg_type::result, rejected));
  }

  void stop(shutdown_mode mode) {
    std::lock_guard<std::mutex> guard{stop_mutex};
    if (stopped) return;
    stopped = true;
    rt->shutdown(mode);
    if (subscription) rt->unsubscribe(subscription);
    auto& ri = *rt->impl_;
    caf::anon_send_exit(membership, caf::exit_reason::user_shutdown);
    {
      caf::scoped_actor self{*ri.system};
      self->wait_for(membership);
    }
    membership = nullptr;
    sock->stop();
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
