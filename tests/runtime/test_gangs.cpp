// Gang placement (docs/reservations.md): tasks placed on distinct workers all at once or not at
// all, run once and whole.
#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <set>

#include "troupe/runtime.hpp"

using namespace troupe;
using namespace std::chrono_literals;

namespace {

runtime_config cpu_workers(uint32_t n) {
  runtime_config cfg;
  cfg.cpu_workers = n;
  cfg.log_level = "warn";
  return cfg;
}

task_spec sleep_task(double ms) {
  task_spec s;
  s.kind = "sleep";
  s.params.set("ms", ms);
  return s;
}

task_spec named(task_spec s, std::string name) {
  s.labels["name"] = std::move(name);
  return s;
}

/// Implementations that wait (bounded) until `want` of them run at the same moment: a step
/// whose ranks meet, as an all-reduce would.
struct rendezvous {
  std::mutex m;
  std::condition_variable cv;
  int running = 0, most = 0;
  std::set<int32_t> workers;
  void meet(int want, int32_t worker) {
    std::unique_lock<std::mutex> lock{m};
    workers.insert(worker);
    most = std::max(most, ++running);
    cv.notify_all();
    cv.wait_for(lock, 10s, [&] { return most >= want; });
    --running;
  }
};

}  // namespace

TEST(Gangs, AStepOverTwoGpusRunsOnBothAtOnce) {
  rendezvous ranks;  // before the runtime: its lanes call into it
  runtime_config cfg;
  cfg.cpu_workers = 1;
  cfg.cuda = cuda_selection::none;
  cfg.fake_gpus = 2;
  cfg.cuda_streams = 4;  // a GPU could run both ranks on its lanes: the gang must not
  cfg.log_level = "warn";
  runtime rt{cfg};
  rt.registry().add({"rank", nullptr, nullptr, [&](const task_context& ctx) {
                       ranks.meet(2, ctx.worker);
                       return task_output{};
                     }});
  task_spec rank;
  rank.kind = "rank";
  rank.needs.gpu_count = 1;
  auto hs = rt.submit_gang({rank, rank});
  for (auto& h : hs) {
    auto r = h.wait_for(30s);
    ASSERT_TRUE(r);
    EXPECT_TRUE(r->ok()) << r->error.message;
  }
  EXPECT_EQ(ranks.most, 2) << "the ranks did not run at the same moment";
  EXPECT_EQ(ranks.workers.size(), 2u) << "both ranks ran on one GPU";
  EXPECT_NE(hs[0].get().timings.worker, hs[1].get().timings.worker);
}

TEST(Gangs, AGangWaitsUntilEnoughWorkersAreFreeAtOnce) {
  runtime rt{cpu_workers(3)};
  // Two workers busy for a while, one idle: a gang of three must not start a member on the
  // idle one before the others can start too.
  auto busy = rt.submit_batch({sleep_task(300), sleep_task(300)});
  std::vector<task_spec> gang(3, sleep_task(1));
  auto members = rt.submit_gang(gang);
  time_point busy_until{};
  for (auto& h : busy) {
    auto r = h.wait_for(30s);
    ASSERT_TRUE(r && r->ok());
    busy_until = std::max(busy_until, r->timings.ran_until);
  }
  std::set<int32_t> workers;
  for (auto& h : members) {
    auto r = h.wait_for(30s);
    ASSERT_TRUE(r);
    ASSERT_TRUE(r->ok()) << r->error.message;
    EXPECT_GE(r->timings.started, busy_until)
        << "a member started before the gang could: "
        << std::chrono::duration<double, std::milli>(busy_until - r->timings.started).count()
        << " ms early, on worker " << r->timings.worker << "; busy on "
        << busy[0].get().timings.worker << " and " << busy[1].get().timings.worker;
    workers.insert(r->timings.worker);
  }
  EXPECT_EQ(workers.size(), 3u) << "each member on a worker of its own";
}

TEST(Gangs, AGangNoWorkersCouldHoldIsRefusedWholeNamingWhy) {
  runtime rt{cpu_workers(2)};
  std::vector<task_spec> gang(3, sleep_task(1));
  auto hs = rt.submit_gang(gang);
  ASSERT_EQ(hs.size(), 3u);
  for (auto& h : hs) {
    ASSERT_TRUE(h.ready()) << "refused at submit";
    EXPECT_EQ(h.get().status, outcome::rejected);
    EXPECT_EQ(h.get().error.code, errc::unsatisfiable_resources);
    EXPECT_NE(h.get().error.message.find("the gang was refused: a gang of 3 tasks"),
              std::string::npos)
        << h.get().error.message;
  }
  EXPECT_TRUE(rt.submit(sleep_task(1)).wait_for(10s)) << "the runtime carries on";

  // Three workers, one held for good by a reservation the gang does not name: no room either.
  auto cfg = cpu_workers(3);
  reservation_config held;
  held.name = "svc";
  held.workers = {"cpu-2"};
  cfg.reservations.push_back(held);
  runtime reserved{cfg};
  hs = reserved.submit_gang(gang);
  EXPECT_EQ(hs[0].get().status, outcome::rejected);
  EXPECT_NE(hs[0].get().error.message.find("free of reservations it does not name"),
            std::string::npos)
      << hs[0].get().error.message;
}

TEST(Gangs, PreemptibleOrLinkedTasksCannotBeInAGang) {
  runtime rt{cpu_workers(2)};
  auto preemptible = sleep_task(1);
  preemptible.preemptible = true;
  auto hs = rt.submit_gang({sleep_task(1), named(preemptible, "p")});
  EXPECT_EQ(hs[0].get().status, outcome::rejected);
  EXPECT_NE(hs[1].get().error.message.find("task 'p' is preemptible"), std::string::npos)
      << hs[1].get().error.message;
  auto linked = sleep_task(1);
  linked.after = {0};
  hs = rt.submit_gang({sleep_task(1), linked});
  EXPECT_EQ(hs[1].get().error.code, errc::invalid_params);
}

TEST(Gangs, AMemberThatFailsEndsTheOthersAndNothingIsRetried) {
  runtime rt{cpu_workers(3)};
  task_spec fails;
  fails.kind = "fail";
  fails.max_retries = 5;  // a gang runs once: not retried
  auto hs = rt.submit_gang(
      {named(fails, "bad"), named(sleep_task(60000), "long1"), named(sleep_task(60000), "long2")});
  auto bad = hs[0].wait_for(30s);
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, outcome::failed);
  EXPECT_EQ(bad->attempts, 1u);
  for (size_t i = 1; i < 3; ++i) {
    auto r = hs[i].wait_for(30s);  // the 60 s sleeps are stopped
    ASSERT_TRUE(r) << "member " << i << " still runs";
    EXPECT_EQ(r->status, outcome::cancelled);
    EXPECT_EQ(r->error.code, errc::upstream_failed);
    EXPECT_NE(r->error.message.find("'bad'"), std::string::npos) << r->error.message;
  }
  EXPECT_EQ(rt.stats().retries, 0u);
}

TEST(Gangs, CancellingOneMemberOfAWaitingGangEndsItWholeAndFreesTheWorkersItHeld) {
  runtime rt{cpu_workers(2)};
  auto busy = rt.submit(sleep_task(60000));  // on one worker: the gang of two waits, holding both
  auto hs = rt.submit_gang({sleep_task(1), sleep_task(1)});
  rt.cancel(hs[1].id());
  for (auto& h : hs) {
    auto r = h.wait_for(30s);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, outcome::cancelled);
  }
  auto next = rt.submit(sleep_task(1)).wait_for(30s);  // while the 60 s task still runs
  ASSERT_TRUE(next) << "the worker the gang held was not given back";
  EXPECT_TRUE(next->ok());
  rt.cancel(busy.id());
  ASSERT_TRUE(busy.wait_for(30s));
  EXPECT_NE(next->timings.worker, busy.get().timings.worker);
}

TEST(Gangs, AMemberWhoseDeadlinePassesWhileItsGangWaitsEndsTheGang) {
  runtime rt{cpu_workers(2)};
  auto busy = rt.submit(sleep_task(60000));  // the gang of two cannot be placed
  auto hurried = named(sleep_task(1), "hurried");
  hurried.deadline = clock::now() + 200ms;
  auto hs = rt.submit_gang({hurried, named(sleep_task(1), "other")});
  auto h = hs[0].wait_for(30s);
  auto o = hs[1].wait_for(30s);
  ASSERT_TRUE(h && o) << "a gang waiting past a deadline stayed in flight";
  EXPECT_EQ(h->status, outcome::expired);
  EXPECT_EQ(h->error.code, errc::deadline_expired);
  EXPECT_EQ(o->status, outcome::cancelled);
  EXPECT_EQ(o->error.code, errc::upstream_failed);
  rt.cancel(busy.id());
  EXPECT_TRUE(busy.wait_for(30s));
}
