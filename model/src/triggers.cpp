#include "troupe/model/triggers.hpp"

#include <chrono>

namespace troupe {

bool matches(const trigger_rule& rule, const event& e) {
  if (e.topic.compare(0, 6, "alert.") == 0) return false;
  if (e.topic.compare(0, rule.topic.size(), rule.topic) != 0) return false;
  if (rule.kind && e.kind != *rule.kind) return false;
  if (rule.node && e.node != *rule.node) return false;
  if (rule.worker && e.worker != *rule.worker) return false;
  if (rule.detail_contains && e.detail.find(*rule.detail_contains) == std::string::npos)
    return false;
  return true;
}

std::string describe_match(const trigger_rule& rule, const event& m) {
  std::string s = "trigger '" + rule.name + "': " + m.topic + " #" + std::to_string(m.seq);
  if (m.task) s += " task " + std::to_string(m.task);
  if (!m.kind.empty()) s += " (" + m.kind + ")";
  if (m.worker >= 0) s += " worker " + std::to_string(m.worker);
  if (!m.node.empty()) s += " node " + m.node;
  if (!m.detail.empty()) s += ": " + m.detail;
  return s;
}

event alert_for(const trigger_rule& rule, const event& m) {
  event a;
  a.time_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                  std::chrono::system_clock::now().time_since_epoch())
                  .count();
  a.topic = "alert." + rule.name;
  a.task = m.task;
  a.worker = m.worker;
  a.node = m.node;
  a.kind = m.kind;
  a.detail = describe_match(rule, m);
  return a;
}

task_spec follow_up_for(const trigger_rule& rule, const event& m) {
  auto spec = rule.follow_up;
  spec.labels["troupe.trigger"] = rule.name;
  spec.labels["troupe.trigger.event"] = std::to_string(m.seq);
  if (m.task) spec.labels["troupe.trigger.task"] = std::to_string(m.task);
  return spec;
}

}  // namespace troupe
