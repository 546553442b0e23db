#include "metrics/registry.h"

#include <charconv>
#include <cmath>

namespace mill::metrics {
namespace {

std::string format_number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v)) return "NaN";
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);  // shortest round-trip form
  return ec == std::errc() ? std::string(buf, end) : "NaN";
}

std::string escape_label_value(const std::string& v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string escape_help(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// {a="1",b="2"}, with an optional extra label (le for histogram buckets).
std::string label_text(const Labels& labels, const char* extra_name = nullptr,
                       const std::string& extra_value = {}) {
  if (labels.empty() && !extra_name) return {};
  std::string out = "{";
  bool first = true;
  for (const auto& [k, v] : labels) {
    if (!first) out += ',';
    first = false;
    out += k + "=\"" + escape_label_value(v) + '"';
  }
  if (extra_name) {
    if (!first) out += ',';
    out += std::string(extra_name) + "=\"" + extra_value + '"';
  }
  return out + "}";
}

const char* type_name(Type t) {
  switch (t) {
    case Type::kCounter:
      return "counter";
    case Type::kGauge:
      return "gauge";
    case Type::kHistogram:
      return "histogram";
  }
  return "untyped";
}

}  // namespace

void Registry::declare(const std::string& name, Type type, const std::string& help,
                       std::vector<double> buckets) {
  std::lock_guard lock(mutex_);
  auto [it, inserted] = families_.try_emplace(name);
  if (!inserted) return;
  it->second.type = type;
  it->second.help = help;
  it->second.bounds = std::move(buckets);
}

Registry::Family* Registry::find(const std::string& name, Type type) {
  auto it = families_.find(name);
  // Writing to an undeclared family, or with the wrong type, is a programming error;
  // dropping the sample keeps the exposition valid.
  if (it == families_.end() || it->second.type != type) return nullptr;
  return &it->second;
}

void Registry::set(const std::string& name, const Labels& labels, double value) {
  std::lock_guard lock(mutex_);
  if (Family* f = find(name, Type::kGauge)) f->series[labels].value = value;
}

void Registry::add(const std::string& name, const Labels& labels, double delta) {
  std::lock_guard lock(mutex_);
  if (Family* f = find(name, Type::kCounter); f && delta >= 0) f->series[labels].value += delta;
}

void Registry::observe(const std::string& name, const Labels& labels, double v) {
  std::lock_guard lock(mutex_);
  Family* f = find(name, Type::kHistogram);
  if (!f) return;
  Series& s = f->series[labels];
  s.buckets.resize(f->bounds.size() + 1);
  size_t i = 0;
  while (i < f->bounds.size() && v > f->bounds[i]) ++i;
  s.buckets[i]++;
  s.sum += v;
  s.count++;
}

void Registry::set_total(const std::string& name, const Labels& labels, double value) {
  std::lock_guard lock(mutex_);
  if (Family* f = find(name, Type::kCounter); f && value >= 0) f->series[labels].value = value;
}

void Registry::set_histogram(const std::string& name, const Labels& labels,
                             const std::vector<uint64_t>& buckets, double sum, uint64_t count) {
  std::lock_guard lock(mutex_);
  Family* f = find(name, Type::kHistogram);
  if (!f || buckets.size() != f->bounds.size() + 1) return;
  Series& s = f->series[labels];
  s.buckets = buckets;
  s.sum = sum;
  s.count = count;
}

void Registry::remove(const std::string& name, const Labels& labels) {
  std::lock_guard lock(mutex_);
  if (auto it = families_.find(name); it != families_.end()) it->second.series.erase(labels);
}

void Registry::add_collector(std::function<void(Registry&)> collector) {
  std::lock_guard lock(mutex_);
  collectors_.push_back(std::move(collector));
}

std::string Registry::render() {
  std::vector<std::function<void(Registry&)>> collectors;
  {
    std::lock_guard lock(mutex_);
    collectors = collectors_;
  }
  for (auto& c : collectors) c(*this);

  std::lock_guard lock(mutex_);
  std::string out;
  for (const auto& [name, f] : families_) {
    out += "# HELP " + name + ' ' + escape_help(f.help) + '\n';
    out += "# TYPE " + name + ' ' + type_name(f.type) + '\n';
    for (const auto& [labels, s] : f.series) {
      if (f.type != Type::kHistogram) {
        out += name + label_text(labels) + ' ' + format_number(s.value) + '\n';
        continue;
      }
      uint64_t cumulative = 0;
      for (size_t i = 0; i <= f.bounds.size(); ++i) {
        cumulative += i < s.buckets.size() ? s.buckets[i] : 0;
        std::string le = i < f.bounds.size() ? format_number(f.bounds[i]) : "+Inf";
        out += name + "_bucket" + label_text(labels, "le", le) + ' ' + std::to_string(cumulative) +
               '\n';
      }
      out += name + "_sum" + label_text(labels) + ' ' + format_number(s.sum) + '\n';
      out += name + "_count" + label_text(labels) + ' ' + std::to_string(s.count) + '\n';
    }
  }
  return out;
}

}  // namespace mill::metrics
