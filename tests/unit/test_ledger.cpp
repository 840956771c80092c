#include <gtest/gtest.h>

#include "troupe/ledger.hpp"

using namespace troupe;

namespace {
resources mem(uint64_t bytes) {
  resources r;
  r.memory_bytes = bytes;
  return r;
}
}  // namespace

TEST(ResourceLedger, NeverReservesBeyondAWorkersMemory) {
  resource_ledger l;
  auto w = l.add_worker({1, 1000, 0, 0});
  EXPECT_TRUE(l.reserve(w, 1, mem(600)));
  EXPECT_FALSE(l.reserve(w, 2, mem(500)));  // 1100 > 1000
  EXPECT_TRUE(l.reserve(w, 3, mem(400)));   // exactly full
  EXPECT_EQ(l.reserved_memory(w), 1000u);
  EXPECT_FALSE(l.can_reserve(w, mem(1)));
}

TEST(ResourceLedger, ReleaseReturnsExactlyWhatWasReserved) {
  resource_ledger l;
  auto w = l.add_worker({1, 1000, 0, 0});
  ASSERT_TRUE(l.reserve(w, 1, mem(600)));
  ASSERT_TRUE(l.reserve(w, 2, mem(300)));
  EXPECT_TRUE(l.release(w, 1));
  EXPECT_FALSE(l.release(w, 1));  // twice: ignored, nothing returned twice
  EXPECT_EQ(l.reserved_memory(w), 300u);
  EXPECT_FALSE(l.reserve(w, 2, mem(300)));  // an id is never held twice
  EXPECT_EQ(l.reserved_memory(w), 300u);
}

TEST(ResourceLedger, ReleaseAllOfADeadWorkerReturnsEverything) {
  resource_ledger l;
  auto a = l.add_worker({1, 1000, 0, 0});
  auto b = l.add_worker({1, 1000, 0, 0});
  ASSERT_TRUE(l.reserve(a, 1, mem(500)));
  ASSERT_TRUE(l.reserve(a, 2, mem(500)));
  ASSERT_TRUE(l.reserve(b, 3, mem(700)));
  EXPECT_EQ(l.release_all(a), 2u);
  EXPECT_EQ(l.reserved_memory(a), 0u);
  EXPECT_EQ(l.reservations(a), 0u);
  EXPECT_EQ(l.reserved_memory(b), 700u);  // the other worker is untouched
}

TEST(ResourceLedger, UnavailableWorkerTakesNothing) {
  resource_ledger l;
  auto w = l.add_worker({1, 1000, 0, 0});
  l.set_available(w, false);
  EXPECT_FALSE(l.reserve(w, 1, mem(1)));
  l.set_available(w, true);
  EXPECT_TRUE(l.reserve(w, 1, mem(1)));
}

TEST(ResourceLedger, FitsSomeWorkerChecksEveryDimension) {
  resource_ledger l;
  l.add_worker({1, 1000, 0, 0});
  resources two_slots;
  two_slots.cpu_slots = 2;
  resources gpu;
  gpu.gpu_count = 1;
  EXPECT_TRUE(l.fits_some_worker(mem(1000)));
  EXPECT_FALSE(l.fits_some_worker(mem(1001)));
  EXPECT_FALSE(l.fits_some_worker(two_slots));
  EXPECT_FALSE(l.fits_some_worker(gpu));
  l.add_worker({1, 0, 1, 1 << 20});  // a GPU worker: one host slot driving one GPU
  EXPECT_TRUE(l.fits_some_worker(gpu));
}
