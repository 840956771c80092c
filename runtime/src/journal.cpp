#include "journal.hpp"

#include <sqlite3.h>

#include <algorithm>
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

std::vector<task_id> unpack_ids(const std::string& s) {
  std::vector<task_id> ids(s.size() / sizeof(task_id));
  if (!ids.empty()) std::memcpy(ids.data(), s.data(), ids.size() * sizeof(task_id));
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
  statement& bind(int i, std::string_view blob) {
    sqlite3_bind_blob64(st, i, blob.data(), blob.size(), SQLITE_STATIC);
    return *this;
  }
  statement& bind_null(int i) {
    sqlite3_bind_null(st, i);
    return *this;
  }
  /// Runs a statement without rows; the rows it changed.
  int run() {
    auto rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_DONE) j.fail("a write failed");
    return sqlite3_changes(j.db_);
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
  bool null(int col) { return sqlite3_column_type(st, col) == SQLITE_NULL; }
  std::string blob(int col) {
    auto* p = static_cast<const char*>(sqlite3_column_blob(st, col));
    return p ? std::string(p, size_t(sqlite3_column_bytes(st, col))) : std::string{};
  }
  /// The single integer a query returns (fallback when it returns no row).
  int64_t scalar(int64_t fallback = 0) {
    if (!row()) return fallback;
    auto v = null(0) ? fallback : integer(0);
    done();
    return v;
  }
};

journal::journal(journal_options opts) : opts_(std::move(opts)) {
  try {
    open_file();
  } catch (...) {
    close_file();  // a constructor that throws runs no destructor
    throw;
  }
}

void journal::open_file() {
  if (sqlite3_open_v2(opts_.path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                      nullptr) != SQLITE_OK)
    fail("cannot open");
  // Another head on the same file waits a little for the lock, then fails naming the file.
  sqlite3_busy_timeout(db_, 2000);
  // One head owns the file: no lock taken and released per transaction, no shared-memory index
  // (measured: a tenth of the journal's cost), and a second head cannot open it meanwhile.
  exec("PRAGMA locking_mode=EXCLUSIVE");
  exec("PRAGMA journal_mode=WAL");
  exec("PRAGMA cache_size=-16384");  // 16 MiB of pages: the tables' hot ends stay in memory
  // NORMAL: a commit is in the WAL before the call returns, so it survives the process being
  // killed; FULL also survives the machine losing power, at an fsync per commit.
  exec(opts_.full_sync ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
  // The layout of the file: one this head did not write is refused, naming it.
  constexpr int layout = 3;
  auto version = statement{*this, "PRAGMA user_version"}.scalar();
  auto tables =
      statement{*this, "SELECT count(*) FROM sqlite_master WHERE type = 'table'"}.scalar();
  if (tables > 0 && version == 2) {  // layout 3 added the owner of each batch
    exec("ALTER TABLE batches ADD COLUMN owner BLOB NOT NULL DEFAULT x''");
    exec("PRAGMA user_version = 3");
    version = layout;
  }
  if (tables > 0 && version != layout)
    throw journal_error("journal " + opts_.path +
                        ": written by another version of troupe (layout " +
                        std::to_string(version) + ", this one reads " + std::to_string(layout) +
                        "); move it away or set cluster.journal to another file");
  exec("PRAGMA user_version = 3");
  exec(
      "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
      // A submit frame; body NULL once none of its tasks is open.
      "CREATE TABLE IF NOT EXISTS frames(first_id INTEGER PRIMARY KEY, owner BLOB NOT NULL,"
      " token INTEGER NOT NULL, count INTEGER NOT NULL, open INTEGER NOT NULL,"
      " received_ms INTEGER NOT NULL, body BLOB, reply BLOB);"
      // A result message body, as sent, and the ids of the tasks it ends.
      "CREATE TABLE IF NOT EXISTS batches(batch INTEGER PRIMARY KEY, body BLOB NOT NULL,"
      " records INTEGER NOT NULL, at_ms INTEGER NOT NULL, ids BLOB NOT NULL,"
      " max_id INTEGER NOT NULL, owner BLOB NOT NULL DEFAULT x'');");
  insert_frame_ = std::make_unique<statement>(
      *this,
      "INSERT OR REPLACE INTO frames(first_id, owner, token, count, open, received_ms, body,"
      " reply) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
  insert_batch_ =
      std::make_unique<statement>(*this,
                                  "INSERT INTO batches(body, records, at_ms, ids, max_id, owner)"
                                  " VALUES(?1, ?2, ?3, ?4, ?5, ?6)");
  // The body is not needed once every task of the frame is over.
  set_open_ = std::make_unique<statement>(
      *this,
      "UPDATE frames SET open = ?2, body = CASE WHEN ?2 = 0 THEN NULL ELSE body END"
      " WHERE first_id = ?1");
  set_next_ = std::make_unique<statement>(
      *this,
      "INSERT INTO meta(key, value) VALUES('next_id', ?1)"
      " ON CONFLICT(key) DO UPDATE SET value = max(value, excluded.value)");
  find_record_ =
      std::make_unique<statement>(*this, "SELECT body, owner FROM batches WHERE batch = ?1");
}

journal::~journal() {
  close_file();
}

void journal::close_file() noexcept {
  insert_frame_.reset();
  insert_batch_.reset();
  set_open_.reset();
  set_next_.reset();
  find_record_.reset();
  if (db_) sqlite3_close(db_);
  db_ = nullptr;
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
    uint64_t last_incarnation =
        uint64_t(statement{*this, "SELECT value FROM meta WHERE key = 'incarnation'"}.scalar());
    task_id next =
        task_id(statement{*this, "SELECT value FROM meta WHERE key = 'next_id'"}.scalar(1));
    next = std::max<task_id>(
        next, task_id(statement{*this, "SELECT max(first_id + count) FROM frames"}.scalar(1)));
    next = std::max<task_id>(
        next, task_id(statement{*this, "SELECT max(max_id) + 1 FROM batches"}.scalar(1)));
    s.incarnation = std::max(last_incarnation + 1, at_least);
    s.next_id = next;
    statement put{*this, "INSERT OR REPLACE INTO meta(key, value) VALUES(?1, ?2)"};
    sqlite3_bind_text(put.st, 1, "incarnation", -1, SQLITE_STATIC);
    put.bind(2, int64_t(s.incarnation)).run();
    sqlite3_bind_text(put.st, 1, "next_id", -1, SQLITE_STATIC);
    put.bind(2, int64_t(s.next_id)).run();

    // Which batch ends which task, oldest first: the first record of a task is its record.
    load_where();
    statement open{*this,
                   "SELECT first_id, owner, count, received_ms, body, reply FROM frames"
                   " WHERE open > 0 ORDER BY first_id"};
    while (open.row()) {
      open_frame f;
      f.first_id = task_id(open.integer(0));
      f.owner = open.blob(1);
      f.count = uint32_t(open.integer(2));
      f.received_unix_ms = open.integer(3);
      f.body = open.blob(4);
      auto reply = open.null(5) ? std::vector<task_id>{} : unpack_ids(open.blob(5));
      for (uint32_t k = 0; k < f.count; ++k) {
        task_id id = f.first_id + k;
        // Ended with a record, or needs none (its idempotency key named another task).
        if (where_.count(id) || (k < reply.size() && reply[k] != id)) f.finished.push_back(id);
      }
      open_[f.first_id] = {f.count, uint32_t(f.count - f.finished.size())};
      s.open.push_back(std::move(f));
    }
    // Frames whose open count was behind (a crash between the records and the count): fixed.
    for (auto& f : s.open)
      if (open_[f.first_id].open == 0) {
        set_open_->bind(1, int64_t(f.first_id)).bind(2, 0).run();
        open_.erase(f.first_id);
      }
    s.open.erase(std::remove_if(s.open.begin(), s.open.end(),
                                [](const open_frame& f) { return f.finished.size() >= f.count; }),
                 s.open.end());

    auto before = where_.size();
    compact();
    s.records = where_.size();
    s.dropped = before - where_.size();

    statement tokens{*this,
                     "SELECT owner, token, first_id, count, reply FROM frames WHERE token != 0"
                     " ORDER BY first_id"};
    while (tokens.row()) {
      token t;
      t.owner = tokens.blob(0);
      t.token = uint64_t(tokens.integer(1));
      if (!tokens.null(4)) {
        t.ids = unpack_ids(tokens.blob(4));
      } else {
        auto first = task_id(tokens.integer(2));
        for (int64_t k = 0; k < tokens.integer(3); ++k) t.ids.push_back(first + task_id(k));
      }
      s.tokens.push_back(std::move(t));
    }
    frames_ = uint64_t(statement{*this, "SELECT count(*) FROM frames"}.scalar());
    exec("COMMIT");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
  // The WAL back into the main file, and truncated: a restart does not replay old pages.
  exec("PRAGMA wal_checkpoint(TRUNCATE)");
  return s;
}

/// Which batch ends which task, from the batches' id lists, oldest first.
void journal::load_where() {
  where_.clear();
  statement all{*this, "SELECT batch, ids FROM batches ORDER BY batch"};
  while (all.row()) {
    auto batch = all.integer(0);
    for (auto id : unpack_ids(all.blob(1))) where_.emplace(id, batch);
  }
}

void journal::compact() {
  auto cutoff_ms = unix_ms_now() - int64_t(opts_.keep_for.count()) * 1000;
  // The newest batches that hold keep_results records.
  int64_t keep_from = 0;
  {
    statement newest{*this, "SELECT batch, records FROM batches ORDER BY batch DESC"};
    uint64_t n = 0;
    while (newest.row()) {
      n += uint64_t(newest.integer(1));
      if (n >= opts_.keep_results) {
        keep_from = newest.integer(0);  // at least keep_results are kept
        newest.done();
        break;
      }
    }
    if (opts_.keep_results == 0) keep_from = INT64_MAX;
  }
  // A batch that ends a task of a frame with open tasks stays: a restart must know that task
  // ended, or it would run it again.
  auto oldest_open = open_.empty() ? INT64_MAX : int64_t(open_.begin()->first);
  statement gone{*this,
                 "SELECT batch, ids FROM batches WHERE (batch < ?1 OR at_ms < ?2) AND max_id < ?3"};
  gone.bind(1, keep_from).bind(2, cutoff_ms).bind(3, oldest_open);
  std::vector<int64_t> dropped;
  while (gone.row()) {
    auto batch = gone.integer(0);
    dropped.push_back(batch);
    for (auto id : unpack_ids(gone.blob(1)))
      if (auto w = where_.find(id); w != where_.end() && w->second == batch) where_.erase(w);
  }
  statement drop{*this, "DELETE FROM batches WHERE batch = ?1"};
  for (auto b : dropped) drop.bind(1, b).run();
  statement{*this,
            "DELETE FROM frames WHERE open = 0 AND (received_ms < ?1 OR first_id < (SELECT"
            " first_id FROM frames ORDER BY first_id DESC LIMIT 1 OFFSET ?2))"}
      .bind(1, cutoff_ms)
      .bind(2, int64_t(opts_.keep_submits))
      .run();
  frames_ = uint64_t(statement{*this, "SELECT count(*) FROM frames"}.scalar());
}

void journal::write_batch(const batch& b, int64_t now_ms) {
  if (b.ids.empty()) return;
  auto ids = pack_ids(b.ids);
  insert_batch_->bind(1, b.body)
      .bind(2, int64_t(b.ids.size()))
      .bind(3, now_ms)
      .bind(4, std::string_view{ids})
      .bind(5, int64_t(*std::max_element(b.ids.begin(), b.ids.end())))
      .bind(6, std::string_view{b.owner})
      .run();
  auto batch_id = sqlite3_last_insert_rowid(db_);
  for (auto id : b.ids) {
    if (!where_.emplace(id, batch_id).second) continue;  // it had a record already
    auto f = open_.upper_bound(id);
    if (f == open_.begin()) continue;
    --f;
    if (id >= f->first + f->second.count || f->second.open == 0) continue;
    --f->second.open;
    touched_.push_back(f->first);
  }
}

/// After a rolled-back transaction the counts kept in memory are those of the file again.
void journal::reload_counts() noexcept {
  touched_.clear();
  try {
    open_.clear();
    statement open{*this, "SELECT first_id, count, open FROM frames WHERE open > 0"};
    while (open.row())
      open_[task_id(open.integer(0))] = {uint32_t(open.integer(1)), uint32_t(open.integer(2))};
    frames_ = uint64_t(statement{*this, "SELECT count(*) FROM frames"}.scalar());
    load_where();
  } catch (const journal_error&) {  // the file is unusable: the next write says so
  }
}

void journal::close_frames() {
  std::sort(touched_.begin(), touched_.end());
  touched_.erase(std::unique(touched_.begin(), touched_.end()), touched_.end());
  for (auto first : touched_) {
    auto f = open_.find(first);
    if (f == open_.end()) continue;
    set_open_->bind(1, int64_t(first)).bind(2, int64_t(f->second.open)).run();
    if (f->second.open == 0) open_.erase(f);
  }
  touched_.clear();
}

/// One transaction; on failure it is rolled back and the counts kept in memory are the
/// file's again.
template <class F>
void journal::in_transaction(F&& write) {
  exec("BEGIN");
  try {
    write();
    exec("COMMIT");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    reload_counts();
    throw;
  }
}

/// Past a bound by a tenth (at least 1,000): time to compact.
bool journal::over_bounds() const {
  auto over = [](uint64_t n, uint64_t bound) {
    return n > bound + std::max<uint64_t>(1000, bound / 10);
  };
  return over(where_.size(), opts_.keep_results) || over(frames_, opts_.keep_submits);
}

void journal::accepted(const frame& f, const batch& rejected, const std::vector<task_id>& no_record,
                       task_id next_id) {
  in_transaction([&] {
    auto now = unix_ms_now();
    if (f.count) {
      insert_frame_->bind(1, int64_t(f.first_id))
          .bind(2, std::string_view{f.owner})
          .bind(3, int64_t(f.token))
          .bind(4, int64_t(f.count))
          .bind(5, int64_t(f.count))
          .bind(6, f.received_unix_ms)
          .bind(7, f.body);
      std::string reply;
      if (!f.reply.empty()) {
        reply = pack_ids(f.reply);
        insert_frame_->bind(8, std::string_view{reply});
      } else {
        insert_frame_->bind_null(8);
      }
      insert_frame_->run();
      ++frames_;
      open_[f.first_id] = {f.count, f.count};
      write_batch(rejected, now);
      // Ids the frame's reply names elsewhere (an idempotency key) need no record.
      auto& c = open_[f.first_id];
      c.open -= std::min<uint32_t>(c.open, uint32_t(no_record.size()));
      if (c.open != f.count) touched_.push_back(f.first_id);  // else the row says it already
      close_frames();
    }
    set_next_->bind(1, int64_t(next_id)).run();
    if (over_bounds()) compact();
  });
}

void journal::finished(const std::vector<batch>& batches) {
  if (batches.empty()) return;
  in_transaction([&] {
    auto now = unix_ms_now();
    for (auto& b : batches) write_batch(b, now);
    close_frames();
    if (over_bounds()) compact();
  });
}

std::optional<journal::stored_record> journal::record_of(task_id id) {
  auto w = where_.find(id);
  if (w == where_.end()) return std::nullopt;
  find_record_->bind(1, w->second);
  if (!find_record_->row()) return std::nullopt;
  stored_record r{w->second, find_record_->blob(0), find_record_->blob(1)};
  find_record_->done();
  return r;
}

}  // namespace troupe
