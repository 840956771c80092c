#include "troupe/model/graph.hpp"

#include <algorithm>
#include <stdexcept>
#include <unordered_map>

namespace troupe {

const char* to_string(failure_policy p) noexcept {
  switch (p) {
    case failure_policy::cancel_dependents:
      return "cancel_dependents";
    case failure_policy::run_what_can:
      return "run_what_can";
    case failure_policy::cancel_graph:
      return "cancel_graph";
  }
  return "cancel_dependents";
}

std::optional<failure_policy> parse_failure_policy(const std::string& text) {
  for (auto p : {failure_policy::cancel_dependents, failure_policy::run_what_can,
                 failure_policy::cancel_graph})
    if (text == to_string(p)) return p;
  return std::nullopt;
}

namespace {

error_info invalid(std::string message) {
  return {errc::invalid_params, std::move(message)};
}

std::string quoted(const std::string& s) {
  return "'" + s + "'";
}

/// Kahn's algorithm: the submission's tasks with parents before children. Tasks on a cycle, or
/// after one, are left out (a checked graph has none). Parents out of range are ignored.
std::vector<uint32_t> topological_order(const std::vector<task_spec>& specs) {
  auto n = specs.size();
  std::vector<std::vector<uint32_t>> children(n);
  std::vector<uint32_t> waiting(n, 0), order, ready;
  for (uint32_t i = 0; i < n; ++i)
    for (auto p : parents_of(specs[i]))
      if (p < n) {
        children[p].push_back(i);
        ++waiting[i];
      }
  for (uint32_t i = 0; i < n; ++i)
    if (waiting[i] == 0) ready.push_back(i);
  while (!ready.empty()) {
    auto t = ready.back();
    ready.pop_back();
    order.push_back(t);
    for (auto c : children[t])
      if (--waiting[c] == 0) ready.push_back(c);
  }
  return order;
}

}  // namespace

std::string graph_task_name(const task_spec& s, size_t i) {
  if (auto it = s.labels.find("name"); it != s.labels.end() && !it->second.empty())
    return quoted(it->second);
  return "#" + std::to_string(i);
}

std::vector<uint32_t> parents_of(const task_spec& s) {
  std::vector<uint32_t> p = s.after;
  for (auto& in : s.inputs) p.push_back(in.from);
  std::sort(p.begin(), p.end());
  p.erase(std::unique(p.begin(), p.end()), p.end());
  return p;
}

bool has_links(const std::vector<task_spec>& specs) {
  return std::any_of(specs.begin(), specs.end(),
                     [](const task_spec& s) { return !s.after.empty() || !s.inputs.empty(); });
}

error_info check_links(const std::vector<task_spec>& specs) {
  auto n = specs.size();
  for (size_t i = 0; i < n; ++i) {
    auto& s = specs[i];
    for (size_t k = 0; k < s.inputs.size(); ++k) {
      auto& in = s.inputs[k];
      if (in.param.empty())
        return invalid("task " + graph_task_name(s, i) + ": an input has no parameter name");
      if (in.field.empty())
        return invalid("task " + graph_task_name(s, i) + ": input '" + in.param +
                       "' names no output field");
      for (size_t j = 0; j < k; ++j)
        if (s.inputs[j].param == in.param)
          return invalid("task " + graph_task_name(s, i) + ": two inputs fill '" + in.param +
                         "' (one input per parameter)");
    }
    for (auto p : parents_of(s)) {
      if (p >= n)
        return invalid("task " + graph_task_name(s, i) + " runs after task #" + std::to_string(p) +
                       ", which is not in the submission (" + std::to_string(n) + " tasks)");
      if (p == i) return invalid("task " + graph_task_name(s, i) + " runs after itself");
    }
  }
  auto order = topological_order(specs);
  if (order.size() == n) return {};
  std::vector<bool> left(n, true);  // on a cycle or after one
  for (auto i : order) left[i] = false;
  // Every task left has a parent left: walking parents from one must come back to some task.
  uint32_t start = 0;
  while (!left[start]) ++start;
  std::vector<size_t> seen_at(n, SIZE_MAX);
  std::vector<uint32_t> path;
  auto at = start;
  while (seen_at[at] == SIZE_MAX) {
    seen_at[at] = path.size();
    path.push_back(at);
    for (auto p : parents_of(specs[at]))
      if (left[p]) {
        at = p;
        break;
      }
  }
  std::vector<uint32_t> cycle(path.begin() + long(seen_at[at]), path.end());
  std::reverse(cycle.begin(), cycle.end());  // parent first: "a -> b" reads "b runs after a"
  std::rotate(cycle.begin(), std::min_element(cycle.begin(), cycle.end()), cycle.end());
  constexpr size_t shown = 12;
  std::string text;
  for (size_t k = 0; k < cycle.size() && k < shown; ++k)
    text += graph_task_name(specs[cycle[k]], cycle[k]) + " -> ";
  if (cycle.size() > shown) text += "... (" + std::to_string(cycle.size()) + " tasks) -> ";
  text += graph_task_name(specs[cycle[0]], cycle[0]);
  return invalid("the graph has a cycle: " + text);
}

error_info link_graph(graph_spec g, linked_graph& out) {
  out = {};
  out.on_failure = g.on_failure;
  std::unordered_map<std::string, uint32_t> index;
  for (size_t i = 0; i < g.tasks.size(); ++i) {
    auto& t = g.tasks[i];
    if (t.name.empty()) return invalid("task #" + std::to_string(i) + " has no name");
    if (!index.emplace(t.name, uint32_t(i)).second)
      return invalid("two tasks are named " + quoted(t.name) + " (#" +
                     std::to_string(index[t.name]) + " and #" + std::to_string(i) + ")");
    if (t.spec.kind.empty()) return invalid("task " + quoted(t.name) + " has no kind");
  }
  for (auto& t : g.tasks) {
    auto where = "task " + quoted(t.name);
    auto& s = t.spec;
    s.after.clear();
    s.inputs.clear();
    for (auto& a : t.after) {
      auto it = index.find(a);
      if (it == index.end())
        return invalid(where + " runs after " + quoted(a) + ", which is not a task of the graph");
      s.after.push_back(it->second);
    }
    for (auto& [param, source] : t.inputs) {
      auto dot = source.find('.');
      if (param.empty()) return invalid(where + ": an input has an empty parameter name");
      if (dot == std::string::npos || dot == 0 || dot + 1 == source.size())
        return invalid(where + ": input '" + param + "' is " + quoted(source) +
                       "; write TASK.FIELD (for example 'a.checksum', or 'a.bytes' for its "
                       "output bytes)");
      auto from = source.substr(0, dot);
      auto it = index.find(from);
      if (it == index.end())
        return invalid(where + ": input '" + param + "' takes from " + quoted(from) +
                       ", which is not a task of the graph");
      s.inputs.push_back(task_input{param, it->second, source.substr(dot + 1)});
    }
    s.labels["name"] = t.name;
    out.names.push_back(t.name);
    out.specs.push_back(std::move(s));
  }
  if (auto e = check_links(out.specs)) {
    out = {};
    return e;
  }
  return {};
}

namespace {

/// What a value adds to a task's input (as wire_size counts it).
size_t bound_size(const std::string& param, const param_value& v) {
  param_map one;
  one.set(param, v);
  return wire_size(one);
}

}  // namespace

uint64_t bound_input_bytes(const task_input& in, const task_output& out) {
  if (in.field == "bytes") return out.bytes.size();
  auto* v = out.values.find(in.field);
  if (!v) return 0;
  if (auto* s = std::get_if<std::string>(v); s && in.param == "payload") return s->size();
  return bound_size(in.param, *v);
}

error_info bind_inputs(task_spec& child, uint32_t from, const std::string& parent,
                       const task_output& out, uint64_t max_input_bytes) {
  // Counted as each input is bound, so that many inputs of one large output stop at the bound
  // rather than copy it many times over.
  uint64_t size = input_bytes(child);
  auto over = [&](uint64_t adding, const std::string& param) {
    if (size + adding <= max_input_bytes) {
      size += adding;
      return error_info{};
    }
    return error_info{errc::invalid_params, "input '" + param + "' from task " + parent +
                                                ": the task's input " + "would be over " +
                                                std::to_string(max_input_bytes) +
                                                " bytes (limits.max_payload_bytes)"};
  };
  for (auto& in : child.inputs) {
    if (in.from != from) continue;
    auto missing = [&] {
      std::string have;
      for (auto& [k, v] : out.values.values()) have += (have.empty() ? "" : ", ") + k;
      return error_info{errc::invalid_params,
                        "input '" + in.param + "': task " + parent + " has no output value '" +
                            in.field + "' (its values: " + (have.empty() ? "none" : have) +
                            "; 'bytes' takes its output bytes)"};
    };
    if (in.param == "payload") {
      if (in.field == "bytes") {
        if (auto e = over(out.bytes.size(), in.param)) return e;
        child.payload = out.bytes;
      } else if (auto* v = out.values.find(in.field)) {
        auto* s = std::get_if<std::string>(v);
        if (!s)
          return {errc::invalid_params, "input 'payload': value '" + in.field + "' of task " +
                                            parent + " is a " + type_name(*v) +
                                            "; a payload takes bytes or a string"};
        if (auto e = over(s->size(), in.param)) return e;
        child.payload.assign(s->begin(), s->end());
      } else {
        return missing();
      }
      continue;
    }
    if (in.field == "bytes") {
      if (auto e = over(out.bytes.size() + in.param.size() + 10, in.param)) return e;
      child.params.set(in.param, std::string(out.bytes.begin(), out.bytes.end()));
    } else if (auto* v = out.values.find(in.field)) {
      if (auto e = over(bound_size(in.param, *v), in.param)) return e;
      child.params.set(in.param, *v);
    } else {
      return missing();
    }
  }
  return {};
}

namespace {

bool takes_input_from(const task_spec& s, uint32_t from) {
  return std::any_of(s.inputs.begin(), s.inputs.end(),
                     [&](const task_input& in) { return in.from == from; });
}

}  // namespace

graph_remainder remainder_of(std::vector<task_spec> specs, const std::vector<bool>& open,
                             failure_policy policy,
                             const std::function<std::optional<task_result>(uint32_t)>& result_of,
                             uint64_t max_input_bytes) {
  auto n = uint32_t(specs.size());
  graph_remainder out;
  std::vector<std::optional<task_result>> before(n);  // ended before: their results, if kept
  std::vector<bool> ends(n, false);
  std::vector<task_result> why(n);
  auto end_as = [&](uint32_t i, outcome o, error_info e) {
    ends[i] = true;
    why[i].status = o;
    why[i].error = std::move(e);
  };
  auto ended_text = [&](uint32_t p) {
    return before[p]
               ? "ended " + std::string{to_string(before[p]->status)} + " before the head restarted"
               : std::string{"ended before the head restarted; its record was not kept"};
  };
  std::optional<uint32_t> first_failure;
  for (uint32_t i = 0; i < n; ++i) {
    if (i < open.size() && open[i]) continue;
    before[i] = result_of(i);
    if ((!before[i] || !before[i]->ok()) && !first_failure) first_failure = i;
  }
  auto order = topological_order(specs);
  for (auto i : order) {
    if (i >= open.size() || !open[i]) continue;
    auto& s = specs[i];
    if (policy == failure_policy::cancel_graph && first_failure) {
      end_as(
          i, outcome::cancelled,
          {errc::upstream_failed, "task " + graph_task_name(specs[*first_failure], *first_failure) +
                                      " " + ended_text(*first_failure)});
      continue;
    }
    for (auto p : parents_of(s)) {
      bool needs_it = policy != failure_policy::run_what_can || takes_input_from(s, p);
      if (open[p] && !ends[p]) continue;  // still to run: the edge stays
      if (open[p]) {                      // ends now
        if (needs_it) {
          end_as(i, outcome::cancelled,
                 {errc::upstream_failed, "task " + graph_task_name(specs[p], p) + " ended " +
                                             to_string(why[p].status) + ": " +
                                             why[p].error.message.substr(0, 200)});
          break;
        }
        continue;
      }
      if (before[p] && before[p]->ok()) {
        if (auto e = bind_inputs(s, p, graph_task_name(specs[p], p), before[p]->output,
                                 max_input_bytes)) {
          end_as(i, outcome::failed, std::move(e));
          break;
        }
        continue;
      }
      if (needs_it) {
        end_as(
            i, outcome::cancelled,
            {errc::upstream_failed, "task " + graph_task_name(specs[p], p) + " " + ended_text(p)});
        break;
      }
    }
  }
  // Re-index the links among the tasks kept; links to ended tasks are done with.
  std::vector<uint32_t> new_index(n, UINT32_MAX);
  for (uint32_t i = 0; i < n; ++i) {
    if (i >= open.size() || !open[i]) continue;
    if (ends[i]) {
      out.ended.emplace_back(i, std::move(why[i]));
      continue;
    }
    new_index[i] = uint32_t(out.kept.size());
    out.kept.push_back(i);
  }
  for (auto i : out.kept) {
    auto s = std::move(specs[i]);
    std::vector<uint32_t> after;
    for (auto p : s.after)
      if (p < n && new_index[p] != UINT32_MAX) after.push_back(new_index[p]);
    std::vector<task_input> inputs;
    for (auto& in : s.inputs)
      if (in.from < n && new_index[in.from] != UINT32_MAX)
        inputs.push_back({in.param, new_index[in.from], in.field});
    s.after = std::move(after);
    s.inputs = std::move(inputs);
    out.specs.push_back(std::move(s));
  }
  return out;
}

double critical_path(const std::vector<task_spec>& specs, const std::vector<double>& durations) {
  // The longest chain ending at each task, parents first.
  std::vector<double> finish(specs.size(), 0);
  double longest = 0;
  for (auto t : topological_order(specs)) {
    for (auto p : parents_of(specs[t]))
      if (p < specs.size()) finish[t] = std::max(finish[t], finish[p]);
    finish[t] += t < durations.size() ? durations[t] : 0;
    longest = std::max(longest, finish[t]);
  }
  return longest;
}

graph_handle::graph_handle(std::vector<std::string> names, std::vector<task_handle> tasks,
                           error_info refused)
    : names_(std::move(names)), tasks_(std::move(tasks)), refused_(std::move(refused)) {
  if (refused_ || tasks_.empty()) return;
  auto& first = tasks_.front();
  if (first.valid() && first.ready() && first.get().status == outcome::rejected)
    refused_ = first.get().error;
}

std::vector<task_id> graph_handle::ids() const {
  std::vector<task_id> ids;
  ids.reserve(tasks_.size());
  for (auto& t : tasks_) ids.push_back(t.id());
  return ids;
}

const task_handle* graph_handle::find(const std::string& name) const {
  for (size_t i = 0; i < names_.size() && i < tasks_.size(); ++i)
    if (names_[i] == name) return &tasks_[i];
  return nullptr;
}

const task_result& graph_handle::get(const std::string& name) const {
  auto* h = find(name);
  if (!h) throw std::out_of_range("the graph has no task named '" + name + "'");
  return h->get();
}

bool graph_handle::wait_until(time_point deadline) const {
  for (auto& t : tasks_)
    if (!t.wait_until(deadline)) return false;
  return true;
}

}  // namespace troupe
