// docs/protocol.md lists, for every message and every part of one, exactly the keys of its field
// table (wire_fields.hpp): a key added to the codec but not to the page, or documented but not
// sent, fails here.
//
// The page's convention, which this test reads: a key table is one whose header row starts with
// "| Key |"; the keys are the `backticked` names of its first column. It belongs to the nearest
// line above it that starts with **`message`** (a message body) or *part* (a part of one), or
// to the heading "### Header".
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "wire_table_walk.hpp"

namespace troupe::wire {
namespace {

using key_set = std::set<std::string>;

struct doc_tables {
  std::set<std::string> labels;                        ///< every label line seen
  std::map<std::string, std::vector<key_set>> tables;  ///< label -> its key tables
  std::vector<int> unlabelled;                         ///< line numbers of key tables with no label
};

bool is_name(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

/// The name in a line that starts with `open` NAME `close` (e.g. **`submit`**), or "".
std::string label_in(const std::string& line, const std::string& open, const std::string& close) {
  if (line.rfind(open, 0) != 0) return {};
  auto end = line.find(close, open.size());
  if (end == std::string::npos) return {};
  auto name = line.substr(open.size(), end - open.size());
  return is_name(name) ? name : std::string{};
}

/// Every `name` in backticks within text.
std::vector<std::string> backticked_names(const std::string& text) {
  std::vector<std::string> out;
  for (size_t open = text.find('`'); open != std::string::npos;) {
    auto close = text.find('`', open + 1);
    if (close == std::string::npos) break;
    auto name = text.substr(open + 1, close - open - 1);
    if (is_name(name)) out.push_back(name);
    open = text.find('`', close + 1);
  }
  return out;
}

doc_tables read_protocol_doc() {
  std::ifstream in(std::string{TROUPE_SOURCE_DIR} + "/docs/protocol.md");
  EXPECT_TRUE(in) << "cannot read docs/protocol.md under " << TROUPE_SOURCE_DIR;
  doc_tables doc;
  std::string label, line;
  key_set* table = nullptr;
  for (int n = 1; std::getline(in, line); ++n) {
    if (table && line.rfind('|', 0) == 0) {
      for (auto& k : backticked_names(line.substr(1, line.find('|', 1) - 1))) table->insert(k);
      continue;
    }
    table = nullptr;
    auto name = label_in(line, "**`", "`**");
    if (name.empty() && line.rfind("**", 0) != 0) name = label_in(line, "*", "*");
    if (!name.empty()) {
      label = name;
      doc.labels.insert(label);
    } else if (line == "### Header") {
      label = "header";
      doc.labels.insert(label);
    } else if (line.rfind('#', 0) == 0) {
      label.clear();
    } else if (line.rfind("| Key |", 0) == 0) {
      if (label.empty()) {
        doc.unlabelled.push_back(n);
        continue;
      }
      table = &doc.tables[label].emplace_back();
    }
  }
  return doc;
}

template <class T>
key_set keys() {
  auto k = testing::keys_of<T>();
  return {k.begin(), k.end()};
}

/// The keys of an entry of a with_column member of M: the row's plus the column's.
template <class M, class Row>
key_set entry_keys(const char* key) {
  M m{};
  auto k = keys<Row>();
  k.insert(testing::walk(m).column_keys.at(key));
  return k;
}

std::string show(const key_set& k) {
  std::string s;
  for (auto& x : k) s += (s.empty() ? "" : ", ") + x;
  return "{" + s + "}";
}

TEST(DocsMatchWire, EveryMessageAndPartListsTheKeysOfItsTable) {
  std::map<std::string, key_set> expected{
      {"header", keys<header>()},
      // bodies, by their msg_type name
      {to_string(msg_type::hello), keys<hello>()},
      {to_string(msg_type::welcome), keys<welcome>()},
      {to_string(msg_type::heartbeat), keys<heartbeat>()},
      {to_string(msg_type::assign), keys<assign>()},
      {to_string(msg_type::results), keys<results>()},
      {to_string(msg_type::worker_state), keys<worker_state>()},
      {to_string(msg_type::submit), keys<submit>()},
      {to_string(msg_type::submitted), keys<submitted>()},
      {to_string(msg_type::result), keys<result>()},
      {to_string(msg_type::cancel), keys<cancel>()},
      {to_string(msg_type::status_request), keys<status_request>()},
      {to_string(msg_type::status), keys<status>()},
      {to_string(msg_type::error), keys<error>()},
      {to_string(msg_type::bye), {}},
      {to_string(msg_type::replay_request), keys<replay_request>()},
      {to_string(msg_type::replay), keys<replay>()},
      {to_string(msg_type::snapshot_request), keys<snapshot_request>()},
      {to_string(msg_type::snapshot), keys<snapshot>()},
      {to_string(msg_type::fetch), keys<fetch>()},
      {to_string(msg_type::fetched), keys<fetched>()},
      {to_string(msg_type::output_request), keys<output_request>()},
      {to_string(msg_type::output_reply), keys<output_reply>()},
      // parts
      {"task", keys<task_spec>()},
      {"needs", keys<resources>()},
      {"input", keys<task_input>()},
      {"task_result", entry_keys<result, task_result>("tasks")},
      {"worker_stats", entry_keys<status, worker_stats>("workers")},
      {"gpu_memory", keys<worker_stats::gpu_memory_figures>()},
      {"reservation_stats", keys<reservation_stats>()},
      {"latency_summary", keys<latency_summary>()},
      {"node_status", keys<node_status>()},
      {"gpu_device", keys<gpu_device>()},
      {"worker_info", keys<worker_info>()},
      {"capacity", keys<worker_capacity>()},
      {"gpu_memory_report", keys<gpu_memory_report>()},
      {"assigned_task", keys<assigned_task>()},
      {"kept_input", keys<kept_input>()},
      {"data_peer", keys<data_peer>()},
      {"attempt_result", keys<attempt_result>()},
      {"event", keys<event>()},
  };
  static_assert(int(last_msg_type) == 21, "a new message type: add it above and to the page");

  auto doc = read_protocol_doc();
  for (int line : doc.unlabelled)
    ADD_FAILURE() << "docs/protocol.md:" << line << ": a key table with no **`message`** or "
                  << "*part* line above it";
  for (auto& [label, want] : expected) {
    SCOPED_TRACE(label);
    EXPECT_TRUE(doc.labels.count(label)) << "docs/protocol.md never introduces " << label;
    auto it = doc.tables.find(label);
    if (want.empty()) {
      EXPECT_TRUE(it == doc.tables.end()) << label << " has no keys but a key table";
      continue;
    }
    ASSERT_TRUE(it != doc.tables.end())
        << "no key table for " << label << "; its keys are " << show(want);
    ASSERT_EQ(it->second.size(), 1u) << label << " has more than one key table";
    EXPECT_EQ(show(it->second[0]), show(want)) << "docs/protocol.md vs wire_fields.hpp";
  }
  for (auto& [label, tables] : doc.tables)
    EXPECT_TRUE(expected.count(label))
        << "a key table for " << label << ", which has no field table";
}

}  // namespace
}  // namespace troupe::wire
