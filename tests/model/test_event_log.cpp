// The publisher's memory for late subscribers: a bounded ring and a state mirror.
#include <gtest/gtest.h>

#include "troupe/model/event_log.hpp"

using namespace troupe;

namespace {
event ev(uint64_t seq, std::string topic, task_id task = 0, int32_t worker = -1,
         std::string node = {}) {
  event e;
  e.seq = seq;
  e.topic = std::move(topic);
  e.task = task;
  e.worker = worker;
  e.node = std::move(node);
  return e;
}
}  // namespace

TEST(EventLog, MirrorKeepsUnfinishedTasksWorkersAndNodes) {
  event_log log{100};
  log.record(ev(1, "task.submitted", 7));
  log.record(ev(2, "task.started", 7, 0));
  log.record(ev(3, "task.submitted", 8));
  log.record(ev(4, "task.completed", 8, 1));
  log.record(ev(5, "worker.down", 0, 1));
  log.record(ev(6, "node.joined", 0, -1, "a"));
  auto& s = log.snapshot();
  EXPECT_EQ(s.seq, 6u);
  EXPECT_EQ(s.tasks, (std::map<task_id, std::string>{{7, "started"}}));
  EXPECT_EQ(s.finished, (std::map<task_id, std::string>{{8, "completed"}}));
  EXPECT_EQ(s.workers.at(1), "down");
  EXPECT_EQ(s.nodes.at("a"), "joined");
}

TEST(EventLog, GivesEverythingSinceASeqWhileTheRingHoldsIt) {
  event_log log{3};
  for (uint64_t i = 1; i <= 5; ++i) log.record(ev(i, "task.queued", i));
  EXPECT_EQ(log.oldest_seq(), 3u);
  auto got = log.since(4, 100);
  ASSERT_TRUE(got);
  ASSERT_EQ(got->size(), 2u);
  EXPECT_EQ(got->front().seq, 4u);
  EXPECT_EQ(got->back().seq, 5u);
  EXPECT_FALSE(log.since(2, 100)) << "seq 2 has left the ring: the caller needs a snapshot";
  EXPECT_TRUE(log.since(6, 100)->empty());
  EXPECT_EQ(log.since(3, 1)->size(), 1u);  // bounded per answer
}
