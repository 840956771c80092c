#pragma once
// The end-of-run report of `troupe run`, as text and as JSON.
#include <nlohmann/json.hpp>
#include <string>

#include "troupe/model/devices.hpp"
#include "troupe/model/stats.hpp"

namespace troupe::cli {

struct run_summary {
  runtime_stats stats;
  double makespan_s = 0;      ///< first submit to last terminal record, measured by the caller
  double longest_task_s = 0;  ///< the longest single run: no schedule finishes sooner
  uint32_t workers = 0;
  gpu_inventory gpus;
};

/// The figures of the seed's performance model (schedule_figures) as a JSON object.
nlohmann::json to_json(const schedule_figures& f);
nlohmann::json to_json(const run_summary& r);
/// One GPU of a discovery, as the run report and `troupe status --json` show it.
nlohmann::json to_json(const gpu_device& g);
std::string to_text(const run_summary& r);

}  // namespace troupe::cli
