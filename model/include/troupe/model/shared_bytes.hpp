#pragma once
// Bytes shared rather than copied: a task's payload and an output's bytes. Copying a
// shared_bytes shares one immutable buffer, so a graph child's payload is its parent's output
// (embedded, no byte moves: docs/graphs.md "Where data moves"), and a task spec in a message, a
// kept output and a result handle all point at the same bytes. Nothing changes the bytes in
// place: assigning new bytes replaces the buffer, never the contents other copies see.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

namespace troupe {

class shared_bytes {
 public:
  using value_type = uint8_t;
  using const_iterator = const uint8_t*;
  using iterator = const_iterator;  // read-only either way

  shared_bytes() = default;
  /// Takes the vector's buffer (moved: no copy; an lvalue is copied once, here).
  shared_bytes(std::vector<uint8_t> bytes);  // NOLINT(google-explicit-constructor): bytes
  shared_bytes(std::initializer_list<uint8_t> bytes) : shared_bytes(std::vector<uint8_t>(bytes)) {}
  shared_bytes(size_t count, uint8_t fill) : shared_bytes(std::vector<uint8_t>(count, fill)) {}
  template <class It, class = decltype(*std::declval<It>())>
  shared_bytes(It first, It last) : shared_bytes(std::vector<uint8_t>(first, last)) {}
  /// `size` bytes at `data`, alive as long as `owner` is (a received frame, say): no copy.
  /// Kernels read payloads as floats: `data` must be aligned as a vector's would be.
  shared_bytes(std::shared_ptr<const void> owner, const uint8_t* data, size_t size)
      : owner_(size ? std::move(owner) : nullptr), data_(size ? data : nullptr), size_(size) {}

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  const uint8_t* begin() const { return data_; }
  const uint8_t* end() const { return data_ + size_; }
  uint8_t operator[](size_t i) const { return data_[i]; }

  template <class It, class = decltype(*std::declval<It>())>
  void assign(It first, It last) {
    *this = shared_bytes(first, last);
  }
  void assign(size_t count, uint8_t fill) { *this = shared_bytes(count, fill); }
  void clear() { *this = shared_bytes(); }

  std::string to_string() const { return {reinterpret_cast<const char*>(data_), size_}; }
  /// Whether both are the same bytes in memory (not merely equal): no copy was made between
  /// them. Empty bytes share nothing.
  bool shares_buffer_with(const shared_bytes& o) const {
    return size_ != 0 && data_ == o.data_ && size_ == o.size_;
  }

  friend bool operator==(const shared_bytes& a, const shared_bytes& b) {
    return a.size_ == b.size_ &&
           (a.data_ == b.data_ || std::memcmp(a.data_, b.data_, a.size_) == 0);
  }
  friend bool operator!=(const shared_bytes& a, const shared_bytes& b) { return !(a == b); }
  friend bool operator==(const shared_bytes& a, const std::vector<uint8_t>& b) {
    return a.size_ == b.size() && std::equal(a.begin(), a.end(), b.begin());
  }
  friend bool operator==(const std::vector<uint8_t>& a, const shared_bytes& b) { return b == a; }
  friend bool operator!=(const shared_bytes& a, const std::vector<uint8_t>& b) { return !(a == b); }
  friend bool operator!=(const std::vector<uint8_t>& a, const shared_bytes& b) { return !(b == a); }

 private:
  std::shared_ptr<const void> owner_;  ///< keeps data_ alive; null when empty
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace troupe
