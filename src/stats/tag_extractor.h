#pragma once

// Envoy's tag extraction: a stat name becomes a tag-extracted name plus (tag, value)
// pairs, e.g. cluster.backend.upstream_rq_200 -> cluster.upstream_rq with
// envoy.cluster_name=backend and envoy.response_code=200. Used by the tagged
// expositions (Prometheus, DogStatsD).
//
// A regex extractor follows Envoy's rule: the pattern's first capture group is the
// text removed from the name; its second group, if any, is the tag value (else the
// first group is). Extractors run in order, each on the name the previous ones
// left. A fixed-value tag adds (name, value) to every stat.
//
// Threading: immutable once built; RE2 matching is thread-safe.

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace re2 {
class RE2;
}

namespace legate::stats {

struct TaggedName {
  // The stat name with every extracted tag value removed ("cluster.upstream_rq").
  std::string name;
  // (tag name, value) in extraction order, e.g. ("envoy.cluster_name", "backend").
  std::vector<std::pair<std::string, std::string>> tags;
};

// One stats_config.stats_tags entry: regex (may be empty: the default extractor of
// that name), or a fixed value.
struct TagSpec {
  std::string name;
  std::string regex;
  std::string fixed_value;
  bool has_fixed_value = false;
};

class TagProducer {
public:
  // Envoy's default extractors only (use_all_default_tags, no stats_tags).
  static const std::shared_ptr<const TagProducer>& defaultProducer();

  // stats_tags first (in order), then, when use_default_tags, every default
  // extractor whose tag name no custom entry took. A custom entry with no regex and
  // no fixed value names a default extractor. Errors name the entry by index
  // ("stats_tags[1].regex: ...") relative to `where`.
  static absl::StatusOr<std::shared_ptr<const TagProducer>>
  create(const std::vector<TagSpec>& custom, bool use_default_tags, const std::string& where);

  TaggedName produce(std::string_view stat_name) const;

  // Envoy's default tag names, in extraction order.
  static std::vector<std::string> defaultTagNames();

  struct Extractor;
  TagProducer();
  ~TagProducer();

private:
  std::vector<Extractor> extractors_;
  std::vector<std::pair<std::string, std::string>> fixed_;
};

// The default producer's extraction.
TaggedName extractTags(std::string_view stat_name);

} // namespace legate::stats
