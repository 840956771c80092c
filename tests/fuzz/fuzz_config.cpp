// Configuration files and --set overrides: parse_config on the whole input, then what a node, a
// head and every process do with the result (node_view, head_view, resolve). An input of one
// line with an '=' is also tried as an override. troupe::config_error is the expected answer to
// bad input; anything else is a finding.
#include <string>
#include <string_view>

#include "troupe/model/config.hpp"

using namespace troupe;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text{reinterpret_cast<const char*>(data), size};
  try {
    auto cfg = parse_config(text, "fuzz");
    resolve(cfg);
    resolve(head_view(cfg));
    for (auto& node : cfg.cluster.nodes) resolve(node_view(cfg, node.name, "fuzz"));
  } catch (const config_error&) {
  }
  auto line = text.substr(0, text.find_last_not_of('\n') + 1);
  if (line.find('\n') == std::string_view::npos && line.find('=') != std::string_view::npos) {
    runtime_config cfg;
    try {
      apply_override(cfg, std::string{line});
    } catch (const config_error&) {
    }
  }
  return 0;
}
