#pragma once
// Workloads for `troupe run`: the default AI mix, or a JSON-lines file (docs/workload.md).
#include <istream>
#include <string>
#include <vector>

#include "troupe/model/graph.hpp"
#include "troupe/model/task.hpp"

namespace troupe::cli {

/// About 2,000 tasks: gemm 64..512, mlp inference batch 1..64, priorities 0..9, 2% fail tasks
/// that succeed on retry, and five that fail for good. Deterministic for a given seed.
std::vector<task_spec> default_workload(uint64_t seed = 42, size_t tasks = 2000);

/// A workload file's tasks, in the file's order, and the gangs among them.
struct workload {
  std::vector<task_spec> tasks;
  /// A line with "gang": true: its `count` tasks, [first, first + size) of `tasks`, are one gang
  /// (submit_gang: placed on distinct workers all at once or not at all, docs/reservations.md).
  struct gang_range {
    size_t first = 0;
    size_t size = 0;
  };
  std::vector<gang_range> gangs;
};

/// One JSON object per line; blank lines and lines starting with '#' are skipped. Throws
/// std::runtime_error naming the source, the line and the field on bad input.
workload parse_workload(std::istream& in, const std::string& source);
workload load_workload(const std::string& path);

/// A graph file (docs/graphs.md): {"tasks": [{"name", "kind", "after", "inputs", ...}],
/// "on_failure": ...}; each task takes the fields of a workload line but count and key, and a
/// string `payload`. Throws std::runtime_error naming the source, the task and the field.
/// Names and links are checked by link_graph() at submit.
graph_spec parse_graph(std::istream& in, const std::string& source);
graph_spec load_graph(const std::string& path);

}  // namespace troupe::cli
