// troupe: the command-line front end. `troupe run` runs a workload on the embedded runtime and
// reports; `troupe bench` measures the runtime beside plain baselines; head, node and up run a
// cluster; submit and status are its clients.
#include <malloc.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <mutex>
#include <unordered_set>

#include "troupe/cli_commands.hpp"
#include "troupe/report.hpp"
#include "troupe/runtime.hpp"
#include "troupe/trace.hpp"
#include "troupe/workload.hpp"

namespace {

using namespace troupe;

struct run_options {
  std::string config, workload, json, trace, gantt;
  std::vector<std::string> overrides;
  uint32_t workers = 0;
  size_t tasks = 2000;
  uint64_t seed = 42;
  bool quiet = false;
};

class progress {
 public:
  progress(size_t total, bool tty) : total_(total), tty_(tty) {}
  void show(size_t done) {
    if (tty_) {
      int width = 40, filled = total_ ? int(width * done / total_) : width;
      std::fprintf(stderr, "\r[%s%s] %zu/%zu", std::string(size_t(filled), '#').c_str(),
                   std::string(size_t(width - filled), ' ').c_str(), done, total_);
      if (done == total_) std::fprintf(stderr, "\n");
    } else {
      auto decile = total_ ? done * 10 / total_ : 10;
      if (decile > last_decile_ || done == total_) {
        last_decile_ = decile;
        std::fprintf(stderr, "progress: %zu/%zu tasks finished\n", done, total_);
      }
    }
    std::fflush(stderr);
  }

 private:
  size_t total_;
  bool tty_;
  size_t last_decile_ = 0;
};

int run(const run_options& opt) {
  runtime_config cfg;
  if (!opt.config.empty()) cfg = load_config(opt.config);
  for (auto& o : opt.overrides) apply_override(cfg, o);
  if (opt.workers) cfg.cpu_workers = opt.workers;
  cli::workload wl;
  if (opt.workload.empty())
    wl.tasks = cli::default_workload(opt.seed, opt.tasks);
  else
    wl = cli::load_workload(opt.workload);
  auto& specs = wl.tasks;
  runtime rt{cfg};
  auto workers = uint32_t(rt.stats().workers.size());
  std::fprintf(stderr, "troupe run: %zu tasks on %u workers (%u cpu, %u gpu; %s)\n", specs.size(),
               workers, rt.config().cpu_workers, workers - rt.config().cpu_workers,
               opt.workload.empty() ? "default AI mix" : opt.workload.c_str());

  // Names for the timeline: a task's `name` label, else its kind and id (known after submit).
  std::vector<std::string> names;
  if (!opt.trace.empty() || !opt.gantt.empty())
    for (auto& s : specs) {
      auto n = s.labels.find("name");
      names.push_back(n == s.labels.end() ? std::string{} : n->second);
    }
  std::atomic<size_t> done{0};
  std::mutex m;
  std::condition_variable cv;
  auto on_done = [&](const task_result&) { done.fetch_add(1, std::memory_order_relaxed); };
  // In the file's order: the tasks between gangs as batches, each gang whole (one handle per
  // task, as the names for the timeline are).
  std::vector<task_handle> handles;
  handles.reserve(specs.size());
  size_t next = 0;
  auto take = [&](std::vector<task_handle> more) {
    handles.insert(handles.end(), std::make_move_iterator(more.begin()),
                   std::make_move_iterator(more.end()));
  };
  auto tasks_until = [&](size_t end) {
    std::vector<task_spec> part(std::make_move_iterator(specs.begin() + ptrdiff_t(next)),
                                std::make_move_iterator(specs.begin() + ptrdiff_t(end)));
    next = end;
    return part;
  };
  for (auto& g : wl.gangs) {
    if (g.first > next) take(rt.submit_batch(tasks_until(g.first), on_done));
    take(rt.submit_gang(tasks_until(g.first + g.size), on_done));
  }
  if (next < specs.size()) take(rt.submit_batch(tasks_until(specs.size()), on_done));
  // Lines with the same idempotency key (a `key` with `count` > 1) get the first task's handle:
  // one task, one callback. Count tasks, not handles.
  std::unordered_set<task_id> accepted_ids;
  size_t rejected = 0;
  for (auto& h : handles) {
    if (h.ready() && h.get().status == outcome::rejected)
      ++rejected;
    else
      accepted_ids.insert(h.id());
  }
  size_t accepted = accepted_ids.size();
  progress bar{accepted + rejected, isatty(STDERR_FILENO) != 0};
  if (!opt.quiet) {
    // Redraw every 100 ms until every accepted task has a terminal record.
    std::unique_lock<std::mutex> lock{m};
    while (done.load() < accepted) {
      bar.show(done.load() + rejected);
      cv.wait_for(lock, std::chrono::milliseconds(100));
    }
    bar.show(accepted + rejected);
  }
  time_point first = time_point::max(), last{};
  clock::duration longest{};
  size_t shown_errors = 0, not_completed = 0;
  std::unordered_set<task_id> counted;
  for (auto& h : handles) {
    auto& r = h.get();
    if (counted.insert(h.id()).second && r.status != outcome::completed) ++not_completed;
    first = std::min(first, r.timings.submitted);
    last = std::max(last, r.timings.finished);
    if (r.timings.started != time_point{} && r.timings.ran_until > r.timings.started)
      longest = std::max(longest, r.timings.ran_until - r.timings.started);
    if (r.status == outcome::rejected && shown_errors++ < 5)
      std::fprintf(stderr, "task %llu rejected: %s: %s\n", static_cast<unsigned long long>(r.id),
                   to_string(r.error.code), r.error.message.c_str());
  }
  cli::run_summary summary;
  summary.stats = rt.stats();
  summary.workers = workers;
  summary.gpus = rt.gpus();
  summary.makespan_s = handles.empty() ? 0 : std::chrono::duration<double>(last - first).count();
  summary.longest_task_s = std::chrono::duration<double>(longest).count();
  std::cout << cli::to_text(summary) << std::flush;
  if (!opt.json.empty()) {
    std::ofstream out{opt.json};
    if (!out) {
      std::fprintf(stderr, "cannot write %s\n", opt.json.c_str());
      return 1;
    }
    out << cli::to_json(summary).dump(2) << "\n";
  }
  if (!opt.trace.empty() || !opt.gantt.empty()) {
    std::vector<cli::traced_task> traced;
    std::unordered_set<task_id> seen;  // a key shared by several lines is one task
    for (size_t i = 0; i < handles.size(); ++i) {
      if (!seen.insert(handles[i].id()).second) continue;
      auto& r = handles[i].get();
      traced.push_back({&r, names[i].empty() ? r.kind + " #" + std::to_string(r.id) : names[i]});
    }
    std::vector<std::string> worker_names;
    for (auto& w : summary.stats.workers) worker_names.push_back(w.name);
    if (!cli::write_timeline(traced, worker_names, opt.trace, opt.gantt, "troupe run")) return 1;
  }
  rt.shutdown();
  if (not_completed > 0) {
    std::fprintf(stderr,
                 "troupe run: %zu of %zu tasks did not complete (%llu failed, %llu "
                 "expired, %llu cancelled, %zu rejected)\n",
                 not_completed, accepted + rejected,
                 static_cast<unsigned long long>(summary.stats.failed),
                 static_cast<unsigned long long>(summary.stats.expired),
                 static_cast<unsigned long long>(summary.stats.cancelled), rejected);
    return 1;
  }
  return 0;
}

}  // namespace

/// glibc hands freed heap back to the kernel as soon as 128 KiB sit free at its top, so a
/// runtime that allocates and frees a batch of task records every few milliseconds faults the
/// same pages in again and again (a quarter of the scheduling time in `bench pipeline`, with
/// the arena locks that come with it). A troupe process keeps up to 256 MiB of freed heap
/// instead. Setting these turns glibc's sliding mmap threshold off, so it is set too: blocks up
/// to 32 MiB (matrices, payloads) come from the heap rather than a fresh mmap each time.
/// A GLIBC_TUNABLES that names malloc settings decides instead.
static void keep_freed_heap() {
  if (const char* t = std::getenv("GLIBC_TUNABLES"); t && std::strstr(t, "glibc.malloc.")) return;
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  mallopt(M_TOP_PAD, 64 << 20);
}

int main(int argc, char** argv) {
  keep_freed_heap();
  CLI::App app{"troupe: an actor runtime for AI work on CPUs and GPUs"};
  app.require_subcommand(1);

  run_options ro;
  auto* run_cmd = app.add_subcommand("run", "run a workload on the embedded runtime and report");
  run_cmd->add_option("--config", ro.config, "TOML config file (see config/local.toml)")
      ->check(CLI::ExistingFile);
  run_cmd->add_option("--workload", ro.workload, "JSON-lines workload (see docs/workload.md)")
      ->check(CLI::ExistingFile);
  run_cmd->add_option("--json", ro.json, "also write the report as JSON to this file");
  run_cmd->add_option("--trace", ro.trace,
                      "write every task's run per worker as Chrome trace-event JSON to this file "
                      "(opens in Perfetto)");
  run_cmd->add_option("--gantt", ro.gantt, "draw the same timeline as a Gantt chart (SVG)");
  run_cmd->add_option("--set", ro.overrides, "override a config key: section.key=value")
      ->take_all();
  run_cmd->add_option("--workers", ro.workers, "cpu workers (overrides workers.cpu)");
  run_cmd->add_option("--tasks", ro.tasks, "size of the default workload")
      ->check(CLI::Range(1, 10000000));
  run_cmd->add_option("--seed", ro.seed, "seed of the default workload");
  run_cmd->add_flag("--quiet", ro.quiet, "no progress output");

  std::vector<std::string> which;
  size_t bench_tasks = 1000000;
  std::string bench_json;
  uint32_t bench_workers = 0;
  auto* bench_cmd = app.add_subcommand("bench", "measure the runtime beside plain baselines");
  bench_cmd
      ->add_option("which", which,
                   "pipeline, latency, gemm, gpu-gemm, gpu-mlp, gpu-mixed, remote-latency, "
                   "remote-pipeline, events, stalled-subscriber, payload, graph, graph-data "
                   "(default: all)")
      ->check(CLI::IsMember({"pipeline", "latency", "gemm", "gpu-gemm", "gpu-mlp", "gpu-mixed",
                             "remote-latency", "remote-pipeline", "events", "stalled-subscriber",
                             "payload", "graph", "graph-data"}));
  bench_cmd->add_option("--tasks", bench_tasks, "empty tasks for the pipeline benchmark");
  bench_cmd->add_option("--json", bench_json, "also write the figures as JSON");
  bench_cmd->add_option("--workers", bench_workers, "cpu workers (default: one per core)");
  std::vector<std::string> bench_sets;
  bench_cmd->add_option("--set", bench_sets, "override a config key: section.key=value")
      ->take_all();

  std::string cluster_config, node_name;
  std::vector<std::string> cluster_sets;
  auto cluster_flags = [&](CLI::App* cmd) {
    cmd->add_option("--config", cluster_config, "cluster file (see config/cluster-3.toml)")
        ->required()
        ->check(CLI::ExistingFile);
    cmd->add_option("--set", cluster_sets, "override a config key: section.key=value")->take_all();
  };
  auto* head_cmd = app.add_subcommand("head",
                                      "run the head of a cluster: queue, balancer, "
                                      "supervisor, monitor, and the socket of nodes "
                                      "and clients");
  cluster_flags(head_cmd);
  auto* node_cmd = app.add_subcommand("node", "run one node of a cluster: its device workers");
  cluster_flags(node_cmd);
  node_cmd->add_option("--name", node_name, "the node's name in the cluster file")->required();
  int32_t worker_index = -1;
  auto* worker_cmd = app.add_subcommand("worker-process", "");  // a node starts these itself
  worker_cmd->group("");                                        // hidden from --help
  cluster_flags(worker_cmd);
  worker_cmd->add_option("--name", node_name)->required();
  worker_cmd->add_option("--worker", worker_index)->required();
  auto* up_cmd = app.add_subcommand(
      "up",
      "start the head and every node of a cluster file here, restart any that dies, stop "
      "them all on Ctrl-C or SIGTERM");
  cluster_flags(up_cmd);

  troupe::cli::submit_options so;
  auto* submit_cmd = app.add_subcommand("submit", "submit tasks to a head");
  submit_cmd->add_option("--to", so.to, "the head's endpoint, e.g. tcp://127.0.0.1:5555")
      ->required();
  auto* kind_opt =
      submit_cmd->add_option("--kind", so.kind, "task kind (noop, echo, sleep, fail, gemm, mlp)");
  auto* graph_opt =
      submit_cmd
          ->add_option("--graph", so.graph,
                       "a task graph file (JSON, docs/graphs.md) instead of --kind; with --wait, a "
                       "line per task with its name")
          ->check(CLI::ExistingFile)
          ->excludes(kind_opt);
  submit_cmd->add_option("--params", so.params, "parameters as a JSON object");
  submit_cmd
      ->add_option("--label", so.labels,
                   "KEY=VALUE, repeatable: a label of each task (reservation=NAME uses a "
                   "reservation, docs/reservations.md; client=NAME says whose task it is)")
      ->excludes(graph_opt);
  submit_cmd->add_option("--priority", so.priority, "higher runs first");
  submit_cmd->add_option("--count", so.count, "submit this many copies")
      ->check(CLI::Range(1, 10000000));
  submit_cmd->add_option("--gpus", so.gpu_count, "1: run on a GPU only")->check(CLI::Range(0, 1));
  submit_cmd->add_flag("--preemptible", so.preemptible,
                       "may be stopped for a more urgent task and queued again "
                       "(docs/preemption.md)");
  submit_cmd
      ->add_flag("--gang", so.gang,
                 "the --count copies as one gang: placed on distinct workers all at once "
                 "or not at all (docs/reservations.md)")
      ->excludes(graph_opt);
  submit_cmd->add_flag("--wait", so.wait, "wait for the results and print them as JSON lines");
  submit_cmd
      ->add_option("--trace", so.trace,
                   "with --graph: wait, then write every task's run per worker as Chrome "
                   "trace-event JSON to this file (opens in Perfetto)")
      ->needs(graph_opt);
  submit_cmd->add_option("--gantt", so.gantt, "with --graph: the same as a Gantt chart (SVG)")
      ->needs(graph_opt);
  submit_cmd->add_option("--timeout-ms", so.timeout_ms, "how long to wait for the head");
  // Keys come from files only: a key on the command line would show in ps and shell history.
  auto key_flags = [](CLI::App* cmd, troupe::cli::key_options& k) {
    cmd->add_option("--key", k.key,
                    "this program's key pair file (troupe keygen), for a head with keys")
        ->check(CLI::ExistingFile);
    cmd->add_option("--head-key", k.head_key, "the head's public key file (its KEY.pub)")
        ->check(CLI::ExistingFile);
  };
  key_flags(submit_cmd, so.keys);

  std::string status_to;
  bool status_json = false;
  int64_t status_timeout = 5000;
  auto* status_cmd = app.add_subcommand(
      "status", "nodes, workers, queue depth and the supervision tree of a running head");
  status_cmd->add_option("--to", status_to, "the head's endpoint")->required();
  status_cmd->add_flag("--json", status_json, "as JSON");
  status_cmd->add_option("--timeout-ms", status_timeout, "how long to wait for the head");
  troupe::cli::key_options status_keys, watch_keys;
  key_flags(status_cmd, status_keys);

  std::string watch_to, watch_topic;
  bool watch_json = false;
  auto* watch_cmd = app.add_subcommand(
      "watch", "follow a head's events: one line each (gaps shown and recovered)");
  watch_cmd->add_option("--to", watch_to, "the head's endpoint")->required();
  watch_cmd->add_option("--topic", watch_topic, "only topics starting with this (task., node.)");
  watch_cmd->add_flag("--json", watch_json, "JSON lines");
  key_flags(watch_cmd, watch_keys);

  std::string keygen_path;
  auto* keygen_cmd = app.add_subcommand(
      "keygen", "write a CURVE key pair: PATH (secret, readable by you only) and PATH.pub");
  keygen_cmd->add_option("path", keygen_path, "where to write the key pair")->required();

  CLI11_PARSE(app, argc, argv);
  try {
    if (*head_cmd) return troupe::cli::run_head(cluster_config, cluster_sets);
    if (*node_cmd) return troupe::cli::run_node(cluster_config, node_name, cluster_sets);
    if (*worker_cmd)
      return troupe::cli::run_worker_process(cluster_config, node_name, worker_index, cluster_sets);
    if (*up_cmd) return troupe::cli::run_up(cluster_config, cluster_sets);
    if (*submit_cmd) return troupe::cli::run_submit(so);
    if (*status_cmd)
      return troupe::cli::run_status(status_to, status_json, status_timeout, status_keys);
    if (*watch_cmd) return troupe::cli::run_watch(watch_to, watch_topic, watch_json, watch_keys);
    if (*keygen_cmd) return troupe::cli::run_keygen(keygen_path);
    if (*run_cmd) return run(ro);
    if (*bench_cmd)
      return troupe::cli::run_bench(which, bench_tasks, bench_json, bench_workers, bench_sets);
  } catch (const troupe::config_error& e) {
    std::fprintf(stderr, "troupe: config error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "troupe: %s\n", e.what());
    return 2;
  }
  return 0;
}
