#pragma once
// cuda_worker: one per GPU, detached. It owns the GPU's lanes: threads of its own, each with a
// CUDA stream, cuBLAS handle and pinned staging (workers.cuda_streams of them), so several tasks
// (or batched launches) run on the GPU at once and one's copies overlap another's kernels. The
// actor never waits on the GPU: it hands a launch to a free lane, the lane waits for its stream
// and reports the end as a gpu_done_msg. Tasks of one batch key (mlp: one model) waiting for a
// lane merge into one launch, up to batching.max_tasks; an idle GPU waits batching.max_delay_us
// for company. Each launch's GPU memory comes from CUDA's pool, held to the reservation of its
// tasks (task_gpu_memory). A crash reports and quits the worker like device_worker; a poisoned
// context retires it (device_lost), see kernels::cuda::release_after_crash.
#include <deque>
#include <memory>
#include <unordered_map>

#include "troupe/actors/messages.hpp"

namespace troupe {

/// One launch on a lane: a task, or several of one batch key. The lane fills in the outcome.
struct gpu_job {
  uint64_t id = 0;
  std::vector<assignment> tasks;
  bool batched = false;
  time_point queued_at{};            ///< handed to a lane (the worker's clock: hang detection)
  time_point started{}, finished{};  ///< set by the lane
  std::vector<task_output> outputs;
  errc code = errc::none;
  std::string message;
  std::exception_ptr crash;
  bool device_lost = false;
};

class gpu_lanes;

struct cuda_worker_state : worker_links {
  static inline const char* name = "cuda_worker";
  std::shared_ptr<gpu_lanes> lanes;
  std::unordered_map<uint64_t, std::shared_ptr<gpu_job>> running;  ///< at most one per lane
  uint64_t next_job = 1;
  std::deque<assignment> ready;           ///< tasks that do not batch, waiting for a lane
  std::vector<assignment> waiting;        ///< batchable tasks waiting for company or a lane
  std::vector<std::string> waiting_keys;  ///< their batch keys, in the same order
  bool flush_armed = false, delay_expired = false;
  time_point waiting_since{};  ///< when the oldest of `waiting` (or the rest of it) arrived
  time_point busy_since{};     ///< since when some launch has been running
  bool crashed = false;
  ~cuda_worker_state();
};

worker_actor::behavior_type cuda_worker_impl(worker_actor::stateful_pointer<cuda_worker_state> self,
                                             worker_env env, int32_t index, uint32_t generation,
                                             balancer_actor balancer, monitor_actor monitor,
                                             supervisor_actor supervisor, event_bus_actor bus);

}  // namespace troupe
