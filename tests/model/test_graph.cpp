// Task graphs as plain data: names resolved to indices, and what a submit refuses, by name.
#include <gtest/gtest.h>

#include "troupe/model/graph.hpp"

using namespace troupe;

namespace {

graph_task node(std::string name, std::vector<std::string> after = {},
                std::map<std::string, std::string> inputs = {}, std::string kind = "echo") {
  graph_task t;
  t.name = std::move(name);
  t.spec.kind = std::move(kind);
  t.after = std::move(after);
  t.inputs = std::move(inputs);
  return t;
}

error_info linked(std::vector<graph_task> tasks, linked_graph* out = nullptr) {
  graph_spec g;
  g.tasks = std::move(tasks);
  linked_graph l;
  auto e = link_graph(std::move(g), l);
  if (out) *out = std::move(l);
  return e;
}

}  // namespace

TEST(GraphLinks, NamesBecomeIndicesAndInputsAreEdges) {
  linked_graph g;
  ASSERT_FALSE(linked({node("a"), node("b", {"a"}), node("c", {}, {{"x", "b.checksum"}}),
                       node("d", {"a"}, {{"payload", "c.bytes"}})},
                      &g));
  ASSERT_EQ(g.specs.size(), 4u);
  EXPECT_EQ(g.names, (std::vector<std::string>{"a", "b", "c", "d"}));
  EXPECT_TRUE(g.specs[0].after.empty());
  EXPECT_EQ(g.specs[1].after, std::vector<uint32_t>{0});
  ASSERT_EQ(g.specs[2].inputs.size(), 1u);
  EXPECT_EQ(g.specs[2].inputs[0], (task_input{"x", 1, "checksum"}));
  EXPECT_EQ(g.specs[3].inputs[0], (task_input{"payload", 2, "bytes"}));
  EXPECT_EQ(parents_of(g.specs[3]), (std::vector<uint32_t>{0, 2}));
  EXPECT_EQ(parents_of(g.specs[2]), std::vector<uint32_t>{1});  // the input is the edge
  EXPECT_EQ(g.specs[1].labels.at("name"), "b");
  EXPECT_TRUE(has_links(g.specs));
}

TEST(GraphLinks, ACycleIsRefusedNamingItsTasksInOrder) {
  auto e = linked({node("start"), node("a", {"start", "c"}), node("b", {"a"}), node("c", {"b"})});
  EXPECT_EQ(e.code, errc::invalid_params);
  EXPECT_EQ(e.message, "the graph has a cycle: 'a' -> 'b' -> 'c' -> 'a'") << e.message;
}

TEST(GraphLinks, ATaskAfterItselfIsACycle) {
  auto e = linked({node("a", {"a"})});
  EXPECT_NE(e.message.find("'a' runs after itself"), std::string::npos) << e.message;
}

TEST(GraphLinks, UnknownNamesAndMissingFieldsAreRefusedNamingThem) {
  auto e = linked({node("a"), node("b", {"zz"})});
  EXPECT_EQ(e.message, "task 'b' runs after 'zz', which is not a task of the graph");
  e = linked({node("a"), node("b", {}, {{"x", "q.checksum"}})});
  EXPECT_EQ(e.message, "task 'b': input 'x' takes from 'q', which is not a task of the graph");
  e = linked({node("a"), node("b", {}, {{"x", "a"}})});
  EXPECT_NE(e.message.find("task 'b': input 'x' is 'a'; write TASK.FIELD"), std::string::npos)
      << e.message;
  e = linked({node("a"), node("b", {}, {{"x", "a."}})});
  EXPECT_NE(e.message.find("input 'x' is 'a.'"), std::string::npos) << e.message;
  e = linked({node("a"), node("a")});
  EXPECT_EQ(e.message, "two tasks are named 'a' (#0 and #1)");
  e = linked({node("a"), node("")});
  EXPECT_EQ(e.message, "task #1 has no name");
  e = linked({node("a", {}, {}, "")});
  EXPECT_EQ(e.message, "task 'a' has no kind");
}

TEST(GraphLinks, ASubmissionFromAPeerIsCheckedByIndex) {
  std::vector<task_spec> specs(3);
  specs[1].after = {0};
  specs[2].after = {5};
  EXPECT_EQ(check_links(specs).message,
            "task #2 runs after task #5, which is not in the submission (3 tasks)");
  specs[2].after = {1};
  specs[0].inputs = {task_input{"x", 2, "v"}};
  EXPECT_EQ(check_links(specs).message, "the graph has a cycle: #0 -> #1 -> #2 -> #0");
  specs[0].inputs = {task_input{"x", 2, ""}};
  EXPECT_EQ(check_links(specs).message, "task #0: input 'x' names no output field");
  specs[0].inputs.clear();
  EXPECT_FALSE(check_links(specs));
  // Two values for one parameter: which one the task got would depend on which parent ended last.
  specs[2].inputs = {task_input{"payload", 0, "bytes"}, task_input{"payload", 1, "bytes"}};
  EXPECT_EQ(check_links(specs).message,
            "task #2: two inputs fill 'payload' (one input per parameter)");
}

TEST(GraphLinks, ALongCycleIsNamedInShort) {
  std::vector<task_spec> specs(1000);
  for (uint32_t i = 0; i < 1000; ++i) specs[i].after = {(i + 999) % 1000};
  auto e = check_links(specs);
  EXPECT_NE(e.message.find("... (1000 tasks) ->"), std::string::npos) << e.message;
  EXPECT_LT(e.message.size(), 300u);
}

TEST(GraphLinks, TheCriticalPathIsTheHeaviestChain) {
  // a(2) -> b(5) -> d(1); a -> c(1) -> d; e(7) alone
  linked_graph g;
  ASSERT_FALSE(linked(
      {node("a"), node("b", {"a"}), node("c", {"a"}), node("d", {"b", "c"}), node("e")}, &g));
  EXPECT_DOUBLE_EQ(critical_path(g.specs, {2, 5, 1, 1, 7}), 8.0);
  EXPECT_DOUBLE_EQ(critical_path(g.specs, {2, 5, 1, 1, 9}), 9.0);
}

TEST(GraphLinks, FailurePoliciesHaveStableNames) {
  for (auto p : {failure_policy::cancel_dependents, failure_policy::run_what_can,
                 failure_policy::cancel_graph})
    EXPECT_EQ(parse_failure_policy(to_string(p)), p);
  EXPECT_FALSE(parse_failure_policy("cancel_all").has_value());
}

TEST(GraphHandle, FindsTasksByNameAndRefusesUnknownNames) {
  graph_handle h{{"a", "b"}, {task_handle{}, task_handle{}}};
  EXPECT_NE(h.find("b"), nullptr);
  EXPECT_EQ(h.find("c"), nullptr);
  EXPECT_THROW(h.get("c"), std::out_of_range);
  EXPECT_FALSE(h.refused());
}

namespace {

task_result ended(outcome o, param_map values = {}) {
  task_result r;
  r.status = o;
  r.output.values = std::move(values);
  return r;
}

/// a -> b (b takes a.v), b -> c (after), d alone.
linked_graph chain() {
  linked_graph g;
  EXPECT_FALSE(linked({node("a"), node("b", {}, {{"x", "a.v"}}), node("c", {"b"}), node("d")}, &g));
  return g;
}

}  // namespace

TEST(GraphRemainder, TasksLeftAfterARestartTakeWhatEndedTasksLeftThem) {
  auto g = chain();
  auto rest = remainder_of(
      g.specs, {false, true, true, false}, failure_policy::cancel_dependents,
      [](uint32_t i) -> std::optional<task_result> {
        if (i == 0) return ended(outcome::completed, {{"v", int64_t{5}}});
        return ended(outcome::completed);
      },
      1 << 20);
  EXPECT_EQ(rest.kept, (std::vector<uint32_t>{1, 2}));
  EXPECT_TRUE(rest.ended.empty());
  ASSERT_EQ(rest.specs.size(), 2u);
  EXPECT_EQ(rest.specs[0].params.get_int("x"), 5);
  EXPECT_TRUE(rest.specs[0].inputs.empty()) << "its input was bound";
  EXPECT_TRUE(rest.specs[0].after.empty());
  EXPECT_EQ(rest.specs[1].after, std::vector<uint32_t>{0}) << "c still runs after b, re-indexed";
  EXPECT_FALSE(check_links(rest.specs));
}

TEST(GraphRemainder, AParentThatFailedBeforeTheRestartEndsItsDependents) {
  auto g = chain();
  auto rest = remainder_of(
      g.specs, {false, true, true, true}, failure_policy::cancel_dependents,
      [](uint32_t) { return std::optional<task_result>{ended(outcome::failed)}; }, 1 << 20);
  EXPECT_EQ(rest.kept, std::vector<uint32_t>{3});
  ASSERT_EQ(rest.ended.size(), 2u);
  EXPECT_EQ(rest.ended[0].first, 1u);
  EXPECT_EQ(rest.ended[0].second.error.code, errc::upstream_failed);
  EXPECT_EQ(rest.ended[0].second.error.message, "task 'a' ended failed before the head restarted");
  EXPECT_EQ(rest.ended[1].first, 2u);
  EXPECT_NE(rest.ended[1].second.error.message.find("task 'b' ended cancelled"), std::string::npos)
      << rest.ended[1].second.error.message;
}

TEST(GraphRemainder, PoliciesHoldAcrossARestart) {
  linked_graph g;
  ASSERT_FALSE(linked(
      {node("a"), node("after_only", {"a"}), node("needs", {}, {{"x", "a.v"}}), node("other")},
      &g));
  auto failed = [](uint32_t) { return std::optional<task_result>{ended(outcome::failed)}; };
  auto what_can = remainder_of(g.specs, {false, true, true, true}, failure_policy::run_what_can,
                               failed, 1 << 20);
  EXPECT_EQ(what_can.kept, (std::vector<uint32_t>{1, 3}));
  ASSERT_EQ(what_can.ended.size(), 1u);
  EXPECT_EQ(what_can.ended[0].first, 2u);
  auto whole = remainder_of(g.specs, {false, true, true, true}, failure_policy::cancel_graph,
                            failed, 1 << 20);
  EXPECT_TRUE(whole.kept.empty());
  EXPECT_EQ(whole.ended.size(), 3u);
  // A parent whose record is gone counts as not completed, and says so.
  auto lost = remainder_of(
      g.specs, {false, true, true, true}, failure_policy::cancel_dependents,
      [](uint32_t) { return std::optional<task_result>{}; }, 1 << 20);
  ASSERT_EQ(lost.ended.size(), 2u);
  EXPECT_NE(lost.ended[0].second.error.message.find("its record was not kept"), std::string::npos);
}

TEST(GraphRemainder, BindingStopsAtTheInputBound) {
  linked_graph g;
  std::map<std::string, std::string> many;
  for (int i = 0; i < 100; ++i) many["copy" + std::to_string(i)] = "a.bytes";
  ASSERT_FALSE(linked({node("a"), node("b", {}, many)}, &g));
  task_output big;
  big.bytes.assign(100000, 'x');
  auto e = bind_inputs(g.specs[1], 0, "'a'", big, 1 << 20);
  EXPECT_EQ(e.code, errc::invalid_params);
  EXPECT_NE(e.message.find("would be over 1048576 bytes"), std::string::npos) << e.message;
  EXPECT_LE(input_bytes(g.specs[1]), uint64_t(1) << 20) << "it copied past the bound";
}

// What placement counts as moving with a task: the bound value, not its parent's whole output.
TEST(GraphInputs, ABoundInputWeighsWhatItTakesFromTheOutput) {
  task_output out;
  out.bytes.assign(5000, 'x');
  out.values.set("name", std::string(300, 'n'));
  out.values.set("checksum", int64_t{7});
  EXPECT_EQ(bound_input_bytes({"payload", 0, "bytes"}, out), 5000u);
  EXPECT_EQ(bound_input_bytes({"x", 0, "bytes"}, out), 5000u);
  EXPECT_EQ(bound_input_bytes({"payload", 0, "name"}, out), 300u);
  auto named = bound_input_bytes({"label", 0, "name"}, out);
  EXPECT_GE(named, 300u);
  EXPECT_LT(named, 400u);
  EXPECT_LT(bound_input_bytes({"n", 0, "checksum"}, out), 32u);
  EXPECT_EQ(bound_input_bytes({"n", 0, "missing"}, out), 0u);
}

// Embedded, a child's payload taken from its parent's bytes is those bytes, not a copy; a
// parameter taken from them is a copy (parameters are values).
TEST(GraphInputs, APayloadBoundFromBytesSharesTheParentsBuffer) {
  linked_graph g;
  ASSERT_FALSE(
      linked({node("a"), node("b", {}, {{"payload", "a.bytes"}, {"text", "a.bytes"}})}, &g));
  task_output out;
  out.bytes = std::vector<uint8_t>(1 << 20, 'x');
  ASSERT_FALSE(bind_inputs(g.specs[1], 0, "'a'", out, 4 << 20));
  EXPECT_TRUE(g.specs[1].payload.shares_buffer_with(out.bytes));
  EXPECT_EQ(g.specs[1].params.get_string("text", ""), std::string(1 << 20, 'x'));
}
