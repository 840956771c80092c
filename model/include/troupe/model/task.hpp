#pragma once
// The model: what a task is, what it needs, and what comes back.
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "troupe/model/errors.hpp"
#include "troupe/model/params.hpp"
#include "troupe/model/shared_bytes.hpp"

namespace troupe {

using task_id = uint64_t;
using clock = std::chrono::steady_clock;
using time_point = clock::time_point;
using duration = std::chrono::nanoseconds;

/// What a task needs while it runs; the ledger reserves it on the worker that gets the task.
struct resources {
  uint32_t cpu_slots = 1;
  uint64_t memory_bytes = 0;  ///< host memory
  uint32_t gpu_count = 0;     ///< 1: the task must run on a GPU
  /// GPU memory the task may use when it runs on a GPU: reserved there, and the most its
  /// allocations may take (CUDA workers enforce it). CPU workers ignore it. The built-in kinds
  /// fill it in from their parameters when it is 0.
  uint64_t gpu_memory_bytes = 0;
};

/// A graph task's input (model/graph.hpp): when the task `from` (its index in the same graph
/// submission) completes, its output field `field` becomes this task's parameter `param`. The
/// reserved names: param "payload" sets the payload; field "bytes" is the output's bytes.
struct task_input {
  std::string param;
  uint32_t from = 0;
  std::string field;
  bool operator==(const task_input& o) const {
    return param == o.param && from == o.from && field == o.field;
  }
};

struct task_spec {
  std::string kind;
  param_map params;
  /// Shared, not copied, when the spec is (a graph child's payload is its parent's output).
  shared_bytes payload;
  int32_t priority = 0;                ///< higher runs first (with aging, nothing starves)
  std::optional<time_point> deadline;  ///< absolute; expired tasks end with outcome::expired
  resources needs;
  std::optional<uint32_t> max_retries;                     ///< default from config
  std::optional<std::chrono::milliseconds> retry_backoff;  ///< first backoff; doubles per attempt
  /// Longest one attempt may run. Past it the task's cancellation token is set; an attempt that
  /// still runs after workers.timeout_grace_ms more is abandoned with its worker. Either way the
  /// attempt fails with errc::timed_out (retried by policy). None: attempts may run for hours.
  std::optional<std::chrono::milliseconds> timeout;
  std::string idempotency_key;  ///< non-empty: a second submit with this key returns the first task
  std::map<std::string, std::string> labels;
  /// Graph submissions only (runtime::submit_graph, docs/graphs.md): the indices, in the same
  /// submission, of the tasks this one runs after, and what it takes from their outputs (an
  /// input is an edge too). Empty for a plain task.
  std::vector<uint32_t> after;
  std::vector<task_input> inputs;
  /// May be stopped at its cancellation token (task_context::cancelled()) to make way for a
  /// more urgent task, then queued again: at most queue.max_preemptions times, after which it
  /// runs to its end. Only the attempt is lost, never the task (docs/preemption.md).
  bool preemptible = false;
};

enum class outcome : uint8_t { pending, completed, failed, cancelled, expired, rejected };
const char* to_string(outcome o) noexcept;

/// What an implementation produces: named values (checksums, argmax lists) and optional bytes.
struct task_output {
  param_map values;
  shared_bytes bytes;  ///< shared with the children that take them as their payload
};

/// What limits.max_payload_bytes counts of a task's input (payload and parameters) and of its
/// output (bytes and values): at least their encoded size, with the fields around them, so that
/// frames filled up to the limit stay within the frame limit.
inline size_t input_bytes(const task_spec& s) {
  size_t labels = 0;
  for (auto& [k, v] : s.labels) labels += k.size() + v.size() + 10;
  size_t links = s.after.size() * 9;
  for (auto& in : s.inputs) links += in.param.size() + in.field.size() + 40;
  return s.payload.size() + 5 + wire_size(s.params) + s.kind.size() + s.idempotency_key.size() +
         labels + links + 256;
}
inline size_t output_bytes(const task_output& o) {
  return o.bytes.size() + 5 + wire_size(o.values) + 128;
}

/// The error that ends a task whose output is over limits.max_payload_bytes; none otherwise.
inline error_info output_over_limit(const task_output& o, uint64_t max_payload_bytes) {
  auto n = output_bytes(o);
  if (n <= max_payload_bytes) return {};
  return {errc::output_too_large, "the output is " + std::to_string(n) +
                                      " bytes, over limits.max_payload_bytes (" +
                                      std::to_string(max_payload_bytes) + ")"};
}

struct task_timings {
  time_point submitted{};
  time_point queued{};
  time_point started{};
  time_point finished{};  ///< its terminal record was made (after the worker's report came in)
  int32_t worker = -1;    ///< index of the worker of the last attempt, -1 if none ran
  /// When its last attempt ended on that worker (the run itself: started .. ran_until); {} if
  /// none ran.
  time_point ran_until{};
};

struct task_result {
  task_id id = 0;
  std::string kind;
  outcome status = outcome::pending;
  task_output output;
  error_info error;
  uint32_t attempts = 0;
  task_timings timings;

  bool ok() const { return status == outcome::completed; }
};

}  // namespace troupe
