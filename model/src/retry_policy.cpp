#include "troupe/model/retry_policy.hpp"

#include <algorithm>

namespace troupe {

retry_decision decide_retry(errc code, uint32_t attempts, uint32_t max_retries,
                            std::chrono::milliseconds base, std::chrono::milliseconds cap,
                            time_point now, const std::optional<time_point>& deadline) {
  retry_decision d;
  if (!is_retryable(code) || attempts > max_retries) return d;  // fail
  auto shift = std::min<uint32_t>(attempts > 0 ? attempts - 1 : 0, 20);
  d.backoff = std::min<std::chrono::milliseconds>(base * (int64_t(1) << shift), cap);
  d.what = deadline && now + d.backoff >= *deadline ? retry_decision::verdict::expire
                                                    : retry_decision::verdict::retry;
  return d;
}

}  // namespace troupe
