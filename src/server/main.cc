// legate's entry point: options, logging, configuration, then the server.

#include <signal.h>

#include <cstdio>
#include <memory>

#include "common/logger.h"
#include "config/bootstrap_loader.h"
#include "config/extension_registry.h"
#include "server/options.h"
#include "server/server.h"

int main(int argc, char** argv) {
  using namespace legate;
  ::signal(SIGPIPE, SIG_IGN);
  config::registerBuiltinExtensions(config::ExtensionRegistry::get());

  auto options = server::parseOptions(argc, argv);
  if (!options.ok()) {
    std::fprintf(stderr, "legate: %s\n", std::string(options.status().message()).c_str());
    return 1;
  }
  if (options->print_help) {
    std::fputs(server::usage().c_str(), stdout);
    return 0;
  }
  if (options->print_version) {
    std::printf("legate version %s\n", LEGATE_VERSION);
    return 0;
  }
  if (auto st = log::init(options->log_level, options->component_log_level, options->log_format,
                          options->log_path);
      !st.ok()) {
    std::fprintf(stderr, "legate: %s\n", std::string(st.message()).c_str());
    return 1;
  }

  std::unique_ptr<server::Server> server;
  {
    // The bootstrap lives on an arena until the server has taken its wire form:
    // freed in a few blocks, not as the tens of thousands of small objects a large
    // configuration's message is (see config::loadBootstrap).
    google::protobuf::Arena arena(config::bootstrapArenaOptions());
    auto* bootstrap =
        google::protobuf::Arena::CreateMessage<envoy::config::bootstrap::v3::Bootstrap>(&arena);
    config::SourceMap marks;
    if (auto st = config::loadBootstrap({options->config_path, options->config_yaml}, *bootstrap,
                                        &marks);
        !st.ok()) {
      std::fprintf(stderr, "legate: configuration error:\n%s\n", std::string(st.message()).c_str());
      return 1;
    }
    if (options->mode == server::Mode::Validate) {
      // Build everything the configuration describes, bind nothing.
      stats::Store scratch;
      auto model = server::buildConfigModel(*bootstrap, scratch, 1);
      if (!model.ok()) {
        std::fprintf(stderr, "legate: configuration error:\n%s\n",
                     config::locateErrors(marks, std::string(model.status().message())).c_str());
        return 1;
      }
      std::printf("configuration '%s' OK\n",
                  options->config_path.empty() ? "--config-yaml" : options->config_path.c_str());
      return 0;
    }
    server = std::make_unique<server::Server>(std::move(*options), *bootstrap, std::move(marks));
  }
  return server->run();
}
