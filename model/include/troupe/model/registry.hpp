#pragma once
// Task registry: kind name -> validation and one implementation per device class.
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "troupe/model/task.hpp"

namespace troupe {

enum class device_class : uint8_t { cpu = 0, cuda = 1 };
const char* to_string(device_class d) noexcept;

/// GPU memory of one task on a CUDA worker. Allocations count against what the task reserved
/// (needs.gpu_memory_bytes, summed over the tasks of a batched launch): past that, allocate()
/// throws task_failure{errc::out_of_memory} naming both sizes, and the worker carries on.
/// Everything allocated is freed (stream-ordered) when the task ends.
class gpu_memory {
 public:
  virtual ~gpu_memory() = default;
  /// Device memory on the task's stream; `what` names the buffer in the error.
  virtual void* allocate(size_t bytes, const char* what) = 0;
  virtual uint64_t limit() const = 0;
  virtual uint64_t used() const = 0;
};

/// What an implementation sees of its task.
struct task_context {
  const task_spec& spec;
  uint32_t attempt;  ///< 1 for the first attempt
  int32_t worker;
  device_class device;
  const std::atomic<bool>* cancel_flag = nullptr;
  int32_t device_index = -1;  ///< the GPU of a cuda worker
  /// CUDA workers: the stream the task runs on (a cudaStream_t), one of several of its GPU, so
  /// that tasks on one GPU run concurrently; and the task's GPU memory. Null elsewhere.
  void* cuda_stream = nullptr;
  gpu_memory* gpu = nullptr;
  /// Set when the attempt ran past the task's timeout or deadline (CPU workers).
  const std::atomic<bool>* stop_flag = nullptr;
  /// Set when a preemptible task is asked to make way for a more urgent one (CPU workers).
  const std::atomic<bool>* preempt_flag = nullptr;
  /// Long implementations may poll this and return early; the result is then dropped. True when
  /// the task was cancelled, ran past its timeout or deadline, or was preempted.
  bool cancelled() const {
    return (cancel_flag && cancel_flag->load(std::memory_order_relaxed)) ||
           (stop_flag && stop_flag->load(std::memory_order_relaxed)) ||
           (preempt_flag && preempt_flag->load(std::memory_order_relaxed));
  }
};

/// Runs a task. Report typed failures by throwing troupe::task_failure; any other exception is a
/// crash: the worker is restarted and the task retried elsewhere as a new attempt.
using kernel_fn = std::function<task_output(const task_context&)>;

/// Checks a spec at submit time (throw task_failure{errc::invalid_params, "..."}) and may fill in
/// derived resource needs (memory). Returns the estimated work in the kind's cost unit (flops for
/// gemm and mlp), which the balancer's performance model scales into seconds.
using validate_fn = std::function<double(task_spec&)>;

/// Runs several tasks of one batch key in one launch on a CUDA worker: one output per spec, in
/// order. Throwing task_failure fails every task of the batch.
using batch_kernel_fn = std::function<std::vector<task_output>(const std::vector<const task_spec*>&,
                                                               const task_context&)>;

struct kind_definition {
  std::string name;
  // Every member has a default, so {name, validate, cpu} is a complete initializer.
  validate_fn validate = nullptr;  ///< optional: absent means any parameters are accepted, cost 0
  kernel_fn cpu = nullptr;         ///< implementation on a CPU worker (optional if cuda is set)
  kernel_fn cuda = nullptr;        ///< implementation on a CUDA worker (optional)
  /// Dynamic batching (optional, CUDA workers): tasks with the same non-empty key may be merged
  /// into one cuda_batch launch. Kinds without these never batch.
  std::function<std::string(const task_spec&)> batch_key = nullptr;
  batch_kernel_fn cuda_batch = nullptr;
};

constexpr uint8_t device_bit(device_class d) {
  return uint8_t(1u << unsigned(d));
}

/// Registered kinds are never removed, so a pointer to one stays valid for the registry's life.
struct kind_entry {
  uint32_t index = 0;
  kind_definition def;
  /// A head's registry: the device classes on which some node runs the kind (device_bit), as
  /// their hellos say. A kind only nodes have has no implementation here.
  std::atomic<uint8_t> remote_devices{0};
  /// Whether this process has an implementation for the device class.
  bool runs_on(device_class d) const {
    return d == device_class::cpu ? bool(def.cpu) : bool(def.cuda);
  }
  /// Whether some node said it runs the kind on the device class.
  bool runs_remotely_on(device_class d) const {
    return remote_devices.load(std::memory_order_relaxed) & device_bit(d);
  }
  /// Runs somewhere: implemented here, or announced by a node (a head adds a node's new kind
  /// before it announces it: until then it is unknown).
  bool runnable() const {
    return def.cpu || def.cuda || remote_devices.load(std::memory_order_relaxed) != 0;
  }
};

class task_registry {
 public:
  /// Registers a kind. Throws std::invalid_argument if the name is empty, already taken, or has no
  /// implementation at all.
  void add(kind_definition def);
  /// A kind some node runs on these device classes (device_bit): a head learns them from the
  /// nodes' hellos. Adds an entry without implementation if the name is new, else widens the
  /// entry's remote devices. Throws std::invalid_argument for an empty name.
  const kind_entry* add_remote(const std::string& name, uint8_t devices);
  /// nullptr if unknown. Thread-safe.
  const kind_entry* find(std::string_view name) const;
  std::vector<std::string> kinds() const;
  /// Kinds registered so far (grows only): a node announces its kinds again when it grows.
  size_t size() const;

 private:
  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<kind_entry>> entries_;
  std::unordered_map<std::string, kind_entry*> by_name_;
};

}  // namespace troupe
