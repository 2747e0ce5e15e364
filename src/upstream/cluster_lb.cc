// The pick path of Cluster: choosing a priority level, then a host of it by
// the cluster's load-balancing policy. Runs on workers, on the worker's own
// WorkerLbState and the immutable snapshot it adopted (see cluster.h).

#include <algorithm>
#include <cmath>

#include "runtime/runtime.h"
#include "upstream/cluster.h"
#include "upstream/hash_lb.h"

namespace legate::upstream {

HostConstSharedPtr Cluster::chooseHost(uint32_t worker, LoadBalancerContext* ctx) const {
  WorkerLbState& st = lb_state_[std::min<size_t>(worker, lb_state_.size() - 1)];
  if (st.version != version_.load(std::memory_order_acquire)) {
    // Membership or health changed: adopt the new snapshot; per-list state
    // starts over (it is indexed by the old lists).
    st.snapshot = snapshot_.load();
    st.version = st.snapshot->version;
    st.lists.assign(st.snapshot->state_count, ListState{});
    if (st.odst_pending && !st.odst_pending->empty()) {
      std::erase_if(*st.odst_pending, [](const HostConstSharedPtr& h) { return h->seenByMain(); });
    }
  }
  if (odst_) {
    return chooseOriginalDst(st, ctx); // one destination: nothing to pick again
  }
  HostConstSharedPtr host = pickOnce(st, ctx);
  if (ctx == nullptr) {
    return host;
  }
  const uint32_t retries = ctx->hostSelectionRetryCount();
  for (uint32_t i = 0; host != nullptr && i < retries && ctx->shouldSelectAnotherHost(*host); ++i) {
    host = pickOnce(st, ctx);
  }
  return host;
}

HostConstSharedPtr Cluster::pickOnce(WorkerLbState& st, LoadBalancerContext* ctx) const {
  const HostSnapshot& snap = *st.snapshot;
  if (snap.total == 0) {
    return nullptr;
  }
  // Which priority level, and its healthy or degraded hosts: a draw in
  // [0, 100) against the priority load (the request's hash when it has one,
  // so the same key lands on the same level).
  std::optional<uint64_t> hash = ctx != nullptr ? ctx->computeHashKey() : std::nullopt;
  uint32_t draw = static_cast<uint32_t>((hash ? *hash : st.rng()) % 100);
  size_t level = 0;
  int which = 1; // healthy
  const auto& ps = snap.state;
  bool found = false;
  for (size_t p = 0; p < ps.healthy_load.size() && !found; ++p) {
    if (draw < ps.healthy_load[p]) {
      level = p;
      found = true;
    } else {
      draw -= ps.healthy_load[p];
    }
  }
  for (size_t p = 0; p < ps.degraded_load.size() && !found; ++p) {
    if (draw < ps.degraded_load[p]) {
      level = p;
      which = 2;
      found = true;
    } else {
      draw -= ps.degraded_load[p];
    }
  }
  if (level >= snap.priorities.size()) {
    return nullptr;
  }
  const HostSet& set = snap.priorities[level];
  const HostList* list = which == 1 ? &set.healthy : &set.degraded;
  if (ps.panic[level]) {
    // Panic balances over every host of the level, localities aside (Envoy).
    stats_->lb_healthy_panic.inc();
    list = &set.all;
  } else if (set.localities) { // locality_weighted_lb_config
    // A locality by its effective weight, then a host of it.
    const LocalityWeights& lw = which == 1 ? set.localities->healthy : set.localities->degraded;
    if (lw.total > 0) {
      const LocalityHosts& l = set.localities->hosts[pickLocality(lw, st.lists[lw.state_index])];
      list = which == 1 ? &l.healthy : &l.degraded;
    }
  }
  if (list->hosts.empty()) {
    return nullptr;
  }
  // slow_start_config: while a usable host is still ramping up, weights are ramped.
  std::optional<Ramp> ramp;
  if (slow_start_) {
    const auto now = this->now();
    if (now < snap.slow_start_until) {
      double aggression = slow_start_->aggression;
      if (!slow_start_->aggression_key.empty()) {
        aggression = runtime::snapshot()->getDouble(slow_start_->aggression_key, aggression);
        if (!(aggression > 0)) aggression = 1.0;
      }
      ramp = Ramp{now, aggression};
    }
  }
  return pickFromList(*list, st.lists[list->state_index], st.rng, hash, ramp ? &*ramp : nullptr);
}

size_t Cluster::pickLocality(const LocalityWeights& weights, ListState& ls) {
  // Smooth weighted round robin over the localities' effective weights.
  const auto& w = weights.effective;
  if (ls.current_weights.size() != w.size()) ls.current_weights.assign(w.size(), 0);
  size_t best = 0;
  for (size_t i = 0; i < w.size(); ++i) {
    ls.current_weights[i] += w[i];
    if (ls.current_weights[i] > ls.current_weights[best]) best = i;
  }
  ls.current_weights[best] -= weights.total;
  return best;
}

double Cluster::rampedWeight(const Host& h, const Ramp& ramp) const {
  // Envoy's slow start: weight x max(min_weight_percent, time_factor^(1/aggression)),
  // time_factor = max(seconds since the host became active, 1) / window.
  const double weight = h.weight();
  const auto since = ramp.now - h.activeSince();
  if (since >= slow_start_->window) return weight;
  const double seconds =
      std::max(1.0, std::chrono::duration<double>(since).count());
  const double factor =
      seconds / std::chrono::duration<double>(slow_start_->window).count();
  const double scale = std::max(slow_start_->min_weight_percent / 100.0,
                                std::pow(std::min(factor, 1.0), 1.0 / ramp.aggression));
  return weight * scale;
}

HostConstSharedPtr Cluster::pickFromList(const HostList& list, ListState& ls,
                                         std::minstd_rand& rng, std::optional<uint64_t> hash,
                                         const Ramp* ramp) const {
  const auto& hosts = list.hosts;
  const size_t n = hosts.size();
  switch (lb_policy_) {
  case LbPolicy::Random:
    return hosts[rng() % n];
  case LbPolicy::RingHash:
  case LbPolicy::Maglev: {
    // Without a hash (no hash_policy matched) the pick is random, as in Envoy.
    const uint64_t h = hash ? *hash : (static_cast<uint64_t>(rng()) << 32) ^ rng();
    return list.hash_table->pick(h);
  }
  case LbPolicy::LeastRequest:
    return list.weighted || ramp != nullptr ? leastRequestWeighted(list, ls, ramp)
                                            : leastRequestChoices(list, rng);
  case LbPolicy::RoundRobin:
  case LbPolicy::ClusterProvided: // picks never get here (chooseHost handles them)
    break;
  }
  return roundRobin(list, ls, ramp);
}

HostConstSharedPtr Cluster::leastRequestChoices(const HostList& list,
                                                std::minstd_rand& rng) const {
  // Power of choice_count choices: the least loaded of that many random picks.
  const auto& hosts = list.hosts;
  const HostConstSharedPtr* best = nullptr;
  int64_t best_active = 0;
  for (uint32_t i = 0; i < choice_count_; ++i) {
    const auto& h = hosts[rng() % hosts.size()];
    const int64_t active = h->stats().rq_active.load(std::memory_order_relaxed);
    if (best == nullptr || active < best_active) {
      best = &h;
      best_active = active;
    }
  }
  return *best;
}

HostConstSharedPtr Cluster::leastRequestWeighted(const HostList& list, ListState& ls,
                                                 const Ramp* ramp) const {
  // Weights differ (or ramp up in slow start): each host's effective weight is
  // weight / (active_requests + 1)^active_request_bias, interleaved by smooth
  // weighted round robin, so a busy host gets proportionally fewer requests.
  const auto& hosts = list.hosts;
  const size_t n = hosts.size();
  if (ls.current_weights.size() != n) ls.current_weights.assign(n, 0);
  double total = 0;
  size_t best = 0;
  for (size_t i = 0; i < n; ++i) {
    const double active =
        static_cast<double>(hosts[i]->stats().rq_active.load(std::memory_order_relaxed));
    const double weight = ramp != nullptr ? rampedWeight(*hosts[i], *ramp) : hosts[i]->weight();
    const double w = active_request_bias_ == 0
                         ? weight
                         : weight / std::pow(active + 1, active_request_bias_);
    total += w;
    ls.current_weights[i] += w;
    if (ls.current_weights[i] > ls.current_weights[best]) best = i;
  }
  ls.current_weights[best] -= total;
  return hosts[best];
}

HostConstSharedPtr Cluster::roundRobin(const HostList& list, ListState& ls,
                                       const Ramp* ramp) const {
  const auto& hosts = list.hosts;
  const size_t n = hosts.size();
  if (!list.weighted && ramp == nullptr) {
    return hosts[ls.rr_index++ % n];
  }
  // Smooth weighted round robin: every pick raises each host by its weight and
  // lowers the winner by the total, which interleaves hosts by weight.
  if (ls.current_weights.size() != n) {
    ls.current_weights.assign(n, 0);
  }
  size_t best = 0;
  double total = 0;
  for (size_t i = 0; i < n; ++i) {
    const double w = ramp != nullptr ? rampedWeight(*hosts[i], *ramp) : hosts[i]->weight();
    total += w;
    ls.current_weights[i] += w;
    if (ls.current_weights[i] > ls.current_weights[best]) {
      best = i;
    }
  }
  ls.current_weights[best] -= total;
  return hosts[best];
}

} // namespace legate::upstream
