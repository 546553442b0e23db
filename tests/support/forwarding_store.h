// A Store that hands every call to an in-memory store: a test derives from it and
// overrides only the call it intercepts (to inject a race, or hold a write).

#pragma once

#include "store/memory_store.h"

namespace mill::testing {

class ForwardingStore : public store::Store {
 public:
  Result<int64_t> revision() override { return inner.revision(); }
  Result<std::optional<store::KeyValue>> get(std::string_view key) override {
    return inner.get(key);
  }
  Result<store::ListResult> list(std::string_view prefix) override { return inner.list(prefix); }
  Result<store::TxnResult> txn(const store::Txn& t) override { return inner.txn(t); }
  Result<store::WatchResult> watch(std::string_view prefix, int64_t after,
                                   std::chrono::milliseconds timeout) override {
    return inner.watch(prefix, after, timeout);
  }
  Result<void> sync(int64_t revision) override { return inner.sync(revision); }

  store::MemoryStore inner;
};

}  // namespace mill::testing
