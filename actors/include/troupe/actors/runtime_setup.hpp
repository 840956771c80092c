#pragma once
// What every actor of one runtime reads and nobody changes once the actors start: the resolved
// configuration, the GPUs found and the worker layout. Built by the runtime (or the node) before
// it spawns anything, then shared as const. The registry is the exception that proves the rule:
// a service may add kinds at any time, so it is a thread-safe object of its own (its own lock).
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "troupe/model/config.hpp"
#include "troupe/model/devices.hpp"
#include "troupe/model/kernel_host.hpp"
#include "troupe/model/registry.hpp"
#include "troupe/model/reservations.hpp"

namespace troupe {

struct runtime_setup {
  runtime_config cfg;
  gpu_inventory gpus;
  std::vector<worker_desc> workers;  ///< CPU workers, then one per GPU, then remote workers
  std::shared_ptr<task_registry> registry = std::make_shared<task_registry>();
  /// [reservations.NAME] laid over `workers` (docs/reservations.md).
  reservation_book reservations;
  /// Set: CPU workers run implementations in a host of their own (a child process, on a node
  /// with isolation = "process"); null: on their runner threads.
  kernel_host_factory cpu_host;
  /// With keys (security.head_key): each node of the cluster file and its public key. The head
  /// sends them in every welcome: who may fetch kept outputs from a node (docs/graphs.md).
  std::map<std::string, std::string> node_keys;

  /// Whether node `node` keeps the graph outputs of tasks that worker `producer` ran
  /// (cluster.kept_output_bytes; docs/graphs.md, "Where data moves").
  bool node_keeps(const std::string& node, int32_t producer) const {
    return cfg.cluster.kept_output_bytes > 0 && !node.empty() && producer >= 0 &&
           size_t(producer) < workers.size() && workers[size_t(producer)].node == node;
  }
};

using setup_ptr = std::shared_ptr<const runtime_setup>;

}  // namespace troupe
