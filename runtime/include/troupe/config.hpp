#pragma once
// Runtime configuration. Every key, its default and its meaning are documented in
// config/local.toml; this struct holds the same defaults.
#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace troupe {

enum class queue_order : uint8_t { fifo, priority };
enum class overflow_policy : uint8_t { reject, block };
enum class placement_policy : uint8_t { round_robin, least_loaded };
enum class restart_strategy : uint8_t { one_for_one };
enum class cuda_selection : uint8_t { all, none, list };

struct runtime_config {
  // [workers]
  uint32_t cpu_workers = 0;  ///< 0: one per hardware thread
  uint64_t worker_memory_bytes =
      0;  ///< memory a CPU worker may reserve; 0: physical memory / workers
  uint32_t worker_prefetch = 1024;  ///< most tasks assigned to one worker at a time (its credit)
  std::chrono::microseconds worker_backlog{2000};  ///< estimated work to keep queued per worker
  cuda_selection cuda = cuda_selection::all;  ///< GPUs that get a worker: "all", "none", a list
  std::vector<int32_t> cuda_devices;          ///< with cuda = list
  uint64_t gpu_memory_headroom_bytes = uint64_t(512) << 20;  ///< kept free on every GPU
  bool detached_workers = true;  ///< false only in deterministic tests: workers on the scheduler
  // [batching]: dynamic batching on CUDA workers, for kinds that declare a batch key (mlp)
  bool batching_enabled = true;
  uint32_t batch_max_tasks = 128;                   ///< most tasks merged into one launch
  std::chrono::microseconds batch_max_delay{1000};  ///< longest a task waits for company
  // [queue]
  uint64_t queue_bound = 1000000;  ///< tasks admitted and not yet finished
  overflow_policy overflow = overflow_policy::reject;
  std::chrono::milliseconds block_timeout{1000};  ///< with overflow = "block": then reject
  queue_order order = queue_order::priority;
  std::chrono::milliseconds aging_interval{100};  ///< waiting this long is worth one priority level
  uint32_t dead_letter_capacity = 1000;
  // [retry]
  uint32_t max_retries = 3;
  std::chrono::milliseconds retry_backoff{5};
  std::chrono::milliseconds retry_backoff_max{1000};
  // [balancer]
  placement_policy placement = placement_policy::least_loaded;
  // [supervision]
  restart_strategy strategy = restart_strategy::one_for_one;
  uint32_t restart_intensity = 5;  ///< at most this many restarts of one worker ...
  std::chrono::milliseconds restart_period{10000};  ///< ... within this window, else escalate
  std::chrono::milliseconds restart_backoff{0};     ///< delay before the 1st restart; doubles after
  std::chrono::milliseconds restart_backoff_max{1000};
  // [monitor]
  std::chrono::milliseconds heartbeat_interval{500};
  std::chrono::milliseconds heartbeat_timeout{10000};
  // [log]
  std::string log_level = "info";
  // [scheduler]
  uint32_t scheduler_threads = 0;  ///< CAF scheduler threads; 0: cores / 4, in [1, 4]
};

/// A configuration error names the file (or "--set"), the line and the key.
class config_error : public std::runtime_error {
 public:
  config_error(std::string source, int line, std::string key, const std::string& what);
  const std::string& source() const { return source_; }
  int line() const { return line_; }
  const std::string& key() const { return key_; }

 private:
  std::string source_;
  int line_;
  std::string key_;
};

/// Parses TOML text; unknown sections and keys are errors too (a typo must not pass silently).
runtime_config parse_config(std::string_view toml_text, const std::string& source_name,
                            runtime_config base = {});
/// Reads and parses a file; a missing or unreadable file is a config_error.
runtime_config load_config(const std::string& path, runtime_config base = {});
/// Applies one "section.key=value" override (value in TOML syntax; bare words are strings).
void apply_override(runtime_config& cfg, const std::string& assignment);
/// Fills automatic values (worker count, memory per worker, scheduler threads).
runtime_config resolve(runtime_config cfg);

}  // namespace troupe
