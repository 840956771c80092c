#pragma once
// journal: what the head has promised, on disk. SQLite in WAL mode; one transaction per submit
// frame (the tasks it accepted, before their ids are sent back) and one per round of results
// (before they are sent). A head that starts on an existing journal (after a clean stop or a
// kill -9) gets the tasks that have no terminal record yet, the next free id, and a new
// incarnation; finished results stay readable for fetches until compaction drops them.
//
// Plain storage: bodies are opaque bytes the head encodes (wire format), owners are the
// routing ids of the clients that submitted. One thread uses a journal (the head's socket
// thread). Errors are journal_error, naming the file and what SQLite said.
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "troupe/model/task.hpp"

struct sqlite3;
struct sqlite3_stmt;

namespace troupe {

class journal_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct journal_options {
  std::string path;
  /// Finished tasks kept for fetches: the newest this many, none older than keep_for.
  uint64_t keep_results = 100000;
  std::chrono::seconds keep_for{3600};
  /// Submit tokens remembered (a re-sent submit gets the ids of the first).
  uint64_t keep_submits = 100000;
  bool full_sync = false;  ///< fsync every commit (survives power loss), not only kill -9
};

class journal {
 public:
  struct task_row {
    task_id id = 0;
    std::string owner;              ///< routing id of the client that submitted it
    std::string spec;               ///< the task as encoded on the wire
    int64_t deadline_unix_ms = -1;  ///< -1: none; a wall-clock time, valid across restarts
  };
  struct result_row {
    task_id id = 0;
    std::string record;  ///< the terminal record as encoded on the wire
  };
  struct submit_row {
    std::string owner;
    uint64_t token = 0;
    std::vector<task_id> ids;
  };
  /// What a new incarnation starts from.
  struct start_state {
    uint64_t incarnation = 0;
    task_id next_id = 1;
    std::vector<task_row> unfinished;  ///< in id order
    std::vector<submit_row> submits;   ///< newest last
    uint64_t finished = 0;             ///< terminal records kept
    uint64_t dropped = 0;              ///< terminal records compacted away at start
  };

  /// Opens or creates the file; throws journal_error.
  explicit journal(journal_options opts);
  ~journal();
  journal(const journal&) = delete;
  journal& operator=(const journal&) = delete;

  /// Takes a new incarnation (greater than the last one and than at_least), compacts, and
  /// returns what to resume. Call once, first.
  start_state start(uint64_t at_least);

  /// One transaction: the tasks one submit frame accepted, the terminal records of those it
  /// rejected at the door, the submit's token (0: none) with all its ids, and the next free id.
  void accepted(const std::vector<task_row>& tasks, const std::vector<result_row>& rejected,
                const submit_row& submit, task_id next_id);
  /// One transaction: terminal records. A task the journal does not hold is ignored (tasks
  /// submitted in process, not through the socket).
  void finished(const std::vector<result_row>& results);

  /// The terminal record of a task, if kept.
  std::optional<std::string> result_of(task_id id);
  /// Tasks accepted and not finished, and finished ones kept.
  bool holds(task_id id);

  const std::string& path() const { return opts_.path; }
  uint64_t finished_count() const { return finished_; }

 private:
  struct statement;
  void exec(const char* sql);
  [[noreturn]] void fail(const std::string& what);
  void compact();

  journal_options opts_;
  sqlite3* db_ = nullptr;
  std::unique_ptr<statement> insert_task_, insert_result_, finish_, insert_submit_, set_next_,
      get_result_, holds_;
  uint64_t finished_ = 0;  ///< terminal records kept (estimate between compactions)
  uint64_t submits_ = 0;
};

}  // namespace troupe
