#include "troupe/model/restart_intensity.hpp"

#include <algorithm>

namespace troupe {

std::optional<std::chrono::milliseconds> restart_intensity::on_child_lost(time_point now) {
  while (!recent_.empty() && now - recent_.front() > period_) recent_.pop_front();
  if (recent_.size() >= max_) return std::nullopt;
  recent_.push_back(now);
  auto shift = std::min<size_t>(recent_.size() - 1, 20);
  return std::min<std::chrono::milliseconds>(backoff_ * (int64_t(1) << shift), backoff_max_);
}

}  // namespace troupe
