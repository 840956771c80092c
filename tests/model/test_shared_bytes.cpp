#include <gtest/gtest.h>

#include "troupe/model/shared_bytes.hpp"

namespace troupe {
namespace {

TEST(SharedBytes, ACopySharesTheBufferAndKeepsItAlive) {
  shared_bytes copy;
  const uint8_t* where = nullptr;
  {
    shared_bytes first(std::vector<uint8_t>(1000, 7));
    where = first.data();
    copy = first;
    EXPECT_TRUE(copy.shares_buffer_with(first));
  }
  EXPECT_EQ(copy.data(), where);
  EXPECT_EQ(copy.size(), 1000u);
  EXPECT_EQ(copy[999], 7);
}

TEST(SharedBytes, AVectorMovedInIsNotCopied) {
  std::vector<uint8_t> v(4096, 1);
  auto* where = v.data();
  shared_bytes b(std::move(v));
  EXPECT_EQ(b.data(), where);
}

TEST(SharedBytes, AssigningNewBytesLeavesOtherCopiesAsTheyWere) {
  shared_bytes a{1, 2, 3};
  auto b = a;
  b.assign(2, 9);
  EXPECT_EQ(a, (std::vector<uint8_t>{1, 2, 3}));
  EXPECT_EQ(b, (std::vector<uint8_t>{9, 9}));
  b.clear();
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(a.size(), 3u);
}

TEST(SharedBytes, EqualBytesInDifferentBuffersAreEqualButNotShared) {
  shared_bytes a{1, 2, 3}, b{1, 2, 3}, c{1, 2};
  EXPECT_EQ(a, b);
  EXPECT_FALSE(a.shares_buffer_with(b));
  EXPECT_NE(a, c);
  EXPECT_FALSE(shared_bytes{}.shares_buffer_with(shared_bytes{}));
  EXPECT_EQ(shared_bytes{}, shared_bytes{});
}

TEST(SharedBytes, BytesOfAnOwnerLiveAsLongAsTheOwner) {
  auto frame = std::make_shared<std::string>("header:body");
  std::weak_ptr<std::string> watch = frame;
  shared_bytes body(frame, reinterpret_cast<const uint8_t*>(frame->data()) + 7, 4);
  frame.reset();
  ASSERT_FALSE(watch.expired());
  EXPECT_EQ(body.to_string(), "body");
  body.clear();
  EXPECT_TRUE(watch.expired());
}

}  // namespace
}  // namespace troupe
