#pragma once
// What the queue does with a task after a failed attempt: retry after a backoff, fail it for
// good, or let it expire. A plain function of the attempt's facts and the time, tested with no
// threads and no clock.
#include <chrono>
#include <cstdint>
#include <optional>

#include "troupe/model/errors.hpp"
#include "troupe/model/task.hpp"

namespace troupe {

struct retry_decision {
  enum class verdict : uint8_t {
    retry,   ///< queue it again after `backoff` (0: at once)
    fail,    ///< not retryable, or out of attempts
    expire,  ///< the deadline passes before the next attempt could start
  };
  verdict what = verdict::fail;
  std::chrono::milliseconds backoff{0};
};

/// After attempt number `attempts` (1 for the first) failed with `code`: retryable errors are
/// retried while attempts <= max_retries, after base * 2^(attempts-1) capped at `cap`.
retry_decision decide_retry(errc code, uint32_t attempts, uint32_t max_retries,
                            std::chrono::milliseconds base, std::chrono::milliseconds cap,
                            time_point now, const std::optional<time_point>& deadline);

}  // namespace troupe
