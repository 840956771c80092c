#include <gtest/gtest.h>

#include "troupe/model/registry.hpp"

using namespace troupe;

TEST(TaskRegistry, RejectsDuplicateEmptyAndImplementationlessKinds) {
  task_registry r;
  auto impl = [](const task_context&) { return task_output{}; };
  r.add({"mine", nullptr, impl, nullptr});
  EXPECT_THROW(r.add({"mine", nullptr, impl, nullptr}), std::invalid_argument);
  EXPECT_THROW(r.add({"", nullptr, impl, nullptr}), std::invalid_argument);
  EXPECT_THROW(r.add({"empty", nullptr, nullptr, nullptr}), std::invalid_argument);
  EXPECT_EQ(r.kinds(), std::vector<std::string>{"mine"});
}

TEST(TaskRegistry, EntriesStayValidWhileMoreKindsAreAdded) {
  task_registry r;
  auto impl = [](const task_context&) { return task_output{}; };
  r.add({"first", nullptr, impl, nullptr});
  auto* first = r.find("first");
  for (int i = 0; i < 100; ++i) r.add({"k" + std::to_string(i), nullptr, impl, nullptr});
  EXPECT_EQ(r.find("first"), first);
  EXPECT_EQ(first->def.name, "first");
}
