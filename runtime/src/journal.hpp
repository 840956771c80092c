#pragma once
// journal: what the head has promised, on disk. SQLite in WAL mode, written in groups: one
// transaction per submit frame (the frame's body as it arrived, before its ids are sent back)
// and one per round of results (the result messages' bodies as they are sent, before they go
// out, with the ids they end). Nothing is encoded twice and no row is written per task: which
// batch ends which task is kept in memory and rebuilt from the batches at start.
//
// A head that starts on an existing journal (after a clean stop or a kill -9) gets the frames
// that still have unfinished tasks (with the ids of those finished), the next free id and a new
// incarnation; finished records stay readable for fetches until compaction drops them.
//
// Plain storage: bodies are opaque bytes (wire format), owners are the routing ids of the
// clients that submitted. One thread uses a journal (the head's socket thread). Errors are
// journal_error, naming the file and what SQLite said.
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "troupe/model/task.hpp"

struct sqlite3;

namespace troupe {

class journal_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct journal_options {
  std::string path;
  /// Terminal records kept for fetches: the newest this many, none older than keep_for.
  /// (That a task ended stays known while its submit has an unfinished task, so that a restart
  /// does not run it again; its record itself may be dropped.)
  uint64_t keep_results = 100000;
  std::chrono::seconds keep_for{3600};
  /// Submit tokens remembered (a re-sent submit gets the ids of the first).
  uint64_t keep_submits = 100000;
  bool full_sync = false;  ///< fsync every commit (survives power loss), not only kill -9
};

class journal {
 public:
  /// One submit frame: tasks first_id .. first_id + count - 1, in the order of its body.
  struct frame {
    std::string owner;  ///< routing id of the client that sent it
    uint64_t token = 0;
    task_id first_id = 0;
    uint32_t count = 0;
    int64_t received_unix_ms = 0;  ///< deadlines in the body count from here
    std::string_view body;         ///< the submit body as it arrived
    /// The ids the client was given, where they differ from first_id + i (an idempotency key
    /// named an earlier task); empty otherwise.
    std::vector<task_id> reply;
  };
  /// One result message body and the tasks whose terminal records it carries.
  struct batch {
    std::string_view body;
    std::vector<task_id> ids;
    /// Who the tasks belong to (the head's owner string: with keys, the client's key and
    /// connection); a fetch of them by someone else is refused.
    std::string_view owner;
  };
  /// A frame with unfinished tasks, as a new incarnation gets it back.
  struct open_frame {
    std::string owner;
    task_id first_id = 0;
    uint32_t count = 0;
    int64_t received_unix_ms = 0;
    std::string body;
    std::vector<task_id> finished;  ///< its ids with a terminal record (or none needed)
  };
  struct token {
    std::string owner;
    uint64_t token = 0;
    std::vector<task_id> ids;
  };
  /// What a new incarnation starts from.
  struct start_state {
    uint64_t incarnation = 0;
    task_id next_id = 1;
    std::vector<open_frame> open;  ///< oldest first
    std::vector<token> tokens;     ///< oldest first
    uint64_t records = 0;          ///< terminal records kept
    uint64_t dropped = 0;          ///< terminal records compacted away at start
  };

  /// Opens or creates the file; throws journal_error.
  explicit journal(journal_options opts);
  ~journal();
  journal(const journal&) = delete;
  journal& operator=(const journal&) = delete;

  /// Takes a new incarnation (greater than the last one and than at_least), compacts, and
  /// returns what to resume. Call once, first.
  start_state start(uint64_t at_least);

  /// One transaction: a submit frame, the terminal records of the tasks it rejected at the
  /// door (a batch, possibly empty), the ids that need no record (an idempotency key named an
  /// earlier task), and the next free id.
  void accepted(const frame& f, const batch& rejected, const std::vector<task_id>& no_record,
                task_id next_id);
  /// One transaction: terminal records. A task that already has one keeps it; a task the
  /// journal does not hold (submitted in process, not through the socket) is ignored.
  void finished(const std::vector<batch>& batches);

  /// The result message body that holds a task's terminal record, if kept, with its batch
  /// number (the same body for every task of the batch).
  struct stored_record {
    int64_t batch = 0;
    std::string body;
    std::string owner;
  };
  std::optional<stored_record> record_of(task_id id);

  const std::string& path() const { return opts_.path; }
  uint64_t records() const { return where_.size(); }

 private:
  struct statement;
  void open_file();
  void close_file() noexcept;
  void exec(const char* sql);
  [[noreturn]] void fail(const std::string& what);
  void write_batch(const batch& b, int64_t now_ms);
  void compact();
  void close_frames();
  template <class F>
  void in_transaction(F&& write);
  bool over_bounds() const;
  void reload_counts() noexcept;
  void load_where();

  journal_options opts_;
  sqlite3* db_ = nullptr;
  std::unique_ptr<statement> insert_frame_, insert_batch_, set_open_, set_next_, find_record_;
  /// Tasks with a terminal record kept, and the batch that holds it (the first one written).
  std::unordered_map<task_id, int64_t> where_;
  /// Frames with unfinished tasks: first id -> (count, unfinished), to count down as records
  /// come in without asking SQLite.
  struct open_count {
    uint32_t count = 0;
    uint32_t open = 0;
  };
  std::map<task_id, open_count> open_;
  std::vector<task_id> touched_;  ///< frames whose count changed in this transaction
  uint64_t frames_ = 0;
};

}  // namespace troupe
