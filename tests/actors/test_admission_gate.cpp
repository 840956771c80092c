// The admission gate alone, with real threads and no actors (so ThreadSanitizer sees every
// hand-over): places under the bound, waiting with overflow = block, idle, refusal reasons.
#include <gtest/gtest.h>

#include <future>
#include <thread>
#include <vector>

#include "troupe/actors/admission_gate.hpp"

using namespace troupe;
using namespace std::chrono_literals;

namespace {

/// Waits (bounded) until `n` threads wait in the gate.
bool until_waiting(const admission_gate& g, int n) {
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (g.waiters() < n)
    if (std::chrono::steady_clock::now() > deadline)
      return false;
    else
      std::this_thread::yield();
  return true;
}

}  // namespace

TEST(AdmissionGate, ABatchTakesAllItsPlacesOrNone) {
  admission_gate g{10, overflow_policy::reject, 1s};
  EXPECT_EQ(g.reserve(8), 8u);
  EXPECT_EQ(g.reserve(5), 0u);  // 13 > 10: nothing taken, the caller admits one by one
  EXPECT_EQ(g.in_system(), 8u);
  EXPECT_TRUE(g.admit_one());
  EXPECT_TRUE(g.admit_one());
  EXPECT_FALSE(g.admit_one());  // reject: at once
  EXPECT_EQ(g.in_system(), 10u);
}

TEST(AdmissionGate, ABlockedSubmitterGetsThePlaceATaskGivesBack) {
  admission_gate g{1, overflow_policy::block, 30s};
  ASSERT_TRUE(g.admit_one());
  auto waiting = std::async(std::launch::async, [&] { return g.admit_one(); });
  ASSERT_TRUE(until_waiting(g, 1));
  g.release(1);
  ASSERT_EQ(waiting.wait_for(10s), std::future_status::ready);  // woken, not timed out
  EXPECT_TRUE(waiting.get());
  EXPECT_EQ(g.in_system(), 1u);
}

TEST(AdmissionGate, ABlockedSubmitterGivesUpAfterTheBlockTimeout) {
  admission_gate g{1, overflow_policy::block, 20ms};
  ASSERT_TRUE(g.admit_one());
  EXPECT_FALSE(g.admit_one());
  EXPECT_EQ(g.in_system(), 1u);
}

TEST(AdmissionGate, WaitIdleReturnsWhenTheLastTaskEnds) {
  admission_gate g{100, overflow_policy::reject, 1s};
  ASSERT_EQ(g.reserve(3), 3u);
  auto idle = std::async(std::launch::async, [&] { return g.wait_idle(30s); });
  ASSERT_TRUE(until_waiting(g, 1));
  g.release(2);
  EXPECT_EQ(idle.wait_for(50ms), std::future_status::timeout);  // one is left
  g.release(1);
  ASSERT_EQ(idle.wait_for(10s), std::future_status::ready);
  EXPECT_TRUE(idle.get());
}

TEST(AdmissionGate, TheFirstRefusalReasonStays) {
  admission_gate g{10, overflow_policy::reject, 1s};
  EXPECT_TRUE(g.accepting());
  g.stop_accepting(errc::supervisor_gave_up);
  g.stop_accepting(errc::shutting_down);  // the shutdown that follows
  EXPECT_FALSE(g.accepting());
  EXPECT_EQ(g.refusal(), errc::supervisor_gave_up);
}

TEST(AdmissionGate, ManyThreadsTakingAndGivingBackPlacesLeaveItEmpty) {
  admission_gate g{64, overflow_policy::block, 30s};
  std::atomic<uint64_t> admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) {
        uint64_t took = g.reserve(8);
        if (took == 0) took = g.admit_one() ? 1 : 0;
        admitted += took;
        g.release(took);
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_GE(admitted.load(), 8000u);  // nobody waited 30 s for a place
  EXPECT_EQ(g.in_system(), 0u);
  EXPECT_TRUE(g.wait_idle(1s));
}
