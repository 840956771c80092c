#pragma once
// A run's timeline: every task that ran, on the row of the worker that ran it (its last
// attempt), as Chrome trace-event JSON (opens in Perfetto and chrome://tracing) and as a Gantt
// chart in SVG. Plain: built from terminal records after the run.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "troupe/model/task.hpp"

namespace troupe::cli {

struct traced_task {
  const task_result* result = nullptr;
  std::string name;  ///< the task's `name` label, or "KIND #ID"
};

/// {"traceEvents": [...], "displayTimeUnit": "ms"}: one complete event ("ph": "X") per task
/// that started, named after it, on thread `worker` of process 1, with microseconds from the
/// first submit; in its args the id, kind, outcome, attempts and the time it waited in ms
/// (`queued_ms`, submit to its last start). Thread-name metadata names each worker row.
/// `process` names the one process row.
nlohmann::json chrome_trace(const std::vector<traced_task>& tasks,
                            const std::vector<std::string>& worker_names,
                            const std::string& process = "troupe run");

/// The same as a Gantt chart: a row per worker, a bar per task coloured by kind, a time axis.
std::string gantt_svg(const std::vector<traced_task>& tasks,
                      const std::vector<std::string>& worker_names);

/// Writes the trace (unless trace_path is empty) and the chart (unless gantt_path is). False,
/// said on stderr after `who`, when a file cannot be written.
bool write_timeline(const std::vector<traced_task>& tasks,
                    const std::vector<std::string>& worker_names, const std::string& trace_path,
                    const std::string& gantt_path, const char* who);

}  // namespace troupe::cli
