// The event bus alone, on CAF's deterministic scheduler: numbering, prefixes, unsubscribe, and
// the numbers of events nobody was built for.
#include <gtest/gtest.h>

#include <caf/all.hpp>

#include "test_system.hpp"
#include "troupe/actors/event_bus.hpp"

using namespace troupe;

namespace {

struct EventBus : ::testing::Test {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  caf::scheduler::test_coordinator* sched = nullptr;
  std::shared_ptr<runtime_setup> setup = std::make_shared<runtime_setup>();
  std::shared_ptr<event_gate> events = std::make_shared<event_gate>();
  event_bus_actor bus;

  void SetUp() override {
    sched = &troupe::testing::start_test_system(cfg, sys);
    setup->cfg = resolve({});
    bus = sys->spawn(event_bus_impl, setup, events);
    sched->run();
  }

  void TearDown() override {
    caf::anon_send_exit(bus, caf::exit_reason::user_shutdown);
    sched->run();
  }

  /// A subscription whose callback runs in the bus's step (direct): deterministic.
  void subscribe(uint64_t id, std::string prefix, std::vector<event>& into) {
    events->subscribers.fetch_add(1);
    subscribe_msg m{id, std::move(prefix), [&into](const event& e) { into.push_back(e); }};
    m.direct = true;
    caf::anon_send(bus, std::move(m));
    sched->run();
  }

  void publish(std::vector<std::string> topics) {
    publish_msg m;
    for (auto& t : topics) {
      event e;
      e.topic = t;
      m.events.push_back(e);
    }
    caf::anon_send(bus, std::move(m));
    sched->run();
  }
};

}  // namespace

TEST_F(EventBus, NumbersEveryEventWithoutGapsAcrossPublishers) {
  std::vector<event> all;
  subscribe(1, "", all);
  publish({"task.submitted", "task.queued"});
  publish({"worker.up"});
  ASSERT_EQ(all.size(), 3u);
  for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i].seq, i + 1);
  EXPECT_EQ(all[2].topic, "worker.up");
}

TEST_F(EventBus, ASubscriberGetsOnlyItsPrefixAndSeesTheOthersAsGaps) {
  std::vector<event> tasks, workers;
  subscribe(1, "task.", tasks);
  subscribe(2, "worker.", workers);
  publish({"task.submitted", "worker.up", "task.completed"});
  ASSERT_EQ(tasks.size(), 2u);
  ASSERT_EQ(workers.size(), 1u);
  EXPECT_EQ(tasks[0].seq, 1u);
  EXPECT_EQ(workers[0].seq, 2u);
  EXPECT_EQ(tasks[1].seq, 3u);
}

TEST_F(EventBus, AfterUnsubscribeNothingMoreArrives) {
  std::vector<event> seen;
  subscribe(7, "", seen);
  publish({"a"});
  caf::anon_send(bus, unsubscribe_msg{7});
  sched->run();
  publish({"b"});
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(events->subscribers.load(), 0u);
}

// Events that publishers skipped building (every subscriber saturated) still take numbers, so a
// subscriber sees the loss as a jump; they are counted as dropped.
TEST_F(EventBus, SkippedEventsTakeTheirNumbersAndCountAsDropped) {
  std::vector<event> seen;
  subscribe(1, "", seen);
  publish({"a"});
  events->skipped.fetch_add(5);
  publish({"b"});
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].seq, 1u);
  EXPECT_EQ(seen[1].seq, 7u);
  EXPECT_EQ(events->dropped.load(), 5u);
}

// A publisher may build events once the gate opens, and they can reach the bus before the
// subscription itself: they take no number, so the first subscriber's numbers start at 1 and
// every later gap is a counted loss.
TEST_F(EventBus, EventsThatArriveBeforeAnySubscriptionTakeNoNumber) {
  publish({"worker.up", "worker.up"});
  std::vector<event> seen;
  subscribe(1, "", seen);
  publish({"task.submitted"});
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].seq, 1u);
  EXPECT_EQ(events->dropped.load(), 0u);
}
