#pragma once

// The stats core: counters, gauges and histograms with Envoy's names.
//
// Threading: a Store is created on the main thread and outlives every worker.
// Looking a stat up by name takes a lock and is meant for configuration time
// (filters and clusters resolve their stats once, then keep references).
// Updating a stat is lock-free (relaxed atomics) and safe from any thread.
// References returned by the Store stay valid for the Store's lifetime.

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace legate::stats {

class Counter {
public:
  explicit Counter(std::string name) : name_(std::move(name)) {}
  void inc(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }
  const std::string& name() const { return name_; }
  // Admin /reset_counters only: a debugging aid, as in Envoy.
  void reset() { value_.store(0, std::memory_order_relaxed); }

private:
  const std::string name_;
  std::atomic<uint64_t> value_{0};
};

class Gauge {
public:
  explicit Gauge(std::string name) : name_(std::move(name)) {}
  void inc(int64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  void dec(int64_t n = 1) { value_.fetch_sub(n, std::memory_order_relaxed); }
  void set(int64_t v) { value_.store(v, std::memory_order_relaxed); }
  int64_t value() const { return value_.load(std::memory_order_relaxed); }
  const std::string& name() const { return name_; }

private:
  const std::string name_;
  std::atomic<int64_t> value_{0};
};

// A histogram of non-negative values (milliseconds or bytes) over fixed bucket
// bounds. Recording is one relaxed atomic add per bucket plus count and sum.
class Histogram {
public:
  enum class Unit { Milliseconds, Bytes, Unspecified };
  // Envoy's default bucket upper bounds.
  static constexpr std::array<double, 19> kBounds = {
      0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000,
      300000, 600000, 1800000, 3600000};

  Histogram(std::string name, Unit unit) : name_(std::move(name)), unit_(unit) {}
  void record(uint64_t value);
  const std::string& name() const { return name_; }
  Unit unit() const { return unit_; }

  struct Snapshot {
    uint64_t count = 0;
    double sum = 0;
    // Cumulative counts per kBounds entry (values <= bound).
    std::array<uint64_t, kBounds.size()> cumulative{};
    // Estimate of the q-quantile (0..1) by linear interpolation in buckets.
    double quantile(double q) const;
  };
  Snapshot snapshot() const;

private:
  const std::string name_;
  const Unit unit_;
  std::array<std::atomic<uint64_t>, kBounds.size() + 1> buckets_{};
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_{0};
};

class Store {
public:
  Counter& counter(std::string_view name);
  Gauge& gauge(std::string_view name);
  Histogram& histogram(std::string_view name, Histogram::Unit unit = Histogram::Unit::Milliseconds);

  // Snapshots in name order, for the admin endpoints and sinks.
  void forEachCounter(const std::function<void(const Counter&)>& fn) const;
  void forEachGauge(const std::function<void(const Gauge&)>& fn) const;
  void forEachHistogram(const std::function<void(const Histogram&)>& fn) const;

  // Admin /reset_counters: every counter back to zero.
  void resetCounters();

private:
  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<Counter>, std::less<>> counters_;
  std::map<std::string, std::unique_ptr<Gauge>, std::less<>> gauges_;
  std::map<std::string, std::unique_ptr<Histogram>, std::less<>> histograms_;
};

// A name prefix over a Store: Scope(store, "cluster.backend.").counter("upstream_cx_total").
class Scope {
public:
  Scope(Store& store, std::string prefix) : store_(store), prefix_(std::move(prefix)) {}
  Counter& counter(std::string_view name) { return store_.counter(prefix_ + std::string(name)); }
  Gauge& gauge(std::string_view name) { return store_.gauge(prefix_ + std::string(name)); }
  Histogram& histogram(std::string_view name,
                       Histogram::Unit unit = Histogram::Unit::Milliseconds) {
    return store_.histogram(prefix_ + std::string(name), unit);
  }
  Store& store() const { return store_; }
  const std::string& prefix() const { return prefix_; }

private:
  Store& store_;
  std::string prefix_;
};

} // namespace legate::stats
