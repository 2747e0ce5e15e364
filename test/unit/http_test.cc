#include "common/swar.h"
#include "gtest/gtest.h"
#include "http/header_map.h"
#include "http/path_utility.h"
#include "http/utility.h"
#include "http/http1/chars.h"

#include <random>
#include <set>
#include <string>

namespace legate::http {
namespace {

TEST(HeaderMapTest, LowerCasesKeepsOrderAndPseudoHeadersFirst) {
  HeaderMap h;
  h.add("Content-Type", "text/plain");
  h.add(":path", "/x");
  h.add("X-A", "1");
  h.add("x-a", "2");
  h.add(":method", "GET");
  ASSERT_EQ(h.size(), 5u);
  EXPECT_EQ(h.entries()[0].first, ":path");
  EXPECT_EQ(h.entries()[1].first, ":method");
  EXPECT_EQ(h.entries()[2].first, "content-type");
  EXPECT_EQ(h.getAll("x-a"), (std::vector<std::string_view>{"1", "2"}));
  EXPECT_EQ(h.path(), "/x");
  EXPECT_EQ(h.method(), "GET");
}

TEST(HeaderMapTest, SetRemoveAndByteSize) {
  HeaderMap h;
  h.add("a", "1");
  h.add("a", "22");
  h.add("b", "3");
  EXPECT_EQ(h.byteSize(), 1u + 1 + 1 + 2 + 1 + 1);
  h.set("A", "x");
  EXPECT_EQ(h.getAll("a"), (std::vector<std::string_view>{"x"}));
  EXPECT_EQ(h.byteSize(), 2u + 2);
  EXPECT_EQ(h.remove("b"), 1u);
  EXPECT_EQ(h.byteSize(), 2u);
  h.add("x-envoy-a", "1");
  h.add("x-envoy-b", "1");
  EXPECT_EQ(h.removePrefix("x-envoy-"), 2u);
  EXPECT_EQ(h.size(), 1u);
  h.set(":status", "204");
  EXPECT_EQ(h.status(), 204u);
  h.set(":status", "2x4");
  EXPECT_EQ(h.status(), 0u);
}

// status() looks among the pseudo-headers only, wherever :status sits among them,
// and reads the first one.
TEST(HeaderMapTest, StatusIsFoundAmongThePseudoHeaders) {
  HeaderMap h;
  EXPECT_EQ(h.status(), 0u);
  h.add("server", "x");
  h.add(":protocol", "websocket");
  EXPECT_EQ(h.status(), 0u);
  h.add(":status", "101");
  h.add(":status", "200");
  EXPECT_EQ(h.entries()[1].first, ":status");
  EXPECT_EQ(h.status(), 101u);
  EXPECT_EQ(h.remove(":protocol"), 1u);
  EXPECT_EQ(h.status(), 101u);
  EXPECT_EQ(h.remove(":status"), 2u);
  EXPECT_EQ(h.status(), 0u);
  h.add(":status", "1000");
  EXPECT_EQ(h.status(), 0u); // not three digits
}

// set() keeps the first occurrence's position, drops later duplicates (pseudo
// ones too), and views taken before a set or copy stay valid.
TEST(HeaderMapTest, SetKeepsPositionDropsDuplicatesAndCopiesAreIndependent) {
  HeaderMap h;
  h.add("x", "1");
  h.add(":path", "/a");
  h.add("Dup", "1");
  h.add("y", "2");
  h.add("dup", "2");
  h.add(":path", "/b");
  h.add("DUP", "3");
  const std::string_view old_y = *h.get("y");
  h.set("dUp", "only");
  h.set(":PATH", "/c");
  std::vector<std::string> order;
  for (const auto& e : h.entries()) order.push_back(std::string(e.first) + "=" + std::string(e.second));
  EXPECT_EQ(order, (std::vector<std::string>{":path=/c", "x=1", "dup=only", "y=2"}));
  EXPECT_EQ(h.byteSize(), 5u + 2 + 1 + 1 + 3 + 4 + 1 + 1);
  EXPECT_EQ(old_y, "2");
  // A long name (past the stack buffer) folds the same way.
  const std::string long_name(100, 'N');
  h.set(long_name, "v");
  EXPECT_EQ(h.get(std::string(100, 'n')).value_or(""), "v");
  // Either side of the stack buffer's 64 bytes, a second set() in another case
  // replaces the first, and setWireSafe() under the folded name replaces it too.
  for (size_t len : {63u, 64u, 65u}) {
    HeaderMap m;
    m.set(std::string(len, 'K'), "first");
    m.set(std::string(len - 1, 'k') + "K", "second");
    EXPECT_EQ(m.size(), 1u) << len;
    EXPECT_EQ(m.get(std::string(len, 'k')).value_or(""), "second") << len;
    m.setWireSafe(std::string(len, 'k'), "third");
    EXPECT_EQ(m.size(), 1u) << len;
    EXPECT_EQ(m.get(std::string(len, 'k')).value_or(""), "third") << len;
  }
  HeaderMap copy = h;
  HeaderMap moved = std::move(copy);
  h.set("x", "changed");
  EXPECT_EQ(moved.get("x").value_or(""), "1");
  EXPECT_EQ(moved.size(), 5u);
  EXPECT_TRUE(copy.empty()); // NOLINT(bugprone-use-after-move): moved-from is empty
  copy.add("z", "1");
  EXPECT_EQ(copy.get("z").value_or(""), "1");
  h.clear();
  EXPECT_TRUE(h.empty());
  EXPECT_EQ(h.byteSize(), 0u);
  h.add("after", "clear");
  EXPECT_EQ(h.get("after").value_or(""), "clear");
}

// A map starts in one small allocation (entries and bytes together) and spills
// entries and bytes to larger ones as it grows: every entry, in order, with
// pseudo-headers first, must survive each spill, a clear and reuse, a copy, and
// a move (views into a moved map stay valid).
TEST(HeaderMapTest, EntriesAndBytesSurviveGrowthPastTheFirstAllocation) {
  HeaderMap h;
  for (int round = 0; round < 2; ++round) {
    h.clear(); // the second round reuses the map
    std::vector<std::pair<std::string, std::string>> pseudo;
    std::vector<std::pair<std::string, std::string>> regular;
    for (int i = 0; i < 100; ++i) {
      // Values from empty to ~600 bytes, so the bytes spill more than once.
      const std::string value(static_cast<size_t>((i * 37) % 601), static_cast<char>('a' + i % 26));
      if (i % 9 == 4) {
        const std::string name = ":P" + std::to_string(i);
        h.add(name, value);
        pseudo.emplace_back(":p" + std::to_string(i), value);
      } else {
        const std::string name = "Name-" + std::to_string(i);
        h.add(name, value);
        regular.emplace_back("name-" + std::to_string(i), value);
      }
      std::vector<std::pair<std::string, std::string>> expected = pseudo;
      expected.insert(expected.end(), regular.begin(), regular.end());
      std::vector<std::pair<std::string, std::string>> got;
      for (const auto& e : h.entries()) got.emplace_back(e.first, e.second);
      ASSERT_EQ(got, expected) << "round " << round << " after " << i + 1 << " adds";
    }
    const std::string_view first_value = h.entries()[0].second;
    const std::string_view last_value = h.entries()[h.size() - 1].second;
    HeaderMap copy = h;
    EXPECT_TRUE(copy == h);
    HeaderMap moved = std::move(copy);
    EXPECT_TRUE(moved == h);
    HeaderMap moved_again = std::move(h);
    EXPECT_EQ(moved_again.entries()[0].second.data(), first_value.data()); // the bytes moved along
    EXPECT_EQ(moved_again.entries()[moved_again.size() - 1].second, last_value);
    EXPECT_TRUE(moved_again == moved);
    h = std::move(moved_again);
    EXPECT_EQ(h.remove("name-99"), 1u);
    h.set(":p4", "one");
    EXPECT_EQ(h.entries()[0].first, ":p4");
    EXPECT_EQ(h.entries()[0].second, "one");
    EXPECT_EQ(h.size(), 99u);
  }
}

// The name-class bits answer absent names early; every answer must still match a
// plain scan, through adds, removes (stale bits), sets, copies, moves and clear.
TEST(HeaderMapTest, LookupsAgreeWithAScanThroughChurn) {
  std::mt19937 rng(3);
  std::vector<std::string> names;
  for (int i = 0; i < 200; ++i) names.push_back("h" + std::to_string(i) + std::string(rng() % 5, 'x'));
  HeaderMap h;
  std::vector<std::pair<std::string, std::string>> model;
  for (int step = 0; step < 5000; ++step) {
    const std::string& n = names[rng() % names.size()];
    switch (rng() % 6) {
    case 0: case 1:
      h.add(n, std::to_string(step));
      model.emplace_back(n, std::to_string(step));
      break;
    case 2: {
      size_t removed = 0;
      for (auto it = model.begin(); it != model.end();) {
        if (it->first == n) { it = model.erase(it); ++removed; } else { ++it; }
      }
      ASSERT_EQ(h.remove(n), removed);
      break;
    }
    case 3: {
      h.set(n, "s");
      bool seen = false;
      for (auto it = model.begin(); it != model.end();) {
        if (it->first != n) { ++it; continue; }
        if (!seen) { it->second = "s"; seen = true; ++it; } else { it = model.erase(it); }
      }
      if (!seen) model.emplace_back(n, "s");
      break;
    }
    case 4:
      if (rng() % 50 == 0) {
        h.clear();
        model.clear();
      } else if (rng() % 20 == 0) {
        HeaderMap copy = h;
        h = std::move(copy);
      }
      break;
    default: break;
    }
    const std::string& q = names[rng() % names.size()];
    std::optional<std::string_view> expected;
    for (const auto& [k, v] : model) {
      if (k == q) { expected = v; break; }
    }
    ASSERT_EQ(h.get(q), expected) << "step " << step << " name " << q;
    ASSERT_EQ(h.size(), model.size());
  }
}

char lowerByte(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

// The eight-bytes-at-a-time paths against plain byte loops, over every byte value
// in every position of strings of every length up to 40.
TEST(HeaderMapTest, WordAtATimeCaseFoldingMatchesByteReference) {
  std::mt19937 rng(11);
  for (size_t len = 0; len <= 40; ++len) {
    for (int trial = 0; trial < 300; ++trial) {
      std::string s(len, 'x');
      for (char& c : s) c = static_cast<char>(rng() % 256);
      std::string expected = s;
      for (char& c : expected) c = lowerByte(c);
      std::string lowered = s;
      toLowerInPlace(lowered);
      ASSERT_EQ(lowered, expected);
      // The copying path: a name stored by the map.
      HeaderMap h;
      h.add(s, "v");
      ASSERT_EQ(h.entries()[0].first, expected);
      EXPECT_TRUE(equalsIgnoreCase(s, expected));
      EXPECT_TRUE(equalsIgnoreCase(expected, s));
      EXPECT_TRUE(equalsLower(s, expected));
      if (len > 0) {
        // One byte changed so that it differs even after folding.
        std::string other = s;
        const size_t at = rng() % len;
        other[at] = static_cast<char>(lowerByte(other[at]) == 'q' ? 'r' : 'q');
        if (lowerByte(s[at]) != lowerByte(other[at])) {
          EXPECT_FALSE(equalsIgnoreCase(s, other));
          std::string other_lower = other;
          toLowerInPlace(other_lower);
          EXPECT_FALSE(equalsLower(s, other_lower));
        }
      }
    }
  }
  // Every byte value alone, at every offset of strings whose last word
  // overlaps the one before (5, 11) or does not (4, 16).
  for (size_t len : {4u, 5u, 11u, 16u}) {
    for (int b = 0; b < 256; ++b) {
      for (size_t at = 0; at < len; ++at) {
        std::string s(len, '-');
        s[at] = static_cast<char>(b);
        std::string lowered = s;
        toLowerInPlace(lowered);
        EXPECT_EQ(lowered[at], lowerByte(static_cast<char>(b))) << b << " at " << at << " of " << len;
        EXPECT_EQ(lowered.substr(0, at) + lowered.substr(at + 1), std::string(len - 1, '-'));
      }
    }
  }
  EXPECT_FALSE(equalsIgnoreCase("Content-Type", "content-typ"));
  EXPECT_TRUE(equalsIgnoreCase("X-ReQuEsT-Id", "x-request-id"));
}

// swar::loadPartial builds a short word from overlapping loads and single bytes;
// it must equal a zero-filled copy of the same bytes for every length under 8.
TEST(HeaderMapTest, PartialLoadsMatchZeroFilledCopies) {
  std::mt19937 rng(5);
  for (size_t n = 0; n < 8; ++n) {
    for (int trial = 0; trial < 200; ++trial) {
      char bytes[8];
      for (char& c : bytes) c = static_cast<char>(rng() % 256);
      uint64_t expected = 0;
      std::memcpy(&expected, bytes, n);
      ASSERT_EQ(swar::loadPartial(bytes, n), expected) << "n " << n;
    }
  }
}

// swar::copyBytes copies short strings with overlapping words: every length up
// to 40 must land exactly, and nothing outside [out, out + n) may be written.
TEST(HeaderMapTest, ShortCopiesWriteExactlyTheirBytes) {
  std::mt19937 rng(7);
  for (size_t n = 0; n <= 40; ++n) {
    char in[40];
    for (char& c : in) c = static_cast<char>(rng() % 256);
    char out[56];
    std::memset(out, '#', sizeof(out));
    swar::copyBytes(out + 8, in, n);
    for (size_t i = 0; i < sizeof(out); ++i) {
      const char want = (i >= 8 && i < 8 + n) ? in[i - 8] : '#';
      ASSERT_EQ(out[i], want) << "n " << n << " byte " << i;
    }
  }
}

TEST(HeaderMapTest, FieldValueCheckMatchesByteReference) {
  auto reference = [](std::string_view s) {
    for (unsigned char c : s) {
      if (!((c >= 0x20 && c != 0x7f) || c == '\t')) return false;
    }
    return true;
  };
  for (int b = 0; b < 256; ++b) {
    for (size_t len = 1; len <= 24; ++len) {
      for (size_t at = 0; at < len; ++at) {
        std::string s(len, 'v');
        s[at] = static_cast<char>(b);
        ASSERT_EQ(http1::isFieldValue(s), reference(s)) << "byte " << b << " at " << at << "/" << len;
      }
    }
  }
  std::mt19937 rng(5);
  for (int trial = 0; trial < 20000; ++trial) {
    std::string s(rng() % 40, ' ');
    // Mostly printable, sometimes a control byte, DEL or obs-text.
    for (char& c : s) c = static_cast<char>(rng() % 10 == 0 ? rng() % 256 : 0x20 + rng() % 95);
    ASSERT_EQ(http1::isFieldValue(s), reference(s));
  }
}

TEST(PathTest, NormalizeRemovesDotSegmentsAndDecodesUnreserved) {
  EXPECT_EQ(path::normalize("/a/./b/../c"), "/a/c");
  EXPECT_EQ(path::normalize("/../../x"), "/x");
  EXPECT_EQ(path::normalize("/a/b/.."), "/a/");
  EXPECT_EQ(path::normalize("/%61%62c?q=/../x"), "/abc?q=/../x") << "query untouched";
  EXPECT_EQ(path::normalize("/a%2fb"), "/a%2Fb") << "reserved stays encoded, hex upper-cased";
  EXPECT_EQ(path::normalize("/%2e%2e/secret"), "/secret") << "encoded dots are dots";
  EXPECT_FALSE(path::normalize("a/b").has_value());
  EXPECT_FALSE(path::normalize("/a%zz").has_value());
  EXPECT_FALSE(path::normalize("/a%2").has_value());
}

// isNormal() is normalize()'s fast path: whenever it says a path is normal,
// normalize() must agree (return it unchanged). Random paths over the
// characters that matter ('/', '.', '%', hex, '?', NUL), and the edges by hand.
TEST(PathTest, IsNormalExactlyWhenNormalizeChangesNothing) {
  EXPECT_TRUE(path::isNormal("/"));
  EXPECT_TRUE(path::isNormal("/a/b.c/.d/..e/?x=/../%zz"));
  EXPECT_TRUE(path::isNormal("//a//"));
  EXPECT_FALSE(path::isNormal("/a/."));
  EXPECT_FALSE(path::isNormal("/a/../b"));
  EXPECT_FALSE(path::isNormal("/./"));
  EXPECT_FALSE(path::isNormal("/a%41"));
  EXPECT_FALSE(path::isNormal("a/b"));
  EXPECT_FALSE(path::isNormal(std::string_view("/a\0b", 4)));
  const char alphabet[] = {'/', '.', '%', '4', '1', 'a', '?', '\0', 'F'};
  std::mt19937 rng(11);
  for (int trial = 0; trial < 50000; ++trial) {
    std::string s = "/";
    const size_t len = rng() % 12;
    for (size_t i = 0; i < len; ++i) s += alphabet[rng() % sizeof(alphabet)];
    const auto n = path::normalize(s);
    const bool unchanged = n.has_value() && *n == s;
    if (path::isNormal(s)) {
      ASSERT_TRUE(unchanged) << "isNormal but normalize changes: " << s;
    } else {
      // Only a '%', a NUL or a dot segment sends a path down the slow way.
      const std::string_view part = std::string_view(s).substr(0, s.find('?'));
      ASSERT_TRUE(part.find('%') != std::string_view::npos ||
                  part.find('\0') != std::string_view::npos || !unchanged)
          << "not isNormal, yet nothing to do: " << s;
    }
  }
}

TEST(PathTest, MergeSlashesAndEscapedSlashes) {
  EXPECT_EQ(path::mergeSlashes("//a///b/?x=//"), "/a/b/?x=//");
  EXPECT_TRUE(path::hasSlashRuns("/a//b"));
  EXPECT_FALSE(path::hasSlashRuns("/a/b?x=//"));
  EXPECT_TRUE(path::hasEscapedSlashes("/a%2Fb"));
  EXPECT_TRUE(path::hasEscapedSlashes("/a%5cb"));
  EXPECT_FALSE(path::hasEscapedSlashes("/a?x=%2F"));
  EXPECT_EQ(path::unescapeSlashes("/a%2fb%5Cc"), "/a/b\\c");
}

TEST(UtilityTest, XffAndInternalAddresses) {
  HeaderMap h;
  utility::appendXff(h, "10.0.0.1");
  utility::appendXff(h, "127.0.0.1");
  EXPECT_EQ(h.get("x-forwarded-for"), "10.0.0.1, 127.0.0.1");
  EXPECT_EQ(utility::clientFromXff(h, 0), "127.0.0.1");
  EXPECT_EQ(utility::clientFromXff(h, 1), "10.0.0.1");
  EXPECT_FALSE(utility::clientFromXff(h, 2).has_value());
  EXPECT_TRUE(utility::isInternalIp("192.168.1.1"));
  EXPECT_TRUE(utility::isInternalIp("::1"));
  EXPECT_FALSE(utility::isInternalIp("8.8.8.8"));
}

// 2000 ids: all distinct, and every free hex position takes all 16 digits (a
// nibble-order or formatting slip would pin or skip some).
TEST(UtilityTest, UuidsAreDistinctAndUseEveryDigitEverywhere) {
  std::set<std::string> seen;
  std::vector<std::set<char>> digits(36);
  for (int i = 0; i < 2000; ++i) {
    char id[utility::kUuidLength];
    utility::makeUuid(id);
    const std::string s(id, sizeof(id));
    EXPECT_TRUE(seen.insert(s).second) << s;
    for (size_t p = 0; p < s.size(); ++p) digits[p].insert(s[p]);
  }
  for (size_t p = 0; p < 36; ++p) {
    if (p == 8 || p == 13 || p == 18 || p == 23) {
      EXPECT_EQ(digits[p], std::set<char>{'-'});
    } else if (p == 14) {
      EXPECT_EQ(digits[p], std::set<char>{'4'});
    } else if (p == 19) {
      EXPECT_EQ(digits[p], (std::set<char>{'8', '9', 'a', 'b'}));
    } else {
      EXPECT_EQ(digits[p].size(), 16u) << "position " << p;
    }
  }
}

TEST(UtilityTest, UuidIsVersion4) {
  const std::string a = utility::makeUuid();
  const std::string b = utility::makeUuid();
  EXPECT_EQ(a.size(), 36u);
  for (size_t i = 0; i < a.size(); ++i) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      EXPECT_EQ(a[i], '-') << a;
    } else {
      EXPECT_TRUE((a[i] >= '0' && a[i] <= '9') || (a[i] >= 'a' && a[i] <= 'f')) << a;
    }
  }
  EXPECT_EQ(a[14], '4');
  EXPECT_TRUE(a[19] == '8' || a[19] == '9' || a[19] == 'a' || a[19] == 'b');
  EXPECT_NE(a, b);
}

} // namespace
} // namespace legate::http
