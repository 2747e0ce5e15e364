#include "stats/tag_extractor.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "re2/re2.h"

namespace legate::stats {

struct TagProducer::Extractor {
  std::string tag;
  std::shared_ptr<const RE2> regex;
  // A literal every matching name contains: a cheap test before the regex runs.
  std::string hint;
};

namespace {

struct DefaultExtractor {
  const char* tag;
  const char* pattern;
  const char* hint;
};

// Envoy's default tag names with patterns written for legate's sequential
// extraction (each runs on what the earlier ones left). Order matters: the listener
// address goes before the HTTP prefix that may follow it, the connection manager
// prefix before what follows it (user agent, fault, rds), vhost before route and
// vcluster, the cluster name before what follows it (grpc bridge).
const DefaultExtractor kDefaults[] = {
    {"envoy.cluster_name", R"(^cluster\.(([^.]+)\.))", "cluster."},
    {"envoy.listener_address",
     R"(^listener\.(((?:[_.[:digit:]]*|[_\[\]aAbBcCdDeEfF[:digit:]]*))\.))", "listener."},
    {"envoy.worker_id", R"(^(?:listener_manager|listener|server)\.(worker_(\d+)\.))", "worker_"},
    {"envoy.http_conn_manager_prefix", R"(^(?:listener\.)?http\.(([^.]+)\.))", "http."},
    {"envoy.http_user_agent", R"(^(?:listener\.)?http\.user_agent\.(([^.]+)\.))", "user_agent."},
    {"envoy.fault_downstream_cluster", R"(^http\.fault\.(([^.]+)\.))", "fault."},
    {"envoy.rds_route_config", R"(^http\.rds\.(([^.]+)\.))", "rds."},
    {"envoy.scoped_rds_config", R"(^http\.scoped_rds\.(([^.]+)\.))", "scoped_rds."},
    {"envoy.ssl_cipher", R"(\.ssl\.ciphers(\.([^.]+))$)", "ssl.ciphers."},
    {"envoy.ssl_curve", R"(\.ssl\.curves(\.([^.]+))$)", "ssl.curves."},
    {"envoy.ssl_sigalg", R"(\.ssl\.sigalgs(\.([^.]+))$)", "ssl.sigalgs."},
    {"envoy.ssl_version", R"(\.ssl\.versions(\.([^.]+))$)", "ssl.versions."},
    {"envoy.grpc_bridge_service", R"(^cluster\.grpc\.(([^.]+)\.))", "grpc."},
    {"envoy.grpc_bridge_method", R"(^cluster\.grpc\.(([^.]+)\.))", "grpc."},
    {"envoy.clientssl_prefix", R"(^auth\.clientssl\.(([^.]+)\.))", "clientssl."},
    {"envoy.mongo_prefix", R"(^mongo\.(([^.]+)\.))", "mongo."},
    {"envoy.redis_prefix", R"(^redis\.(([^.]+)\.))", "redis."},
    {"envoy.thrift_prefix", R"(^thrift\.(([^.]+)\.))", "thrift."},
    {"envoy.ratelimit_prefix", R"(^ratelimit\.(([^.]+)\.))", "ratelimit."},
    {"envoy.connection_limit_prefix", R"(^connection_limit\.(([^.]+)\.))", "connection_limit."},
    {"envoy.dns_filter_prefix", R"(^dns_filter\.(([^.]+)\.))", "dns_filter."},
    {"envoy.tcp_prefix", R"(^tcp\.(([^.]+)\.))", "tcp."},
    {"envoy.udp_prefix", R"(^udp\.(([^.]+)\.))", "udp."},
    {"envoy.virtual_host", R"(^vhost\.(([^.]+)\.))", "vhost."},
    {"envoy.route", R"(^vhost\.route\.(([^.]+)\.))", "route."},
    {"envoy.virtual_cluster", R"(^vhost\.vcluster\.(([^.]+)\.))", "vcluster."},
    {"envoy.response_code", R"(_rq(_(\d{3}))$)", "_rq_"},
    {"envoy.response_code_class", R"(_rq_(\d)xx$)", "xx"},
};

std::shared_ptr<const RE2> compile(const std::string& pattern) {
  RE2::Options options;
  options.set_log_errors(false);
  return std::make_shared<const RE2>(pattern, options);
}

} // namespace

TagProducer::TagProducer() = default;
TagProducer::~TagProducer() = default;

std::vector<std::string> TagProducer::defaultTagNames() {
  std::vector<std::string> out;
  for (const auto& d : kDefaults) out.emplace_back(d.tag);
  return out;
}

const std::shared_ptr<const TagProducer>& TagProducer::defaultProducer() {
  static const auto* producer = new std::shared_ptr<const TagProducer>([] {
    auto p = create({}, true, "");
    return *p; // the defaults compile (unit-tested)
  }());
  return *producer;
}

absl::StatusOr<std::shared_ptr<const TagProducer>>
TagProducer::create(const std::vector<TagSpec>& custom, bool use_default_tags,
                    const std::string& where) {
  auto producer = std::make_shared<TagProducer>();
  std::vector<std::string> taken;
  for (size_t i = 0; i < custom.size(); ++i) {
    const TagSpec& spec = custom[i];
    const std::string path = absl::StrCat(where, where.empty() ? "" : ".", "stats_tags[", i, "]");
    taken.push_back(spec.name);
    if (spec.has_fixed_value) {
      producer->fixed_.emplace_back(spec.name, spec.fixed_value);
      continue;
    }
    if (spec.regex.empty()) {
      const DefaultExtractor* found = nullptr;
      for (const auto& d : kDefaults) {
        if (spec.name == d.tag) found = &d;
      }
      if (found == nullptr) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": tag '", spec.name,
                         "' has no regex and no fixed_value, and is not one of Envoy's default "
                         "tag names"));
      }
      producer->extractors_.push_back({found->tag, compile(found->pattern), found->hint});
      continue;
    }
    auto re = compile(spec.regex);
    if (!re->ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ".regex: invalid regex '", spec.regex, "': ", re->error()));
    }
    if (re->NumberOfCapturingGroups() < 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ".regex: '", spec.regex, "' needs a capture group (the text to remove)"));
    }
    producer->extractors_.push_back({spec.name, std::move(re), ""});
  }
  if (use_default_tags) {
    for (const auto& d : kDefaults) {
      if (std::find(taken.begin(), taken.end(), d.tag) != taken.end()) continue;
      producer->extractors_.push_back({d.tag, compile(d.pattern), d.hint});
    }
  }
  return std::shared_ptr<const TagProducer>(std::move(producer));
}

TaggedName TagProducer::produce(std::string_view stat_name) const {
  TaggedName result{std::string(stat_name), {}};
  for (const auto& extractor : extractors_) {
    if (!extractor.hint.empty() && result.name.find(extractor.hint) == std::string::npos) {
      continue;
    }
    const int groups = extractor.regex->NumberOfCapturingGroups();
    re2::StringPiece match[3];
    const re2::StringPiece input(result.name);
    if (!extractor.regex->Match(input, 0, input.size(), RE2::UNANCHORED, match,
                                std::min(groups, 2) + 1)) {
      continue;
    }
    const re2::StringPiece removed = match[1];
    const re2::StringPiece value = groups >= 2 ? match[2] : match[1];
    if (value.empty() || removed.data() == nullptr) continue;
    std::string tag_value(value.data(), value.size());
    const size_t pos = static_cast<size_t>(removed.data() - input.data());
    result.name.erase(pos, removed.size());
    result.tags.emplace_back(extractor.tag, std::move(tag_value));
  }
  for (const auto& fixed : fixed_) result.tags.push_back(fixed);
  return result;
}

TaggedName extractTags(std::string_view stat_name) {
  return TagProducer::defaultProducer()->produce(stat_name);
}

} // namespace legate::stats
