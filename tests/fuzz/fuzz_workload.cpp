// Workload files of `troupe run --workload` (docs/workload.md) and graph files of `troupe submit
// --graph` (docs/graphs.md): parse_workload, then parse_graph and link_graph (names, edges,
// cycles: what the client checks before it sends), on the whole input. std::runtime_error
// (naming the file, the line or task, and the field) or a link error is the expected answer to
// bad input; anything else is a finding.
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <string>

#include "troupe/model/graph.hpp"
#include "troupe/workload.hpp"

namespace {

/// A line asks for `count` copies of its task, up to 10,000,000 by design: more than a few would
/// measure only the allocator and trip the fuzzer's memory limits. Counts past the limit stay in:
/// parse_workload must refuse them. Read as parse_workload reads it.
bool asks_for_many_tasks(const std::string& text) {
  std::istringstream in{text};
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object() || !j.contains("count") || !j["count"].is_number()) continue;
    auto count = j["count"].get<double>();
    if (count > 100 && count <= 10'000'000) return true;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text{reinterpret_cast<const char*>(data), size};
  if (asks_for_many_tasks(text)) return -1;  // -1: not worth keeping in the corpus
  std::istringstream in{text};
  try {
    troupe::cli::parse_workload(in, "fuzz");
  } catch (const std::runtime_error&) {
  }
  std::istringstream graph_text{text};
  try {
    troupe::linked_graph linked;
    (void)troupe::link_graph(troupe::cli::parse_graph(graph_text, "fuzz"), linked);
  } catch (const std::runtime_error&) {
  }
  return 0;
}
