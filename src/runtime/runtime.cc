#include "runtime/runtime.h"

#include <charconv>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "common/random.h"

namespace legate::runtime {

Snapshot::Snapshot(std::vector<Layer> layers) : layers_(std::move(layers)) {
  for (const Layer& layer : layers_) {
    for (const auto& [key, value] : layer.values) final_[key] = Final{value, std::nullopt};
    for (const auto& [key, fraction] : layer.fractions) final_[key] = Final{"", fraction};
  }
}

std::optional<std::string_view> Snapshot::get(std::string_view key) const {
  auto it = final_.find(key);
  if (it == final_.end()) return std::nullopt;
  return std::string_view(it->second.value);
}

uint64_t Snapshot::getInteger(std::string_view key, uint64_t default_value) const {
  auto v = get(key);
  uint64_t out;
  if (v && absl::SimpleAtoi(absl::string_view(v->data(), v->size()), &out)) return out;
  double d;
  if (v && absl::SimpleAtod(absl::string_view(v->data(), v->size()), &d) && d >= 0) {
    return static_cast<uint64_t>(d);
  }
  return default_value;
}

double Snapshot::getDouble(std::string_view key, double default_value) const {
  auto v = get(key);
  double out;
  if (v && absl::SimpleAtod(absl::string_view(v->data(), v->size()), &out)) return out;
  return default_value;
}

bool Snapshot::getBoolean(std::string_view key, bool default_value) const {
  auto v = get(key);
  if (!v) return default_value;
  if (*v == "true") return true;
  if (*v == "false") return false;
  return default_value;
}

Fraction Snapshot::getFraction(std::string_view key, Fraction default_value) const {
  auto it = final_.find(key);
  if (it == final_.end()) return default_value;
  if (it->second.fraction) return *it->second.fraction;
  uint64_t numerator;
  if (absl::SimpleAtoi(it->second.value, &numerator)) {
    return {numerator, default_value.denominator};
  }
  return default_value;
}

bool Snapshot::featureEnabled(std::string_view key, Fraction default_value,
                              uint64_t random_value) const {
  const Fraction f = getFraction(key, default_value);
  if (f.denominator == 0) return false;
  return random_value % f.denominator < f.numerator;
}

bool Snapshot::featureEnabled(std::string_view key, Fraction default_value) const {
  return featureEnabled(key, default_value, fastRandom());
}

Loader::Loader(std::vector<Layer> layers)
    : layers_(std::move(layers)), snapshot_(std::make_shared<const Snapshot>(layers_)) {}

bool Loader::hasAdminLayer() const {
  for (const auto& l : layers_) {
    if (l.is_admin) return true;
  }
  return false;
}

absl::Status Loader::mergeAdminValues(const std::map<std::string, std::string>& values) {
  Layer* admin = nullptr;
  for (auto& l : layers_) {
    if (l.is_admin) admin = &l; // the last admin layer wins
  }
  if (admin == nullptr) {
    return absl::FailedPreconditionError("No admin layer specified");
  }
  for (const auto& [key, value] : values) {
    if (value.empty()) {
      admin->values.erase(key);
    } else {
      admin->values[key] = value;
    }
  }
  std::atomic_store(&snapshot_, std::make_shared<const Snapshot>(layers_));
  return absl::OkStatus();
}

namespace {
std::shared_ptr<Loader>& globalLoader() {
  static auto* loader = new std::shared_ptr<Loader>(std::make_shared<Loader>());
  return *loader;
}
} // namespace

std::shared_ptr<Loader> loader() { return std::atomic_load(&globalLoader()); }
void setLoader(std::shared_ptr<Loader> l) { std::atomic_store(&globalLoader(), std::move(l)); }
std::shared_ptr<const Snapshot> snapshot() { return loader()->snapshot(); }

absl::Status readDiskLayer(const std::string& dir, Layer& layer) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return absl::OkStatus();
  for (auto it = fs::recursive_directory_iterator(dir, fs::directory_options::follow_directory_symlink, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    const std::string rel = fs::relative(it->path(), dir, ec).generic_string();
    // Envoy skips hidden files (editors' swap files, ..data links of mounted volumes).
    if (rel.empty() || rel.front() == '.' || rel.find("/.") != std::string::npos) continue;
    std::ifstream in(it->path());
    std::stringstream content;
    content << in.rdbuf();
    std::string key = rel;
    for (char& c : key) {
      if (c == '/') c = '.';
    }
    layer.values[key] = std::string(absl::StripAsciiWhitespace(content.str()));
  }
  if (ec) {
    return absl::InvalidArgumentError("cannot read runtime directory '" + dir + "': " + ec.message());
  }
  return absl::OkStatus();
}

} // namespace legate::runtime
