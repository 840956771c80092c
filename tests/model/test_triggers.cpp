// Trigger rules: what matches, what an action produces, and how the config states them.
#include <gtest/gtest.h>

#include "troupe/model/config.hpp"
#include "troupe/model/triggers.hpp"

using namespace troupe;

namespace {
event task_event(std::string topic, std::string kind, task_id task = 7) {
  event e;
  e.seq = 42;
  e.topic = std::move(topic);
  e.kind = std::move(kind);
  e.task = task;
  e.worker = 3;
  e.detail = "kernel_crashed: boom";
  return e;
}
}  // namespace

TEST(Triggers, MatchTopicPrefixAndEveryCondition) {
  trigger_rule r;
  r.name = "mlp-failures";
  r.topic = "task.failed";
  r.kind = "mlp";
  EXPECT_TRUE(matches(r, task_event("task.failed", "mlp")));
  EXPECT_FALSE(matches(r, task_event("task.failed", "gemm")));
  EXPECT_FALSE(matches(r, task_event("task.completed", "mlp")));
  r.worker = 3;
  r.detail_contains = "crashed";
  EXPECT_TRUE(matches(r, task_event("task.failed", "mlp")));
  r.worker = 4;
  EXPECT_FALSE(matches(r, task_event("task.failed", "mlp")));
  trigger_rule all;
  all.topic = "";
  EXPECT_TRUE(matches(all, task_event("worker.down", "")));
  EXPECT_FALSE(matches(all, task_event("alert.other", ""))) << "alerts never fire a rule";
}

TEST(Triggers, AnAlertNamesTheRuleAndWhatMatched) {
  trigger_rule r;
  r.name = "oom";
  auto a = alert_for(r, task_event("task.failed", "mlp"));
  EXPECT_EQ(a.topic, "alert.oom");
  EXPECT_EQ(a.task, 7u);
  EXPECT_EQ(a.kind, "mlp");
  EXPECT_NE(a.detail.find("task.failed #42"), std::string::npos) << a.detail;
  EXPECT_NE(a.detail.find("boom"), std::string::npos) << a.detail;
}

TEST(Triggers, AFollowUpTaskCarriesTheRuleAndTheCause) {
  trigger_rule r;
  r.name = "retry-on-cpu";
  r.action = trigger_action::submit;
  r.follow_up.kind = "gemm";
  r.follow_up.params.set("size", int64_t{64});
  auto s = follow_up_for(r, task_event("task.failed", "gemm"));
  EXPECT_EQ(s.kind, "gemm");
  EXPECT_EQ(s.params.get_int("size", 0), 64);
  EXPECT_EQ(s.labels.at("troupe.trigger"), "retry-on-cpu");
  EXPECT_EQ(s.labels.at("troupe.trigger.task"), "7");
  EXPECT_EQ(s.labels.at("troupe.trigger.event"), "42");
}

TEST(TriggerConfig, ParsesRulesWithConditionsAndActions) {
  auto cfg = parse_config(R"(
[[triggers]]
name = "mlp-failures"
topic = "task.failed"
when = { kind = "mlp", detail = "out_of_memory" }
action = "alert"

[[triggers]]
name = "follow-up"
topic = "task.completed"
when = { kind = "gemm", worker = 2 }
action = "submit"
submit = { kind = "mlp", priority = 5, params = { layers = [4, 8, 2], seed = 3 } }
)",
                          "t.toml");
  ASSERT_EQ(cfg.triggers.size(), 2u);
  auto& a = cfg.triggers[0];
  EXPECT_EQ(a.name, "mlp-failures");
  EXPECT_EQ(a.action, trigger_action::alert);
  EXPECT_EQ(*a.kind, "mlp");
  EXPECT_EQ(*a.detail_contains, "out_of_memory");
  auto& b = cfg.triggers[1];
  EXPECT_EQ(*b.worker, 2);
  EXPECT_EQ(b.follow_up.kind, "mlp");
  EXPECT_EQ(b.follow_up.priority, 5);
  EXPECT_EQ(b.follow_up.params.get_int_list("layers"), (std::vector<int64_t>{4, 8, 2}));
}

TEST(TriggerConfig, MistakesNameTheRuleAndTheKey) {
  auto error_of = [](const std::string& text) -> std::string {
    try {
      parse_config(text, "t.toml");
    } catch (const config_error& e) {
      return e.what();
    }
    return "accepted";
  };
  EXPECT_NE(error_of("[[triggers]]\nname = \"a\"\ntopic = \"task.\"\naction = \"page\"\n")
                .find("triggers[0].action"),
            std::string::npos);
  EXPECT_NE(error_of("[[triggers]]\nname = \"a\"\ntopic = \"task.\"\naction = \"log\"\n"
                     "when = { colour = \"red\" }\n")
                .find("triggers[0].when.colour"),
            std::string::npos);
  auto missing = error_of("[[triggers]]\nname = \"a\"\ntopic = \"task.\"\naction = \"submit\"\n");
  EXPECT_NE(missing.find("triggers[0].submit.kind"), std::string::npos) << missing;
  EXPECT_NE(missing.find("t.toml:1"), std::string::npos) << missing;
  auto twice = error_of(
      "[[triggers]]\nname = \"a\"\ntopic = \"\"\naction = \"log\"\n"
      "[[triggers]]\nname = \"a\"\ntopic = \"\"\naction = \"log\"\n");
  EXPECT_NE(twice.find("triggers[1].name"), std::string::npos) << twice;
  EXPECT_NE(twice.find("declared twice"), std::string::npos) << twice;
}

TEST(TriggerConfig, TheShippedExampleParses) {
  auto cfg = load_config(TROUPE_SOURCE_DIR "/config/triggers.toml");
  EXPECT_GE(cfg.triggers.size(), 3u);
}
