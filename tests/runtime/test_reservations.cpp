// Named reservations (docs/reservations.md): workers held for the tasks that name them, for
// some clients, for a window; their unused capacity shows in stats.
#include <gtest/gtest.h>

#include "troupe/runtime.hpp"

using namespace troupe;
using namespace std::chrono_literals;

namespace {

/// `workers` CPU workers, the last held by reservation `name`.
runtime_config last_worker_held(uint32_t workers, std::string name,
                                std::optional<std::chrono::system_clock::time_point> until = {},
                                std::vector<std::string> clients = {}) {
  runtime_config cfg;
  cfg.cpu_workers = workers;
  cfg.log_level = "warn";
  reservation_config r;
  r.name = std::move(name);
  r.workers = {"cpu-" + std::to_string(workers - 1)};
  r.clients = std::move(clients);
  r.until = until;
  cfg.reservations.push_back(r);
  return cfg;
}

runtime_config two_workers_one_held(std::optional<std::chrono::system_clock::time_point> until = {},
                                    std::vector<std::string> clients = {}) {
  return last_worker_held(2, "vip", until, std::move(clients));
}

task_spec sleep_task(double ms, std::string reservation = {}, std::string client = {}) {
  task_spec s;
  s.kind = "sleep";
  s.params.set("ms", ms);
  if (!reservation.empty()) s.labels["reservation"] = std::move(reservation);
  if (!client.empty()) s.labels["client"] = std::move(client);
  return s;
}

}  // namespace

TEST(Reservations, AHeldWorkerRunsOnlyTheTasksNamingItAndTheyRunNowhereElse) {
  runtime rt{two_workers_one_held()};
  std::vector<task_spec> plain(20, sleep_task(1)), vip(5, sleep_task(1, "vip"));
  auto ps = rt.submit_batch(plain);
  auto vs = rt.submit_batch(vip);
  for (auto& h : ps) {
    auto r = h.wait_for(30s);
    ASSERT_TRUE(r && r->ok());
    EXPECT_EQ(r->timings.worker, 0) << "a task that names no reservation ran on the held worker";
  }
  for (auto& h : vs) {
    auto r = h.wait_for(30s);
    ASSERT_TRUE(r && r->ok());
    EXPECT_EQ(r->timings.worker, 1) << "a task naming the reservation ran outside it";
  }
}

TEST(Reservations, StatsShowAHeldWorkerThatIsIdleAsUnusedCapacity) {
  runtime rt{two_workers_one_held()};
  ASSERT_TRUE(rt.submit(sleep_task(1, "vip")).wait_for(30s));
  auto s = rt.stats();
  ASSERT_EQ(s.reservations.size(), 1u);
  auto& r = s.reservations[0];
  EXPECT_EQ(r.name, "vip");
  EXPECT_EQ(r.workers, std::vector<std::string>{"cpu-1"});
  EXPECT_TRUE(r.active);
  EXPECT_EQ(r.busy, 0u);
  EXPECT_EQ(r.idle, 1u) << "held and idle: unused";
  EXPECT_EQ(r.ends_in_s, -1);
}

TEST(Reservations, TasksMayNotNameAnUnknownReservationOrOneHeldForOtherClients) {
  runtime rt{two_workers_one_held({}, {"alice"})};
  auto unknown = rt.submit(sleep_task(1, "vvip", "alice"));
  EXPECT_EQ(unknown.get().status, outcome::rejected);
  EXPECT_EQ(unknown.get().error.code, errc::invalid_params);
  EXPECT_EQ(unknown.get().error.message, "unknown reservation 'vvip' (reservations: vip)");
  auto other = rt.submit(sleep_task(1, "vip", "eve"));
  EXPECT_EQ(other.get().status, outcome::rejected);
  EXPECT_EQ(other.get().error.message,
            "reservation 'vip' is held for alice; this task's client is 'eve'");
  auto alice = rt.submit(sleep_task(1, "vip", "alice")).wait_for(30s);
  ASSERT_TRUE(alice);
  EXPECT_TRUE(alice->ok());
  EXPECT_EQ(alice->timings.worker, 1);
}

TEST(Reservations, ATaskOnlyAWorkerHeldForGoodCouldRunIsRefusedAtSubmit) {
  runtime rt{last_worker_held(1, "all")};
  auto h = rt.submit(sleep_task(1));
  EXPECT_EQ(h.get().status, outcome::rejected);
  EXPECT_EQ(h.get().error.code, errc::unsatisfiable_resources);
  EXPECT_NE(h.get().error.message.find("held for good by reservations it does not name"),
            std::string::npos)
      << h.get().error.message;
}

TEST(Reservations, WhenTheWindowEndsTheWorkerTakesOtherTasksAgain) {
  // The same moment on both clocks (the runtime converts the config's wall-clock time to its
  // own clock as it starts, which may take a while on a loaded machine).
  auto steady_until = clock::now() + 300ms;
  auto until = std::chrono::system_clock::now() + 300ms;
  auto cfg = two_workers_one_held(until);
  cfg.worker_prefetch = 1;  // nothing waits behind the busy task on its worker
  runtime rt{cfg};
  auto busy = rt.submit(sleep_task(60000));  // cpu-0 is busy: the next task can only wait
  auto waits = rt.submit(sleep_task(1));
  auto r = waits.wait_for(30s);
  ASSERT_TRUE(r && r->ok());
  EXPECT_EQ(r->timings.worker, 1);
  EXPECT_GE(r->timings.started, steady_until - 5ms)
      << "it ran on the held worker before the window ended";
  auto late = rt.submit(sleep_task(1, "vip"));
  EXPECT_EQ(late.get().status, outcome::rejected);
  EXPECT_EQ(late.get().error.message, "reservation 'vip' has ended");
  EXPECT_FALSE(rt.stats().reservations.at(0).active);
  rt.cancel(busy.id());
  EXPECT_TRUE(busy.wait_for(30s));
}
