#include <gtest/gtest.h>

#include "troupe/model/ledger.hpp"

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

TEST(ResourceLedger, GpuMemoryCountsOnlyOnGpuWorkers) {
  resource_ledger l;
  auto cpu = l.add_worker({1, 1000, 0, 0});
  auto gpu = l.add_worker({1, 1000, 1, 500});
  resources r;  // may run anywhere; uses 300 bytes of GPU memory if it runs on a GPU
  r.gpu_memory_bytes = 300;
  EXPECT_TRUE(l.fits_capacity(cpu, r));
  EXPECT_TRUE(l.reserve(cpu, 1, r));
  EXPECT_TRUE(l.reserve(cpu, 2, r));  // a CPU worker holds no GPU memory
  EXPECT_EQ(l.reserved_gpu_memory(cpu), 0u);
  EXPECT_TRUE(l.reserve(gpu, 3, r));
  EXPECT_FALSE(l.reserve(gpu, 4, r)) << "600 of 500 bytes: GPU memory over-committed";
  EXPECT_EQ(l.reserved_gpu_memory(gpu), 300u);
  EXPECT_TRUE(l.release(gpu, 3));
  EXPECT_EQ(l.reserved_gpu_memory(gpu), 0u);
  EXPECT_TRUE(l.reserve(gpu, 4, r));
  r.gpu_memory_bytes = 501;
  EXPECT_TRUE(l.fits_capacity(cpu, r));
  EXPECT_FALSE(l.fits_capacity(gpu, r));
}
