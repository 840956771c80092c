#pragma once
// Task graphs (docs/graphs.md): tasks with names, `after` edges, and inputs that take a parent's
// output field as a child's parameter or payload. Here the plain parts: a graph as users write
// it (by name), the same graph as a submission (by index, what the runtime, the wire and the
// journal carry), the checks made at submit, and the handle of a submitted graph.
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "troupe/model/completion.hpp"
#include "troupe/model/task.hpp"

namespace troupe {

/// What happens to the rest of a graph when one of its tasks ends failed, cancelled or expired.
enum class failure_policy : uint8_t {
  /// Its dependents (transitively) end cancelled with errc::upstream_failed; the rest runs.
  cancel_dependents,
  /// Only tasks that take an input from it end so; a task that merely runs `after` it still
  /// runs (every branch that can).
  run_what_can,
  /// Every unfinished task of the graph ends cancelled with errc::upstream_failed.
  cancel_graph,
};
const char* to_string(failure_policy p) noexcept;
std::optional<failure_policy> parse_failure_policy(const std::string& text);

/// One task of a graph as a user writes it: its name, what it runs, and its links by name.
struct graph_task {
  std::string name;
  task_spec spec;                  ///< kind, params, ...; link_graph() fills after and inputs
  std::vector<std::string> after;  ///< names of tasks it runs after
  /// Parameter (or "payload") -> "TASK.FIELD": that task's output value FIELD ("bytes": its
  /// output bytes). Taking an input from a task is running after it.
  std::map<std::string, std::string> inputs;
};

struct graph_spec {
  std::vector<graph_task> tasks;
  failure_policy on_failure = failure_policy::cancel_dependents;
};

/// A graph as one submission: a spec per task, in the graph's order, with its links as indices
/// (task_spec::after, task_spec::inputs) and its name in labels["name"].
struct linked_graph {
  std::vector<task_spec> specs;
  std::vector<std::string> names;
  failure_policy on_failure = failure_policy::cancel_dependents;
};

/// Resolves names to indices and checks the graph: every task named, once; every name in
/// `after` and `inputs` a task of the graph; every input "TASK.FIELD"; no cycle. The error
/// (errc::invalid_params) names the task and what is wrong, or the tasks of a cycle.
error_info link_graph(graph_spec g, linked_graph& out);

/// The checks any linked submission gets before it is admitted (it may come from a peer):
/// indices in range and not the task itself, inputs with a parameter and a field, no cycle.
error_info check_links(const std::vector<task_spec>& specs);

/// Whether any spec of a submission has links (then it is a graph).
bool has_links(const std::vector<task_spec>& specs);

/// Task i's name in messages: its labels["name"], or "#i" (its place in the submission).
std::string graph_task_name(const task_spec& s, size_t i);

/// The parents of a task: its `after` indices and its inputs' tasks, each once, ascending.
std::vector<uint32_t> parents_of(const task_spec& s);

/// The longest chain of a graph: the sum of `durations` along its heaviest path (its critical
/// path, the least makespan on any number of workers). durations[i] is task i's.
double critical_path(const std::vector<task_spec>& specs, const std::vector<double>& durations);

/// Sets what `child` takes from task `from` (named `parent` in errors) out of that task's
/// output: each of its inputs from it becomes a parameter (or its payload). The error names a
/// field the output does not have, or the bound: past max_input_bytes of the child's input
/// (input_bytes, limits.max_payload_bytes) it stops before copying more.
error_info bind_inputs(task_spec& child, uint32_t from, const std::string& parent,
                       const task_output& out, uint64_t max_input_bytes);

/// What input `in` adds to a task's input once bound from `out` (0 if `out` lacks its field):
/// the bytes that move when the task runs away from where `out` is.
uint64_t bound_input_bytes(const task_input& in, const task_output& out);

/// What is left of a graph submission when some of its tasks have ended (a head restarting
/// from its journal): the tasks still to run, their links among themselves re-indexed and the
/// inputs from ended tasks bound in; and those that cannot run any more, by the same policy as
/// a running graph.
struct graph_remainder {
  std::vector<uint32_t> kept;    ///< indices (in the submission) of the tasks to run
  std::vector<task_spec> specs;  ///< theirs, in that order
  /// Indices of tasks that end now, with their outcome and error.
  std::vector<std::pair<uint32_t, task_result>> ended;
};
/// open[i]: task i has not ended. result_of(i): the result of an ended task, if it was kept.
graph_remainder remainder_of(std::vector<task_spec> specs, const std::vector<bool>& open,
                             failure_policy policy,
                             const std::function<std::optional<task_result>(uint32_t)>& result_of,
                             uint64_t max_input_bytes);

/// A submitted graph: one task handle per task, in the graph's order, with their names. A graph
/// refused at submit has handles that all ended rejected, and says why in refused().
class graph_handle {
 public:
  graph_handle() = default;
  /// refused: why, when the graph was refused before any task was made; otherwise derived from
  /// the tasks (a refused graph's tasks all ended rejected at submit).
  graph_handle(std::vector<std::string> names, std::vector<task_handle> tasks,
               error_info refused = {});

  size_t size() const { return tasks_.size(); }
  const std::vector<task_handle>& tasks() const { return tasks_; }
  const std::vector<std::string>& names() const { return names_; }
  std::vector<task_id> ids() const;
  /// The handle of the task of that name; nullptr if the graph has none.
  const task_handle* find(const std::string& name) const;
  /// Blocks until the named task's result exists; throws std::out_of_range for an unknown name.
  const task_result& get(const std::string& name) const;
  /// True if every task's result exists by the deadline.
  bool wait_until(time_point deadline) const;
  /// Why the whole graph was refused at submit (a cycle, an unknown name, a task refused); no
  /// error if it was accepted.
  const error_info& refused() const { return refused_; }

 private:
  std::vector<std::string> names_;
  std::vector<task_handle> tasks_;
  error_info refused_;
};

}  // namespace troupe
