#pragma once

// Envoy's runtime: layered key/value overrides (bootstrap layered_runtime) that
// code consults with a default, e.g. a route's runtime_fraction.
//
// Layers, in order, later ones overriding earlier ones: static layers (a Struct,
// flattened to dotted keys), disk layers (a file per key under symlink_root/
// subdirectory, read at start), and an admin layer that POST /runtime_modify edits.
//
// Threading: the Loader is built and modified on the main thread; it publishes an
// immutable Snapshot that any thread reads (snapshot() is an atomic shared_ptr load,
// which libstdc++ guards with a short internal lock). A thread keeps a snapshot as
// long as it holds the pointer.

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace legate::runtime {

// A FractionalPercent: numerator out of denominator (100, 10,000 or 1,000,000).
struct Fraction {
  uint64_t numerator = 0;
  uint64_t denominator = 100;
};

struct Layer {
  std::string name;
  // key -> raw value text (numbers as their decimal text, booleans as true/false).
  std::map<std::string, std::string> values;
  // Keys whose value is a FractionalPercent (static layers may give one).
  std::map<std::string, Fraction> fractions;
  bool is_admin = false;
};

class Snapshot {
public:
  explicit Snapshot(std::vector<Layer> layers);

  const std::vector<Layer>& layers() const { return layers_; }
  // The final (top-most) raw value of key.
  std::optional<std::string_view> get(std::string_view key) const;
  uint64_t getInteger(std::string_view key, uint64_t default_value) const;
  double getDouble(std::string_view key, double default_value) const;
  bool getBoolean(std::string_view key, bool default_value) const;
  // The fraction for key: a FractionalPercent value, or an integer numerator over the
  // default's denominator (Envoy's rule), else the default.
  Fraction getFraction(std::string_view key, Fraction default_value) const;
  // True with the fraction's probability, decided by random_value
  // (random_value % denominator < numerator).
  bool featureEnabled(std::string_view key, Fraction default_value, uint64_t random_value) const;
  // The same with a fresh per-call random number.
  bool featureEnabled(std::string_view key, Fraction default_value) const;

private:
  struct Final {
    std::string value;
    std::optional<Fraction> fraction;
  };
  std::vector<Layer> layers_;
  std::map<std::string, Final, std::less<>> final_;
};

class Loader {
public:
  explicit Loader(std::vector<Layer> layers = {});

  std::shared_ptr<const Snapshot> snapshot() const { return std::atomic_load(&snapshot_); }
  bool hasAdminLayer() const;
  // /runtime_modify: sets (or, with an empty value, removes) keys of the admin layer
  // and publishes a new snapshot. Main thread. FailedPrecondition without an admin layer.
  absl::Status mergeAdminValues(const std::map<std::string, std::string>& values);

private:
  std::vector<Layer> layers_; // main thread's working copy
  std::shared_ptr<const Snapshot> snapshot_;
};

// The process's runtime (server::Server installs it at start; until then, and in
// tests, an empty one). Any thread.
std::shared_ptr<Loader> loader();
void setLoader(std::shared_ptr<Loader> loader);
// Shorthand: loader()->snapshot().
std::shared_ptr<const Snapshot> snapshot();

// Reads a disk layer: every regular file under dir (recursively) is a key, its path
// relative to dir with '/' turned into '.', its content (trimmed) the value. A
// missing dir is an empty layer, as in Envoy.
absl::Status readDiskLayer(const std::string& dir, Layer& layer);

} // namespace legate::runtime
