#pragma once
// Entry points of the troupe subcommands that live outside main.cpp.
#include <cstdint>
#include <string>
#include <vector>

namespace troupe::cli {

int run_bench(const std::vector<std::string>& which, size_t tasks, const std::string& json_path,
              uint32_t workers, const std::vector<std::string>& overrides);

int run_head(const std::string& config, const std::vector<std::string>& overrides);
int run_node(const std::string& config, const std::string& name,
             const std::vector<std::string>& overrides);
int run_up(const std::string& config, const std::vector<std::string>& overrides);
/// The worker process of a node with process isolation (started by the node, not by users).
int run_worker_process(const std::string& config, const std::string& name, int32_t worker,
                       const std::vector<std::string>& overrides);

/// --key and --head-key of the commands that talk to a head with keys (docs/security.md).
struct key_options {
  std::string key;       ///< this program's key pair file (troupe keygen)
  std::string head_key;  ///< the head's public key file (HEAD_KEY.pub)
};

/// troupe keygen PATH: writes PATH (secret, 0600) and PATH.pub.
int run_keygen(const std::string& path);

struct submit_options {
  std::string to, kind, params;
  std::string graph;  ///< --graph FILE.json: a task graph (docs/graphs.md) instead of --kind
  int32_t priority = 0;
  size_t count = 1;
  uint32_t gpu_count = 0;  ///< 1: on a GPU only
  bool preemptible = false;
  bool gang = false;                ///< the --count copies as one gang (all at once or not at all)
  std::vector<std::string> labels;  ///< --label KEY=VALUE (reservation=NAME, client=NAME, ...)
  bool wait = false;
  std::string trace, gantt;  ///< --graph: the timeline's files (they imply --wait)
  int64_t timeout_ms = 30000;
  key_options keys;
};
int run_submit(const submit_options& opt);
int run_status(const std::string& to, bool json, int64_t timeout_ms, const key_options& keys);
int run_watch(const std::string& to, const std::string& topic, bool json, const key_options& keys);

}  // namespace troupe::cli
