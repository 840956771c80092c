#include <gtest/gtest.h>

#include "troupe/model/config.hpp"
#include "troupe/model/reservations.hpp"

namespace troupe {
namespace {

using namespace std::chrono_literals;
using wall = std::chrono::system_clock;

const std::vector<std::string> workers{"cpu-0", "cpu-1", "cuda-0"};

reservation_config held(std::string name, std::vector<std::string> ws) {
  reservation_config r;
  r.name = std::move(name);
  r.workers = std::move(ws);
  return r;
}

task_spec naming(std::string reservation, std::string client = {}) {
  task_spec s;
  s.kind = "noop";
  if (!reservation.empty()) s.labels["reservation"] = std::move(reservation);
  if (!client.empty()) s.labels["client"] = std::move(client);
  return s;
}

TEST(Reservations, HeldWorkersTakeOnlyTasksNamingTheReservationWhichRunOnlyThere) {
  auto now = clock::now();
  reservation_book book{{held("train", {"cuda-0"})}, workers, now, wall::now()};
  EXPECT_TRUE(book.allows(2, "train", now));
  EXPECT_FALSE(book.allows(2, "", now)) << "a held worker takes no other task";
  EXPECT_TRUE(book.allows(0, "", now));
  EXPECT_FALSE(book.allows(0, "train", now)) << "a task naming it runs only on its workers";
  EXPECT_FALSE(book.could_ever(2, "", now)) << "held for good: never for others";
}

TEST(Reservations, AWindowHoldsItsWorkersOnlyWhileItIsOpen) {
  auto now = clock::now();
  auto wall_now = wall::now();
  auto r = held("batch", {"cpu-1"});
  r.from = wall_now + 10s;
  r.until = wall_now + 20s;
  reservation_book book{{r}, workers, now, wall_now};
  EXPECT_TRUE(book.allows(1, "", now)) << "before the window: anyone";
  EXPECT_TRUE(book.allows(1, "batch", now)) << "its own tasks may start early";
  EXPECT_FALSE(book.allows(1, "", now + 15s));
  EXPECT_TRUE(book.allows(1, "", now + 25s)) << "after the window: anyone again";
  EXPECT_FALSE(book.allows(1, "batch", now + 25s)) << "it has ended";
  EXPECT_TRUE(book.could_ever(1, "", now + 15s)) << "others wait for the window to close";
  EXPECT_EQ(book.next_change(now), now + 10s);
  EXPECT_EQ(book.next_change(now + 10s), now + 20s);
  EXPECT_FALSE(book.next_change(now + 20s));
}

TEST(Reservations, SubmitRefusesUnknownNamesOtherClientsAndEndedReservations) {
  auto now = clock::now();
  auto wall_now = wall::now();
  auto r = held("svc", {"cpu-0"});
  r.clients = {"alice", "bob"};
  auto gone = held("gone", {"cpu-1"});
  gone.until = wall_now - 1s;
  reservation_book book{{r, gone}, workers, now, wall_now};
  EXPECT_EQ(book.refusal(naming(""), now), "");
  EXPECT_EQ(book.refusal(naming("svc", "alice"), now), "");
  EXPECT_EQ(book.refusal(naming("nope"), now),
            "unknown reservation 'nope' (reservations: svc, gone)");
  EXPECT_EQ(book.refusal(naming("svc", "eve"), now),
            "reservation 'svc' is held for alice, bob; this task's client is 'eve'");
  EXPECT_EQ(book.refusal(naming("svc"), now),
            "reservation 'svc' is held for alice, bob; this task's client is not named");
  EXPECT_EQ(book.refusal(naming("gone"), now), "reservation 'gone' has ended");
}

TEST(Reservations, UnknownOrTwiceHeldWorkersAreAConfigErrorNamingTheKey) {
  auto now = clock::now();
  try {
    reservation_book{{held("a", {"gpu-9"})}, workers, now, wall::now()};
    FAIL() << "no error";
  } catch (const config_error& e) {
    EXPECT_EQ(e.key(), "reservations.a.workers");
    EXPECT_NE(std::string{e.what()}.find("no worker 'gpu-9' (workers: cpu-0, cpu-1, cuda-0)"),
              std::string::npos)
        << e.what();
  }
  try {
    reservation_book{{held("a", {"cpu-0"}), held("b", {"cpu-0"})}, workers, now, wall::now()};
    FAIL() << "no error";
  } catch (const config_error& e) {
    EXPECT_NE(std::string{e.what()}.find("held by reservation 'a' already"), std::string::npos);
  }
}

TEST(Reservations, ConfigTablesAreParsedWithTheirWindow) {
  auto cfg = parse_config(R"(
[reservations.train]
workers = ["cuda-0", "cuda-1"]
clients = ["trainer"]
from = 2026-12-07T09:00:00Z
until = 2026-12-07T17:30:00+01:00
)",
                          "r.toml");
  ASSERT_EQ(cfg.reservations.size(), 1u);
  auto& r = cfg.reservations[0];
  EXPECT_EQ(r.name, "train");
  EXPECT_EQ(r.workers, (std::vector<std::string>{"cuda-0", "cuda-1"}));
  EXPECT_EQ(r.clients, std::vector<std::string>{"trainer"});
  ASSERT_TRUE(r.from && r.until);
  EXPECT_EQ(std::chrono::duration_cast<std::chrono::seconds>(r.from->time_since_epoch()).count(),
            1796634000);  // date -d 2026-12-07T09:00:00Z +%s
  EXPECT_EQ(*r.until - *r.from, 7h + 30min);
  try {
    parse_config("[reservations.x]\nworkers = [\"cpu-0\"]\nfrom = \"9am\"\n", "r.toml");
    FAIL() << "no error";
  } catch (const config_error& e) {
    EXPECT_EQ(e.key(), "reservations.x.from");
    EXPECT_EQ(e.line(), 3);
  }
  try {  // (a fuzzer's find: the year 24 overflowed the clock's nanoseconds)
    parse_config("[reservations.x]\nworkers = [\"cpu-0\"]\nuntil = 0024-06-07T17:00:00Z\n",
                 "r.toml");
    FAIL() << "no error";
  } catch (const config_error& e) {
    EXPECT_EQ(e.key(), "reservations.x.until");
    EXPECT_NE(std::string{e.what()}.find("the year must be in [1970, 2200]"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace troupe
