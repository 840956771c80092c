#pragma once
// Process isolation (isolation = "process" under [nodes.NAME]): each CPU worker of the node runs
// its tasks' implementations in a child process of its own, forked from the worker's runner
// thread. A segfault, abort() or exit() in a kind's code ends that child: the attempt is reported
// as a crash (kernel_crashed, retried by policy), the worker restarts within the supervisor's
// restart intensity with a fresh child, and the node and its other workers carry on. A timeout,
// deadline or cancel kills the child at once instead of abandoning a thread.
#include <string>
#include <vector>

#include "troupe/model/kernel_host.hpp"

namespace troupe {

/// The factory a node installs in its runtime_setup. max_payload_bytes bounds what crosses the
/// child's socket (as on the wire).
/// exec_command: a worker process program (node.hpp, worker_command); empty: fork only.
kernel_host_factory process_hosts(std::shared_ptr<task_registry> registry,
                                  uint64_t max_payload_bytes,
                                  std::vector<std::string> exec_command = {});

/// A worker process's loop: one task at a time from fd, its answer back; until fd closes.
[[noreturn]] void serve_tasks(int fd, const task_registry& registry, uint64_t max_payload_bytes,
                              int32_t worker);

}  // namespace troupe
