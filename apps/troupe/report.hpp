#pragma once
// The end-of-run report of `troupe run`, as text and as JSON.
#include <nlohmann/json.hpp>
#include <string>

#include "troupe/model/devices.hpp"
#include "troupe/model/stats.hpp"

namespace troupe::cli {

struct run_summary {
  runtime_stats stats;
  double makespan_s = 0;  ///< first submit to last terminal record, measured by the caller
  uint32_t workers = 0;
  gpu_inventory gpus;
};

/// Sum of measured work divided by workers: no schedule can finish sooner.
double lower_bound_s(const run_summary& r);
nlohmann::json to_json(const run_summary& r);
/// One GPU of a discovery, as the run report and `troupe status --json` show it.
nlohmann::json to_json(const gpu_device& g);
std::string to_text(const run_summary& r);

}  // namespace troupe::cli
