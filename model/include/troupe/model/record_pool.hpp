#pragma once
// Task records are allocated by the submitting thread and freed by whichever thread drops the
// last reference (usually a scheduler thread). glibc serves that pattern badly: cross-thread
// frees land in the allocating arena's unsorted bin under its lock, and the next batch pays to
// sort them (a quarter of `bench pipeline`'s time went to malloc, its lock and page faults).
// A pool of fixed-size blocks recycles them instead: one short lock per allocation and per
// release, no sorting, pages that stay faulted in.
//
//   auto t = std::allocate_shared<task_state>(pooled<task_state>{});
#include <cstddef>
#include <mutex>
#include <new>
#include <vector>

namespace troupe {

/// Blocks of one size, recycled. At most `max_free` are kept (about 50 MiB of task records at
/// the default); past that a released block goes back to operator delete, so a burst of a
/// million tasks pins no more than that.
class block_pool {
 public:
  block_pool(size_t block_size, size_t max_free) : size_(block_size), max_free_(max_free) {
    free_.reserve(max_free);  // release() never allocates, so it can be noexcept
  }
  block_pool(const block_pool&) = delete;
  block_pool& operator=(const block_pool&) = delete;

  void* allocate() {
    {
      std::lock_guard<std::mutex> guard{mutex_};
      if (!free_.empty()) {
        void* p = free_.back();
        free_.pop_back();
        return p;
      }
    }
    return ::operator new(size_);
  }

  void release(void* p) noexcept {
    {
      std::lock_guard<std::mutex> guard{mutex_};
      if (free_.size() < max_free_) {
        free_.push_back(p);  // capacity reserved below: never throws while it holds
        return;
      }
    }
    ::operator delete(p);
  }

  size_t block_size() const { return size_; }
  size_t free_blocks() const {
    std::lock_guard<std::mutex> guard{mutex_};
    return free_.size();
  }

  /// The process's pool for blocks of sizeof(T); never destroyed (records may be released by
  /// threads that outlive static destruction).
  template <class T>
  static block_pool& of() {
    static_assert(alignof(T) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__,
                  "blocks come from plain operator new: no over-aligned types");
    static block_pool* pool = new block_pool(sizeof(T), default_max_free);
    return *pool;
  }

  static constexpr size_t default_max_free = 65536;

 private:
  const size_t size_;
  const size_t max_free_;
  mutable std::mutex mutex_;
  std::vector<void*> free_;
};

/// A standard allocator over block_pool::of<T>() for single objects (what allocate_shared asks
/// for); arrays go to operator new.
template <class T>
struct pooled {
  using value_type = T;
  pooled() = default;
  template <class U>
  pooled(const pooled<U>&) noexcept {}

  T* allocate(size_t n) {
    if (n == 1) return static_cast<T*>(block_pool::of<T>().allocate());
    if (n > size_t(-1) / sizeof(T)) throw std::bad_array_new_length{};
    return static_cast<T*>(::operator new(n * sizeof(T)));
  }
  void deallocate(T* p, size_t n) noexcept {
    if (n == 1)
      block_pool::of<T>().release(p);
    else
      ::operator delete(p);
  }
  template <class U>
  bool operator==(const pooled<U>&) const noexcept {
    return true;
  }
  template <class U>
  bool operator!=(const pooled<U>&) const noexcept {
    return false;
  }
};

}  // namespace troupe
