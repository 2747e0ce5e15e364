// The YAML document tree (config/yaml_document.h): kinds, null rules, plain
// versus quoted scalars, positions, anchors, and syntax errors.

#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "config/yaml_document.h"

namespace legate::config {
namespace {

using ::testing::HasSubstr;

const YamlNode& valueOf(const YamlNode& map, const std::string& key) {
  for (const auto& [k, v] : map.entries()) {
    if (k->scalar() == key) return *v;
  }
  ADD_FAILURE() << "no key " << key;
  static const YamlDocument empty;
  return empty.root();
}

// Most tests parse into one document and read one error.
class YamlDocumentTest : public ::testing::Test {
protected:
  YamlDocument doc;
  YamlDocument::Error error;
};

TEST_F(YamlDocumentTest, KindsNullsAndPlainScalars) {
  ASSERT_TRUE(doc.parse("a: 5\nb: \"5\"\nc:\nd: ~\ne: null\nf: 'null'\ng: [x, {h: NULL}]\n"
                        "i: |\n  block\nj: !!str 7\n",
                        error))
      << error.message;
  const YamlNode& root = doc.root();
  ASSERT_TRUE(root.isMap());
  ASSERT_EQ(root.size(), 9u);
  EXPECT_EQ(valueOf(root, "a").scalar(), "5");
  EXPECT_TRUE(valueOf(root, "a").plain());
  EXPECT_EQ(valueOf(root, "b").scalar(), "5");
  EXPECT_FALSE(valueOf(root, "b").plain());
  EXPECT_TRUE(valueOf(root, "c").isNull());
  EXPECT_TRUE(valueOf(root, "d").isNull());
  EXPECT_TRUE(valueOf(root, "e").isNull());
  EXPECT_TRUE(valueOf(root, "f").isScalar()); // quoted: the string "null"
  EXPECT_EQ(valueOf(root, "f").scalar(), "null");
  const YamlNode& g = valueOf(root, "g");
  ASSERT_TRUE(g.isSequence());
  ASSERT_EQ(g.size(), 2u);
  EXPECT_EQ(g[0].scalar(), "x");
  ASSERT_TRUE(g[1].isMap());
  EXPECT_TRUE(valueOf(g[1], "h").isNull());
  EXPECT_EQ(valueOf(root, "i").scalar(), "block\n");
  EXPECT_FALSE(valueOf(root, "i").plain());
  EXPECT_FALSE(valueOf(root, "j").plain()); // an explicit tag
}

TEST_F(YamlDocumentTest, PositionsAreOneBased) {
  ASSERT_TRUE(doc.parse("top:\n  inner: [1, 22]\n", error)) << error.message;
  const YamlNode& root = doc.root();
  EXPECT_EQ(root.line(), 1u);
  EXPECT_EQ(root.column(), 1u);
  const YamlNode& top = valueOf(root, "top");
  EXPECT_EQ(top.line(), 2u); // a block map starts at its first key
  EXPECT_EQ(top.column(), 3u);
  const YamlNode& list = valueOf(top, "inner");
  EXPECT_EQ(list.column(), 10u);
  EXPECT_EQ(list[1].line(), 2u);
  EXPECT_EQ(list[1].column(), 14u);
}

TEST_F(YamlDocumentTest, JsonLoads) {
  ASSERT_TRUE(doc.parse("{\"a\":1,\"b\":[true,\"x\"],\"c\":null}", error)) << error.message;
  EXPECT_EQ(valueOf(doc.root(), "a").scalar(), "1");
  EXPECT_EQ(valueOf(doc.root(), "b")[1].scalar(), "x");
  EXPECT_TRUE(valueOf(doc.root(), "c").isNull());
}

TEST_F(YamlDocumentTest, EmptyDocumentHasANullRoot) {
  ASSERT_TRUE(doc.parse("", error));
  EXPECT_TRUE(doc.root().isNull());
  EXPECT_EQ(doc.root().line(), 0u);
  ASSERT_TRUE(doc.parse("# only a comment\n", error));
  EXPECT_TRUE(doc.root().isNull());
}

TEST_F(YamlDocumentTest, AliasesShareTheAnchoredNode) {
  ASSERT_TRUE(doc.parse("base: &b {port: 80}\nx: *b\ns: &n hello\nt: *n\n", error)) << error.message;
  EXPECT_EQ(&valueOf(doc.root(), "x"), &valueOf(doc.root(), "base"));
  EXPECT_EQ(valueOf(doc.root(), "t").scalar(), "hello");
}

TEST_F(YamlDocumentTest, AliasMustFollowACompleteAnchor) {
  EXPECT_FALSE(doc.parse("a: *nowhere\n", error));
  EXPECT_THAT(error.message, HasSubstr("'*nowhere'"));
  EXPECT_EQ(error.line, 1u);
  EXPECT_EQ(error.column, 4u);
  // A node cannot contain itself: the anchor is not usable inside its own node.
  EXPECT_FALSE(doc.parse("a: &self {b: *self}\n", error));
  EXPECT_THAT(error.message, HasSubstr("'*self'"));
  EXPECT_TRUE(doc.root().isNull()); // a failed parse leaves an empty document
}

TEST_F(YamlDocumentTest, SecondDocumentIsRefused) {
  EXPECT_FALSE(doc.parse("a: 1\n---\nb: 2\n", error));
  EXPECT_THAT(error.message, HasSubstr("second document"));
  EXPECT_EQ(error.line, 2u);
  // An explicit start and end of the one document is fine.
  EXPECT_TRUE(doc.parse("---\na: 1\n...\n", error)) << error.message;
}

TEST_F(YamlDocumentTest, SyntaxErrorsCarryPositionAndContext) {
  EXPECT_FALSE(doc.parse("node:\n  id: [a, b\n", error));
  EXPECT_EQ(error.line, 3u);
  EXPECT_EQ(error.column, 1u);
  EXPECT_THAT(error.message, HasSubstr("flow sequence from line 2, column 7"));
  EXPECT_FALSE(doc.parse("a:\n\t- b\n", error)); // a tab cannot indent
  EXPECT_EQ(error.line, 2u);
}

TEST_F(YamlDocumentTest, BadEncodingIsLocated) {
  EXPECT_FALSE(doc.parse(std::string("a: 1\nb: x\xff\n"), error));
  EXPECT_EQ(error.line, 2u);
  EXPECT_EQ(error.column, 5u);
  EXPECT_THAT(error.message, HasSubstr("0xff"));
}

TEST_F(YamlDocumentTest, DeepNestingParsesWithoutRecursion) {
  // The tree builder keeps its own stack; the converter bounds depth itself.
  const std::string text = std::string(5000, '[') + std::string(5000, ']');
  ASSERT_TRUE(doc.parse(text, error)) << error.message;
  const YamlNode* n = &doc.root();
  size_t depth = 0;
  while (n->isSequence() && n->size() == 1 && depth < 10000) {
    n = &(*n)[0];
    ++depth;
  }
  EXPECT_EQ(depth, 4999u);
}

// Nodes reachable from n (aliases visited again, at most limit) without a position.
size_t unlocated(const YamlNode& n, size_t& limit) {
  if (limit == 0) return 0;
  --limit;
  size_t bad = (n.line() == 0 || n.column() == 0) ? 1 : 0;
  if (n.isSequence()) {
    for (size_t i = 0; i < n.size(); ++i) bad += unlocated(n[i], limit);
  } else if (n.isMap()) {
    for (const auto& [k, v] : n.entries()) bad += unlocated(*k, limit) + unlocated(*v, limit);
  }
  return bad;
}

TEST_F(YamlDocumentTest, EveryTruncationParsesOrFailsWithAPosition) {
  const std::string text =
      "static_resources:\n  clusters:\n  - name: &n \"c0\"\n    connect_timeout: 1s\n"
      "    load_assignment:\n      cluster_name: *n\n      endpoints:\n      - lb_endpoints:\n"
      "        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 80}}}\n"
      "    metadata: {filter_metadata: {x: [1, 'two', \"three\", {four: 4}]}}\n"
      "    description: |\n      a block\n      scalar\n";
  ASSERT_TRUE(doc.parse(text, error)) << error.message;
  size_t failures = 0;
  for (size_t len = 1; len <= text.size(); ++len) {
    if (doc.parse(std::string_view(text).substr(0, len), error)) {
      // Every node of what did parse (the empty prefix aside) knows where it starts.
      size_t limit = 100000;
      EXPECT_EQ(unlocated(doc.root(), limit), 0u) << len;
    } else {
      ++failures;
      EXPECT_FALSE(error.message.empty()) << len;
      EXPECT_GE(error.line, 1u) << len;
      EXPECT_GE(error.column, 1u) << len;
      EXPECT_TRUE(doc.root().isNull()) << len;
    }
  }
  EXPECT_GT(failures, 0u); // cut inside quotes or flow collections, some prefixes must fail
}

} // namespace
} // namespace legate::config
