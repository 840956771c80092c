// The cluster commands: head, node, up (a head and its nodes as child processes), submit and
// status (clients of a head).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "troupe/cli_commands.hpp"
#include "troupe/client.hpp"
#include "troupe/head.hpp"
#include "troupe/model/log.hpp"
#include "troupe/model/restart_intensity.hpp"
#include "troupe/node.hpp"
#include "troupe/report.hpp"
#include "troupe/subscriber.hpp"
#include "troupe/trace.hpp"
#include "troupe/workload.hpp"

namespace troupe::cli {

namespace {

runtime_config cluster_file(const std::string& path, const std::vector<std::string>& overrides) {
  auto cfg = load_config(path);
  for (auto& o : overrides) apply_override(cfg, o);
  return cfg;
}

// Signals arrive through a pipe (the self-pipe trick): a handler, on whatever thread the kernel
// picks (OpenBLAS starts threads before main, so blocking signals in main is not enough), writes
// the signal number; the waiting thread reads it.
int signal_pipe[2] = {-1, -1};

void on_signal(int sig) {
  auto saved = errno;
  unsigned char b = static_cast<unsigned char>(sig);
  (void)!::write(signal_pipe[1], &b, 1);
  errno = saved;
}

void catch_signals(std::initializer_list<int> sigs) {
  if (signal_pipe[0] < 0 && pipe2(signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
    throw std::runtime_error("cannot create the signal pipe");
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (int sig : sigs) sigaction(sig, &sa, nullptr);
}

/// The next signal, or 0 when timeout_ms (-1: none) passed first.
int next_signal(int timeout_ms) {
  pollfd p{signal_pipe[0], POLLIN, 0};
  while (true) {
    int r = ::poll(&p, 1, timeout_ms);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return 0;
    unsigned char b = 0;
    if (::read(signal_pipe[0], &b, 1) == 1) return b;
  }
}

}  // namespace

int run_head(const std::string& config, const std::vector<std::string>& overrides) {
  auto cfg = cluster_file(config, overrides);
  catch_signals({SIGINT, SIGTERM});
  head h{cfg};
  std::fprintf(stderr, "troupe head: listening on %s, %zu node(s) in %s\n", h.endpoint().c_str(),
               cfg.cluster.nodes.size(), config.c_str());
  int sig = next_signal(-1);
  troupe::logger().info("head: {} received, stopping", strsignal(sig));
  h.shutdown(shutdown_mode::cancel);
  return 0;
}

int run_worker_process(const std::string& config, const std::string& name, int32_t worker,
                       const std::vector<std::string>& overrides) {
  auto cfg = cluster_file(config, overrides);
  troupe::logger().set_level(spdlog::level::warn);  // its node logs for it
  return node::serve_worker_process(cfg, name, 3, worker);
}

int run_node(const std::string& config, const std::string& name,
             const std::vector<std::string>& overrides) {
  auto cfg = cluster_file(config, overrides);
  catch_signals({SIGINT, SIGTERM});
  // With process isolation, each worker process is this program afresh (troupe worker-process).
  std::vector<std::string> worker_command{"/proc/self/exe", "worker-process", "--config",
                                          config,           "--name",         name};
  if (!overrides.empty()) {
    worker_command.push_back("--set");
    worker_command.insert(worker_command.end(), overrides.begin(), overrides.end());
  }
  node n{cfg, name, worker_command};
  std::thread waiter([&] {
    int sig = next_signal(-1);
    n.request_stop(std::string{strsignal(sig)} + " received");
  });
  std::optional<node::stop_reason> why;
  while (!(why = n.wait(std::chrono::hours(24)))) {
  }
  if (why->failed) {
    // The process exits at once: the parent (troupe up) restarts it with a fresh state. The
    // signal thread is still waiting in poll; _exit does not need it.
    troupe::logger().critical("node {}: {}", name, why->why);
    std::fflush(nullptr);
    _exit(3);
  }
  troupe::logger().info("node {}: {}, stopping", name, why->why);
  n.shutdown();
  on_signal(SIGTERM);  // wakes the signal thread if the stop came from elsewhere
  waiter.join();
  return 0;
}

namespace {

struct child {
  std::string role;  ///< "head" or a node name
  std::vector<std::string> args;
  pid_t pid = -1;
  uint32_t starts = 0;
  std::chrono::steady_clock::time_point restart_at{};
  /// As a supervisor: restarts back off from cluster.restart_delay_ms (doubling, at most
  /// supervision.backoff_max_ms); more than supervision.intensity within supervision.period_ms
  /// and troupe up gives up.
  std::optional<troupe::restart_intensity> limit{};
};

pid_t start_child(child& c) {
  auto pid = fork();
  if (pid < 0) {
    troupe::logger().error("up: fork failed for {}", c.role);
    return -1;
  }
  if (pid == 0) {
    for (int sig : {SIGINT, SIGTERM, SIGCHLD}) signal(sig, SIG_DFL);
    std::vector<char*> argv;
    for (auto& a : c.args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv("/proc/self/exe", argv.data());
    std::perror("troupe up: exec");
    _exit(127);
  }
  c.pid = pid;
  ++c.starts;
  std::fprintf(stderr, "troupe up: %s started (pid %d%s)\n", c.role.c_str(), int(pid),
               c.starts > 1 ? (", restart " + std::to_string(c.starts - 1)).c_str() : "");
  return pid;
}

}  // namespace

int run_up(const std::string& config, const std::vector<std::string>& overrides) {
  auto cfg = cluster_file(config, overrides);  // refuse a bad file before starting anything
  catch_signals({SIGINT, SIGTERM, SIGCHLD});
  std::vector<child> children;
  auto common = [&](std::vector<std::string> args) {
    args.insert(args.begin(), "troupe");
    args.push_back("--config");
    args.push_back(config);
    for (auto& o : overrides) args.push_back("--set"), args.push_back(o);
    return args;
  };
  children.push_back({"head", common({"head"})});
  for (auto& n : cfg.cluster.nodes)
    children.push_back({"node " + n.name, common({"node", "--name", n.name})});
  for (auto& c : children)
    c.limit.emplace(cfg.restart_intensity, cfg.restart_period, cfg.cluster.restart_delay,
                    std::max(cfg.restart_backoff_max, cfg.cluster.restart_delay));
  int exit_code = 0;
  for (auto& c : children)
    if (start_child(c) < 0) return 1;

  bool stopping = false;
  auto stop_deadline = std::chrono::steady_clock::time_point::max();
  while (true) {
    auto now = std::chrono::steady_clock::now();
    // Wait for a signal, or until the next restart (or the stop deadline) is due.
    auto wake = stop_deadline;
    for (auto& c : children)
      if (c.pid < 0 && !stopping) wake = std::min(wake, c.restart_at);
    int timeout_ms = -1;
    if (wake != std::chrono::steady_clock::time_point::max())
      timeout_ms = int(std::max<int64_t>(
          0, std::chrono::duration_cast<std::chrono::milliseconds>(wake - now).count() + 1));
    int sig = next_signal(timeout_ms);
    now = std::chrono::steady_clock::now();
    if (sig == SIGINT || sig == SIGTERM) {
      if (!stopping) {
        std::fprintf(stderr, "troupe up: %s, stopping the cluster\n", strsignal(sig));
        stopping = true;
        stop_deadline = now + std::chrono::seconds(10);
        // Nodes first (they say bye), then the head.
        for (auto it = children.rbegin(); it != children.rend(); ++it)
          if (it->pid > 0) kill(it->pid, SIGTERM);
      }
    }
    // Reap every child that ended (SIGCHLD, or found on any wake-up).
    while (true) {
      int status = 0;
      auto pid = waitpid(-1, &status, WNOHANG);
      if (pid <= 0) break;
      for (auto& c : children) {
        if (c.pid != pid) continue;
        c.pid = -1;
        std::string how = WIFEXITED(status) ? "exited with " + std::to_string(WEXITSTATUS(status))
                          : WIFSIGNALED(status)
                              ? std::string{"killed by "} + strsignal(WTERMSIG(status))
                              : "ended";
        if (!stopping) {
          auto delay = c.limit->on_child_lost(troupe::clock::now());
          if (!delay) {
            std::fprintf(stderr,
                         "troupe up: %s (pid %d) %s, its %u restart(s) within %lld ms used up "
                         "(supervision.intensity, supervision.period_ms): giving up, stopping "
                         "the cluster\n",
                         c.role.c_str(), int(pid), how.c_str(), c.limit->limit(),
                         static_cast<long long>(c.limit->period().count()));
            exit_code = 1;
            stopping = true;
            stop_deadline = now + std::chrono::seconds(10);
            for (auto it = children.rbegin(); it != children.rend(); ++it)
              if (it->pid > 0) kill(it->pid, SIGTERM);
            continue;
          }
          c.restart_at = now + *delay;
          std::fprintf(stderr, "troupe up: %s (pid %d) %s; restarting in %lld ms\n", c.role.c_str(),
                       int(pid), how.c_str(), static_cast<long long>(delay->count()));
        } else {
          std::fprintf(stderr, "troupe up: %s stopped (%s)\n", c.role.c_str(), how.c_str());
        }
      }
    }
    if (stopping) {
      bool all_done =
          std::all_of(children.begin(), children.end(), [](const child& c) { return c.pid < 0; });
      if (all_done) return exit_code;
      if (now >= stop_deadline) {
        for (auto& c : children)
          if (c.pid > 0) kill(c.pid, SIGKILL);
        stop_deadline = now + std::chrono::seconds(5);
      }
      continue;
    }
    for (auto& c : children)
      if (c.pid < 0 && now >= c.restart_at && start_child(c) < 0) return 1;
  }
}

namespace {

nlohmann::json to_json(const task_result& r) {
  nlohmann::json j;
  j["id"] = r.id;
  j["kind"] = r.kind;
  j["outcome"] = to_string(r.status);
  if (r.error) {
    j["error"] = to_string(r.error.code);
    j["message"] = r.error.message;
  }
  j["attempts"] = r.attempts;
  j["worker"] = r.timings.worker;
  j["values"] = nlohmann::json::parse(troupe::to_json(r.output.values));
  if (!r.output.bytes.empty()) j["bytes"] = r.output.bytes.size();
  return j;
}

}  // namespace

/// The CURVE side of a command that talks to a head: both files or neither.
transport::curve_client curve_of(const key_options& k) {
  transport::curve_client c;
  if (k.key.empty() && k.head_key.empty()) return c;
  if (k.key.empty() || k.head_key.empty())
    throw std::runtime_error(
        "--key and --head-key go together: this program's key pair file and the head's public "
        "key file (docs/security.md)");
  c.keys = transport::read_key_pair(k.key);
  c.server_key = transport::read_public_key(k.head_key);
  return c;
}

int run_keygen(const std::string& path) {
  auto keys = transport::generate_key_pair();
  transport::write_key_pair(path, keys);
  std::printf(
      "wrote %s (the key pair: keep it private) and %s.pub (its public key)\n"
      "public key: %s\n"
      "let it in with a [[security.allow]] entry (role, name, key = \"%s.pub\") in the "
      "cluster file,\nor as a node's key: [nodes.NAME] key = \"%s\"\n",
      path.c_str(), path.c_str(), keys.public_key.c_str(), path.c_str(), path.c_str());
  return 0;
}

namespace {

/// troupe submit --graph FILE: the graph in one submit; with --wait, a JSON line per task (in
/// the file's order) with its name, outcome and values.
int submit_graph_file(const submit_options& opt) {
  graph_spec g;
  try {
    g = load_graph(opt.graph);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "troupe submit: %s\n", e.what());
    return 2;
  }
  client_options co;
  co.name = "troupe-submit";
  co.timeout = std::chrono::milliseconds(opt.timeout_ms);
  co.curve = curve_of(opt.keys);
  client c{opt.to, co};
  graph_handle h;
  try {
    h = c.submit_graph(std::move(g));
  } catch (const client_error& e) {
    std::fprintf(stderr, "troupe submit: %s: %s\n", opt.graph.c_str(), e.what());
    return 2;
  }
  if (h.refused()) {
    std::fprintf(stderr, "troupe submit: %s: %s: %s\n", opt.graph.c_str(),
                 to_string(h.refused().code), h.refused().message.c_str());
    return 2;
  }
  if (!opt.wait && opt.trace.empty() && opt.gantt.empty()) {
    for (size_t i = 0; i < h.size(); ++i)
      std::printf("%s\n",
                  nlohmann::json{{"name", h.names()[i]}, {"id", h.tasks()[i].id()}}.dump().c_str());
    return 0;
  }
  auto deadline = clock::now() + std::chrono::milliseconds(opt.timeout_ms);
  int failures = 0;
  for (size_t i = 0; i < h.size(); ++i) {
    auto& t = h.tasks()[i];
    if (!t.wait_until(deadline)) {
      std::fprintf(stderr, "troupe submit: task '%s' (%llu) has no result after %lld ms\n",
                   h.names()[i].c_str(), static_cast<unsigned long long>(t.id()),
                   static_cast<long long>(opt.timeout_ms));
      return 1;
    }
    failures += t.get().ok() ? 0 : 1;
    auto j = to_json(t.get());
    j["name"] = h.names()[i];
    std::printf("%s\n", j.dump().c_str());
  }
  if (!opt.trace.empty() || !opt.gantt.empty()) {
    // Times on this process's clock: the head sends them relative to each result message.
    std::vector<cli::traced_task> traced;
    for (size_t i = 0; i < h.size(); ++i) traced.push_back({&h.tasks()[i].get(), h.names()[i]});
    std::vector<std::string> worker_names;
    try {
      auto st = c.status();
      for (auto& w : st.stats.workers) {
        if (w.index < 0) continue;
        if (worker_names.size() <= size_t(w.index)) worker_names.resize(size_t(w.index) + 1);
        worker_names[size_t(w.index)] = w.name;
      }
    } catch (const client_error& e) {
      std::fprintf(stderr, "troupe submit: no worker names for the timeline: %s\n", e.what());
    }
    for (size_t w = 0; w < worker_names.size(); ++w)
      if (worker_names[w].empty()) worker_names[w] = "worker " + std::to_string(w);
    if (!cli::write_timeline(traced, worker_names, opt.trace, opt.gantt, "troupe submit")) return 1;
  }
  return failures ? 1 : 0;
}

}  // namespace

int run_submit(const submit_options& opt) {
  if (!opt.graph.empty()) return submit_graph_file(opt);
  if (opt.kind.empty()) {
    std::fprintf(stderr, "troupe submit: give --kind KIND or --graph FILE.json\n");
    return 2;
  }
  nlohmann::json line;
  line["kind"] = opt.kind;
  try {
    line["params"] = nlohmann::json::parse(opt.params.empty() ? "{}" : opt.params);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "troupe submit: --params is not JSON: %s\n", e.what());
    return 2;
  }
  line["priority"] = opt.priority;
  if (opt.count > 1) line["count"] = opt.count;
  if (opt.gpu_count) line["gpu_count"] = opt.gpu_count;
  if (opt.preemptible) line["preemptible"] = true;
  if (opt.gang) line["gang"] = true;
  for (auto& kv : opt.labels) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      std::fprintf(stderr, "troupe submit: --label '%s': expected KEY=VALUE\n", kv.c_str());
      return 2;
    }
    line["labels"][kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  std::istringstream in{line.dump()};
  auto parsed = parse_workload(in, "--params");
  client_options co;
  co.name = "troupe-submit";
  co.timeout = std::chrono::milliseconds(opt.timeout_ms);
  co.curve = curve_of(opt.keys);
  client c{opt.to, co};
  auto handles =
      opt.gang ? c.submit_gang(std::move(parsed.tasks)) : c.submit_batch(std::move(parsed.tasks));
  if (!opt.wait) {
    for (auto& h : handles) std::printf("%llu\n", static_cast<unsigned long long>(h.id()));
    return 0;
  }
  int failures = 0;
  auto deadline = clock::now() + std::chrono::milliseconds(opt.timeout_ms);
  for (auto& h : handles) {
    if (!h.wait_until(deadline)) {
      std::fprintf(stderr, "troupe submit: task %llu has no result after %lld ms\n",
                   static_cast<unsigned long long>(h.id()), static_cast<long long>(opt.timeout_ms));
      return 1;
    }
    auto& r = h.get();
    failures += r.ok() ? 0 : 1;
    std::printf("%s\n", to_json(r).dump().c_str());
  }
  return failures ? 1 : 0;
}

int run_status(const std::string& to, bool json, int64_t timeout_ms, const key_options& keys) {
  client_options co;
  co.name = "troupe-status";
  co.timeout = std::chrono::milliseconds(timeout_ms);
  co.curve = curve_of(keys);
  client c{to, co};
  auto s = c.status();
  auto& st = s.stats;
  if (json) {
    nlohmann::json j;
    j["submitted"] = st.submitted;
    j["completed"] = st.completed;
    j["failed"] = st.failed;
    j["cancelled"] = st.cancelled;
    j["rejected"] = st.rejected;
    j["queued"] = st.queued;
    j["in_flight"] = st.in_flight;
    j["retries"] = st.retries;
    j["preempted"] = st.preempted;
    j["frames_refused"] = s.frames_refused;
    j["stale_frames"] = s.stale_frames;
    j["attempts"] = st.attempts;
    j["recovered"] = st.recovered;
    // The seed's figures since the head started; the makespan is its busy window (first
    // submit to last terminal record).
    j.update(to_json(figures_of(st, st.busy_window_s)));
    for (auto& n : s.nodes) {
      auto gpus = nlohmann::json::array();
      for (auto& g : n.gpus) gpus.push_back(to_json(g));
      j["nodes"].push_back({{"name", n.name},
                            {"state", n.state},
                            {"epoch", n.epoch},
                            {"joins", n.joins},
                            {"heartbeat_age_ms", n.heartbeat_age_ms},
                            {"workers", n.workers},
                            {"gpus", gpus},
                            {"gpu_note", n.gpu_note},
                            {"kept_inputs", n.kept_inputs},
                            {"kept_input_bytes", n.kept_input_bytes},
                            {"fetched_inputs", n.fetched_inputs},
                            {"fetched_input_bytes", n.fetched_input_bytes},
                            {"preemptible_running", n.preemptible_running}});
    }
    for (size_t i = 0; i < st.workers.size(); ++i) {
      auto& w = st.workers[i];
      j["workers"].push_back({{"index", w.index},
                              {"name", w.name},
                              {"node", i < s.worker_nodes.size() ? s.worker_nodes[i] : ""},
                              {"device", w.device},
                              {"state", w.state},
                              {"tasks", w.tasks},
                              {"restarts", w.restarts}});
      if (auto& g = w.gpu_memory)
        j["workers"].back()["gpu_memory"] = {{"capacity_bytes", g->capacity},
                                             {"reserved_bytes", g->reserved}};
    }
    j["reservations"] = nlohmann::json::array();
    for (auto& r : st.reservations)
      j["reservations"].push_back({{"name", r.name},
                                   {"workers", r.workers},
                                   {"clients", r.clients},
                                   {"active", r.active},
                                   {"busy", r.busy},
                                   {"idle", r.idle},
                                   {"starts_in_s", r.starts_in_s},
                                   {"ends_in_s", r.ends_in_s}});
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf(
      "queue      %llu queued, %llu in flight; %llu submitted, %llu completed, %llu failed, "
      "%llu rejected\n",
      (unsigned long long)st.queued, (unsigned long long)st.in_flight,
      (unsigned long long)st.submitted, (unsigned long long)st.completed,
      (unsigned long long)st.failed, (unsigned long long)st.rejected);
  auto f = figures_of(st, st.busy_window_s);
  std::printf(
      "schedule   busy %.3f s (first submit to last result), %.1f tasks/s, sum of "
      "completion times %.3f s, utilisation",
      f.makespan_s, f.throughput_tps, f.sum_completion_s);
  for (auto& [cls, u] : f.utilisation) std::printf(" %s %.1f%%", cls.c_str(), 100 * u);
  std::printf(
      "\nerrors     %llu of %llu attempts (P_e %.4f); T_d %.3f ms, T_h %.3f ms, T_r %.3f ms",
      (unsigned long long)st.errors_detected, (unsigned long long)st.attempts, f.error_rate,
      f.detection_ms, f.handling_ms, f.recovery_ms);
  if (f.efficiency)
    std::printf("; efficiency 1/(P_e*T_d + T_h) %.1f /s\n", *f.efficiency);
  else
    std::printf("; efficiency n/a (no errors)\n");
  std::printf("frames     %llu refused, %llu from stale epochs\n",
              (unsigned long long)s.frames_refused, (unsigned long long)s.stale_frames);
  for (auto& r : st.reservations) {
    std::string workers, clients;
    for (auto& w : r.workers) workers += (workers.empty() ? "" : ", ") + w;
    for (auto& c : r.clients) clients += (clients.empty() ? "" : ", ") + c;
    std::printf("reserved   %s: %s; %s; %u busy, %u idle (unused)", r.name.c_str(), workers.c_str(),
                r.active ? "active" : ("starts in " + std::to_string(r.starts_in_s) + " s").c_str(),
                r.busy, r.idle);
    if (!clients.empty()) std::printf("; for %s", clients.c_str());
    if (r.ends_in_s >= 0) std::printf("; ends in %.0f s", r.ends_in_s);
    std::printf("\n");
  }
  std::printf("supervision tree\n  head (supervisor, queue, balancer, monitor)\n");
  std::map<std::string, std::vector<size_t>> by_node;
  for (size_t i = 0; i < st.workers.size(); ++i)
    by_node[i < s.worker_nodes.size() ? s.worker_nodes[i] : ""].push_back(i);
  auto show_workers = [&](const std::vector<size_t>& idx, const char* indent) {
    for (auto i : idx) {
      auto& w = st.workers[i];
      std::printf("%s%-16s %-8s %-12s tasks %-8llu restarts %u", indent, w.name.c_str(),
                  w.device.c_str(), w.state.c_str(), (unsigned long long)w.tasks, w.restarts);
      if (auto& g = w.gpu_memory)  // what the head's ledger holds there
        std::printf("  GPU memory reserved %llu of %llu MiB",
                    (unsigned long long)(g->reserved >> 20),
                    (unsigned long long)(g->capacity >> 20));
      std::printf("\n");
    }
  };
  if (by_node.count("")) show_workers(by_node[""], "  ├─ ");
  for (auto& n : s.nodes) {
    std::printf("  └─ node %s: %s, epoch %llu, joined %u time(s), heard %.0f ms ago\n",
                n.name.c_str(), n.state.c_str(), (unsigned long long)n.epoch, n.joins,
                n.heartbeat_age_ms);
    for (auto& g : n.gpus)
      std::printf("       GPU %d %s (compute %d.%d), %llu MiB, %llu MiB free at start\n", g.index,
                  g.name.c_str(), g.cc_major, g.cc_minor,
                  (unsigned long long)(g.total_memory >> 20),
                  (unsigned long long)(g.free_memory >> 20));
    if (n.gpus.empty() && !n.gpu_note.empty())
      std::printf("       no GPU: %s\n", n.gpu_note.c_str());
    if (n.kept_inputs > 0)
      std::printf(
          "       graph inputs the head did not send: %llu (%.1f MiB); fetched from other nodes: "
          "%llu (%.1f MiB)\n",
          (unsigned long long)n.kept_inputs, double(n.kept_input_bytes) / (1 << 20),
          (unsigned long long)n.fetched_inputs, double(n.fetched_input_bytes) / (1 << 20));
    show_workers(by_node[n.name], "       ├─ ");
  }
  return 0;
}

int run_watch(const std::string& to, const std::string& topic, bool json, const key_options& keys) {
  catch_signals({SIGINT, SIGTERM});
  std::mutex out;  // the subscriber's thread prints; lines must not interleave
  auto time_of = [](int64_t ns) {
    auto secs = time_t(ns / 1000000000);
    tm t{};
    localtime_r(&secs, &t);
    char buf[32];
    std::snprintf(buf, sizeof buf, "%02d:%02d:%02d.%06lld", t.tm_hour, t.tm_min, t.tm_sec,
                  static_cast<long long>((ns / 1000) % 1000000));
    return std::string{buf};
  };
  subscriber_options so;
  so.prefix = topic;
  so.curve = curve_of(keys);
  so.on_gap = [&](uint64_t first, uint64_t last) {
    std::lock_guard<std::mutex> g{out};
    if (json)
      std::printf("%s\n", nlohmann::json{{"gap", {first, last}}}.dump().c_str());
    else
      std::printf("-- gap: events %llu..%llu were lost here; catching up from the head\n",
                  (unsigned long long)first, (unsigned long long)last);
    std::fflush(stdout);
  };
  so.on_new_incarnation = [&](uint64_t previous, uint64_t now) {
    std::lock_guard<std::mutex> g{out};
    if (json)
      std::printf("%s\n",
                  nlohmann::json{{"new_incarnation", {{"previous", previous}, {"now", now}}}}
                      .dump()
                      .c_str());
    else
      std::printf(
          "-- the head restarted (incarnation %llu, was %llu): events start again at 1; "
          "resyncing from its state\n",
          (unsigned long long)now, (unsigned long long)previous);
    std::fflush(stdout);
  };
  so.on_snapshot = [&](const state_snapshot& s) {
    std::lock_guard<std::mutex> g{out};
    if (json)
      std::printf("%s\n", nlohmann::json{{"snapshot",
                                          {{"seq", s.seq},
                                           {"tasks_in_flight", s.tasks.size()},
                                           {"workers", s.workers.size()},
                                           {"nodes", s.nodes}}}}
                              .dump()
                              .c_str());
    else
      std::printf(
          "-- state at event %llu: %zu task(s) in flight, %zu worker(s) known, "
          "%zu node(s)\n",
          (unsigned long long)s.seq, s.tasks.size(), s.workers.size(), s.nodes.size());
    std::fflush(stdout);
  };
  subscriber sub{to,
                 [&](const event& e) {
                   std::lock_guard<std::mutex> g{out};
                   if (json) {
                     nlohmann::json j{{"seq", e.seq},       {"time_ns", e.time_ns},
                                      {"topic", e.topic},   {"task", e.task},
                                      {"worker", e.worker}, {"detail", e.detail}};
                     if (!e.node.empty()) j["node"] = e.node;
                     std::printf("%s\n", j.dump().c_str());
                   } else {
                     std::string who;
                     if (e.task) who += " task " + std::to_string(e.task);
                     if (e.worker >= 0) who += " worker " + std::to_string(e.worker);
                     if (!e.node.empty()) who += " node " + e.node;
                     std::printf("%8llu %s %-18s%s%s%s\n", (unsigned long long)e.seq,
                                 time_of(e.time_ns).c_str(), e.topic.c_str(), who.c_str(),
                                 e.detail.empty() ? "" : ": ", e.detail.c_str());
                   }
                   std::fflush(stdout);
                 },
                 so};
  next_signal(-1);
  return 0;
}

}  // namespace troupe::cli
