#include <vector>

#include "common/intrusive_list.h"
#include "gtest/gtest.h"

namespace legate {
namespace {

struct Item : IntrusiveList<Item>::Hook {
  explicit Item(int v) : value(v) {}
  int value;
};

std::vector<int> values(IntrusiveList<Item>& list) {
  std::vector<int> out;
  list.forEach([&](Item& i) { out.push_back(i.value); });
  return out;
}

TEST(IntrusiveListTest, PushRemoveAndWalkInOrder) {
  static_assert(sizeof(IntrusiveList<Item>) == sizeof(void*));
  IntrusiveList<Item> list;
  Item a(1), b(2), c(3), d(0);
  EXPECT_TRUE(list.empty());
  EXPECT_EQ(list.back(), nullptr);
  list.pushBack(a);
  EXPECT_TRUE(list.single());
  EXPECT_TRUE(a.linked());
  list.pushBack(b);
  list.pushBack(c);
  list.pushFront(d);
  EXPECT_FALSE(list.single());
  EXPECT_EQ(values(list), (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(list.front(), &d);
  EXPECT_EQ(list.back(), &c);
  list.remove(d); // the head
  EXPECT_EQ(values(list), (std::vector<int>{1, 2, 3}));
  list.remove(c); // the tail
  EXPECT_EQ(list.back(), &b);
  list.remove(a);
  EXPECT_TRUE(list.single());
  EXPECT_FALSE(a.linked());
  list.remove(b);
  EXPECT_TRUE(list.empty());
  EXPECT_EQ(values(list), std::vector<int>{});
  list.pushBack(c); // an element can be linked again once removed
  EXPECT_EQ(values(list), std::vector<int>{3});
  list.remove(c);
}

TEST(IntrusiveListTest, ForEachMayRemoveTheElementItIsGiven) {
  IntrusiveList<Item> list;
  std::vector<Item> items;
  items.reserve(6);
  for (int i = 0; i < 6; ++i) items.emplace_back(i);
  for (auto& i : items) list.pushBack(i);
  std::vector<int> seen;
  list.forEach([&](Item& i) {
    seen.push_back(i.value);
    if (i.value % 2 == 0) list.remove(i); // the head first, then others
  });
  EXPECT_EQ(seen, (std::vector<int>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(values(list), (std::vector<int>{1, 3, 5}));
  list.forEach([&](Item& i) { list.remove(i); });
  EXPECT_TRUE(list.empty());
}

} // namespace
} // namespace legate
