// SQLite-specific behaviour; what every backend shares is in store_conformance_test.cc.

#include "store/sqlite_store.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <fstream>

#include "support/temp_dir.h"

namespace mill::store {
namespace {

using namespace std::chrono_literals;
using mill::testing::TempDir;

std::unique_ptr<SqliteStore> open_or_fail(const std::string& path,
                                          const SqliteStoreOptions& options = {}) {
  auto opened = SqliteStore::open(path, options);
  EXPECT_TRUE(opened) << opened.error().to_string();
  return opened ? std::move(*opened) : nullptr;
}

TEST(SqliteStore, DataSurvivesReopen) {
  TempDir dir;
  const std::string path = dir.file("store.db");
  {
    auto store = open_or_fail(path);
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->put("a", "1"));
    ASSERT_TRUE(store->put("b", std::string("\0two", 4)));
    ASSERT_TRUE(store->put("a", "3"));
    ASSERT_TRUE(store->remove("b"));
    ASSERT_TRUE(store->put("c", "4"));
  }
  auto store = open_or_fail(path);
  ASSERT_TRUE(store);
  EXPECT_EQ(*store->revision(), 5);
  auto listed = store->list("");
  ASSERT_TRUE(listed);
  EXPECT_EQ(listed->revision, 5);
  ASSERT_EQ(listed->kvs.size(), 2u);
  EXPECT_EQ(listed->kvs[0].key, "a");
  EXPECT_EQ(listed->kvs[0].value, "3");
  EXPECT_EQ(listed->kvs[0].create_revision, 1);
  EXPECT_EQ(listed->kvs[0].mod_revision, 3);
  EXPECT_EQ(listed->kvs[0].version, 2);
  EXPECT_EQ(listed->kvs[1].key, "c");
  EXPECT_EQ(listed->kvs[1].create_revision, 5);

  // History survives too, and new writes continue the revision sequence.
  auto watched = store->watch("", 0, 0ms);
  ASSERT_TRUE(watched);
  EXPECT_EQ(watched->events.size(), 5u);
  auto next = store->put("d", "5");
  ASSERT_TRUE(next);
  EXPECT_EQ(*next, 6);
}

TEST(SqliteStore, CompactionSurvivesReopen) {
  TempDir dir;
  const std::string path = dir.file("store.db");
  SqliteStoreOptions options;
  options.history_limit = 3;
  {
    auto store = open_or_fail(path, options);
    ASSERT_TRUE(store);
    for (int i = 0; i < 8; ++i) ASSERT_TRUE(store->put("k", std::to_string(i)));
    EXPECT_GT(store->compacted_revision(), 0);
  }
  auto store = open_or_fail(path, options);
  ASSERT_TRUE(store);
  EXPECT_GT(store->compacted_revision(), 0);
  auto old = store->watch("", 0, 0ms);
  ASSERT_FALSE(old);
  EXPECT_EQ(old.error().code, ErrorCode::kCompacted);
}

TEST(SqliteStore, IntegrityCheckIsOk) {
  TempDir dir;
  auto store = open_or_fail(dir.file("store.db"));
  ASSERT_TRUE(store);
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(store->put("key/" + std::to_string(i), "v"));
  auto check = store->integrity_check();
  ASSERT_TRUE(check) << check.error().to_string();
  EXPECT_EQ(*check, "ok");
}

TEST(SqliteStore, DurabilityPragmasAreInEffect) {
  TempDir dir;
  auto store = open_or_fail(dir.file("store.db"));
  ASSERT_TRUE(store);
  EXPECT_EQ(*store->pragma("journal_mode"), "wal");
  EXPECT_EQ(*store->pragma("synchronous"), "2");  // 2 = FULL
  EXPECT_EQ(*store->pragma("busy_timeout"), "5000");
  EXPECT_EQ(*store->pragma("user_version"), "1");
}

// A kProcessCrash write (a spawn's record, an agent's status report) commits without
// the fsync, which the flusher does next and sync() waits for; a durable write right
// after it is back under FULL. Everything is there after a reopen.
TEST(SqliteStore, AProcessCrashWriteSkipsTheFsyncButNeverADurableOne) {
  TempDir dir;
  const std::string path = dir.file("store.db");
  {
    auto store = open_or_fail(path);
    ASSERT_TRUE(store);
    Txn light;
    light.durability = Durability::kProcessCrash;
    light.ops.push_back({Operation::Type::kPut, "status/a", "running"});
    auto done = store->txn(light);
    ASSERT_TRUE(done && done->succeeded);
    EXPECT_EQ(*store->pragma("synchronous"), "1");  // 1 = NORMAL: no fsync per commit
    auto synced = store->sync(done->revision);
    EXPECT_TRUE(synced) << synced.error().message;
    EXPECT_TRUE(store->sync(done->revision + 100)) << "a revision not reached yet: the last";
    ASSERT_TRUE(store->put("tasks/a", "spec"));
    EXPECT_EQ(*store->pragma("synchronous"), "2") << "a durable write is fsynced";
    light.ops[0].value = "exited";
    ASSERT_TRUE(store->txn(light));
    ASSERT_TRUE(store->put("tasks/b", "spec"));
    EXPECT_EQ(*store->pragma("synchronous"), "2");
  }
  auto store = open_or_fail(path);
  ASSERT_TRUE(store);
  EXPECT_EQ(store->get("status/a")->value().value, "exited");
  EXPECT_EQ(store->get("tasks/b")->value().value, "spec");
  EXPECT_EQ(*store->revision(), 4);
}

TEST(SqliteStore, PragmaRejectsAnythingButAName) {
  TempDir dir;
  auto store = open_or_fail(dir.file("store.db"));
  ASSERT_TRUE(store);
  auto bad = store->pragma("journal_mode=DELETE");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(*store->pragma("journal_mode"), "wal");
}

TEST(SqliteStore, OpenFailsCleanlyOnBadPath) {
  auto opened = SqliteStore::open("/nonexistent-dir/for/sure/store.db");
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().code, ErrorCode::kIo);
}

TEST(SqliteStore, OpenRejectsAFileThatIsNotADatabase) {
  TempDir dir;
  const std::string path = dir.file("junk.db");
  std::ofstream(path) << "this is not an sqlite database, just some text that is long enough";
  auto opened = SqliteStore::open(path);
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().code, ErrorCode::kIo);
}

}  // namespace
}  // namespace mill::store

namespace mill::store {
namespace {

TEST(SqliteStore, FilesArePrivate) {
  mill::testing::TempDir dir;
  const std::string path = dir.file("state.db");
  auto store = SqliteStore::open(path);
  ASSERT_TRUE(store);
  ASSERT_TRUE((*store)->put("k", "v"));  // makes the -wal and -shm files
  for (const std::string& f : {path, path + "-wal", path + "-shm"}) {
    struct stat st {};
    ASSERT_EQ(::stat(f.c_str(), &st), 0) << f;
    EXPECT_EQ(st.st_mode & 0777, 0600u) << f;
  }
}

}  // namespace
}  // namespace mill::store
