#include "troupe/report.hpp"

#include <cstdio>
#include <sstream>

namespace troupe::cli {

nlohmann::json to_json(const schedule_figures& f) {
  nlohmann::json j;
  j["makespan_s"] = f.makespan_s;
  j["throughput_tps"] = f.throughput_tps;
  j["sum_completion_s"] = f.sum_completion_s;
  j["utilisation"] = f.utilisation;
  j["error_rate"] = f.error_rate;
  j["detection_ms"] = f.detection_ms;
  j["handling_ms"] = f.handling_ms;
  j["recovery_ms"] = f.recovery_ms;
  j["efficiency"] = f.efficiency ? nlohmann::json(*f.efficiency) : nlohmann::json(nullptr);
  j["lower_bound_s"] = f.lower_bound_s;
  j["lower_bound_is"] = f.lower_bound_is;
  return j;
}

nlohmann::json to_json(const gpu_device& g) {
  return {{"index", g.index},
          {"name", g.name},
          {"compute_capability", std::to_string(g.cc_major) + "." + std::to_string(g.cc_minor)},
          {"total_bytes", g.total_memory},
          {"free_bytes", g.free_memory}};
}

nlohmann::json to_json(const run_summary& r) {
  auto& s = r.stats;
  nlohmann::json j;
  j["submitted"] = s.submitted;
  j["rejected"] = s.rejected;
  j["completed"] = s.completed;
  j["failed"] = s.failed;
  j["cancelled"] = s.cancelled;
  j["expired"] = s.expired;
  j["retries"] = s.retries;
  j["preempted"] = s.preempted;
  j["attempts"] = s.attempts;
  j["recovered"] = s.recovered;
  j["duplicates_dropped"] = s.duplicates_dropped;
  auto figures = figures_of(s, r.makespan_s, r.longest_task_s);
  j.update(to_json(figures));  // makespan_s, throughput_tps, lower_bound_s, error_rate, ...
  j["mean_error_detection_ms"] = s.mean_error_detection_ms;
  j["mean_error_handling_ms"] = s.mean_error_handling_ms;
  j["errors_detected"] = s.errors_detected;
  auto& lat = j["latency_ms"] = nlohmann::json::object();
  for (auto& [kind, l] : s.latency)
    lat[kind] = {{"count", l.count}, {"mean", l.mean_ms}, {"p50", l.p50_ms},
                 {"p95", l.p95_ms},  {"p99", l.p99_ms},   {"max", l.max_ms}};
  auto& gpus = j["gpus"] = nlohmann::json::array();
  for (auto& g : r.gpus.gpus) gpus.push_back(to_json(g));
  if (!r.gpus.note.empty()) j["gpu_note"] = r.gpus.note;
  auto& workers = j["workers"] = nlohmann::json::array();
  for (auto& w : s.workers) {
    workers.push_back({{"name", w.name},
                       {"device", w.device},
                       {"state", w.state},
                       {"tasks", w.tasks},
                       {"busy_s", w.busy_s},
                       {"restarts", w.restarts},
                       {"utilisation", r.makespan_s > 0 ? w.busy_s / r.makespan_s : 0.0}});
    if (auto& g = w.gpu_memory)
      workers.back()["gpu_memory"] = {
          {"capacity_bytes", g->capacity},       {"reserved_bytes", g->reserved},
          {"in_use_bytes", g->in_use},           {"cache_bytes", g->cache},
          {"device_used_bytes", g->device_used}, {"device_total_bytes", g->device_total},
          {"device_source", g->device_source}};
  }
  return j;
}

std::string to_text(const run_summary& r) {
  auto& s = r.stats;
  std::ostringstream o;
  char buf[256];
  auto finished = s.completed + s.failed + s.cancelled + s.expired;
  o << "tasks      submitted " << s.submitted << ", completed " << s.completed << ", failed "
    << s.failed << ", cancelled " << s.cancelled << ", expired " << s.expired << ", rejected "
    << s.rejected << "\n";
  o << "retries    " << s.retries << " (duplicates dropped " << s.duplicates_dropped
    << "); preempted " << s.preempted << "\n";
  std::snprintf(buf, sizeof buf, "throughput %.1f tasks/s\n",
                r.makespan_s > 0 ? double(finished) / r.makespan_s : 0.0);
  o << buf;
  auto f = figures_of(s, r.makespan_s, r.longest_task_s);
  std::snprintf(buf, sizeof buf,
                "makespan   %.3f s  (lower bound %.3f s = %s; ratio %.3f); sum of completion "
                "times %.3f s\n",
                r.makespan_s, f.lower_bound_s, f.lower_bound_is.c_str(),
                f.lower_bound_s > 0 ? r.makespan_s / f.lower_bound_s : 0.0, f.sum_completion_s);
  o << buf;
  o << "utilisation";
  for (auto& [cls, u] : f.utilisation) {
    std::snprintf(buf, sizeof buf, " %s %.1f%%", cls.c_str(), 100 * u);
    o << buf;
  }
  o << "\n";
  std::snprintf(buf, sizeof buf,
                "errors     %llu detected, error rate P_e %.4f; T_d %.3f ms, T_h %.3f ms, "
                "T_r %.3f ms (%llu recovered)",
                static_cast<unsigned long long>(s.errors_detected), f.error_rate, f.detection_ms,
                f.handling_ms, f.recovery_ms, static_cast<unsigned long long>(s.recovered));
  o << buf;
  if (f.efficiency) {
    std::snprintf(buf, sizeof buf, "; efficiency 1/(P_e*T_d + T_h) %.1f /s\n", *f.efficiency);
    o << buf;
  } else {
    o << "; efficiency n/a (no errors)\n";
  }
  o << "latency    submit -> result, ms\n";
  std::snprintf(buf, sizeof buf, "  %-10s %8s %9s %9s %9s %9s\n", "kind", "count", "p50", "p95",
                "p99", "max");
  o << buf;
  for (auto& [kind, l] : s.latency) {
    std::snprintf(buf, sizeof buf, "  %-10s %8llu %9.2f %9.2f %9.2f %9.2f\n", kind.c_str(),
                  static_cast<unsigned long long>(l.count), l.p50_ms, l.p95_ms, l.p99_ms, l.max_ms);
    o << buf;
  }
  size_t cpu_workers = 0;
  for (auto& w : s.workers) cpu_workers += w.device == "cpu";
  o << "devices    " << cpu_workers << " cpu worker(s)";
  for (auto& g : r.gpus.gpus)
    o << "; GPU " << g.index << " " << g.name << " (compute " << g.cc_major << "." << g.cc_minor
      << ", " << (g.total_memory >> 20) << " MiB)";
  if (r.gpus.gpus.empty() && !r.gpus.note.empty()) o << "; no GPU: " << r.gpus.note;
  o << "\n";
  o << "workers\n";
  for (auto& w : s.workers) {
    std::snprintf(buf, sizeof buf,
                  "  %-8s %-5s tasks %6llu  busy %7.3f s  utilisation %5.1f%%  restarts %u\n",
                  w.name.c_str(), w.device.c_str(), static_cast<unsigned long long>(w.tasks),
                  w.busy_s, r.makespan_s > 0 ? 100.0 * w.busy_s / r.makespan_s : 0.0, w.restarts);
    o << buf;
    if (auto& g = w.gpu_memory) {
      auto mib = [](uint64_t b) { return static_cast<unsigned long long>(b >> 20); };
      std::snprintf(buf, sizeof buf,
                    "           GPU memory MiB: reserved %llu of %llu, in use by tasks %llu, "
                    "cache %llu; device %llu of %llu used (%s)\n",
                    mib(g->reserved), mib(g->capacity), mib(g->in_use), mib(g->cache),
                    mib(g->device_used), mib(g->device_total),
                    g->device_source.empty() ? "not sampled" : g->device_source.c_str());
      o << buf;
    }
  }
  return o.str();
}

}  // namespace troupe::cli
