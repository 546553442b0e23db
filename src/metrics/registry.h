#pragma once

// A small metrics registry and its Prometheus text exposition (format 0.0.4).
// Later issues add their series here; GET /v1/metrics renders it.
//
// Thread-safety: every method may be called from any thread.

#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace mill::metrics {

using Labels = std::vector<std::pair<std::string, std::string>>;

enum class Type { kCounter, kGauge, kHistogram };

class Registry {
 public:
  // Declares a family once (repeated calls with the same name are no-ops).
  // Histogram buckets are upper bounds in ascending order (+Inf is implicit).
  void declare(const std::string& name, Type type, const std::string& help,
               std::vector<double> buckets = {});

  void set(const std::string& name, const Labels& labels, double value);  // gauge
  void add(const std::string& name, const Labels& labels, double delta);  // counter
  void observe(const std::string& name, const Labels& labels, double v);  // histogram
  // For totals kept elsewhere (a collector copies them in): a counter's value, and a
  // histogram's per-bucket counts (not cumulative, +Inf last), sum and count.
  void set_total(const std::string& name, const Labels& labels, double value);
  void set_histogram(const std::string& name, const Labels& labels,
                     const std::vector<uint64_t>& buckets, double sum, uint64_t count);
  // Drops one series, e.g. when a node or allocation goes away.
  void remove(const std::string& name, const Labels& labels);

  // A collector runs at the start of every render(), to refresh gauges that are
  // read rather than pushed (e.g. a node's free memory).
  void add_collector(std::function<void(Registry&)> collector);

  std::string render();

 private:
  struct Series {
    double value = 0;               // counter or gauge
    std::vector<uint64_t> buckets;  // histogram: counts per bucket, not cumulative
    double sum = 0;
    uint64_t count = 0;
  };
  struct Family {
    Type type = Type::kGauge;
    std::string help;
    std::vector<double> bounds;
    std::map<Labels, Series> series;
  };

  Family* find(const std::string& name, Type type);

  std::mutex mutex_;
  std::map<std::string, Family> families_;
  std::vector<std::function<void(Registry&)>> collectors_;
};

}  // namespace mill::metrics
