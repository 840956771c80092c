#pragma once
// Typed errors of the runtime. Every failure a caller can see carries one of these codes and a
// message naming what was wrong and where.
#include <cstdint>
#include <string>

namespace troupe {

enum class errc : uint8_t {
  none = 0,
  unknown_kind,             ///< no implementation registered under the task's kind
  invalid_params,           ///< parameters missing, of the wrong type or out of range
  unsatisfiable_resources,  ///< no worker of this runtime could ever satisfy the needs
  no_implementation,        ///< the kind has no implementation for any configured device class
  queue_full,               ///< admission bound reached (policy "reject")
  duplicate_id,             ///< an idempotency key already names another task
  deadline_expired,         ///< the deadline passed before the task could finish
  cancelled,                ///< cancelled by the caller or by shutdown(cancel)
  task_failed,              ///< the implementation reported a failure (retryable)
  task_failed_permanently,  ///< the implementation reported a failure that retries cannot fix
  kernel_crashed,           ///< the implementation threw; its worker was restarted
  worker_lost,              ///< the worker died or stopped answering heartbeats
  out_of_memory,            ///< the task tried to use more memory than it reserved
  supervisor_gave_up,       ///< restart intensity exceeded; the runtime escalated and stopped
  shutting_down,            ///< submitted after shutdown began
  config_error,             ///< a configuration file or flag is invalid
  timed_out,                ///< an attempt ran past the task's timeout (retryable)
  output_too_large,         ///< the output is over limits.max_payload_bytes (not retried)
  head_unreachable,         ///< a client heard nothing from its head for its head_timeout
  result_lost,      ///< the head does not know the task (restarted without a journal, or compacted)
  not_authorized,   ///< the head refused this client's key, or the key may not do this
  upstream_failed,  ///< a graph task whose parent failed, was cancelled or expired (not run)
  /// A preemptible task's attempt stopped for a more urgent task: it goes back to the queue
  /// (never a task's final error).
  preempted,
};

/// Stable, lower-case name of an error code ("queue_full").
const char* to_string(errc code) noexcept;

/// Whether a new attempt may help (transient failures).
bool is_retryable(errc code) noexcept;

struct error_info {
  errc code = errc::none;
  std::string message;
  explicit operator bool() const noexcept { return code != errc::none; }
};

/// Thrown by a task implementation to report a typed failure. The worker survives it; any other
/// exception counts as a crash of the implementation and restarts the worker.
struct task_failure {
  errc code = errc::task_failed;
  std::string message;
};

}  // namespace troupe
