#include "stats/status_code_counters.h"

namespace legate::stats {

StatusCodeCounters::StatusCodeCounters(Store& store, std::string_view prefix, const char* stem)
    : store_(store), stem_(stem), prefix_(NamePool::get().intern(prefix)) {}

StatusCodeCounters::~StatusCodeCounters() { delete table_.load(std::memory_order_acquire); }

void StatusCodeCounters::inc(uint32_t code) {
  // No prefix when the name pool was full (the Store logged it): no name to count under.
  if (code < kMin || code > kMax || prefix_ == NamePool::kNotFound) return;
  Table* table = table_.load(std::memory_order_acquire);
  if (table == nullptr) {
    auto* fresh = new Table(); // value-initialized: every slot nullptr
    if (table_.compare_exchange_strong(table, fresh, std::memory_order_acq_rel)) {
      table = fresh;
    } else {
      delete fresh; // another thread won; table holds its table
    }
  }
  std::atomic<Counter*>& slot = (*table)[code - kMin];
  Counter* counter = slot.load(std::memory_order_acquire);
  if (counter == nullptr) {
    // Racing threads get the same Counter: the Store finds it by name.
    counter = &store_.counter(NamePool::get().view(prefix_),
                              std::string(stem_) + std::to_string(code));
    slot.store(counter, std::memory_order_release);
  }
  counter->inc();
}

} // namespace legate::stats
