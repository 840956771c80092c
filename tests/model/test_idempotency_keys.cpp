// Idempotency keys, bounded overall and per client: a client that floods keys pushes out only
// its own oldest ones; ended tasks keep only their results, whose bytes count.
#include <gtest/gtest.h>

#include <memory>

#include "troupe/model/idempotency_keys.hpp"

namespace {

using namespace troupe;
using namespace std::chrono_literals;

/// A task handle, ended (with `output_size` bytes of output) or still running.
task_handle task(task_id id, bool ended = false, size_t output_size = 0) {
  auto c = std::make_shared<completion>();
  if (ended) {
    task_result r;
    r.id = id;
    r.status = outcome::completed;
    r.output.bytes.assign(output_size, 0);
    c->set(std::move(r));
  }
  return task_handle{id, std::move(c)};
}

TEST(IdempotencyKeys, AKeyNamesItsFirstTaskAndASecondTaskDoesNotReplaceIt) {
  idempotency_keys keys;
  auto now = clock::now();
  keys.remember("k", "alice", task(1), now);
  keys.remember("k", "alice", task(2), now);
  ASSERT_NE(keys.find("k"), nullptr);
  EXPECT_EQ(keys.find("k")->id(), 1u);
  EXPECT_EQ(keys.find("other"), nullptr);
}

TEST(IdempotencyKeys, AClientOverItsShareLosesItsOwnOldestKeysNotOthers) {
  idempotency_bounds b;
  b.max_keys_per_scope = 3;
  idempotency_keys keys{b};
  auto now = clock::now();
  keys.remember("alice/1", "alice", task(1), now);
  keys.remember("alice/2", "alice", task(2), now);
  for (task_id i = 0; i < 100; ++i)  // mallory floods
    keys.remember("mallory/" + std::to_string(i), "mallory", task(100 + i), now);
  EXPECT_NE(keys.find("alice/1"), nullptr);
  EXPECT_NE(keys.find("alice/2"), nullptr);
  EXPECT_EQ(keys.keys_of("mallory"), 3u);
  EXPECT_EQ(keys.find("mallory/96"), nullptr);
  EXPECT_NE(keys.find("mallory/97"), nullptr);
  EXPECT_NE(keys.find("mallory/99"), nullptr);
  EXPECT_EQ(keys.size(), 5u);
}

TEST(IdempotencyKeys, TheOverallBoundForgetsTheOldestOfAnyone) {
  idempotency_bounds b;
  b.max_keys = 4;
  idempotency_keys keys{b};
  auto now = clock::now();
  for (task_id i = 1; i <= 6; ++i)
    keys.remember("k" + std::to_string(i), i % 2 ? "alice" : "bob", task(i), now);
  EXPECT_EQ(keys.size(), 4u);
  EXPECT_EQ(keys.find("k1"), nullptr);
  EXPECT_EQ(keys.find("k2"), nullptr);
  EXPECT_NE(keys.find("k3"), nullptr);
  EXPECT_NE(keys.find("k6"), nullptr);
}

TEST(IdempotencyKeys, KeysOlderThanTheLifetimeAreForgotten) {
  idempotency_bounds b;
  b.lifetime = 60s;
  idempotency_keys keys{b};
  auto start = clock::now();
  keys.remember("old", "alice", task(1), start);
  keys.remember("new", "alice", task(2), start + 61s);
  EXPECT_EQ(keys.find("old"), nullptr);
  EXPECT_NE(keys.find("new"), nullptr);
}

TEST(IdempotencyKeys, AnEndedTaskKeepsOnlyItsResultAndItsBytesCountAgainstItsClient) {
  idempotency_bounds b;
  b.max_bytes_per_scope = 3000;  // two results of 1,000 bytes (and their overhead), not three
  idempotency_keys keys{b};
  auto now = clock::now();
  for (task_id i = 1; i <= 3; ++i)
    keys.remember("big/" + std::to_string(i), "big", task(i, true, 1000), now);
  keys.remember("small/1", "small", task(10, true, 1), now);
  keys.sweep(10, now);
  EXPECT_EQ(keys.keys_of("big"), 2u);
  EXPECT_EQ(keys.find("big/1"), nullptr);
  ASSERT_NE(keys.find("big/3"), nullptr);
  EXPECT_EQ(keys.find("big/3")->get().output.bytes.size(), 1000u);  // the result, kept
  EXPECT_NE(keys.find("small/1"), nullptr);
  EXPECT_LE(keys.bytes_of("big"), 3000u);
  EXPECT_EQ(keys.bytes(), keys.bytes_of("big") + keys.bytes_of("small"));
}

TEST(IdempotencyKeys, ARunningTaskCostsNoBytesUntilItEnds) {
  idempotency_keys keys;
  auto now = clock::now();
  keys.remember("k", "alice", task(1), now);
  keys.sweep(10, now);
  EXPECT_EQ(keys.bytes(), 0u);
  EXPECT_NE(keys.find("k"), nullptr);
}

TEST(IdempotencyKeys, InProcessSubmitsHaveOnlyTheOverallBound) {
  idempotency_bounds b;
  b.max_keys_per_scope = 2;
  idempotency_keys keys{b};
  auto now = clock::now();
  for (task_id i = 1; i <= 10; ++i) keys.remember("k" + std::to_string(i), "", task(i), now);
  EXPECT_EQ(keys.size(), 10u);
  EXPECT_NE(keys.find("k1"), nullptr);
}

}  // namespace
