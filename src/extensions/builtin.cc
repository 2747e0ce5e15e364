// Every extension legate implements, added to the registry once.
#include "config/extension_registry.h"

namespace legate::config {

void registerBuiltinExtensions(ExtensionRegistry& r) {
  r.add({ExtensionCategory::NetworkFilter, "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
         "envoy.filters.network.tcp_proxy", nullptr});
  r.add({ExtensionCategory::AccessLogger, "envoy.extensions.access_loggers.file.v3.FileAccessLog",
         "envoy.access_loggers.file", nullptr});
  r.add({ExtensionCategory::AccessLogger, "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
         "envoy.access_loggers.stdout", nullptr});
  r.add({ExtensionCategory::AccessLogger, "envoy.extensions.access_loggers.stream.v3.StderrAccessLog",
         "envoy.access_loggers.stderr", nullptr});
}

} // namespace legate::config
