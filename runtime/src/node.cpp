#include "troupe/node.hpp"

#include "plugins.hpp"
#include "process_host.hpp"
#include "runtime_impl.hpp"
#include "troupe/actors/cluster/node_agent.hpp"
#include "troupe/transport/codec.hpp"
#include "troupe/transport/framer.hpp"
#include "troupe/transport/socket_thread.hpp"

namespace troupe {

namespace {

/// The kinds every process of node `name` has: the built-ins and those of its plugins.
void register_node_kinds(task_registry& registry, const runtime_config& cfg,
                         const std::string& name) {
  kernels::register_builtins(registry);
  auto& me = *cfg.cluster.find(name);  // node_view checked the name
  for (auto& p : me.plugins)
    load_plugin(p, registry, "cluster file", me.line, "nodes." + name + ".plugins");
}

}  // namespace

struct node::impl {
  std::shared_ptr<runtime_setup> setup = std::make_shared<runtime_setup>();
  std::shared_ptr<event_gate> events = std::make_shared<event_gate>();
  std::string name;
  std::unique_ptr<caf::actor_system_config> caf_cfg;
  std::unique_ptr<caf::actor_system> system;
  wire::limits lim;
  wire::limits lim_control;  ///< requests carry no payload: read under the tighter limits
  std::unique_ptr<wire::framer> framer;
  zmq::context_t ctx{1};
  std::unique_ptr<transport::socket_thread> sock;
  // Graph outputs between nodes (docs/graphs.md, "Where data moves"): this node's data socket,
  // which serves the outputs it keeps, and one connection per peer it fetches from.
  std::shared_ptr<kept_outputs> kept;  ///< the agent keeps, the data socket's thread serves
  transport::key_pair own_keys;        ///< with keys: this node's pair (head link, data sockets)
  std::unique_ptr<transport::zap_handler> data_zap;
  std::unique_ptr<transport::socket_thread> data_sock;
  std::mutex peers_mutex;
  std::map<std::string, std::string> peer_keys;  ///< by node name, from the welcome (keys only)
  std::map<std::string, std::pair<std::string, std::unique_ptr<transport::socket_thread>>>
      peer_links;  ///< by node name: its endpoint and the connection to it
  event_bus_actor bus;
  monitor_actor monitor;
  node_agent_actor agent;
  supervisor_actor supervisor;
  std::atomic<bool> agent_ready{false};

  std::mutex fatal_mutex;
  std::condition_variable fatal_cv;
  std::optional<node::stop_reason> fatal;
  bool stopped = false;

  impl(const runtime_config& cluster_cfg, const std::string& node_name,
       std::vector<std::string> worker_command)
      : name(node_name) {
    auto& c = *setup;
    c.cfg = resolve(node_view(cluster_cfg, node_name, "cluster file"));
    apply_log_level(c.cfg.log_level);
    lim = wire::limits::for_payload(c.cfg.max_payload_bytes);
    lim_control = lim.control();
    // Plugins before the first hello: the head learns their kinds as the node joins.
    register_node_kinds(*c.registry, cluster_cfg, node_name);
    if (cluster_cfg.cluster.find(node_name)->isolated()) {
      c.cpu_host = process_hosts(c.registry, c.cfg.max_payload_bytes, worker_command);
      troupe::logger().info("node {}: CPU workers run tasks in child processes (isolation)",
                            node_name);
    }
    if (c.cfg.cuda != cuda_selection::none) c.gpus = discover_gpus();
    for (auto& why : c.gpus.left_out) troupe::logger().info("troupe: {}", why);
    c.workers = layout_workers(c.cfg, c.gpus);
    if (c.cfg.cuda != cuda_selection::none && c.gpus.gpus.empty())
      troupe::logger().info("node {}: no GPU worker: {}", name, c.gpus.note);
    auto gauges = std::make_shared<worker_gauges>(c.workers.size());
    // Admission happens at the head; the node's monitor reads an empty gate.
    auto admission = std::make_shared<const admission_gate>(c.cfg);
    caf_cfg = make_caf_config(c.cfg);
    system = std::make_unique<caf::actor_system>(*caf_cfg);
    framer = std::make_unique<wire::framer>(name);

    transport::socket_options so;
    so.type = zmq::socket_type::dealer;
    so.endpoint = c.cfg.cluster.head_endpoint;
    so.name = "troupe-node";
    so.max_outbound = c.cfg.cluster.max_outbound;
    so.max_message_bytes = int64_t(lim.max_frame_bytes) * 2;
    so.linger_ms = 200;  // the bye on shutdown
    if (auto& sec = c.cfg.cluster.security; sec.enabled()) {
      // The node proves its key to the head; the head's public key proves the head.
      auto* self_cfg = c.cfg.cluster.find(name);
      own_keys = transport::read_key_pair(self_cfg ? self_cfg->key : std::string{});
      so.client_keys.keys = own_keys;
      so.client_keys.server_key = transport::read_public_key(sec.head_key + ".pub");
      so.handshake_ms = int(sec.handshake.count());
      // A door that stays shut: exit naming why (troupe up backs off, then gives up).
      so.on_handshake_failed = [this](const std::string& why) {
        set_fatal("the head refused node " + name + ": " + why, true);
      };
    }
    sock = std::make_unique<transport::socket_thread>(
        ctx, so, [this](transport::multipart& m) { on_message(m); });
    auto links = start_data_socket(cluster_cfg);

    auto& sys = *system;
    setup_ptr shared = setup;  // from here on read-only
    bus = sys.spawn<caf::detached>(event_bus_impl, shared, events);
    monitor = sys.spawn(monitor_impl, shared, events, gauges, admission, bus);
    agent = sys.spawn(
        node_agent_impl, shared, gauges, name,
        [s = sock.get()](transport::multipart&& m) { return s->send(std::move(m)); }, framer.get(),
        [this](const std::string& why) { set_fatal(why, true); }, std::move(links));
    agent_ready = true;
    caf::anon_send(agent, node_tick_msg{});  // its first tick says hello: answers reach it now
    supervisor = sys.spawn(supervisor_impl, worker_env{shared, events, gauges},
                           caf::actor_cast<balancer_actor>(agent), monitor,
                           caf::actor_cast<escalation_actor>(agent), bus);
    caf::anon_send(monitor, supervisor);
    troupe::logger().info("node {}: {} worker(s), joining {}", name, c.workers.size(),
                          c.cfg.cluster.head_endpoint);
  }

  /// Binds the data socket other nodes fetch kept outputs from (with keys: CURVE under this
  /// node's key, admitting the nodes the head's welcome names), and returns the agent's links.
  node_data_links start_data_socket(const runtime_config& cluster_cfg) {
    node_data_links links;
    auto& c = *setup;
    kept = std::make_shared<kept_outputs>(c.cfg.cluster.kept_output_bytes);
    links.kept = kept;
    auto endpoint = data_endpoint_of(cluster_cfg, name);
    auto& sec = c.cfg.cluster.security;
    links.to_peer = [this](const std::string& node, const std::string& ep,
                           transport::multipart&& m) { return to_peer(node, ep, std::move(m)); };
    links.know_peers = [this](const std::vector<wire::data_peer>& peers) {
      std::lock_guard<std::mutex> guard{peers_mutex};
      std::unordered_map<std::string, transport::zap_peer> admitted;
      for (auto& p : peers) {
        peer_keys[p.node] = p.key;
        admitted[p.key] = {"node", p.node};
      }
      if (data_zap) data_zap->allow(std::move(admitted));
    };
    if (endpoint.empty()) return links;
    transport::socket_options so;
    so.type = zmq::socket_type::router;
    so.endpoint = endpoint;
    so.bind = true;
    so.name = "troupe-data";
    // Replies carry whole outputs: few may wait (a full queue drops them; the asker falls back
    // to the head at its fetch timeout).
    so.max_outbound = 256;
    so.high_water_mark = 256;
    so.max_message_bytes = int64_t(lim.max_frame_bytes) * 2;
    if (sec.enabled()) {
      // Nobody is let in before the welcome names the cluster's nodes.
      data_zap = std::make_unique<transport::zap_handler>(
          ctx, std::unordered_map<std::string, transport::zap_peer>{},
          [](const std::string& domain, const transport::zap_peer& peer) {
            return domain == "troupe-data" && peer.role == "node";
          },
          "node " + name + " data");
      so.server_keys = {own_keys.secret_key, "troupe-data"};
      so.handshake_ms = int(sec.handshake.count());
    }
    data_sock = std::make_unique<transport::socket_thread>(
        ctx, so, [this](transport::multipart& m) { on_data_request(m); });
    links.endpoint = data_sock->endpoint();
    troupe::logger().info("node {}: serves kept outputs to other nodes on {}", name,
                          links.endpoint);
    return links;
  }

  /// Frames to node `node`'s data socket, over a connection made at its first use (and made
  /// again when the node says it moved). Runs on the agent's thread.
  bool to_peer(const std::string& node, const std::string& ep, transport::multipart&& m) {
    std::lock_guard<std::mutex> guard{peers_mutex};
    auto& link = peer_links[node];
    if (!link.second || link.first != ep) {
      transport::socket_options so;
      so.type = zmq::socket_type::dealer;
      so.endpoint = ep;
      so.name = "troupe-fetch";
      so.max_outbound = setup->cfg.cluster.max_outbound;
      so.max_message_bytes = int64_t(lim.max_frame_bytes) * 2;
      if (setup->cfg.cluster.security.enabled()) {
        auto key = peer_keys.find(node);
        if (key == peer_keys.end()) {
          troupe::logger().warn("node {}: no key known for node '{}': cannot fetch from it", name,
                                node);
          return false;
        }
        so.client_keys = {own_keys, key->second};
        so.handshake_ms = int(setup->cfg.cluster.security.handshake.count());
      }
      try {
        link.second.reset();
        link.second = std::make_unique<transport::socket_thread>(
            ctx, so, [this, node](transport::multipart& reply) { on_data_reply(node, reply); });
        link.first = ep;
      } catch (const std::exception& e) {
        troupe::logger().warn("node {}: cannot connect to node '{}' at {}: {}", name, node, ep,
                              e.what());
        return false;
      }
    }
    return link.second->send(std::move(m));
  }

  /// On the data socket's thread: another node asks for kept outputs. Answered here, from the
  /// store the agent keeps them in: no actor on the way.
  void on_data_request(transport::multipart& m) {
    if (!agent_ready.load() || m.size() != 3) return;
    try {
      auto h = wire::decode_header(m[1].data(), m[1].size(), lim_control);
      if (h.type != wire::msg_type::output_request) {
        troupe::logger().warn("node {}: a '{}' message on the data socket from '{}', ignored", name,
                              wire::to_string(h.type), h.from);
        return;
      }
      auto request = wire::decode<wire::output_request>(m[2].data(), m[2].size(), lim_control);
      std::string peer = m[0].to_string();
      // Two frames' worth of outputs per request: what one assign of the head can leave out.
      auto replies =
          answer_output_request(*kept, framer->epoch(), request, 2 * setup->cfg.max_payload_bytes);
      if (replies.empty() && !request.tasks.empty())
        troupe::logger().warn("node {}: refused a request from '{}' naming {} tasks (at most {})",
                              name, h.from, request.tasks.size(), max_outputs_per_request);
      size_t unsent = 0;
      for (auto& r : replies)
        if (!data_sock->send(framer->make(&peer, wire::msg_type::output_reply, r, h.id))) ++unsent;
      if (unsent > 0)
        troupe::logger().warn(
            "node {}: data socket queue full: {} output(s) asked by '{}' not sent", name, unsent,
            h.from);
    } catch (const wire::decode_error& e) {
      troupe::logger().warn("node {}: undecodable request on the data socket: {}", name, e.what());
    }
  }

  /// On a peer link's thread: an output asked of node `from`.
  void on_data_reply(const std::string& from, transport::multipart& m) {
    if (!agent_ready.load() || m.size() != 2) return;
    try {
      auto h = wire::decode_header(m[0].data(), m[0].size(), lim);
      if (h.type != wire::msg_type::output_reply) return;
      caf::anon_send(agent, peer_reply_msg{from, h.epoch, decode<wire::output_reply>(m[1])});
    } catch (const wire::decode_error& e) {
      troupe::logger().warn("node {}: undecodable reply from node '{}': {}", name, from, e.what());
    }
  }

  void set_fatal(const std::string& why, bool failed) {
    std::lock_guard<std::mutex> guard{fatal_mutex};
    if (!fatal) fatal = node::stop_reason{failed, why};
    fatal_cv.notify_all();
  }

  void on_message(transport::multipart& m) {
    if (!agent_ready.load()) return;
    if (m.size() != 2) {
      troupe::logger().warn("node {}: a message of {} frames from the head, expected 2", name,
                            m.size());
      return;
    }
    try {
      auto h = wire::decode_header(m[0].data(), m[0].size(), lim);
      auto& body = m[1];
      switch (h.type) {
        case wire::msg_type::assign: {
          // Task by task: one the node cannot read fails alone, typed, instead of the frame.
          auto read = wire::decode_assign_by_task(body.data(), body.size(), lim);
          for (auto& why : read.unnamed)
            troupe::logger().warn("node {}: cannot read a task of an assign, nor its id: {}", name,
                                  why);
          if (!read.unnamed.empty())
            sock->send(framer->make(nullptr, wire::msg_type::error,
                                    wire::error{wire::wire_errc::malformed, read.unnamed.front()}));
          return caf::anon_send(
              agent, head_assign_msg{std::move(read.readable), h.id, std::move(read.unreadable)});
        }
        case wire::msg_type::welcome:
          return caf::anon_send(agent, head_welcome_msg{decode<wire::welcome>(body)});
        case wire::msg_type::heartbeat:
          return caf::anon_send(agent,
                                head_heartbeat_msg{decode<wire::heartbeat>(body).last_assign});
        case wire::msg_type::cancel:
          return caf::anon_send(agent, head_cancel_msg{decode<wire::cancel>(body)});
        case wire::msg_type::error:
          return caf::anon_send(agent, head_error_msg{decode<wire::error>(body)});
        default:
          troupe::logger().warn("node {}: unexpected '{}' message from the head", name,
                                wire::to_string(h.type));
      }
    } catch (const wire::decode_error& e) {
      // The head is trusted more than a client, but not blindly: report and carry on.
      troupe::logger().warn("node {}: undecodable message from the head: {}", name, e.what());
      sock->send(framer->make(nullptr, wire::msg_type::error, wire::error{e.code(), e.what()}));
    }
  }

  template <class Body>
  Body decode(const zmq::message_t& body) {
    return wire::decode<Body>(body.data(), body.size(), lim);
  }

  void stop() {
    if (stopped) return;
    stopped = true;
    sock->send(framer->make(nullptr, wire::msg_type::bye, wire::heartbeat{}));
    for (auto a : {caf::actor_cast<caf::actor>(supervisor), caf::actor_cast<caf::actor>(agent),
                   caf::actor_cast<caf::actor>(monitor), caf::actor_cast<caf::actor>(bus)})
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    {
      caf::scoped_actor self{*system};
      for (auto a : {caf::actor_cast<caf::actor>(supervisor), caf::actor_cast<caf::actor>(agent),
                     caf::actor_cast<caf::actor>(monitor), caf::actor_cast<caf::actor>(bus)})
        self->wait_for(a);
    }
    agent_ready = false;
    {
      std::lock_guard<std::mutex> guard{peers_mutex};
      peer_links.clear();
    }
    if (data_sock) data_sock->stop();
    sock->stop();  // flushes the bye (linger)
    supervisor = nullptr;
    agent = nullptr;
    monitor = nullptr;
    bus = nullptr;
  }
};

node::node(const runtime_config& cfg, const std::string& name,
           std::vector<std::string> worker_command)
    : impl_(std::make_unique<impl>(cfg, name, std::move(worker_command))) {}

int node::serve_worker_process(const runtime_config& cfg, const std::string& name, int fd,
                               int32_t worker) {
  auto view = node_view(cfg, name, "cluster file");
  task_registry registry;
  register_node_kinds(registry, cfg, name);
  serve_tasks(fd, registry, view.max_payload_bytes, worker);
}

node::~node() {
  impl_->stop();
  impl_->sock.reset();
  impl_->system.reset();
}

task_registry& node::registry() {
  return *impl_->setup->registry;
}

void node::request_stop(const std::string& why) {
  impl_->set_fatal(why, false);
}

std::optional<node::stop_reason> node::wait(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock{impl_->fatal_mutex};
  impl_->fatal_cv.wait_for(lock, timeout, [&] { return impl_->fatal.has_value(); });
  return impl_->fatal;
}

void node::shutdown() {
  impl_->stop();
}

}  // namespace troupe
