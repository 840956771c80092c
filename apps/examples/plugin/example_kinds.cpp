// An example kind plugin: a shared library that a node loads when the cluster file names it
//   [nodes.a]
//   plugins = ["example_kinds.so"]
// Its kind, `word_count`, counts the words of the task's payload (or of its `text` parameter)
// and says how many, and how many of them are longer than `min_length` (default 0).
// Build it against the installed package (docs/plugins.md) or in this tree (apps/CMakeLists.txt).
#include <cctype>
#include <string>
#include <troupe/model/plugin.hpp>

namespace {

troupe::task_output count_words(const troupe::task_context& ctx) {
  auto& spec = ctx.spec;
  std::string text = spec.payload.empty() ? spec.params.get_string("text", "")
                                          : std::string(spec.payload.begin(), spec.payload.end());
  auto min_length = spec.params.get_int("min_length", 0);
  if (min_length < 0)
    throw troupe::task_failure{troupe::errc::invalid_params, "min_length must not be negative"};
  int64_t words = 0, long_words = 0, length = 0;
  for (size_t i = 0; i <= text.size(); ++i) {
    bool space = i == text.size() || std::isspace(static_cast<unsigned char>(text[i]));
    if (!space) {
      ++length;
      continue;
    }
    if (length > 0) {
      ++words;
      if (length > min_length) ++long_words;
    }
    length = 0;
  }
  troupe::task_output out;
  out.values.set("words", words);
  out.values.set("longer_than_min", long_words);
  return out;
}

}  // namespace

TROUPE_PLUGIN void troupe_register_kinds(troupe::task_registry& registry) {
  registry.add({"word_count", nullptr, count_words});
}
