// `troupe bench remote-latency | remote-pipeline`: tasks across processes (client -> head ->
// node -> worker -> back), each beside raw zmq between two processes with messages of the same
// size, in the same run.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "troupe/client.hpp"
#include "troupe/runtime.hpp"
#include "troupe/subscriber.hpp"
#include "troupe/transport/codec.hpp"
#include "troupe/transport/curve.hpp"
#include "troupe/transport/framer.hpp"

namespace troupe::cli {

namespace {

using micros = std::chrono::duration<double, std::micro>;

double pct(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, size_t(q * double(v.size())))];
}

/// A free loopback port, as the kernel picks one (released before use: fine for a benchmark).
std::string free_endpoint(zmq::context_t& ctx) {
  zmq::socket_t s{ctx, zmq::socket_type::router};
  s.set(zmq::sockopt::linger, 0);
  s.bind("tcp://127.0.0.1:*");
  return s.get(zmq::sockopt::last_endpoint);
}

/// A head and one node as child processes of this one, stopped (SIGTERM) when this goes.
class bench_cluster {
 public:
  /// node_workers = 0: no node (the head runs head_cpu workers itself). events: the PUB
  /// endpoint, "" for none (the transport benchmarks measure without events).
  /// journal: the head keeps its journal (the default of a cluster file) in a file removed
  /// afterwards, or runs without one.
  /// keys: CURVE on every socket (security.head_key), the node and a client with keys of
  /// their own (client_keys()).
  /// cluster_keys: more lines of the [cluster] section. second_node: workers of a node n2
  /// (none: 0; not with keys); more: tables after the nodes ([reservations.NAME]).
  bench_cluster(const std::string& endpoint, uint32_t node_workers, uint32_t head_cpu = 0,
                const std::string& events = "", bool journal = true, bool keys = false,
                const std::string& cluster_keys = "", uint32_t second_node = 0,
                const std::string& more = "")
      : endpoint_(endpoint) {
    auto base = "/tmp/troupe-bench-" + std::to_string(getpid());
    config_ = base + ".toml";
    journal_ = base + ".journal";
    for (auto suffix : {"", "-wal", "-shm"}) unlink((journal_ + suffix).c_str());
    std::ofstream cfg{config_};
    cfg << "[cluster]\nhead = \"" << endpoint << "\"\nhead_cpu = " << head_cpu << "\nevents = \""
        << events << "\"\njournal = \"" << (journal ? journal_ : "off") << "\"\n"
        << cluster_keys << "[log]\nlevel = \"warn\"\n";
    if (keys) {
      keys_ = base + "-keys";
      for (auto name : {"head", "n1", "client"}) {
        auto path = keys_ + "." + name;
        unlink(path.c_str());
        unlink((path + ".pub").c_str());
        transport::write_key_pair(path, transport::generate_key_pair());
      }
      cfg << "[security]\nhead_key = \"" << keys_ << ".head\"\n[[security.allow]]\n"
          << "role = \"client\"\nname = \"bench\"\nkey = \"" << keys_ << ".client.pub\"\n";
    }
    if (node_workers)
      cfg << "[nodes.n1]\ncpu = " << node_workers << "\n"
          << (keys ? "key = \"" + keys_ + ".n1\"\n" : std::string{});
    if (second_node) cfg << "[nodes.n2]\ncpu = " << second_node << "\n";
    cfg << more;
    cfg.close();
    pids_.push_back(spawn({"troupe", "head", "--config", config_}));
    if (node_workers)
      pids_.push_back(spawn({"troupe", "node", "--name", "n1", "--config", config_}));
    if (second_node)
      pids_.push_back(spawn({"troupe", "node", "--name", "n2", "--config", config_}));
  }
  ~bench_cluster() {
    for (auto it = pids_.rbegin(); it != pids_.rend(); ++it) kill(*it, SIGTERM);
    for (auto p : pids_) waitpid(p, nullptr, 0);
    unlink(config_.c_str());
    for (auto suffix : {"", "-wal", "-shm"}) unlink((journal_ + suffix).c_str());
    if (!keys_.empty())
      for (auto name : {".head", ".n1", ".client"})
        for (auto suffix : {"", ".pub"}) unlink((keys_ + name + suffix).c_str());
  }
  /// The client's key pair and the head's public key (with keys; empty otherwise).
  transport::curve_client client_keys() const {
    if (keys_.empty()) return {};
    return {transport::read_key_pair(keys_ + ".client"),
            transport::read_public_key(keys_ + ".head.pub")};
  }
  /// Whether the head process still runs (it exits at once if its port was taken meanwhile).
  bool head_alive() { return waitpid(pids_.front(), nullptr, WNOHANG) == 0; }
  const std::string& endpoint() const { return endpoint_; }

 private:
  static pid_t spawn(std::vector<std::string> args) {
    auto pid = fork();
    if (pid == 0) {
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      execv("/proc/self/exe", argv.data());
      _exit(127);
    }
    return pid;
  }
  std::string endpoint_, config_, journal_, keys_;
  std::vector<pid_t> pids_;
};

/// Waits (status round trips) until the node has joined; false if the head died first.
bool wait_joined(bench_cluster& cluster, client& c) {
  auto deadline = clock::now() + std::chrono::seconds(30);
  while (clock::now() < deadline && cluster.head_alive()) {
    try {
      auto s = c.status();
      if (std::all_of(s.nodes.begin(), s.nodes.end(), [](auto& n) { return n.state == "joined"; }))
        return true;
    } catch (const client_error&) {
    }
  }
  return false;
}

/// A head and a node on a free port, with a client joined to them. The port is found by
/// binding and releasing it, so another process may take it meanwhile: then try another.
struct running_cluster {
  std::unique_ptr<bench_cluster> cluster;
  std::unique_ptr<client> c;
  explicit running_cluster(uint32_t node_workers, uint32_t head_cpu = 0, bool events = false,
                           bool journal = true, bool keys = false,
                           const std::string& cluster_keys = "", uint32_t second_node = 0,
                           const std::string& more = "") {
    for (int attempt = 0; attempt < 3; ++attempt) {
      zmq::context_t probe;
      auto endpoint = free_endpoint(probe);
      std::string events_endpoint;
      if (events) events_endpoint = free_endpoint(probe);
      probe.close();
      cluster = std::make_unique<bench_cluster>(endpoint, node_workers, head_cpu, events_endpoint,
                                                journal, keys, cluster_keys, second_node, more);
      client_options co;
      co.timeout = std::chrono::seconds(5);
      co.curve = cluster->client_keys();
      c = std::make_unique<client>(endpoint, co);
      if (wait_joined(*cluster, *c)) return;
      c.reset();
      cluster.reset();
    }
    throw std::runtime_error("could not start the benchmark's head and node");
  }
};

/// Sizes of one noop task's submit frames and of its result frames, as troupe sends them.
std::pair<size_t, size_t> frame_sizes() {
  wire::framer f{"bench"};
  task_spec noop;
  noop.kind = "noop";
  auto sub = f.make(nullptr, wire::msg_type::submit, wire::submit{{noop}});
  task_result r;
  r.id = 123456;
  r.kind = "noop";
  r.status = outcome::completed;
  r.attempts = 1;
  wire::result res;
  res.tasks.push_back(r);
  res.latency_ms.push_back(0.1);
  auto out = f.make(nullptr, wire::msg_type::result, res);
  return {sub[0].size() + sub[1].size(), out[0].size() + out[1].size()};
}

/// Runs `serve` in a child process on a socket it binds to a port of its choosing; returns the
/// child's pid and the endpoint (sent back through a pipe, so no port is guessed).
template <class Serve>
std::pair<pid_t, std::string> serve_in_child(zmq::socket_type type, Serve serve) {
  int fds[2];
  if (pipe(fds) != 0) throw std::runtime_error("pipe failed");
  auto pid = fork();
  if (pid == 0) {
    close(fds[0]);
    zmq::context_t ctx;
    zmq::socket_t s{ctx, type};
    s.set(zmq::sockopt::linger, 0);
    // No high-water marks: a baseline loses nothing (set before bind: pipes copy them).
    s.set(zmq::sockopt::sndhwm, 0);
    s.set(zmq::sockopt::rcvhwm, 0);
    s.bind("tcp://127.0.0.1:*");
    auto ep = s.get(zmq::sockopt::last_endpoint);
    (void)!write(fds[1], ep.c_str(), ep.size() + 1);
    close(fds[1]);
    serve(ctx, s);
    // Deliver the last message before leaving: _exit would drop what zmq still holds.
    s.set(zmq::sockopt::linger, 60000);
    s.close();
    ctx.close();
    _exit(0);
  }
  close(fds[1]);
  std::string ep;
  char c;
  while (read(fds[0], &c, 1) == 1 && c != 0) ep += c;
  close(fds[0]);
  if (ep.empty()) throw std::runtime_error("the baseline's child process did not start");
  return {pid, ep};
}

/// Raw zmq REQ/REP between two processes: p50/p99 round trip in microseconds.
std::pair<double, double> raw_req_rep(int rounds, size_t request, size_t reply) {
  auto [pid, endpoint] =
      serve_in_child(zmq::socket_type::rep, [&](zmq::context_t&, zmq::socket_t& rep) {
        std::string answer(reply, 'r');
        rep.set(zmq::sockopt::rcvtimeo, 10000);
        for (int i = 0; i < rounds + 100; ++i) {
          zmq::message_t m;
          if (!rep.recv(m)) break;
          rep.send(zmq::buffer(answer));
        }
      });
  zmq::context_t ctx;
  zmq::socket_t req{ctx, zmq::socket_type::req};
  req.set(zmq::sockopt::linger, 0);
  req.set(zmq::sockopt::rcvtimeo, 5000);  // a lost reply fails the run instead of hanging it
  req.connect(endpoint);
  std::string ask(request, 'q');
  std::vector<double> rtt;
  for (int i = 0; i < rounds + 100; ++i) {
    auto t0 = clock::now();
    req.send(zmq::buffer(ask));
    zmq::message_t m;
    if (!req.recv(m)) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
      throw std::runtime_error("raw REQ/REP: no reply within 5 s");
    }
    if (i >= 100) rtt.push_back(micros(clock::now() - t0).count());  // after warm-up
  }
  waitpid(pid, nullptr, 0);
  return {pct(rtt, .5), pct(rtt, .99)};
}

/// Raw zmq one-way messages between two processes (DEALER -> ROUTER, which behaves as PUSH/PULL
/// with a way back for "done"): messages per second, until the receiver has the last one.
double raw_push_pull(size_t count, size_t size) {
  // The receiver PULLs every message, then answers on the same DEALER/ROUTER pair: a ROUTER
  // child that counts, so one socket carries both directions.
  auto [pid, endpoint] =
      serve_in_child(zmq::socket_type::router, [&](zmq::context_t&, zmq::socket_t& in) {
        zmq::message_t id, m;
        in.set(zmq::sockopt::rcvtimeo, 60000);
        for (size_t i = 0; i < count; ++i) {
          if (!in.recv(id) || !in.recv(m)) return;
        }
        in.send(id, zmq::send_flags::sndmore);
        in.send(zmq::str_buffer("done"));
      });
  zmq::context_t ctx;
  zmq::socket_t push{ctx, zmq::socket_type::dealer};
  push.set(zmq::sockopt::sndhwm, 0);
  push.connect(endpoint);
  auto& done = push;
  std::string msg(size, 'x');
  auto t0 = clock::now();
  for (size_t i = 0; i < count; ++i) push.send(zmq::buffer(msg));
  zmq::message_t m;
  done.set(zmq::sockopt::rcvtimeo, 120000);
  if (!done.recv(m)) {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    throw std::runtime_error("raw one-way: the receiver did not finish within 120 s");
  }
  auto rate = double(count) / std::chrono::duration<double>(clock::now() - t0).count();
  waitpid(pid, nullptr, 0);
  return rate;
}

}  // namespace

namespace {

/// One noop at a time through a head and a node: round trips in microseconds (p50, p99).
std::pair<double, double> remote_round_trips(int rounds, bool journal, bool keys = false) {
  running_cluster rc{1, 0, false, journal, keys};
  auto& c = *rc.c;
  task_spec noop;
  noop.kind = "noop";
  std::vector<double> rtt;
  for (int i = 0; i < rounds + 100; ++i) {
    auto t0 = clock::now();
    auto h = c.submit(noop);
    h.get();
    if (i >= 100) rtt.push_back(micros(clock::now() - t0).count());
  }
  return {pct(rtt, .5), pct(rtt, .99)};
}

}  // namespace

nlohmann::json bench_remote_latency(int rounds) {
  auto [request, reply] = frame_sizes();
  auto [raw50, raw99] = raw_req_rep(rounds, request, reply);
  auto [off50, off99] = remote_round_trips(rounds, false);
  auto [p50, p99] = remote_round_trips(rounds, true);
  auto [curve50, curve99] = remote_round_trips(rounds, true, true);
  std::printf(
      "remote-latency  one noop task at a time, client -> head -> node -> worker -> back, "
      "%d rounds, microseconds\n",
      rounds);
  std::printf("  raw zmq REQ/REP (%zu B / %zu B)   p50 %8.1f  p99 %8.1f\n", request, reply, raw50,
              raw99);
  std::printf(
      "  troupe, journal off             p50 %8.1f  p99 %8.1f  (ratio p50 %.2f, p99 %.2f)\n", off50,
      off99, off50 / raw50, off99 / raw99);
  std::printf(
      "  troupe (journal, the default)   p50 %8.1f  p99 %8.1f  (ratio p50 %.2f, p99 %.2f)\n", p50,
      p99, p50 / raw50, p99 / raw99);
  std::printf(
      "  troupe with CURVE keys          p50 %8.1f  p99 %8.1f  (ratio p50 %.2f, p99 %.2f; "
      "%.2fx / %.2fx the default)\n",
      curve50, curve99, curve50 / raw50, curve99 / raw99, curve50 / p50, curve99 / p99);
  return {{"raw_p50_us", raw50},         {"raw_p99_us", raw99},         {"troupe_p50_us", p50},
          {"troupe_p99_us", p99},        {"ratio_p50", p50 / raw50},    {"ratio_p99", p99 / raw99},
          {"journal_off_p50_us", off50}, {"journal_off_p99_us", off99}, {"curve_p50_us", curve50},
          {"curve_p99_us", curve99}};
}

nlohmann::json bench_payload() {
  std::printf(
      "payload  one echo task at a time (its payload back as its output), client -> head -> "
      "node -> worker -> back, beside raw zmq REQ/REP carrying the same bytes each way; "
      "milliseconds\n");
  nlohmann::json out = nlohmann::json::array();
  running_cluster rc{1};
  auto& c = *rc.c;
  for (size_t mib : {1, 16, 64}) {
    // Just under the default limit (limits.max_payload_bytes counts the fields around the bytes).
    auto size = (mib << 20) - 4096;
    int rounds = mib >= 64 ? 8 : mib >= 16 ? 16 : 64;
    // The raw baseline's bytes are exactly the payload; troupe's frames add a few hundred.
    auto [raw50, raw99] = raw_req_rep(rounds, size, size);
    task_spec echo;
    echo.kind = "echo";
    echo.payload.assign(size, 0x5a);
    std::vector<double> rtt;
    for (int i = 0; i < rounds + 2; ++i) {
      auto t0 = clock::now();
      auto r = c.submit(echo).get();
      if (r.status != outcome::completed || r.output.bytes.size() != size)
        throw std::runtime_error("payload: the echo of " + std::to_string(mib) + " MiB came back " +
                                 to_string(r.status) + ": " + r.error.message);
      if (i >= 2) rtt.push_back(micros(clock::now() - t0).count() / 1000);
    }
    auto p50 = pct(rtt, .5);
    raw50 /= 1000;
    // The raw round trip crosses one process boundary each way, troupe's two (client -> head
    // -> node and back): the second ratio is per boundary crossed.
    std::printf(
        "  %2zu MiB  raw zmq p50 %8.2f   troupe p50 %8.2f   ratio %.2f, per boundary %.2f  "
        "(%d rounds)\n",
        mib, raw50, p50, p50 / raw50, p50 / (2 * raw50), rounds);
    out.push_back({{"mib", mib},
                   {"raw_p50_ms", raw50},
                   {"troupe_p50_ms", p50},
                   {"ratio_p50", p50 / raw50},
                   {"ratio_per_boundary", p50 / (2 * raw50)}});
    (void)raw99;
  }
  return out;
}

namespace {

/// Medians along the chains of a finished graph (`length` tasks per chain, in order): from a
/// parent's record to its child's start, and from a task's end on its worker to its record.
void print_hops(const graph_handle& h, int length) {
  std::vector<double> in, back;
  auto ms = [](duration d) { return std::chrono::duration<double, std::milli>(d).count(); };
  for (size_t k = 0; k < h.tasks().size(); ++k) {
    auto& t = h.tasks()[k].get().timings;
    back.push_back(ms(t.finished - t.ran_until));
    if (k % size_t(length)) in.push_back(ms(t.started - h.tasks()[k - 1].get().timings.finished));
  }
  std::printf(
      "      per hop, median: parent recorded -> child started %.2f ms, "
      "ended -> recorded %.2f ms\n",
      pct(in, .5), pct(back, .5));
}

/// Chains of echo tasks, each child's payload its parent's output bytes. `across`: the odd
/// links reserved to node n2 (reservation "n2"), so that every child runs on the other node.
graph_spec echo_chains(int chains, int length, size_t size, bool across) {
  graph_spec g;
  for (int c = 0; c < chains; ++c)
    for (int i = 0; i < length; ++i) {
      graph_task t;
      t.name = "c" + std::to_string(c) + "-" + std::to_string(i);
      t.spec.kind = "echo";
      if (i == 0)
        t.spec.payload.assign(size, uint8_t(c));
      else
        t.inputs = {{"payload", "c" + std::to_string(c) + "-" + std::to_string(i - 1) + ".bytes"}};
      if (across && i % 2 == 1) t.spec.labels["reservation"] = "n2";
      g.tasks.push_back(std::move(t));
    }
  return g;
}

/// Runs the graph rounds + 1 times (the first warms up): the median makespan in ms. Throws if a
/// task did not complete with `size` bytes.
template <class Submit>
double median_makespan(int rounds, size_t size, int length, Submit&& submit) {
  std::vector<double> ms;
  for (int r = 0; r < rounds + 1; ++r) {
    auto t0 = clock::now();
    graph_handle h = submit();
    if (!h.wait_until(clock::now() + std::chrono::seconds(120)))
      throw std::runtime_error("graph-data: the graph did not finish within 120 s");
    auto t = std::chrono::duration<double, std::milli>(clock::now() - t0).count();
    for (auto& th : h.tasks())
      if (!th.ready() || !th.get().ok() || th.get().output.bytes.size() != size)
        throw std::runtime_error("graph-data: a task did not complete with its bytes");
    if (r > 0) ms.push_back(t);
    if (r == rounds) print_hops(h, length);
  }
  return pct(ms, .5);
}

}  // namespace

/// Graph data (docs/graphs.md, "Where data moves"): chains of echo tasks, each child taking its
/// parent's output bytes as its payload. Embedded, the same chains with outputs of 4 KiB and of
/// 4 MiB (shared, not copied: the makespans should match), beside what one copy per hop would
/// cost. On a node with 2 workers, kept on the node against every input through the head
/// (cluster.kept_output_bytes = 0), in the same run; on two nodes, node to node against the same.
nlohmann::json bench_graph_data() {
  constexpr int chains = 4, length = 8, rounds = 3;
  constexpr size_t size = size_t(4) << 20, small = size_t(4) << 10;
  std::printf(
      "graph-data  %d chains of %d echo tasks, each child's payload its parent's %zu MiB output; "
      "makespan in ms, median of %d\n",
      chains, length, size >> 20, rounds);
  auto graph = echo_chains(chains, length, size, false);
  auto across = echo_chains(chains, length, size, true);

  std::printf("  embedded, 2 workers:\n");
  double embedded_small = 0, embedded = 0, copy_ms = 0;
  {
    runtime_config cfg;
    cfg.cpu_workers = 2;
    cfg.log_level = "error";
    runtime rt{cfg};
    auto tiny = echo_chains(chains, length, small, false);
    embedded_small = median_makespan(rounds, small, length, [&] { return rt.submit_graph(tiny); });
    embedded = median_makespan(rounds, size, length, [&] { return rt.submit_graph(graph); });
    // The baseline: what copying each child's input once would add (a new 4 MiB buffer per
    // hop, as binding made before bytes were shared). A best case: the source is hot in cache
    // and the freed buffer comes back without page faults.
    std::vector<uint8_t> from(size, 1);
    std::vector<double> one;
    for (int i = 0; i < 20; ++i) {
      auto t0 = clock::now();
      std::vector<uint8_t> copy(from.begin(), from.end());
      asm volatile("" : : "r"(copy.data()) : "memory");  // the copy is made, not optimised out
      one.push_back(std::chrono::duration<double, std::milli>(clock::now() - t0).count());
    }
    copy_ms = pct(one, .5) * chains * (length - 1);
  }
  std::printf("  outputs of %zu KiB                 %8.1f ms\n", small >> 10, embedded_small);
  std::printf(
      "  outputs of %zu MiB                 %8.1f ms  ratio %.3f  (one copy per hop would "
      "add %.1f ms of memcpy)\n",
      size >> 20, embedded, embedded / embedded_small, copy_ms);

  const std::string n2_reserved = "[reservations.n2]\nworkers = [\"n2/cpu-0\", \"n2/cpu-1\"]\n";
  auto measure = [&](const std::string& keys, uint64_t& kept_bytes, bool two_nodes = false) {
    running_cluster rc{2,
                       0,
                       false,
                       false,
                       false,
                       keys,
                       two_nodes ? 2u : 0u,
                       two_nodes ? n2_reserved : std::string{}};
    auto& g = two_nodes ? across : graph;
    auto median = median_makespan(rounds, size, length, [&] { return rc.c->submit_graph(g); });
    kept_bytes = 0;
    for (auto& n : rc.c->status().nodes)
      kept_bytes += two_nodes ? n.fetched_input_bytes : n.kept_input_bytes;
    return median;
  };
  uint64_t kept_bytes = 0, fetched_bytes = 0, none = 0;
  std::printf("  one node (2 workers):\n");
  auto through_head = measure("kept_output_bytes = 0\n", none);
  auto kept = measure("", kept_bytes);
  std::printf("  every input through the head      %8.1f ms\n", through_head);
  std::printf("  kept on the node (the default)    %8.1f ms  ratio %.3f  (%.0f MiB not sent)\n",
              kept, kept / through_head, double(kept_bytes) / (1 << 20));
  std::printf("  two nodes (2 workers each), every child on the other node than its parent:\n");
  auto across_head = measure("kept_output_bytes = 0\n", none, true);
  auto node_to_node = measure("", fetched_bytes, true);
  std::printf("  every input through the head      %8.1f ms\n", across_head);
  std::printf("  node to node (the default)        %8.1f ms  ratio %.3f  (%.0f MiB fetched)\n",
              node_to_node, node_to_node / across_head, double(fetched_bytes) / (1 << 20));
  return {{"embedded_small_ms", embedded_small},
          {"embedded_ms", embedded},
          {"embedded_ratio", embedded / embedded_small},
          {"embedded_copy_per_hop_ms", copy_ms},
          {"through_head_ms", through_head},
          {"kept_ms", kept},
          {"ratio", kept / through_head},
          {"kept_input_mib", double(kept_bytes) / (1 << 20)},
          {"across_through_head_ms", across_head},
          {"node_to_node_ms", node_to_node},
          {"node_to_node_ratio", node_to_node / across_head},
          {"fetched_input_mib", double(fetched_bytes) / (1 << 20)}};
}

namespace {

/// Empty tasks through a head and a node, in submits of 1,000: tasks per second.
double remote_pipeline_rate(size_t tasks, bool journal, bool keys = false) {
  running_cluster rc{1, 0, false, journal, keys};
  auto& c = *rc.c;
  task_spec noop;
  noop.kind = "noop";
  std::mutex mu;
  std::condition_variable cv;
  std::atomic<size_t> done{0};
  const size_t batch = 1000;
  auto t0 = clock::now();
  for (size_t sent = 0; sent < tasks; sent += batch) {
    std::vector<task_spec> specs(std::min(batch, tasks - sent), noop);
    c.submit_batch(std::move(specs), [&](const task_result&) {
      if (done.fetch_add(1) + 1 == tasks) {
        std::lock_guard<std::mutex> g{mu};
        cv.notify_all();
      }
    });
  }
  {
    std::unique_lock<std::mutex> lock{mu};
    if (!cv.wait_for(lock, std::chrono::seconds(120), [&] { return done.load() == tasks; }))
      throw std::runtime_error("remote-pipeline: " + std::to_string(done.load()) + " of " +
                               std::to_string(tasks) + " results after 120 s");
  }
  return double(tasks) / std::chrono::duration<double>(clock::now() - t0).count();
}

}  // namespace

nlohmann::json bench_remote_pipeline(size_t tasks) {
  auto [request, reply] = frame_sizes();
  auto raw = raw_push_pull(tasks, request);
  auto without = remote_pipeline_rate(tasks, false);
  auto rate = remote_pipeline_rate(tasks, true);
  auto curve = remote_pipeline_rate(tasks, true, true);
  std::printf(
      "remote-pipeline empty tasks across processes (client, head, node with 1 worker), "
      "%zu tasks in submits of 1000\n",
      tasks);
  std::printf("  raw zmq one-way (%zu B)          %12.0f msgs/s\n", request, raw);
  std::printf("  troupe, journal off             %12.0f tasks/s  ratio %.3f\n", without,
              without / raw);
  std::printf("  troupe (journal, the default)   %12.0f tasks/s  ratio %.3f, %.2fx journal off\n",
              rate, rate / raw, rate / without);
  std::printf("  troupe with CURVE keys          %12.0f tasks/s  ratio %.3f, %.2fx the default\n",
              curve, curve / raw, curve / rate);
  return {{"curve_tasks_per_s", curve},
          {"curve_cost_ratio", curve / rate},
          {"raw_msgs_per_s", raw},
          {"troupe_tasks_per_s", rate},
          {"ratio", rate / raw},
          {"journal_off_tasks_per_s", without},
          {"journal_cost_ratio", rate / without}};
}

namespace {

/// Raw zmq PUB/SUB between two processes: messages per second of [topic, body] pairs of the
/// given sizes, from the first received to the last. The publisher (an XPUB) starts once the
/// subscription has reached it, and nothing is dropped (no high-water marks).
double raw_pub_sub(size_t count, const std::string& topic, const std::string& body) {
  auto [pid, endpoint] =
      serve_in_child(zmq::socket_type::xpub, [&](zmq::context_t&, zmq::socket_t& pub) {
        zmq::message_t subscription;
        if (!pub.recv(subscription)) return;
        for (size_t i = 0; i < count; ++i) {
          pub.send(zmq::buffer(topic), zmq::send_flags::sndmore);
          pub.send(zmq::buffer(body));
        }
      });
  zmq::context_t ctx;
  zmq::socket_t sub{ctx, zmq::socket_type::sub};
  sub.set(zmq::sockopt::rcvhwm, 0);
  sub.set(zmq::sockopt::rcvtimeo, 30000);
  sub.set(zmq::sockopt::subscribe, "");
  sub.connect(endpoint);
  clock::time_point t0{};
  for (size_t i = 0; i < count; ++i) {
    zmq::message_t t, b;
    if (!sub.recv(t) || !sub.recv(b)) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
      throw std::runtime_error("raw PUB/SUB: messages stopped after " + std::to_string(i));
    }
    if (i == 0) t0 = clock::now();
  }
  auto rate = double(count - 1) / std::chrono::duration<double>(clock::now() - t0).count();
  waitpid(pid, nullptr, 0);
  return rate;
}

}  // namespace

nlohmann::json bench_events(size_t tasks) {
  event sample;
  sample.seq = 1234567;
  sample.time_ns = 1790000000000000000;
  sample.topic = "task.completed";
  sample.task = 1234567;
  sample.worker = 1;
  sample.detail = "noop";
  auto body = wire::encode(sample);
  auto raw = raw_pub_sub(tasks * 5, sample.topic, body);

  running_cluster rc{0, 2, true};  // a head with 2 workers of its own, publishing
  std::atomic<uint64_t> delivered{0};
  subscriber sub{rc.cluster->endpoint(),
                 [&](const event&) { delivered.fetch_add(1, std::memory_order_relaxed); }};
  task_spec noop;
  noop.kind = "noop";
  rc.c->submit(noop).get();  // warm-up: its events show the subscriber is following
  if (!sub.wait_for_seq(4, std::chrono::seconds(10)))
    throw std::runtime_error("events: the subscriber did not follow the warm-up task");
  auto first_seq = sub.counters().last_seq;
  auto delivered_before = delivered.load();
  auto t0 = clock::now();
  const size_t batch = 10000;
  std::vector<task_handle> handles;
  for (size_t sent = 0; sent < tasks; sent += batch)
    for (auto& h : rc.c->submit_batch(std::vector<task_spec>(std::min(batch, tasks - sent), noop)))
      handles.push_back(std::move(h));
  for (auto& h : handles)
    if (!h.wait_for(std::chrono::seconds(120)))
      throw std::runtime_error("events: a task did not finish within 120 s");
  // The head publishes behind its scheduling (the event bus has a queue): the run is followed
  // once the subscriber has reached the newest event and the head has published no newer one.
  auto deadline = clock::now() + std::chrono::seconds(120);
  for (uint64_t target = rc.c->status().last_event_seq;;) {
    if (!sub.wait_for_seq(target, std::chrono::seconds(120)) || clock::now() > deadline)
      throw std::runtime_error("events: the subscriber did not reach event " +
                               std::to_string(target));
    auto newest = rc.c->status().last_event_seq;
    if (newest == target) break;
    target = newest;
  }
  auto secs = std::chrono::duration<double>(clock::now() - t0).count();
  auto n = sub.counters().last_seq - first_seq;
  auto rate = double(n) / secs;
  auto got = delivered.load() - delivered_before;
  auto c = sub.counters();
  std::printf(
      "events          head -> one subscriber (troupe::subscriber, another process), %zu "
      "noop tasks on the head's 2 workers\n",
      tasks);
  std::printf("  raw zmq PUB/SUB (%zu B + %zu B)  %12.0f msgs/s\n", sample.topic.size(),
              body.size(), raw);
  std::printf(
      "  troupe, published and followed  %12.0f events/s  ratio %.3f  (%llu events, "
      "%.0f tasks/s)\n",
      rate, rate / raw, (unsigned long long)n, double(tasks) / secs);
  std::printf(
      "  of which reached the callback   %12.0f events/s  (%llu; %llu gaps, %llu "
      "recovered from the ring, %llu snapshots)\n",
      double(got) / secs, (unsigned long long)got, (unsigned long long)c.gaps,
      (unsigned long long)c.replayed, (unsigned long long)c.snapshots);
  return {{"raw_msgs_per_s", raw},
          {"troupe_events_per_s", rate},
          {"ratio", rate / raw},
          {"events", n},
          {"delivered_per_s", double(got) / secs},
          {"gaps", c.gaps},
          {"snapshots", c.snapshots}};
}

}  // namespace troupe::cli
