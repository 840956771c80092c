// Suspect, dead and fencing of one node, with times made up by the test.
#include <gtest/gtest.h>

#include "troupe/model/node_liveness.hpp"

using namespace troupe;
using namespace std::chrono_literals;
using hello = node_liveness::hello_verdict;
using message = node_liveness::message_verdict;
using transition = node_liveness::transition;
using state = node_liveness::state;

namespace {
const time_point t0 = time_point{} + 1h;
}

TEST(NodeLiveness, SilenceMakesAJoinedNodeSuspectThenDead) {
  node_liveness n;
  EXPECT_EQ(n.on_hello(7, t0), hello::join);
  EXPECT_EQ(n.tick(t0 + 1500ms, 2000ms, 5000ms), transition::none);
  EXPECT_EQ(n.tick(t0 + 2001ms, 2000ms, 5000ms), transition::became_suspect);
  EXPECT_EQ(n.current(), state::suspect);
  EXPECT_EQ(n.tick(t0 + 3000ms, 2000ms, 5000ms), transition::none) << "suspect once";
  EXPECT_EQ(n.tick(t0 + 5001ms, 2000ms, 5000ms), transition::became_dead);
  EXPECT_EQ(n.current(), state::dead);
  EXPECT_EQ(n.tick(t0 + 9000ms, 2000ms, 5000ms), transition::none);
}

TEST(NodeLiveness, ASuspectNodeThatIsHeardIsJoinedAgain) {
  node_liveness n;
  n.on_hello(1, t0);
  n.tick(t0 + 3s, 2000ms, 5000ms);
  EXPECT_EQ(n.on_message(1, t0 + 3s), message::recovered);
  EXPECT_EQ(n.current(), state::joined);
  EXPECT_EQ(n.tick(t0 + 4s, 2000ms, 5000ms), transition::none) << "heard 1 s ago";
}

TEST(NodeLiveness, MessagesFromAnotherEpochAreFenced) {
  node_liveness n;
  EXPECT_EQ(n.on_message(1, t0), message::not_joined);
  n.on_hello(5, t0);
  EXPECT_EQ(n.on_message(4, t0), message::stale_epoch);
  EXPECT_EQ(n.on_message(6, t0), message::stale_epoch);
  EXPECT_EQ(n.on_message(5, t0), message::accept);
  n.mark_dead();
  EXPECT_EQ(n.on_message(5, t0), message::not_joined);
}

TEST(NodeLiveness, HellosJoinReplaceOrAreRefusedByEpoch) {
  node_liveness n;
  EXPECT_EQ(n.on_hello(5, t0), hello::join);
  EXPECT_EQ(n.on_hello(5, t0), hello::welcome_again);
  EXPECT_EQ(n.on_hello(4, t0), hello::stale);
  EXPECT_EQ(n.epoch(), 5u);
  EXPECT_EQ(n.on_hello(9, t0), hello::replace) << "restarted while the head still had it joined";
  EXPECT_EQ(n.epoch(), 9u);
  EXPECT_EQ(n.joins(), 2u);
  n.tick(t0 + 10s, 2000ms, 5000ms);  // dead
  EXPECT_EQ(n.on_hello(9, t0 + 10s), hello::stale) << "the epoch declared dead";
  EXPECT_EQ(n.on_hello(10, t0 + 10s), hello::join);
  EXPECT_EQ(n.joins(), 3u);
}
