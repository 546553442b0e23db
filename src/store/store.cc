#include "store/store.h"

namespace mill::store {

Unexpected compacted_error(int64_t after_revision, int64_t compacted_revision) {
  return make_error(ErrorCode::kCompacted, "revision " + std::to_string(after_revision) +
                                               " is compacted (history starts after " +
                                               std::to_string(compacted_revision) + ")");
}

Result<int64_t> Store::put(std::string_view key, std::string_view value) {
  Txn t;
  t.ops.push_back({Operation::Type::kPut, std::string(key), std::string(value)});
  auto r = MILL_TRY(txn(t));
  return r.revision;
}

Result<int64_t> Store::put_if(std::string_view key, std::string_view value,
                              int64_t expected_mod_revision) {
  Txn t;
  t.compares.push_back({std::string(key), expected_mod_revision});
  t.ops.push_back({Operation::Type::kPut, std::string(key), std::string(value)});
  auto r = MILL_TRY(txn(t));
  if (!r.succeeded) {
    return make_error(ErrorCode::kConflict, "key '" + std::string(key) + "' changed");
  }
  return r.revision;
}

Result<int64_t> Store::remove(std::string_view key) {
  auto current = MILL_TRY(get(key));
  if (!current) return make_error(ErrorCode::kNotFound, "no key '" + std::string(key) + "'");
  auto rev = remove_if(key, current->mod_revision);
  // Someone changed it between get and delete: it existed, delete whatever it is now.
  while (!rev && rev.error().code == ErrorCode::kConflict) {
    current = MILL_TRY(get(key));
    if (!current) return make_error(ErrorCode::kNotFound, "no key '" + std::string(key) + "'");
    rev = remove_if(key, current->mod_revision);
  }
  return rev;
}

Result<int64_t> Store::remove_if(std::string_view key, int64_t expected_mod_revision) {
  Txn t;
  t.compares.push_back({std::string(key), expected_mod_revision});
  t.ops.push_back({Operation::Type::kDelete, std::string(key), {}});
  auto r = MILL_TRY(txn(t));
  if (!r.succeeded) {
    return make_error(ErrorCode::kConflict, "key '" + std::string(key) + "' changed");
  }
  return r.revision;
}

}  // namespace mill::store
