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
  std::unique_ptr<wire::framer> framer;
  zmq::context_t ctx{1};
  std::unique_ptr<transport::socket_thread> sock;
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
      so.client_keys.keys = transport::read_key_pair(self_cfg ? self_cfg->key : std::string{});
      so.client_keys.server_key = transport::read_public_key(sec.head_key + ".pub");
      so.handshake_ms = int(sec.handshake.count());
      // A door that stays shut: exit naming why (troupe up backs off, then gives up).
      so.on_handshake_failed = [this](const std::string& why) {
        set_fatal("the head refused node " + name + ": " + why, true);
      };
    }
    sock = std::make_unique<transport::socket_thread>(
        ctx, so, [this](transport::multipart& m) { on_message(m); });

    auto& sys = *system;
    setup_ptr shared = setup;  // from here on read-only
    bus = sys.spawn<caf::detached>(event_bus_impl, shared, events);
    monitor = sys.spawn(monitor_impl, shared, events, gauges, admission, bus);
    agent = sys.spawn(
        node_agent_impl, shared, gauges, name,
        [s = sock.get()](transport::multipart&& m) { return s->send(std::move(m)); }, framer.get(),
        [this](const std::string& why) { set_fatal(why, true); });
    agent_ready = true;
    caf::anon_send(agent, node_tick_msg{});  // its first tick says hello: answers reach it now
    supervisor = sys.spawn(supervisor_impl, worker_env{shared, events, gauges},
                           caf::actor_cast<balancer_actor>(agent), monitor,
                           caf::actor_cast<escalation_actor>(agent), bus);
    caf::anon_send(monitor, supervisor);
    troupe::logger().info("node {}: {} worker(s), joining {}", name, c.workers.size(),
                          c.cfg.cluster.head_endpoint);
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
