#pragma once
// troupe::head: the head process of a cluster. A runtime (queue, balancer, supervisor, monitor,
// event bus) whose worker table holds the workers of every node of the cluster file, placed on
// like local ones, plus the ROUTER socket that nodes and clients connect to. Clients submit,
// cancel and ask for status over it (docs/protocol.md).
#include <memory>
#include <string>

#include "troupe/model/config.hpp"
#include "troupe/runtime.hpp"

namespace troupe {

struct head_counters {
  uint64_t frames_in = 0;
  uint64_t refused = 0;  ///< malformed, oversized, unknown type or version: answered with an error
  uint64_t dropped_out = 0;  ///< outbound messages dropped at the socket's bound
};

class head {
 public:
  /// cfg: a whole cluster file. Binds cluster.head; throws transport errors (std::runtime_error)
  /// naming the endpoint if it cannot.
  explicit head(runtime_config cfg);
  ~head();
  head(const head&) = delete;
  head& operator=(const head&) = delete;

  /// The bound endpoint (with the port chosen, for "tcp://127.0.0.1:*").
  const std::string& endpoint() const;
  troupe::runtime& runtime();
  head_counters counters() const;
  /// Stops taking messages, then the runtime (drain or cancel). Idempotent.
  void shutdown(shutdown_mode mode = shutdown_mode::cancel);

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// Worker slots of the cluster's nodes as the head lays them out (names "node/cpu-0").
std::vector<worker_desc> cluster_workers(const runtime_config& cfg);

}  // namespace troupe
