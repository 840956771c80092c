#include "troupe/model/histogram.hpp"

#include <algorithm>
#include <cmath>

namespace troupe {

size_t latency_histogram::bucket_of(uint64_t v) {
  if (v < sub_count) return size_t(v);
  int msb = 63 - __builtin_clzll(v);
  int shift = msb - sub_bits;
  auto sub = (v >> shift) & (sub_count - 1);
  return size_t(shift + 1) * sub_count + sub;
}

uint64_t latency_histogram::value_of(size_t bucket) {
  if (bucket < sub_count) return bucket;
  int shift = int(bucket / sub_count) - 1;
  uint64_t sub = bucket % sub_count;
  uint64_t lo = (uint64_t(sub_count) | sub) << shift;
  return lo + ((uint64_t(1) << shift) >> 1);  // middle of the bucket
}

void latency_histogram::record(uint64_t v) {
  auto b = std::min(bucket_of(v), buckets_.size() - 1);
  ++buckets_[b];
  ++count_;
  sum_ += v;
  max_ = std::max(max_, v);
}

uint64_t latency_histogram::quantile(double q) const {
  if (count_ == 0) return 0;
  auto rank = uint64_t(std::ceil(std::clamp(q, 0.0, 1.0) * double(count_)));
  rank = std::max<uint64_t>(rank, 1);
  uint64_t seen = 0;
  for (size_t b = 0; b < buckets_.size(); ++b) {
    seen += buckets_[b];
    if (seen >= rank) return std::min(value_of(b), max_);
  }
  return max_;
}

}  // namespace troupe
