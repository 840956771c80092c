#pragma once
// troupe::node: a node process of a cluster. Its supervisor and device workers, a monitor for
// their heartbeats, and a node agent that joins the head over a DEALER socket and runs what the
// head assigns.
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "troupe/model/config.hpp"
#include "troupe/model/registry.hpp"

namespace troupe {

class node {
 public:
  /// cfg: the whole cluster file; name: one of its [nodes.NAME]. Throws config_error for an
  /// unknown name. worker_command: with process isolation, a program (argv) that serves as a
  /// worker process when run with `--worker W` appended and its socket on fd 3: a fresh process
  /// with the node's built-in and plugin kinds (`troupe node` passes `troupe worker-process`).
  /// Empty: the worker process is a fork of this one, with every kind registered here, which
  /// suits a service that registers kinds of its own; its implementations must then be safe to
  /// run after fork() (no lock another thread of this process may hold).
  node(const runtime_config& cfg, const std::string& name,
       std::vector<std::string> worker_command = {});

  /// The worker process side of worker_command: loads the node's built-in and plugin kinds,
  /// serves tasks on `fd` until it closes. Returns the process's exit status.
  static int serve_worker_process(const runtime_config& cfg, const std::string& name, int fd,
                                  int32_t worker);
  ~node();
  node(const node&) = delete;
  node& operator=(const node&) = delete;

  struct stop_reason {
    bool failed = false;  ///< its supervisor gave up or the head refused it: exit non-zero
    std::string why;
  };
  /// Waits until the node must stop (request_stop, or a failure) and says why; nullopt if the
  /// timeout passed first.
  std::optional<stop_reason> wait(std::chrono::milliseconds timeout);
  /// The built-in kinds and those of the node's plugins are registered; add your own here, as
  /// on an embedded runtime. The head learns kinds added after the node joined with its next
  /// heartbeat (the node says hello again, same epoch); until then it refuses them at submit.
  task_registry& registry();

  /// Thread-safe (a signal thread calls it): wakes wait().
  void request_stop(const std::string& why);
  /// Says bye to the head and stops. Idempotent.
  void shutdown();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace troupe
