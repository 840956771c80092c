#pragma once
// Triggers: rules from the config ([[triggers]]) that act on events. Plain logic (matching, what
// an action produces); the runtime runs them on its event bus's thread.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "troupe/model/events.hpp"
#include "troupe/model/task.hpp"

namespace troupe {

enum class trigger_action : uint8_t {
  log,    ///< a log line at warn level
  alert,  ///< publishes an event "alert.NAME" (detail: what matched)
  submit  ///< submits a follow-up task
};

struct trigger_rule {
  std::string name;   ///< unique; names the alert topic
  std::string topic;  ///< prefix of the event's topic ("task.failed", "worker.", "")
  // Conditions, all of which must hold (absent: any).
  std::optional<std::string> kind;             ///< the task's kind
  std::optional<std::string> node;             ///< the node
  std::optional<int32_t> worker;               ///< the worker's index
  std::optional<std::string> detail_contains;  ///< a substring of the detail
  trigger_action action = trigger_action::log;
  task_spec follow_up;  ///< action = submit: kind, params, priority
};

/// Whether the event fires the rule. Alert events never fire a rule: rules cannot loop.
bool matches(const trigger_rule& rule, const event& e);

/// The event an alert publishes for a match (its seq comes from the bus).
event alert_for(const trigger_rule& rule, const event& matched);

/// What a log line says of a match.
std::string describe_match(const trigger_rule& rule, const event& matched);

/// The follow-up task of a match: the rule's spec, labelled with the rule and what fired it.
task_spec follow_up_for(const trigger_rule& rule, const event& matched);

}  // namespace troupe
