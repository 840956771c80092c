// Task graphs in the embedded runtime: order, data between tasks, failure policies, cancel,
// and what a submit refuses (docs/graphs.md).
#include <gtest/gtest.h>

#include <atomic>

#include "troupe/runtime.hpp"

using namespace troupe;
using namespace std::chrono_literals;

namespace {

runtime_config small(uint32_t workers = 2) {
  runtime_config cfg;
  cfg.cpu_workers = workers;
  cfg.log_level = "error";
  return cfg;
}

graph_task node(std::string name, std::string kind, param_map params = {},
                std::vector<std::string> after = {},
                std::map<std::string, std::string> inputs = {}) {
  graph_task t;
  t.name = std::move(name);
  t.spec.kind = std::move(kind);
  t.spec.params = std::move(params);
  t.after = std::move(after);
  t.inputs = std::move(inputs);
  return t;
}

graph_spec graph(std::vector<graph_task> tasks,
                 failure_policy p = failure_policy::cancel_dependents) {
  graph_spec g;
  g.tasks = std::move(tasks);
  g.on_failure = p;
  return g;
}

graph_task failing(std::string name) {
  auto t = node(std::move(name), "fail", {{"error", std::string{"task_failed_permanently"}}});
  t.spec.max_retries = 0;
  return t;
}

}  // namespace

TEST(Graphs, AChildGetsItsParentsOutputAsItsParameters) {
  runtime rt{small()};
  auto g = rt.submit_graph(graph({
      node("a", "echo", {{"x", int64_t{3}}, {"label", std::string{"from a"}}}),
      node("b", "echo", {{"own", 1.5}}, {}, {{"y", "a.x"}, {"payload", "a.label"}}),
      node("c", "echo", {}, {}, {{"z", "b.y"}, {"copy", "b.bytes"}}),
  }));
  ASSERT_FALSE(g.refused()) << g.refused().message;
  ASSERT_TRUE(g.wait_until(clock::now() + 10s));
  auto& b = g.get("b");
  ASSERT_EQ(b.status, outcome::completed) << b.error.message;
  EXPECT_EQ(b.output.values.get_int("y"), 3);
  EXPECT_EQ(b.output.values.get_double("own", 0), 1.5);
  EXPECT_EQ(std::string(b.output.bytes.begin(), b.output.bytes.end()), "from a");
  auto& c = g.get("c");
  ASSERT_EQ(c.status, outcome::completed) << c.error.message;
  EXPECT_EQ(c.output.values.get_int("z"), 3);
  EXPECT_EQ(c.output.values.get_string("copy", ""), "from a");
  // b ran after a ended, c after b.
  EXPECT_GE(b.timings.started, g.get("a").timings.ran_until);
  EXPECT_GE(c.timings.started, b.timings.ran_until);
}

// Embedded, bytes pass down a chain without a copy: each echo's payload is its parent's output
// bytes, and every result along the chain holds the very buffer the first task was given.
TEST(Graphs, BytesPassDownAChainWithoutACopy) {
  runtime rt{small()};
  auto first = node("a", "echo");
  first.spec.payload = std::vector<uint8_t>(size_t(8) << 20, 0x5a);
  auto submitted = first.spec.payload;  // shares the buffer
  std::vector<graph_task> chain{first};
  for (int i = 1; i < 6; ++i) {
    auto parent = std::string(1, char('a' + i - 1));
    chain.push_back(
        node(std::string(1, char('a' + i)), "echo", {}, {}, {{"payload", parent + ".bytes"}}));
  }
  auto g = rt.submit_graph(graph(std::move(chain)));
  ASSERT_FALSE(g.refused()) << g.refused().message;
  ASSERT_TRUE(g.wait_until(clock::now() + 10s));
  for (auto& name : g.names()) {
    auto& r = g.get(name);
    ASSERT_EQ(r.status, outcome::completed) << name << ": " << r.error.message;
    EXPECT_EQ(r.output.bytes.size(), submitted.size()) << name;
    EXPECT_TRUE(r.output.bytes.shares_buffer_with(submitted)) << name << "'s output was copied";
  }
}

TEST(Graphs, AJoinRunsOnlyAfterAllItsParentsAndBranchesRunSideBySide) {
  runtime rt{small(4)};
  auto g = rt.submit_graph(graph({
      node("root", "noop"),
      node("left", "sleep", {{"ms", 40.0}}, {"root"}),
      node("right", "sleep", {{"ms", 40.0}}, {"root"}),
      node("join", "noop", {}, {"left", "right"}),
  }));
  ASSERT_TRUE(g.wait_until(clock::now() + 10s));
  for (auto& n : g.names()) EXPECT_EQ(g.get(n).status, outcome::completed) << n;
  auto& l = g.get("left").timings;
  auto& r = g.get("right").timings;
  EXPECT_GE(g.get("join").timings.started, std::max(l.ran_until, r.ran_until));
  EXPECT_LT(std::max(l.started, r.started), std::min(l.ran_until, r.ran_until))
      << "the two branches did not overlap";
}

TEST(Graphs, AFailureCancelsItsDependentsAndTheRestRuns) {
  runtime rt{small()};
  auto g = rt.submit_graph(graph({
      failing("a"),
      node("b", "noop", {}, {"a"}),
      node("c", "noop", {}, {"b"}),
      node("other", "noop"),
  }));
  ASSERT_TRUE(g.wait_until(clock::now() + 10s));
  EXPECT_EQ(g.get("a").status, outcome::failed);
  for (auto* n : {"b", "c"}) {
    auto& r = g.get(n);
    EXPECT_EQ(r.status, outcome::cancelled) << n;
    EXPECT_EQ(r.error.code, errc::upstream_failed) << n;
    EXPECT_EQ(r.attempts, 0u) << n << " ran";
  }
  EXPECT_NE(g.get("b").error.message.find("task 'a'"), std::string::npos)
      << g.get("b").error.message;
  EXPECT_NE(g.get("c").error.message.find("task 'b'"), std::string::npos);
  EXPECT_EQ(g.get("other").status, outcome::completed);
}

TEST(Graphs, RunWhatCanRunsTasksThatOnlyWaitedForTheFailedOne) {
  runtime rt{small()};
  auto g = rt.submit_graph(graph(
      {
          failing("a"),
          node("after_only", "noop", {}, {"a"}),
          node("needs_data", "echo", {}, {}, {{"x", "a.attempt"}}),
      },
      failure_policy::run_what_can));
  ASSERT_TRUE(g.wait_until(clock::now() + 10s));
  EXPECT_EQ(g.get("after_only").status, outcome::completed);
  EXPECT_GE(g.get("after_only").timings.started, g.get("a").timings.ran_until);
  EXPECT_EQ(g.get("needs_data").error.code, errc::upstream_failed);
}

TEST(Graphs, CancelGraphEndsEveryUnfinishedTaskAtTheFirstFailure) {
  runtime rt{small()};
  auto started = clock::now();
  auto g = rt.submit_graph(graph(
      {
          node("long", "sleep", {{"ms", 20000.0}}),
          node("after_long", "noop", {}, {"long"}),
          node("short", "sleep", {{"ms", 20.0}}),
          node("bad", "fail", {{"error", std::string{"task_failed_permanently"}}}, {"short"}),
      },
      failure_policy::cancel_graph));
  ASSERT_TRUE(g.wait_until(clock::now() + 10s)) << "the 20 s task was not stopped";
  EXPECT_LT(clock::now() - started, 10s);
  EXPECT_EQ(g.get("bad").status, outcome::failed);
  EXPECT_EQ(g.get("short").status, outcome::completed);
  for (auto* n : {"long", "after_long"}) {
    EXPECT_EQ(g.get(n).status, outcome::cancelled) << n;
    EXPECT_EQ(g.get(n).error.code, errc::upstream_failed) << n;
  }
}

TEST(Graphs, CancellingAGraphEndsAllItsTasks) {
  runtime rt{small()};
  auto g = rt.submit_graph(graph({
      node("long", "sleep", {{"ms", 20000.0}}),
      node("next", "noop", {}, {"long"}),
      node("last", "noop", {}, {"next"}),
  }));
  ASSERT_TRUE(g.find("long")->wait_until(clock::now() + 50ms) == false);
  rt.cancel(g);
  ASSERT_TRUE(g.wait_until(clock::now() + 10s));
  for (auto& n : g.names()) EXPECT_EQ(g.get(n).status, outcome::cancelled) << n;
  EXPECT_TRUE(rt.wait_idle(5s));
}

TEST(Graphs, ACycleRefusesTheWholeGraphAndRunsNothing) {
  runtime rt{small()};
  auto g = rt.submit_graph(graph({
      node("a", "noop", {}, {"c"}),
      node("b", "noop", {}, {"a"}),
      node("c", "noop", {}, {"b"}),
      node("free", "noop"),
  }));
  EXPECT_EQ(g.refused().code, errc::invalid_params);
  EXPECT_NE(g.refused().message.find("'a' -> 'b' -> 'c' -> 'a'"), std::string::npos)
      << g.refused().message;
  ASSERT_EQ(g.size(), 4u);
  for (auto& t : g.tasks()) {
    ASSERT_TRUE(t.ready());
    EXPECT_EQ(t.get().status, outcome::rejected);
  }
  EXPECT_EQ(rt.stats().completed, 0u);
}

TEST(Graphs, OneRefusedTaskRefusesTheGraphNamingIt) {
  runtime rt{small()};
  auto g = rt.submit_graph(graph({
      node("a", "noop"),
      node("b", "no_such_kind", {}, {"a"}),
  }));
  EXPECT_EQ(g.refused().code, errc::unknown_kind);
  EXPECT_NE(g.refused().message.find("task 'b'"), std::string::npos) << g.refused().message;
  EXPECT_EQ(g.get("a").status, outcome::rejected);
  EXPECT_EQ(g.get("a").error.code, errc::unknown_kind);
  EXPECT_TRUE(rt.wait_idle(1s)) << "a refused graph kept places in the queue";
  EXPECT_EQ(rt.stats().queued + rt.stats().in_flight, 0u);
}

TEST(Graphs, AnOutputFieldThatIsNotThereFailsTheChildNamingIt) {
  runtime rt{small()};
  auto g = rt.submit_graph(graph({
      node("a", "echo", {{"x", int64_t{1}}}),
      node("b", "echo", {}, {}, {{"y", "a.nope"}}),
      node("c", "noop", {}, {"b"}),
  }));
  ASSERT_TRUE(g.wait_until(clock::now() + 10s));
  auto& b = g.get("b");
  EXPECT_EQ(b.status, outcome::failed);
  EXPECT_EQ(b.error.code, errc::invalid_params);
  EXPECT_NE(b.error.message.find("task 'a' has no output value 'nope' (its values: x"),
            std::string::npos)
      << b.error.message;
  EXPECT_EQ(g.get("c").error.code, errc::upstream_failed);
}

TEST(Graphs, AKindChecksParametersThatInputsFilledIn) {
  runtime rt{small()};
  auto g = rt.submit_graph(graph({
      node("plan", "echo", {{"ms", 5.0}, {"bad", std::string{"soon"}}}),
      node("good", "sleep", {}, {}, {{"ms", "plan.ms"}}),
      node("bad", "sleep", {}, {}, {{"ms", "plan.bad"}}),
  }));
  ASSERT_FALSE(g.refused()) << "sleep's ms comes from an input: it cannot be checked at submit";
  ASSERT_TRUE(g.wait_until(clock::now() + 10s));
  EXPECT_EQ(g.get("good").status, outcome::completed) << g.get("good").error.message;
  EXPECT_EQ(g.get("bad").status, outcome::failed);
  EXPECT_EQ(g.get("bad").error.code, errc::invalid_params);
  EXPECT_NE(g.get("bad").error.message.find("with its inputs"), std::string::npos)
      << g.get("bad").error.message;
}

TEST(Graphs, AWaitingTaskPastItsDeadlineExpiresAndItsDependentsEnd) {
  runtime rt{small()};
  auto waiting = node("waiting", "noop", {}, {"long"});
  waiting.spec.deadline = clock::now() + 100ms;
  auto g = rt.submit_graph(graph({
      node("long", "sleep", {{"ms", 1000.0}}),
      waiting,
      node("after", "noop", {}, {"waiting"}),
  }));
  ASSERT_TRUE(g.find("after")->wait_until(clock::now() + 900ms))
      << "the waiting task did not expire while its parent ran";
  EXPECT_EQ(g.get("waiting").status, outcome::expired);
  EXPECT_EQ(g.get("after").error.code, errc::upstream_failed);
  ASSERT_TRUE(g.wait_until(clock::now() + 10s));
  EXPECT_EQ(g.get("long").status, outcome::completed);
}

TEST(Graphs, ALongChainRunsInOrderAndAFailureAtItsRootEndsItInALoop) {
  runtime rt{small()};
  const size_t n = 20000;
  std::vector<graph_task> tasks;
  std::atomic<uint64_t> last_seen{0};
  std::atomic<bool> in_order{true};
  for (size_t i = 0; i < n; ++i)
    tasks.push_back(i == 0
                        ? node("t0", "noop")
                        : node("t" + std::to_string(i), "noop", {}, {"t" + std::to_string(i - 1)}));
  auto ok = rt.submit_graph(graph(tasks), [&](const task_result& r) {
    if (r.id < last_seen.exchange(r.id)) in_order = false;
  });
  ASSERT_TRUE(ok.wait_until(clock::now() + 60s));
  EXPECT_EQ(ok.tasks().back().get().status, outcome::completed);
  EXPECT_TRUE(in_order);
  // The same chain behind a failing root: 19,999 dependents end, without nested calls.
  tasks[0] = failing("t0");
  auto bad = rt.submit_graph(graph(tasks));
  ASSERT_TRUE(bad.wait_until(clock::now() + 60s));
  EXPECT_EQ(bad.tasks().back().get().error.code, errc::upstream_failed);
  EXPECT_TRUE(rt.wait_idle(5s));
}

TEST(Graphs, ShutdownWithCancelEndsTasksStillWaiting) {
  std::vector<task_handle> all;
  {
    runtime rt{small()};
    auto g = rt.submit_graph(graph({
        node("long", "sleep", {{"ms", 20000.0}}),
        node("w1", "noop", {}, {"long"}),
        node("w2", "noop", {}, {"w1"}),
    }));
    all = g.tasks();
    rt.shutdown(shutdown_mode::cancel);
  }
  for (auto& t : all) {
    ASSERT_TRUE(t.ready());
    EXPECT_EQ(t.get().status, outcome::cancelled);
  }
}
