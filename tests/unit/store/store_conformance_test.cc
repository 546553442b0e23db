// The behaviour every Store backend must share (store.h), run against each backend in
// backends() below. A new backend joins by adding one line there.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "store/memory_store.h"
#include "store/sqlite_store.h"
#include "support/temp_dir.h"

namespace mill::store {
namespace {

using namespace std::chrono_literals;
using mill::testing::TempDir;

// What a test may ask of a backend it creates.
struct BackendOptions {
  std::size_t history_limit = 0;  // 0: the backend's default
};

// A store plus whatever must outlive it (a temp dir, a server process).
class Backend {
 public:
  virtual ~Backend() = default;
  virtual Store& store() = 0;
  virtual bool ok() const { return true; }  // false: the store did not open (a failure)
};

struct BackendFactory {
  std::string name;
  std::function<std::unique_ptr<Backend>(const BackendOptions&)> make;
};

class MemoryBackend final : public Backend {
 public:
  explicit MemoryBackend(const BackendOptions& options)
      : store_(options.history_limit == 0 ? MemoryStore::kUnlimitedHistory
                                          : options.history_limit) {}
  Store& store() override { return store_; }

 private:
  MemoryStore store_;
};

class SqliteBackend final : public Backend {
 public:
  explicit SqliteBackend(const BackendOptions& options) {
    SqliteStoreOptions sqlite_options;
    if (options.history_limit != 0) sqlite_options.history_limit = options.history_limit;
    auto opened = SqliteStore::open(dir_.file("store.db"), sqlite_options);
    if (!opened) {
      ADD_FAILURE() << opened.error().to_string();
      return;
    }
    store_ = std::move(*opened);
  }
  ~SqliteBackend() override { store_.reset(); }  // close before the dir goes
  Store& store() override { return *store_; }
  bool ok() const override { return store_ != nullptr; }

 private:
  TempDir dir_;
  std::unique_ptr<SqliteStore> store_;
};

template <class B>
BackendFactory backend(std::string name) {
  return {std::move(name),
          [](const BackendOptions& options) { return std::make_unique<B>(options); }};
}

const std::vector<BackendFactory>& backends() {
  static const std::vector<BackendFactory> all = {
      backend<MemoryBackend>("Memory"),
      backend<SqliteBackend>("Sqlite"),
  };
  return all;
}

class StoreConformance : public ::testing::TestWithParam<BackendFactory> {
 protected:
  void SetUp() override {
    backend_ = GetParam().make({});
    ASSERT_TRUE(backend_ && backend_->ok()) << "the store did not open";
  }

  Store& store() { return backend_->store(); }

  // The current value of key, or "<missing>".
  std::string value_of(Store& s, std::string_view key) {
    auto got = s.get(key);
    EXPECT_TRUE(got) << got.error().to_string();
    if (!got || !*got) return "<missing>";
    return (*got)->value;
  }

  std::vector<std::string> keys_under(std::string_view prefix) {
    auto listed = store().list(prefix);
    EXPECT_TRUE(listed) << listed.error().to_string();
    std::vector<std::string> keys;
    if (listed) {
      for (const auto& kv : listed->kvs) keys.push_back(kv.key);
    }
    return keys;
  }

  std::unique_ptr<Backend> backend_;
};

#define ASSERT_OK(expr)                                        \
  do {                                                         \
    auto&& ok_result_ = (expr);                                \
    ASSERT_TRUE(ok_result_) << ok_result_.error().to_string(); \
  } while (false)

TEST_P(StoreConformance, EmptyStoreIsAtRevisionZero) {
  auto rev = store().revision();
  ASSERT_OK(rev);
  EXPECT_EQ(*rev, 0);
  auto listed = store().list("");
  ASSERT_OK(listed);
  EXPECT_EQ(listed->revision, 0);
  EXPECT_TRUE(listed->kvs.empty());
}

// A write that returned before it was safe from a power loss is readable and watched
// at once like any other; sync() returns once it is durable too.
TEST_P(StoreConformance, AProcessCrashWriteIsVisibleAtOnceAndSyncs) {
  Txn light;
  light.durability = Durability::kProcessCrash;
  light.ops.push_back({Operation::Type::kPut, "state/a", "running"});
  auto done = store().txn(light);
  ASSERT_TRUE(done && done->succeeded);
  EXPECT_EQ(store().get("state/a")->value().value, "running");
  auto watched = store().watch("state/", 0, std::chrono::milliseconds(0));
  ASSERT_TRUE(watched);
  EXPECT_EQ(watched->events.size(), 1u);
  auto synced = store().sync(done->revision);
  EXPECT_TRUE(synced) << synced.error().message;
}

TEST_P(StoreConformance, PutBumpsRevisionAndTracksKeyRevisions) {
  auto r1 = store().put("a", "1");
  ASSERT_OK(r1);
  EXPECT_EQ(*r1, 1);
  auto r2 = store().put("b", "2");
  ASSERT_OK(r2);
  EXPECT_EQ(*r2, 2);
  auto r3 = store().put("a", "3");
  ASSERT_OK(r3);
  EXPECT_EQ(*r3, 3);
  EXPECT_EQ(*store().revision(), 3);

  auto a = store().get("a");
  ASSERT_OK(a);
  ASSERT_TRUE(a->has_value());
  EXPECT_EQ((*a)->key, "a");
  EXPECT_EQ((*a)->value, "3");
  EXPECT_EQ((*a)->create_revision, 1);
  EXPECT_EQ((*a)->mod_revision, 3);
  EXPECT_EQ((*a)->version, 2);

  auto b = store().get("b");
  ASSERT_OK(b);
  ASSERT_TRUE(b->has_value());
  EXPECT_EQ((*b)->create_revision, 2);
  EXPECT_EQ((*b)->mod_revision, 2);
  EXPECT_EQ((*b)->version, 1);
}

TEST_P(StoreConformance, RecreatedKeyStartsOver) {
  ASSERT_OK(store().put("k", "1"));
  ASSERT_OK(store().put("k", "2"));
  ASSERT_OK(store().remove("k"));
  ASSERT_OK(store().put("k", "3"));
  auto k = store().get("k");
  ASSERT_OK(k);
  ASSERT_TRUE(k->has_value());
  EXPECT_EQ((*k)->create_revision, 4);
  EXPECT_EQ((*k)->mod_revision, 4);
  EXPECT_EQ((*k)->version, 1);
}

TEST_P(StoreConformance, GetMissingIsNullopt) {
  ASSERT_OK(store().put("present", "x"));
  auto got = store().get("absent");
  ASSERT_OK(got);
  EXPECT_FALSE(got->has_value());
}

TEST_P(StoreConformance, ListByPrefixIsSortedAndExact) {
  for (const char* key :
       {"svc/web", "svc/api", "svc", "sv", "svc0", "svd/x", "node/1", "svc/api/v2", "a"}) {
    ASSERT_OK(store().put(key, key));
  }
  EXPECT_EQ(keys_under("svc/"), (std::vector<std::string>{"svc/api", "svc/api/v2", "svc/web"}));
  EXPECT_EQ(keys_under("svc/api/"), (std::vector<std::string>{"svc/api/v2"}));
  EXPECT_TRUE(keys_under("zzz").empty());
  auto listed = store().list("svc/");
  ASSERT_OK(listed);
  EXPECT_EQ(listed->revision, 9);
  EXPECT_EQ(listed->kvs[0].value, "svc/api");
}

TEST_P(StoreConformance, EmptyPrefixListsEverything) {
  for (const char* key : {"b", "a", "c/d", "\x7f", "\xff\x01"}) ASSERT_OK(store().put(key, "v"));
  EXPECT_EQ(keys_under(""), (std::vector<std::string>{"a", "b", "c/d", "\x7f", "\xff\x01"}));
}

TEST_P(StoreConformance, PrefixOfHighBytesIsBoundedCorrectly) {
  for (const char* key : {"a\xff", "a\xff\xff", "a\xff\xff/x", "b", "a"}) {
    ASSERT_OK(store().put(key, "v"));
  }
  EXPECT_EQ(keys_under("a\xff"), (std::vector<std::string>{"a\xff", "a\xff\xff", "a\xff\xff/x"}));
  EXPECT_EQ(keys_under("a\xff\xff"), (std::vector<std::string>{"a\xff\xff", "a\xff\xff/x"}));
}

TEST_P(StoreConformance, LikeWildcardsInPrefixAreLiteral) {
  for (const char* key : {"a%b/1", "axb/1", "a_c/1", "abc/1"}) ASSERT_OK(store().put(key, "v"));
  EXPECT_EQ(keys_under("a%"), (std::vector<std::string>{"a%b/1"}));
  EXPECT_EQ(keys_under("a_"), (std::vector<std::string>{"a_c/1"}));
}

TEST_P(StoreConformance, PutIfZeroCreatesOnlyWhenMissing) {
  auto created = store().put_if("k", "first", 0);
  ASSERT_OK(created);
  EXPECT_EQ(*created, 1);

  auto again = store().put_if("k", "second", 0);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, ErrorCode::kConflict);
  EXPECT_EQ(*store().revision(), 1);
  EXPECT_EQ(value_of(store(), "k"), "first");
}

TEST_P(StoreConformance, PutIfChecksModRevision) {
  auto r1 = store().put("k", "1");
  ASSERT_OK(r1);
  auto r2 = store().put_if("k", "2", *r1);
  ASSERT_OK(r2);
  EXPECT_EQ(value_of(store(), "k"), "2");

  auto stale = store().put_if("k", "3", *r1);
  ASSERT_FALSE(stale);
  EXPECT_EQ(stale.error().code, ErrorCode::kConflict);
  EXPECT_EQ(value_of(store(), "k"), "2");
  EXPECT_EQ(*store().revision(), *r2);

  auto missing = store().put_if("other", "x", 5);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ErrorCode::kConflict);
}

TEST_P(StoreConformance, RemoveMissingIsNotFound) {
  auto removed = store().remove("nope");
  ASSERT_FALSE(removed);
  EXPECT_EQ(removed.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(*store().revision(), 0);
}

TEST_P(StoreConformance, RemoveDeletesAndBumpsRevision) {
  ASSERT_OK(store().put("k", "v"));
  auto removed = store().remove("k");
  ASSERT_OK(removed);
  EXPECT_EQ(*removed, 2);
  EXPECT_EQ(value_of(store(), "k"), "<missing>");
}

TEST_P(StoreConformance, RemoveIfChecksModRevision) {
  auto r1 = store().put("k", "1");
  ASSERT_OK(r1);
  auto r2 = store().put("k", "2");
  ASSERT_OK(r2);

  auto stale = store().remove_if("k", *r1);
  ASSERT_FALSE(stale);
  EXPECT_EQ(stale.error().code, ErrorCode::kConflict);
  EXPECT_EQ(value_of(store(), "k"), "2");

  auto removed = store().remove_if("k", *r2);
  ASSERT_OK(removed);
  EXPECT_EQ(*removed, 3);
  EXPECT_EQ(value_of(store(), "k"), "<missing>");
}

TEST_P(StoreConformance, TxnIsAllOrNothing) {
  auto ra = store().put("a", "1");
  ASSERT_OK(ra);
  ASSERT_OK(store().put("b", "1"));

  Txn failing;
  failing.compares = {{"a", *ra}, {"b", 0}};  // b exists: this compare fails
  failing.ops = {{Operation::Type::kPut, "a", "2"},
                 {Operation::Type::kPut, "c", "2"},
                 {Operation::Type::kDelete, "b", ""}};
  auto failed = store().txn(failing);
  ASSERT_OK(failed);
  EXPECT_FALSE(failed->succeeded);
  EXPECT_EQ(failed->revision, 2);
  EXPECT_EQ(*store().revision(), 2);
  EXPECT_EQ(value_of(store(), "a"), "1");
  EXPECT_EQ(value_of(store(), "b"), "1");
  EXPECT_EQ(value_of(store(), "c"), "<missing>");

  Txn passing = failing;
  passing.compares[1].mod_revision = 2;
  auto passed = store().txn(passing);
  ASSERT_OK(passed);
  EXPECT_TRUE(passed->succeeded);
  EXPECT_EQ(passed->revision, 3);  // several ops, one revision
  EXPECT_EQ(value_of(store(), "a"), "2");
  EXPECT_EQ(value_of(store(), "b"), "<missing>");
  EXPECT_EQ(value_of(store(), "c"), "2");
  EXPECT_EQ((*store().get("c"))->mod_revision, 3);
}

TEST_P(StoreConformance, TxnThatChangesNothingKeepsRevision) {
  ASSERT_OK(store().put("a", "1"));
  Txn noop;
  noop.ops = {{Operation::Type::kDelete, "missing", ""},
              {Operation::Type::kDeletePrefix, "nothing/", ""}};
  auto result = store().txn(noop);
  ASSERT_OK(result);
  EXPECT_TRUE(result->succeeded);
  EXPECT_EQ(result->revision, 1);
  EXPECT_EQ(*store().revision(), 1);
}

TEST_P(StoreConformance, DeletePrefixRemovesOnlyThatPrefix) {
  for (const char* key : {"job/a", "job/b", "job/b/c", "job", "jobs/x", "other"}) {
    ASSERT_OK(store().put(key, "v"));
  }
  Txn t;
  t.ops = {{Operation::Type::kDeletePrefix, "job/", ""}};
  auto result = store().txn(t);
  ASSERT_OK(result);
  EXPECT_EQ(result->revision, 7);
  EXPECT_EQ(keys_under(""), (std::vector<std::string>{"job", "jobs/x", "other"}));

  auto events = store().watch("", 6, 0ms);
  ASSERT_OK(events);
  ASSERT_EQ(events->events.size(), 3u);
  for (const Event& e : events->events) {
    EXPECT_EQ(e.type, Event::Type::kDelete);
    EXPECT_EQ(e.kv.mod_revision, 7);
  }
}

TEST_P(StoreConformance, DeleteEmptyPrefixRemovesEverything) {
  for (const char* key : {"a", "b/c", "\xff"}) ASSERT_OK(store().put(key, "v"));
  Txn t;
  t.ops = {{Operation::Type::kDeletePrefix, "", ""}};
  ASSERT_OK(store().txn(t));
  EXPECT_TRUE(keys_under("").empty());
  EXPECT_EQ(*store().revision(), 4);
}

TEST_P(StoreConformance, WatchReturnsEventsAfterRevisionInOrder) {
  ASSERT_OK(store().put("a", "1"));  // 1
  ASSERT_OK(store().put("b", "1"));  // 2
  ASSERT_OK(store().put("a", "2"));  // 3
  ASSERT_OK(store().remove("b"));    // 4
  ASSERT_OK(store().put("c", "1"));  // 5

  auto watched = store().watch("", 1, 0ms);
  ASSERT_OK(watched);
  EXPECT_EQ(watched->revision, 5);
  ASSERT_EQ(watched->events.size(), 4u);
  const auto& ev = watched->events;
  EXPECT_EQ(ev[0].type, Event::Type::kPut);
  EXPECT_EQ(ev[0].kv.key, "b");
  EXPECT_EQ(ev[0].kv.mod_revision, 2);
  EXPECT_EQ(ev[1].kv.key, "a");
  EXPECT_EQ(ev[1].kv.value, "2");
  EXPECT_EQ(ev[1].kv.create_revision, 1);
  EXPECT_EQ(ev[1].kv.mod_revision, 3);
  EXPECT_EQ(ev[1].kv.version, 2);
  EXPECT_EQ(ev[2].type, Event::Type::kDelete);
  EXPECT_EQ(ev[2].kv.key, "b");
  EXPECT_EQ(ev[2].kv.value, "");
  EXPECT_EQ(ev[2].kv.mod_revision, 4);
  EXPECT_EQ(ev[3].kv.key, "c");
  EXPECT_EQ(ev[3].kv.mod_revision, 5);

  auto all = store().watch("", 0, 0ms);
  ASSERT_OK(all);
  EXPECT_EQ(all->events.size(), 5u);
}

TEST_P(StoreConformance, WatchFiltersByPrefix) {
  ASSERT_OK(store().put("svc/a", "1"));
  ASSERT_OK(store().put("node/a", "1"));
  ASSERT_OK(store().put("svc", "1"));
  ASSERT_OK(store().put("svc/b", "1"));
  auto watched = store().watch("svc/", 0, 0ms);
  ASSERT_OK(watched);
  ASSERT_EQ(watched->events.size(), 2u);
  EXPECT_EQ(watched->events[0].kv.key, "svc/a");
  EXPECT_EQ(watched->events[1].kv.key, "svc/b");
}

TEST_P(StoreConformance, WatchTimesOutEmptyWithoutWrites) {
  ASSERT_OK(store().put("a", "1"));
  const auto start = std::chrono::steady_clock::now();
  auto watched = store().watch("", 1, 150ms);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_OK(watched);
  EXPECT_TRUE(watched->events.empty());
  EXPECT_EQ(watched->revision, 1);
  EXPECT_GE(elapsed, 140ms);
  EXPECT_LT(elapsed, 5s);  // generous: the machine may be busy
}

TEST_P(StoreConformance, WatchIgnoresWritesOutsideItsPrefix) {
  std::thread writer([&] {
    std::this_thread::sleep_for(30ms);
    ASSERT_OK(store().put("other", "x"));
  });
  auto watched = store().watch("mine/", 0, 300ms);
  writer.join();
  ASSERT_OK(watched);
  EXPECT_TRUE(watched->events.empty());
  EXPECT_EQ(watched->revision, 1);
}

TEST_P(StoreConformance, WatchWakesOnWrite) {
  ASSERT_OK(store().put("a", "1"));
  std::atomic<bool> wrote = false;
  std::chrono::steady_clock::time_point write_time;
  std::thread writer([&] {
    std::this_thread::sleep_for(100ms);
    write_time = std::chrono::steady_clock::now();
    wrote = true;
    ASSERT_OK(store().put("watched/x", "hello"));
  });
  auto watched = store().watch("watched/", 1, 20s);
  const auto returned = std::chrono::steady_clock::now();
  writer.join();
  ASSERT_OK(watched);
  EXPECT_TRUE(wrote);
  ASSERT_EQ(watched->events.size(), 1u);
  EXPECT_EQ(watched->events[0].kv.value, "hello");
  EXPECT_EQ(watched->revision, 2);
  EXPECT_LT(returned - write_time, 5s);  // woken by the commit, not by the 20 s timeout
}

TEST_P(StoreConformance, BinaryValuesRoundTrip) {
  const std::string value("\0a\0\xff\x01\n\0", 7);
  const std::string key("bin/\x01\x7f", 6);
  ASSERT_OK(store().put(key, value));
  ASSERT_OK(store().put("empty", ""));
  auto got = store().get(key);
  ASSERT_OK(got);
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ((*got)->value, value);
  EXPECT_EQ((*got)->key, key);
  EXPECT_EQ(value_of(store(), "empty"), "");
  auto listed = store().list("bin/");
  ASSERT_OK(listed);
  ASSERT_EQ(listed->kvs.size(), 1u);
  EXPECT_EQ(listed->kvs[0].value, value);
  auto watched = store().watch("bin/", 0, 0ms);
  ASSERT_OK(watched);
  ASSERT_EQ(watched->events.size(), 1u);
  EXPECT_EQ(watched->events[0].kv.value, value);
}

TEST_P(StoreConformance, ConcurrentCompareAndSwapLosesNoUpdate) {
  constexpr int kThreads = 4;
  constexpr int kIncrements = 25;
  std::atomic<int> failures = 0;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kIncrements; ++i) {
        while (true) {
          auto current = store().get("counter");
          if (!current) {
            ++failures;
            return;
          }
          int64_t expected = *current ? (*current)->mod_revision : 0;
          int count = *current ? std::stoi((*current)->value) : 0;
          auto put = store().put_if("counter", std::to_string(count + 1), expected);
          if (put) break;
          if (put.error().code != ErrorCode::kConflict) {
            ++failures;
            return;
          }
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(value_of(store(), "counter"), std::to_string(kThreads * kIncrements));
  EXPECT_EQ(*store().revision(), kThreads * kIncrements);
  EXPECT_EQ((*store().get("counter"))->version, kThreads * kIncrements);
}

TEST_P(StoreConformance, CompactedHistoryIsReported) {
  auto backend = GetParam().make({.history_limit = 4});
  ASSERT_TRUE(backend && backend->ok()) << "the store did not open";
  Store& small = backend->store();
  for (int i = 1; i <= 10; ++i) ASSERT_OK(small.put("k" + std::to_string(i), "v"));

  auto old = small.watch("", 0, 0ms);
  ASSERT_FALSE(old);
  EXPECT_EQ(old.error().code, ErrorCode::kCompacted);

  // The newest history_limit revisions (one event each here) are always kept.
  auto recent = small.watch("", 6, 0ms);
  ASSERT_OK(recent);
  ASSERT_EQ(recent->events.size(), 4u);
  EXPECT_EQ(recent->events.front().kv.key, "k7");
  EXPECT_EQ(recent->events.back().kv.key, "k10");

  // Compaction trims history only: current state is all there.
  auto listed = small.list("");
  ASSERT_OK(listed);
  EXPECT_EQ(listed->kvs.size(), 10u);
}

INSTANTIATE_TEST_SUITE_P(AllBackends, StoreConformance, ::testing::ValuesIn(backends()),
                         [](const ::testing::TestParamInfo<BackendFactory>& info) {
                           return info.param.name;
                         });

}  // namespace
}  // namespace mill::store
