// A task's GPU memory: held to its reservation, every byte given back.
#include <gtest/gtest.h>

#include "troupe/model/gpu_pool.hpp"

using namespace troupe;

namespace {
/// Counts what is outstanding; refuses past `room` (a full device).
class counting_allocator final : public gpu_allocator {
 public:
  uint64_t room = UINT64_MAX, outstanding = 0;
  void* allocate(size_t bytes) override {
    if (bytes > room - outstanding) return nullptr;
    outstanding += bytes;
    return new char[bytes];
  }
  void free(void* p) override {
    outstanding = 0;  // the test frees all at once; the task's own count is checked separately
    delete[] static_cast<char*>(p);
  }
};
}  // namespace

TEST(TaskGpuMemory, AllocatesUpToTheReservationThenFailsWithOutOfMemory) {
  counting_allocator device;
  std::atomic<uint64_t> gauge{0};
  task_gpu_memory mem{device, 1000, &gauge};
  EXPECT_NE(mem.allocate(600, "weights"), nullptr);
  EXPECT_NE(mem.allocate(400, "activations"), nullptr);
  EXPECT_EQ(mem.used(), 1000u);
  EXPECT_EQ(gauge.load(), 1000u);
  try {
    mem.allocate(1, "scratch");
    FAIL() << "allocated beyond the reservation";
  } catch (const task_failure& f) {
    EXPECT_EQ(f.code, errc::out_of_memory);
    EXPECT_NE(f.message.find("scratch"), std::string::npos) << f.message;
    EXPECT_NE(f.message.find("1000"), std::string::npos) << f.message;
    EXPECT_NE(f.message.find("needs.gpu_memory_bytes"), std::string::npos) << f.message;
  }
  EXPECT_EQ(mem.used(), 1000u) << "a refused allocation takes nothing";
}

TEST(TaskGpuMemory, ReleaseGivesEveryByteBack) {
  host_gpu_allocator device;
  std::atomic<uint64_t> gauge{0};
  {
    task_gpu_memory mem{device, 1 << 20, &gauge};
    for (int i = 0; i < 10; ++i) mem.allocate(1000, "block");
    EXPECT_EQ(gauge.load(), 10000u);
  }
  EXPECT_EQ(gauge.load(), 0u);
  task_gpu_memory again{device, 100, &gauge};
  again.allocate(100, "block");
  again.release();
  EXPECT_EQ(again.used(), 0u);
  EXPECT_NE(again.allocate(100, "block"), nullptr) << "released memory is reservable again";
}

TEST(TaskGpuMemory, AFullDeviceIsAnOutOfMemoryFailureToo) {
  counting_allocator device;
  device.room = 100;
  task_gpu_memory mem{device, 1000, nullptr};
  try {
    mem.allocate(200, "inputs");
    FAIL() << "the device had no room";
  } catch (const task_failure& f) {
    EXPECT_EQ(f.code, errc::out_of_memory);
    EXPECT_NE(f.message.find("no room"), std::string::npos) << f.message;
  }
  EXPECT_EQ(mem.used(), 0u);
}
