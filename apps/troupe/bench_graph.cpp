// troupe bench graph: a layered random graph run as one graph submission, beside the same graph
// run level by level from the client and beside its lower bound; and the scheduling cost per
// edge of a graph of empty tasks, beside the same tasks without edges.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "troupe/kernels/builtins.hpp"
#include "troupe/runtime.hpp"

namespace troupe::cli {

namespace {

using seconds_d = std::chrono::duration<double>;

struct layered_graph {
  graph_spec graph;
  std::vector<std::vector<size_t>> levels;  ///< task indices per level
  std::vector<double> ms;                   ///< each task's duration
};

/// `levels` levels of `width` tasks of `kind`; each task after 1-3 random tasks of the level
/// before; durations uniform in [min_ms, max_ms] (sleep tasks) or none (noop).
layered_graph make_layered(size_t levels, size_t width, double min_ms, double max_ms,
                           const std::string& kind, uint64_t seed) {
  layered_graph g;
  std::mt19937_64 rng{seed};
  std::uniform_real_distribution<double> duration{min_ms, max_ms};
  std::uniform_int_distribution<size_t> pick{0, width - 1}, fan{1, 3};
  for (size_t l = 0; l < levels; ++l) {
    g.levels.emplace_back();
    for (size_t k = 0; k < width; ++k) {
      graph_task t;
      t.name = "L" + std::to_string(l) + "." + std::to_string(k);
      t.spec.kind = kind;
      double ms = kind == "sleep" ? duration(rng) : 0.0;
      if (kind == "sleep") t.spec.params = {{"ms", ms}};
      if (l > 0) {
        auto n = fan(rng);
        for (size_t p = 0; p < n; ++p) {
          auto parent = g.graph.tasks[g.levels[l - 1][pick(rng)]].name;
          if (std::find(t.after.begin(), t.after.end(), parent) == t.after.end())
            t.after.push_back(parent);
        }
      }
      g.levels.back().push_back(g.graph.tasks.size());
      g.ms.push_back(ms);
      g.graph.tasks.push_back(std::move(t));
    }
  }
  return g;
}

runtime_config graph_config(uint32_t workers) {
  runtime_config cfg;
  cfg.cpu_workers = workers;
  cfg.cuda = cuda_selection::none;
  cfg.queue_bound = uint64_t(1) << 32;
  cfg.log_level = "warn";
  return cfg;
}

double run_as_graph(const layered_graph& g, uint32_t workers) {
  runtime rt{graph_config(workers)};
  auto t0 = clock::now();
  auto h = rt.submit_graph(g.graph);
  h.wait_until(clock::now() + std::chrono::minutes(10));
  auto s = seconds_d(clock::now() - t0).count();
  for (auto& t : h.tasks())
    if (!t.get().ok()) std::fprintf(stderr, "warning: %s\n", t.get().error.message.c_str());
  return s;
}

double run_level_by_level(const layered_graph& g, uint32_t workers) {
  runtime rt{graph_config(workers)};
  auto t0 = clock::now();
  for (auto& level : g.levels) {
    std::vector<task_spec> specs;
    for (auto i : level) specs.push_back(g.graph.tasks[i].spec);
    for (auto& h : rt.submit_batch(std::move(specs))) h.get();
  }
  return seconds_d(clock::now() - t0).count();
}

double run_plain(const layered_graph& g, uint32_t workers) {
  runtime rt{graph_config(workers)};
  std::vector<task_spec> specs;
  for (auto& t : g.graph.tasks) specs.push_back(t.spec);
  auto t0 = clock::now();
  auto hs = rt.submit_batch(std::move(specs));
  for (auto& h : hs) h.get();
  return seconds_d(clock::now() - t0).count();
}

/// The baseline: the same kernel calls on `workers` plain threads taking tasks from one counter,
/// no runtime and no edges: what the kernel itself costs (a thread woken from a sleep runs a
/// little late).
double run_raw_threads(const layered_graph& g, uint32_t workers) {
  task_registry registry;
  kernels::register_builtins(registry);
  auto* kind = registry.find(g.graph.tasks.front().spec.kind);
  std::atomic<size_t> next{0};
  auto t0 = clock::now();
  std::vector<std::thread> threads;
  for (uint32_t w = 0; w < workers; ++w)
    threads.emplace_back([&, w] {
      for (size_t i; (i = next.fetch_add(1)) < g.graph.tasks.size();) {
        task_context ctx{g.graph.tasks[i].spec, 1, int32_t(w), device_class::cpu, nullptr, -1};
        kind->def.cpu(ctx);
      }
    });
  for (auto& t : threads) t.join();
  return seconds_d(clock::now() - t0).count();
}

double median3(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

nlohmann::json bench_graph(uint32_t workers, size_t empty_tasks) {
  // 300 tasks of 1-10 ms in 30 levels, on 2 workers unless --workers says otherwise.
  auto g = make_layered(30, 10, 1.0, 10.0, "sleep", 7);
  linked_graph linked;
  link_graph(g.graph, linked);
  double work = 0;
  for (auto ms : g.ms) work += ms / 1000;
  auto critical = critical_path(linked.specs, g.ms) / 1000;
  auto bound = std::max(work / workers, critical);
  std::vector<double> as_graph, by_level, no_edges, raw;
  for (int rep = 0; rep < 3; ++rep) {  // interleaved: a busy spell hits all four
    as_graph.push_back(run_as_graph(g, workers));
    by_level.push_back(run_level_by_level(g, workers));
    no_edges.push_back(run_plain(g, workers));
    raw.push_back(run_raw_threads(g, workers));
  }
  auto graph_s = median3(as_graph), level_s = median3(by_level), floor_s = median3(no_edges),
       raw_s = median3(raw);
  std::printf("graph: 300 tasks of 1-10 ms in 30 levels, %u workers (median of 3)\n", workers);
  std::printf("  lower bound    %7.1f ms  (max of work/workers %.1f ms, critical path %.1f ms)\n",
              bound * 1000, work / workers * 1000, critical * 1000);
  std::printf("  as a graph     %7.1f ms  (%.3fx the bound)\n", graph_s * 1000, graph_s / bound);
  std::printf("  level by level %7.1f ms  (%.3fx the bound; the graph takes %.3fx its time)\n",
              level_s * 1000, level_s / bound, graph_s / level_s);
  // The same tasks in one batch, no edges: what the workers and the kernel cost on their own.
  std::printf("  without edges  %7.1f ms  (%.3fx the bound; the graph takes %.3fx its time)\n",
              floor_s * 1000, floor_s / bound, graph_s / floor_s);
  std::printf(
      "  plain threads  %7.1f ms  (%.3fx the bound; the same kernel calls on %u threads, "
      "no runtime, no edges; the graph takes %.3fx its time)\n",
      raw_s * 1000, raw_s / bound, workers, graph_s / raw_s);

  // Empty tasks: the graph's edges are all that differs.
  size_t width = 1000, levels = std::max<size_t>(1, empty_tasks / width);
  auto empty = make_layered(levels, width, 0, 0, "noop", 11);
  size_t edges = 0;
  for (auto& t : empty.graph.tasks) edges += t.after.size();
  std::vector<double> with_edges, without;
  for (int rep = 0; rep < 3; ++rep) {
    with_edges.push_back(run_as_graph(empty, workers));
    without.push_back(run_plain(empty, workers));
  }
  auto e_s = median3(with_edges), p_s = median3(without);
  auto per_edge_us = (e_s - p_s) / double(edges) * 1e6;
  std::printf("graph of %zu empty tasks, %zu edges, %u workers (median of 3)\n",
              empty.graph.tasks.size(), edges, workers);
  std::printf("  without edges  %7.1f ms\n", p_s * 1000);
  std::printf("  as a graph     %7.1f ms  (%.2fx; %.3f us per edge)\n", e_s * 1000, e_s / p_s,
              per_edge_us);
  return {{"graph_ms", graph_s * 1000},
          {"level_by_level_ms", level_s * 1000},
          {"lower_bound_ms", bound * 1000},
          {"critical_path_ms", critical * 1000},
          {"graph_to_bound", graph_s / bound},
          {"graph_to_level_by_level", graph_s / level_s},
          {"without_edges_ms", floor_s * 1000},
          {"plain_threads_ms", raw_s * 1000},
          {"graph_to_plain_threads", graph_s / raw_s},
          {"graph_to_without_edges", graph_s / floor_s},
          {"empty_tasks", empty.graph.tasks.size()},
          {"edges", edges},
          {"empty_plain_ms", p_s * 1000},
          {"empty_graph_ms", e_s * 1000},
          {"per_edge_us", per_edge_us}};
}

}  // namespace troupe::cli
