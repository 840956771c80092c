#include "troupe/actors/admission_gate.hpp"

namespace troupe {

uint64_t admission_gate::reserve(uint64_t n) {
  if (n == 0) return 0;
  auto before = in_system_.fetch_add(n, std::memory_order_acq_rel);
  if (before + n <= bound_) return n;
  release(n);  // not all fit: the caller admits one by one (reject or block per task)
  return 0;
}

bool admission_gate::admit_one() {
  auto n = in_system_.fetch_add(1, std::memory_order_acq_rel);
  if (n < bound_) return true;
  in_system_.fetch_sub(1, std::memory_order_acq_rel);
  if (overflow_ != overflow_policy::block) return false;
  std::unique_lock<std::mutex> lock{wait_mutex_};
  waiters_.fetch_add(1);
  bool ok = wait_cv_.wait_for(lock, block_timeout_, [&] {
    auto cur = in_system_.load();
    while (cur < bound_)
      if (in_system_.compare_exchange_weak(cur, cur + 1)) return true;
    return false;
  });
  waiters_.fetch_sub(1);
  return ok;
}

void admission_gate::release(uint64_t n) {
  if (n == 0) return;
  auto before = in_system_.fetch_sub(n, std::memory_order_acq_rel);
  bool idle = before == n, room = before >= bound_ && before - n < bound_;
  if ((idle || room) && waiters_.load(std::memory_order_acquire) > 0) {
    std::lock_guard<std::mutex> guard{wait_mutex_};
    wait_cv_.notify_all();
  }
}

bool admission_gate::wait_idle(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock{wait_mutex_};
  waiters_.fetch_add(1);
  bool ok = wait_cv_.wait_for(lock, timeout, [&] { return in_system_.load() == 0; });
  waiters_.fetch_sub(1);
  return ok;
}

}  // namespace troupe
