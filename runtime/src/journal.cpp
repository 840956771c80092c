#include "journal.hpp"

#include <sqlite3.h>

#include <cstring>

namespace troupe {

namespace {

int64_t unix_ms_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string pack_ids(const std::vector<task_id>& ids) {
  std::string s(ids.size() * sizeof(task_id), '\0');
  if (!ids.empty()) std::memcpy(s.data(), ids.data(), s.size());
  return s;
}

std::vector<task_id> unpack_ids(const void* data, size_t size) {
  std::vector<task_id> ids(size / sizeof(task_id));
  if (!ids.empty()) std::memcpy(ids.data(), data, ids.size() * sizeof(task_id));
  return ids;
}

}  // namespace

/// A prepared statement, reset after each use.
struct journal::statement {
  journal& j;
  sqlite3_stmt* st = nullptr;
  statement(journal& owner, const char* sql) : j(owner) {
    if (sqlite3_prepare_v2(j.db_, sql, -1, &st, nullptr) != SQLITE_OK)
      j.fail(std::string{"cannot prepare '"} + sql + "'");
  }
  ~statement() { sqlite3_finalize(st); }
  statement& bind(int i, int64_t v) {
    sqlite3_bind_int64(st, i, v);
    return *this;
  }
  statement& bind(int i, const std::string& blob) {
    sqlite3_bind_blob64(st, i, blob.data(), blob.size(), SQLITE_STATIC);
    return *this;
  }
  /// Runs a statement without rows.
  void run() {
    auto rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_DONE) j.fail("a write failed");
  }
  /// Steps once: true with a row to read.
  bool row() {
    auto rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) return true;
    done();
    if (rc != SQLITE_DONE) j.fail("a read failed");
    return false;
  }
  void done() {
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
  }
  int64_t integer(int col) { return sqlite3_column_int64(st, col); }
  std::string blob(int col) {
    auto* p = static_cast<const char*>(sqlite3_column_blob(st, col));
    return p ? std::string(p, size_t(sqlite3_column_bytes(st, col))) : std::string{};
  }
};

journal::journal(journal_options opts) : opts_(std::move(opts)) {
  if (sqlite3_open_v2(opts_.path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                      nullptr) != SQLITE_OK)
    fail("cannot open");
  // Another head on the same file would interleave incarnations: wait a little for its lock,
  // then give up naming the file (below, on the first write).
  sqlite3_busy_timeout(db_, 2000);
  exec("PRAGMA journal_mode=WAL");
  // NORMAL: a commit is in the WAL before the call returns, so it survives the process being
  // killed; FULL also survives the machine losing power, at an fsync per commit.
  exec(opts_.full_sync ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
  exec(
      "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
      "CREATE TABLE IF NOT EXISTS tasks(id INTEGER PRIMARY KEY, owner BLOB NOT NULL,"
      " spec BLOB, deadline_ms INTEGER NOT NULL, result BLOB, finished_ms INTEGER);"
      "CREATE INDEX IF NOT EXISTS tasks_finished ON tasks(finished_ms)"
      " WHERE finished_ms IS NOT NULL;"
      "CREATE TABLE IF NOT EXISTS submits(owner BLOB NOT NULL, token INTEGER NOT NULL,"
      " ids BLOB NOT NULL, at_ms INTEGER NOT NULL, PRIMARY KEY(owner, token));"
      "CREATE INDEX IF NOT EXISTS submits_at ON submits(at_ms);");
  insert_task_ = std::make_unique<statement>(
      *this, "INSERT OR REPLACE INTO tasks(id, owner, spec, deadline_ms) VALUES(?1, ?2, ?3, ?4)");
  insert_result_ = std::make_unique<statement>(
      *this,
      "INSERT OR REPLACE INTO tasks(id, owner, deadline_ms, result, finished_ms)"
      " VALUES(?1, ?2, -1, ?3, ?4)");
  // The spec is not needed once a task is over: only its record is kept.
  finish_ =
      std::make_unique<statement>(*this,
                                  "UPDATE tasks SET result = ?2, finished_ms = ?3, spec = NULL"
                                  " WHERE id = ?1 AND finished_ms IS NULL");
  insert_submit_ = std::make_unique<statement>(
      *this, "INSERT OR REPLACE INTO submits(owner, token, ids, at_ms) VALUES(?1, ?2, ?3, ?4)");
  set_next_ = std::make_unique<statement>(
      *this,
      "INSERT INTO meta(key, value) VALUES('next_id', ?1)"
      " ON CONFLICT(key) DO UPDATE SET value = max(value, excluded.value)");
  get_result_ = std::make_unique<statement>(
      *this, "SELECT result FROM tasks WHERE id = ?1 AND finished_ms IS NOT NULL");
  holds_ = std::make_unique<statement>(*this, "SELECT 1 FROM tasks WHERE id = ?1");
}

journal::~journal() {
  insert_task_.reset();
  insert_result_.reset();
  finish_.reset();
  insert_submit_.reset();
  set_next_.reset();
  get_result_.reset();
  holds_.reset();
  if (db_) sqlite3_close(db_);
}

void journal::fail(const std::string& what) {
  throw journal_error("journal " + opts_.path + ": " + what + ": " +
                      (db_ ? sqlite3_errmsg(db_) : "out of memory"));
}

void journal::exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string why = err ? err : "unknown error";
    sqlite3_free(err);
    throw journal_error("journal " + opts_.path + ": " + why);
  }
}

journal::start_state journal::start(uint64_t at_least) {
  start_state s;
  // One exclusive transaction: a second head starting on the same file waits, then fails.
  exec("BEGIN IMMEDIATE");
  try {
    statement meta{*this, "SELECT key, value FROM meta"};
    uint64_t last_incarnation = 0;
    task_id next = 1;
    while (meta.row()) {
      std::string key = reinterpret_cast<const char*>(sqlite3_column_text(meta.st, 0));
      if (key == "incarnation") last_incarnation = uint64_t(meta.integer(1));
      if (key == "next_id") next = task_id(meta.integer(1));
    }
    statement max_id{*this, "SELECT coalesce(max(id), 0) FROM tasks"};
    if (max_id.row()) {
      next = std::max(next, task_id(max_id.integer(0)) + 1);
      max_id.done();
    }
    s.incarnation = std::max(last_incarnation + 1, at_least);
    s.next_id = next;
    statement put{*this, "INSERT OR REPLACE INTO meta(key, value) VALUES(?1, ?2)"};
    sqlite3_bind_text(put.st, 1, "incarnation", -1, SQLITE_STATIC);
    put.bind(2, int64_t(s.incarnation)).run();
    sqlite3_bind_text(put.st, 1, "next_id", -1, SQLITE_STATIC);
    put.bind(2, int64_t(s.next_id)).run();

    statement before{*this, "SELECT count(*) FROM tasks WHERE finished_ms IS NOT NULL"};
    uint64_t kept_before = before.row() ? uint64_t(before.integer(0)) : 0;
    before.done();
    finished_ = kept_before;
    compact();
    statement after{*this, "SELECT count(*) FROM tasks WHERE finished_ms IS NOT NULL"};
    s.finished = after.row() ? uint64_t(after.integer(0)) : 0;
    after.done();
    finished_ = s.finished;
    s.dropped = kept_before - s.finished;

    statement open{*this,
                   "SELECT id, owner, spec, deadline_ms FROM tasks WHERE finished_ms IS NULL"
                   " ORDER BY id"};
    while (open.row())
      s.unfinished.push_back(
          {task_id(open.integer(0)), open.blob(1), open.blob(2), open.integer(3)});
    statement subs{*this, "SELECT owner, token, ids FROM submits ORDER BY at_ms"};
    while (subs.row()) {
      auto ids = sqlite3_column_blob(subs.st, 2);
      s.submits.push_back({subs.blob(0), uint64_t(subs.integer(1)),
                           unpack_ids(ids, size_t(sqlite3_column_bytes(subs.st, 2)))});
    }
    submits_ = s.submits.size();
    exec("COMMIT");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
  // The WAL back into the main file, and truncated: a restart does not replay old pages.
  exec("PRAGMA wal_checkpoint(TRUNCATE)");
  return s;
}

void journal::compact() {
  auto now = unix_ms_now();
  statement old{*this, "DELETE FROM tasks WHERE finished_ms IS NOT NULL AND finished_ms < ?1"};
  old.bind(1, now - int64_t(opts_.keep_for.count()) * 1000).run();
  statement extra{*this,
                  "DELETE FROM tasks WHERE id IN (SELECT id FROM tasks WHERE finished_ms IS NOT"
                  " NULL ORDER BY finished_ms DESC, id DESC LIMIT -1 OFFSET ?1)"};
  extra.bind(1, int64_t(opts_.keep_results)).run();
  statement subs{*this,
                 "DELETE FROM submits WHERE at_ms < ?1 OR rowid IN (SELECT rowid FROM submits"
                 " ORDER BY at_ms DESC LIMIT -1 OFFSET ?2)"};
  subs.bind(1, now - int64_t(opts_.keep_for.count()) * 1000)
      .bind(2, int64_t(opts_.keep_submits))
      .run();
  finished_ = std::min(finished_, opts_.keep_results);
  submits_ = std::min(submits_, opts_.keep_submits);
}

void journal::accepted(const std::vector<task_row>& tasks, const std::vector<result_row>& rejected,
                       const submit_row& submit, task_id next_id) {
  exec("BEGIN");
  try {
    for (auto& t : tasks)
      insert_task_->bind(1, int64_t(t.id))
          .bind(2, t.owner)
          .bind(3, t.spec)
          .bind(4, t.deadline_unix_ms)
          .run();
    auto now = unix_ms_now();
    for (auto& r : rejected)
      insert_result_->bind(1, int64_t(r.id))
          .bind(2, submit.owner)
          .bind(3, r.record)
          .bind(4, now)
          .run();
    finished_ += rejected.size();
    if (submit.token) {
      insert_submit_->bind(1, submit.owner)
          .bind(2, int64_t(submit.token))
          .bind(3, pack_ids(submit.ids))
          .bind(4, now)
          .run();
      ++submits_;
    }
    set_next_->bind(1, int64_t(next_id)).run();
    if (finished_ > opts_.keep_results + std::max<uint64_t>(1000, opts_.keep_results / 10) ||
        submits_ > opts_.keep_submits + std::max<uint64_t>(1000, opts_.keep_submits / 10))
      compact();
    exec("COMMIT");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

void journal::finished(const std::vector<result_row>& results) {
  if (results.empty()) return;
  exec("BEGIN");
  try {
    auto now = unix_ms_now();
    for (auto& r : results) {
      finish_->bind(1, int64_t(r.id)).bind(2, r.record).bind(3, now).run();
      finished_ += uint64_t(sqlite3_changes(db_));
    }
    if (finished_ > opts_.keep_results + std::max<uint64_t>(1000, opts_.keep_results / 10))
      compact();
    exec("COMMIT");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

std::optional<std::string> journal::result_of(task_id id) {
  get_result_->bind(1, int64_t(id));
  if (!get_result_->row()) return std::nullopt;
  auto r = get_result_->blob(0);
  get_result_->done();
  return r;
}

bool journal::holds(task_id id) {
  holds_->bind(1, int64_t(id));
  if (!holds_->row()) return false;
  holds_->done();
  return true;
}

}  // namespace troupe
