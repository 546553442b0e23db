#pragma once

// Result<T>: a value or an Error, with the std::expected API (g++ 12 has no
// std::expected in C++20). Our code reports failure through it, never by exception.

#include <cassert>
#include <type_traits>
#include <utility>
#include <variant>

#include "common/error.h"

namespace mill {

// Wraps an Error so that `return Unexpected(err);` converts to any Result<T>.
class Unexpected {
 public:
  explicit Unexpected(Error error) : error_(std::move(error)) {}
  Unexpected(ErrorCode code, std::string message) : error_{code, std::move(message)} {}
  Error& error() & { return error_; }
  Error&& error() && { return std::move(error_); }

 private:
  Error error_;
};

inline Unexpected make_error(ErrorCode code, std::string message) {
  return Unexpected(code, std::move(message));
}

template <class T>
class [[nodiscard]] Result {
 public:
  using value_type = T;

  Result() requires std::is_default_constructible_v<T> : data_(std::in_place_index<0>) {}
  template <class U = T>
  requires std::is_constructible_v<T, U&&> &&(!std::is_same_v<std::remove_cvref_t<U>, Result>)&&(
      !std::is_same_v<std::remove_cvref_t<U>, Unexpected>)Result(U&& value)
      : data_(std::in_place_index<0>, std::forward<U>(value)) {}
  Result(Unexpected unexpected) : data_(std::in_place_index<1>, std::move(unexpected).error()) {}

  bool has_value() const { return data_.index() == 0; }
  explicit operator bool() const { return has_value(); }

  T& value() & { return check(), std::get<0>(data_); }
  const T& value() const& { return check(), std::get<0>(data_); }
  T&& value() && { return check(), std::get<0>(std::move(data_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  template <class U>
  T value_or(U&& fallback) const& {
    return has_value() ? std::get<0>(data_) : static_cast<T>(std::forward<U>(fallback));
  }

  const Error& error() const& {
    assert(!has_value());
    return std::get<1>(data_);
  }
  Error&& error() && {
    assert(!has_value());
    return std::get<1>(std::move(data_));
  }

 private:
  void check() const { assert(has_value() && "Result::value() on an error"); }
  std::variant<T, Error> data_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  using value_type = void;

  Result() = default;
  Result(Unexpected unexpected) : error_(std::move(unexpected).error()), ok_(false) {}

  bool has_value() const { return ok_; }
  explicit operator bool() const { return ok_; }
  void value() const { assert(ok_); }

  const Error& error() const& {
    assert(!ok_);
    return error_;
  }
  Error&& error() && {
    assert(!ok_);
    return std::move(error_);
  }

 private:
  Error error_;
  bool ok_ = true;
};

}  // namespace mill

// MILL_TRY(expr): evaluates a Result; on error returns it from the enclosing function
// (which must return some Result), else yields the value. Uses a GNU statement
// expression, as Ladybird's TRY does; g++ and clang both support it.
#define MILL_TRY(expr)                                                \
  ({                                                                  \
    auto&& mill_try_result_ = (expr);                                 \
    if (!mill_try_result_) {                                          \
      return ::mill::Unexpected(std::move(mill_try_result_).error()); \
    }                                                                 \
    std::move(mill_try_result_).value();                              \
  })
