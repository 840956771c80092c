// The head's journal on its own: what a new incarnation starts from after tasks were accepted,
// finished, or neither; ids that never repeat; compaction; a file that cannot be used; and the
// queue that runs it on a thread of its own.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <algorithm>
#include <condition_variable>
#include <filesystem>
#include <memory>
#include <mutex>

#include "journal.hpp"
#include "journal_queue.hpp"

using namespace troupe;

namespace {

struct JournalFile : testing::Test {
  std::string path;
  void SetUp() override {
    auto dir = std::filesystem::temp_directory_path() /
               ("troupe-journal-" + std::to_string(::getpid()) + "-" +
                testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    path = (dir / "head.journal").string();
  }
  void TearDown() override {
    std::filesystem::remove_all(std::filesystem::path{path}.parent_path());
  }
  journal_options options() const {
    journal_options o;
    o.path = path;
    return o;
  }
};

/// Bodies live as long as the test (the journal reads them during the call).
std::string_view kept(std::string s) {
  static std::vector<std::unique_ptr<std::string>> all;
  all.push_back(std::make_unique<std::string>(std::move(s)));
  return *all.back();
}

/// A submit frame of `count` tasks from `first`, by client-a.
journal::frame submit_frame(task_id first, uint32_t count, uint64_t token = 0,
                            std::string owner = "client-a") {
  journal::frame f;
  f.owner = std::move(owner);
  f.token = token;
  f.first_id = first;
  f.count = count;
  f.received_unix_ms = 1000;
  f.body = kept("body-from-" + std::to_string(first));
  return f;
}

std::optional<std::string> body_of(journal& j, task_id id) {
  auto r = j.record_of(id);
  return r ? std::optional<std::string>{r->body} : std::nullopt;
}

journal::batch records(std::vector<task_id> ids, std::string body, std::string owner = "client-a") {
  return {kept(std::move(body)), std::move(ids), kept(std::move(owner))};
}

}  // namespace

TEST_F(JournalFile, AFreshFileStartsAtIdOneWithNothingToResume) {
  journal j{options()};
  auto s = j.start(5);
  EXPECT_EQ(s.incarnation, 5u);
  EXPECT_EQ(s.next_id, 1u);
  EXPECT_TRUE(s.open.empty());
  EXPECT_EQ(s.records, 0u);
}

TEST_F(JournalFile, ARestartResumesWhatHasNoTerminalRecordAndKeepsWhatFinished) {
  {
    journal j{options()};
    j.start(1);
    auto f = submit_frame(1, 4, 77);
    f.body = kept("four tasks");
    j.accepted(f, records({4}, "rejected-4"), {}, 5);
    auto g = submit_frame(5, 2, 0, "client-b");
    g.body = kept("two tasks");
    j.accepted(g, {}, {}, 7);
    j.finished({records({2, 5}, "records-2-5")});
  }  // as after a kill -9: nothing else is written on the way out
  journal j{options()};
  auto s = j.start(1);
  ASSERT_EQ(s.open.size(), 2u);
  EXPECT_EQ(s.open[0].first_id, 1u);
  EXPECT_EQ(s.open[0].body, "four tasks");
  EXPECT_EQ(s.open[0].owner, "client-a");
  EXPECT_EQ(s.open[0].received_unix_ms, 1000);
  auto finished = s.open[0].finished;
  std::sort(finished.begin(), finished.end());
  EXPECT_EQ(finished, (std::vector<task_id>{2, 4}));  // 1 and 3 run again
  EXPECT_EQ(s.open[1].owner, "client-b");
  EXPECT_EQ(s.open[1].finished, (std::vector<task_id>{5}));  // 6 runs again
  EXPECT_EQ(s.next_id, 7u);
  EXPECT_EQ(s.records, 3u);  // 4 rejected at the door, 2 and 5
  EXPECT_EQ(body_of(j, 2), std::optional<std::string>{"records-2-5"});
  EXPECT_EQ(body_of(j, 5), std::optional<std::string>{"records-2-5"});
  EXPECT_EQ(body_of(j, 4), std::optional<std::string>{"rejected-4"});
  EXPECT_FALSE(j.record_of(1));
  ASSERT_EQ(s.tokens.size(), 1u);
  EXPECT_EQ(s.tokens[0].token, 77u);
  EXPECT_EQ(s.tokens[0].ids, (std::vector<task_id>{1, 2, 3, 4}));
}

TEST_F(JournalFile, AFrameWhoseTasksAllEndedIsNotResumed) {
  {
    journal j{options()};
    j.start(1);
    j.accepted(submit_frame(1, 3), {}, {}, 4);
    j.finished({records({1, 3}, "a")});
    j.finished({records({2}, "b")});
  }
  journal j{options()};
  EXPECT_TRUE(j.start(1).open.empty());
}

TEST_F(JournalFile, AnIdThatNeedsNoRecordIsNotResumedAndTheRepliedIdsAreKept) {
  {
    journal j{options()};
    j.start(1);
    auto f = submit_frame(10, 2, 5);
    f.reply = {3, 11};  // task 10's key named task 3
    j.accepted(f, {}, {10}, 12);
  }
  journal j{options()};
  auto s = j.start(1);
  ASSERT_EQ(s.open.size(), 1u);
  EXPECT_EQ(s.open[0].finished, (std::vector<task_id>{10}));
  ASSERT_EQ(s.tokens.size(), 1u);
  EXPECT_EQ(s.tokens[0].ids, (std::vector<task_id>{3, 11}));
  EXPECT_FALSE(j.record_of(10));
}

TEST_F(JournalFile, EachStartIsANewGreaterIncarnationAndIdsNeverRepeat) {
  uint64_t last = 0;
  task_id next = 1;
  for (int run = 0; run < 4; ++run) {
    journal j{options()};
    auto s = j.start(0);
    EXPECT_GT(s.incarnation, last);
    EXPECT_GE(s.next_id, next);
    last = s.incarnation;
    // Ids handed out, all rejected at the door, still count.
    j.accepted(submit_frame(s.next_id, 10), records({s.next_id}, "r"), {}, s.next_id + 10);
    next = s.next_id + 10;
  }
  journal j{options()};
  EXPECT_EQ(j.start(0).next_id, next);
}

TEST_F(JournalFile, ATerminalRecordIsWrittenOnceAndASecondIsIgnored) {
  journal j{options()};
  j.start(1);
  j.accepted(submit_frame(1, 1), {}, {}, 2);
  j.finished({records({1}, "first")});
  j.finished({records({1}, "second")});
  EXPECT_EQ(body_of(j, 1), std::optional<std::string>{"first"});
}

TEST_F(JournalFile, CompactionKeepsTheNewestResultsUpToTheBound) {
  auto o = options();
  o.keep_results = 10;
  {
    journal j{o};
    j.start(1);
    j.accepted(submit_frame(1, 50), {}, {}, 51);
    for (task_id id = 1; id <= 50; ++id) j.finished({records({id}, "r" + std::to_string(id))});
  }
  journal j{o};
  auto s = j.start(1);
  EXPECT_EQ(s.records, 10u);
  EXPECT_EQ(s.dropped, 40u);
  EXPECT_FALSE(j.record_of(40));
  EXPECT_EQ(body_of(j, 41), std::optional<std::string>{"r41"});
  EXPECT_EQ(s.next_id, 51u);  // dropped records do not give their ids back
  EXPECT_TRUE(s.open.empty());
}

TEST_F(JournalFile, RecordsOfAFrameWithAnOpenTaskAreNotForgottenByCompaction) {
  auto o = options();
  o.keep_results = 2;
  {
    journal j{o};
    j.start(1);
    j.accepted(submit_frame(1, 10), {}, {}, 11);
    for (task_id id = 1; id <= 9; ++id) j.finished({records({id}, "r")});
  }
  journal j{o};
  auto s = j.start(1);
  ASSERT_EQ(s.open.size(), 1u);
  EXPECT_EQ(s.open[0].finished.size(), 9u) << "only task 10 runs again";
}

TEST_F(JournalFile, AFileThatCannotBeOpenedIsAnErrorNamingIt) {
  auto o = options();
  o.path = "/nonexistent-dir/troupe/head.journal";
  try {
    journal j{o};
    FAIL() << "opened " << o.path;
  } catch (const journal_error& e) {
    EXPECT_NE(std::string{e.what()}.find(o.path), std::string::npos) << e.what();
  }
}

TEST_F(JournalFile, AJournalOfAnotherLayoutIsRefusedNamingTheFile) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_exec(db, "CREATE TABLE tasks(id INTEGER PRIMARY KEY)", nullptr, nullptr, nullptr);
  sqlite3_close(db);
  try {
    journal j{options()};
    FAIL() << "opened a journal of another layout";
  } catch (const journal_error& e) {
    std::string what = e.what();
    EXPECT_NE(what.find(path), std::string::npos) << what;
    EXPECT_NE(what.find("another version"), std::string::npos) << what;
  }
}

TEST_F(JournalFile, ARecordKeepsItsOwnerAcrossARestart) {
  {
    journal j{options()};
    j.start(1);
    j.accepted(submit_frame(1, 2, 0, "key-a\nconn-1"), {}, {}, 3);
    j.finished({records({1}, "one", "key-a\nconn-1"), records({2}, "two", "key-b\nconn-2")});
  }
  journal j{options()};
  j.start(1);
  EXPECT_EQ(j.record_of(1)->owner, "key-a\nconn-1");
  EXPECT_EQ(j.record_of(2)->owner, "key-b\nconn-2");
}

// Layout 2 (before batches had owners) is upgraded in place: its records read back, ownerless.
TEST_F(JournalFile, AJournalOfTheLayoutBeforeIsUpgradedInPlace) {
  {
    journal j{options()};
    j.start(1);
    j.accepted(submit_frame(1, 1), {}, {}, 2);
    j.finished({records({1}, "one")});
  }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  // What layout 2 wrote: the same tables, batches without the owner column.
  for (auto sql :
       {"CREATE TABLE b2 AS SELECT batch, body, records, at_ms, ids, max_id FROM batches",
        "DROP TABLE batches", "ALTER TABLE b2 RENAME TO batches", "PRAGMA user_version = 2"})
    ASSERT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, nullptr), SQLITE_OK) << sql;
  sqlite3_close(db);
  journal j{options()};
  auto s = j.start(1);
  EXPECT_EQ(s.records, 1u);
  ASSERT_TRUE(j.record_of(1));
  EXPECT_EQ(j.record_of(1)->body, "one");
  EXPECT_EQ(j.record_of(1)->owner, "");
}

// The journal on its own thread (journal_queue): the head's socket thread posts and goes on.

namespace {

/// A gate a job waits at until the test opens it (a journal commit stuck on a slow disk).
struct gate {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false, reached = false;
  void wait_here() {
    std::unique_lock<std::mutex> lock{mu};
    reached = true;
    cv.notify_all();
    cv.wait(lock, [&] { return open; });
  }
  bool wait_reached() {
    std::unique_lock<std::mutex> lock{mu};
    return cv.wait_for(lock, std::chrono::seconds(10), [&] { return reached; });
  }
  void release() {
    std::lock_guard<std::mutex> g{mu};
    open = true;
    cv.notify_all();
  }
};

}  // namespace

TEST_F(JournalFile, QueuedJobsRunInOrderAndEachSeesTheWritesBeforeIt) {
  auto j = std::make_unique<journal>(options());
  j->start(1);
  journal_queue q{std::move(j), 1 << 20};
  std::vector<std::string> seen;  // written by the queue's thread only, read after stop()
  q.post([](journal& jn) { jn.accepted(submit_frame(1, 2), {}, {}, 3); }, 10);
  q.post([](journal& jn) { jn.finished({records({1}, "record-1")}); }, 10);
  q.post([&](journal& jn) { seen.push_back(body_of(jn, 1).value_or("none")); }, 0);
  q.post([&](journal& jn) { seen.push_back(body_of(jn, 2).value_or("none")); }, 0);
  q.stop();
  EXPECT_EQ(seen, (std::vector<std::string>{"record-1", "none"}));
}

TEST_F(JournalFile, APosterIsNotHeldByASlowCommitAndSubmitsWaitPastTheBound) {
  auto j = std::make_unique<journal>(options());
  j->start(1);
  journal_queue q{std::move(j), 100};
  gate slow;
  int ran = 0;
  q.post([&](journal&) { slow.wait_here(); }, 60);
  ASSERT_TRUE(slow.wait_reached());  // the queue's thread is stuck in the first job
  // Posting does not wait for it: this thread (the socket thread) goes on.
  q.post([&](journal&) { ++ran; }, 30);
  EXPECT_EQ(q.queued_bytes(), 90u);
  EXPECT_TRUE(q.has_room(10));
  EXPECT_FALSE(q.has_room(11));  // a submit this big is refused as overloaded
  slow.release();
  q.stop();  // runs what is queued before it returns
  EXPECT_EQ(ran, 1);
  EXPECT_EQ(q.queued_bytes(), 0u);
  EXPECT_EQ(q.peak_bytes(), 90u);
}

TEST_F(JournalFile, AnEmptyQueueTakesAJobLargerThanTheBound) {
  auto j = std::make_unique<journal>(options());
  j->start(1);
  journal_queue q{std::move(j), 100};
  EXPECT_TRUE(q.has_room(1000));  // else a frame larger than the bound could never go in
}
