// The head's journal on its own: what a new incarnation starts from after tasks were accepted,
// finished, or neither; ids that never repeat; compaction; a file that cannot be used.
#include <gtest/gtest.h>

#include <filesystem>

#include "journal.hpp"

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

journal::task_row task(task_id id, std::string owner = "client-a") {
  return {id, std::move(owner), "spec-" + std::to_string(id), -1};
}

std::vector<task_id> ids_of(const std::vector<journal::task_row>& rows) {
  std::vector<task_id> ids;
  for (auto& r : rows) ids.push_back(r.id);
  return ids;
}

}  // namespace

TEST_F(JournalFile, AFreshFileStartsAtIdOneWithNothingToResume) {
  journal j{options()};
  auto s = j.start(5);
  EXPECT_EQ(s.incarnation, 5u);
  EXPECT_EQ(s.next_id, 1u);
  EXPECT_TRUE(s.unfinished.empty());
  EXPECT_EQ(s.finished, 0u);
}

TEST_F(JournalFile, ARestartResumesWhatHasNoTerminalRecordAndKeepsWhatFinished) {
  {
    journal j{options()};
    j.start(1);
    j.accepted({task(1), task(2), task(3, "client-b")}, {{4, "rejected-4"}},
               {"client-a", 77, {1, 2, 3, 4}}, 5);
    j.finished({{2, "record-2"}});
  }  // as after a kill -9: nothing else is written on the way out
  journal j{options()};
  auto s = j.start(1);
  EXPECT_EQ(ids_of(s.unfinished), (std::vector<task_id>{1, 3}));
  EXPECT_EQ(s.unfinished[1].owner, "client-b");
  EXPECT_EQ(s.unfinished[1].spec, "spec-3");
  EXPECT_EQ(s.next_id, 5u);
  EXPECT_EQ(s.finished, 2u);  // task 2, and 4 rejected at the door
  EXPECT_EQ(j.result_of(2), std::optional<std::string>{"record-2"});
  EXPECT_EQ(j.result_of(4), std::optional<std::string>{"rejected-4"});
  EXPECT_FALSE(j.result_of(1));
  EXPECT_TRUE(j.holds(1));
  EXPECT_FALSE(j.holds(99));
  ASSERT_EQ(s.submits.size(), 1u);
  EXPECT_EQ(s.submits[0].token, 77u);
  EXPECT_EQ(s.submits[0].ids, (std::vector<task_id>{1, 2, 3, 4}));
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
    // Ids handed out but never journalled as tasks (all rejected) still count.
    j.accepted({}, {{s.next_id, "r"}}, {"c", 0, {s.next_id}}, s.next_id + 10);
    next = s.next_id + 10;
  }
  journal j{options()};
  EXPECT_EQ(j.start(0).next_id, next);
}

TEST_F(JournalFile, ATerminalRecordIsWrittenOnceAndASecondIsIgnored) {
  journal j{options()};
  j.start(1);
  j.accepted({task(1)}, {}, {"client-a", 0, {1}}, 2);
  j.finished({{1, "first"}});
  j.finished({{1, "second"}});
  EXPECT_EQ(j.result_of(1), std::optional<std::string>{"first"});
  EXPECT_EQ(j.finished_count(), 1u);
}

TEST_F(JournalFile, CompactionKeepsTheNewestResultsUpToTheBound) {
  auto o = options();
  o.keep_results = 10;
  {
    journal j{o};
    j.start(1);
    std::vector<journal::task_row> rows;
    for (task_id id = 1; id <= 50; ++id) rows.push_back(task(id));
    j.accepted(rows, {}, {"client-a", 0, {}}, 51);
    for (task_id id = 1; id <= 50; ++id) j.finished({{id, "r" + std::to_string(id)}});
  }
  journal j{o};
  auto s = j.start(1);
  EXPECT_EQ(s.finished, 10u);
  EXPECT_EQ(s.dropped, 40u);
  EXPECT_FALSE(j.result_of(40));
  EXPECT_EQ(j.result_of(41), std::optional<std::string>{"r41"});
  EXPECT_EQ(s.next_id, 51u);  // dropped rows do not give their ids back
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
