#pragma once
// Log-linear histogram of durations: bounded memory (2,048 counters), under 2% relative error.
#include <array>
#include <cstddef>
#include <cstdint>

namespace troupe {

class latency_histogram {
 public:
  void record(uint64_t value_ns);
  uint64_t count() const { return count_; }
  double mean() const { return count_ ? double(sum_) / double(count_) : 0.0; }
  uint64_t max() const { return max_; }
  /// Value at quantile q in [0, 1]; 0 when empty.
  uint64_t quantile(double q) const;

 private:
  static constexpr int sub_bits = 5;
  static constexpr int sub_count = 1 << sub_bits;
  static size_t bucket_of(uint64_t v);
  static uint64_t value_of(size_t bucket);
  std::array<uint64_t, 64 * sub_count> buckets_{};
  uint64_t count_ = 0, sum_ = 0, max_ = 0;
};

}  // namespace troupe
