#pragma once
// Where a CPU worker runs its tasks' implementations: on its own runner thread (no host, the
// default), or in a child process that a crash takes down instead of the whole process
// (process isolation on a node: runtime/src/process_host.hpp).
#include <functional>
#include <memory>
#include <stdexcept>

#include "troupe/model/registry.hpp"

namespace troupe {

/// The implementation took its process down (a signal, exit(), or an exception it threw in the
/// child): the worker reports a crash, as if it had thrown on its own thread.
class kernel_host_crash : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class kernel_host {
 public:
  virtual ~kernel_host() = default;
  /// Runs one attempt of task `id`. Returns its output; throws task_failure for a typed
  /// failure, kernel_host_crash when the implementation crashed. Once ctx.cancelled() is set
  /// the attempt is killed and an empty output returned at once (the caller knows why).
  virtual task_output run(const kind_entry& kind, const task_context& ctx, task_id id) = 0;
};

/// Makes the host of one CPU worker (its global index); called on that worker's runner thread.
using kernel_host_factory = std::function<std::unique_ptr<kernel_host>(int32_t worker)>;

}  // namespace troupe
