#pragma once
// journal_queue: the head's journal on a thread of its own. A commit can take seconds on a busy
// disk (a 40 MiB record took 15 s under load); on the socket thread that stopped heartbeats both
// ways, and both sides declared the other dead. Here the socket thread only posts jobs: each
// writes (or reads) the journal and then sends what had to wait for it (a submit's ids, results),
// in the order they were posted. So "on disk before the client hears of it" still holds, and
// every reply that depends on the journal leaves in order.
//
// Bound: the bytes of the bodies waiting. Results and fetches are always taken (they are bounded
// by the tasks in flight); a submit asks has_room() first and is refused as overloaded when the
// journal is that far behind.
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

namespace troupe {

class journal;

class journal_queue {
 public:
  /// Runs on the queue's thread with the journal; what it sends goes out after the write.
  using job = std::function<void(journal&)>;

  journal_queue(std::unique_ptr<journal> j, size_t max_bytes);
  /// Runs every job still queued, then joins.
  ~journal_queue();
  journal_queue(const journal_queue&) = delete;
  journal_queue& operator=(const journal_queue&) = delete;

  /// Thread-safe: whether a job of `bytes` stays within the bound (an empty queue takes any).
  bool has_room(size_t bytes) const;
  /// Thread-safe: queues a job of `bytes` (counted against the bound, never refused).
  void post(job j, size_t bytes);
  /// Runs every job still queued, then joins; idempotent.
  void stop();

  /// Bytes waiting now, and the most that ever waited (for the log and tests).
  size_t queued_bytes() const;
  size_t peak_bytes() const;

 private:
  void run();

  std::unique_ptr<journal> journal_;
  size_t max_bytes_;
  mutable std::mutex mutex_;
  std::condition_variable ready_;
  struct entry {
    job work;
    size_t bytes;
  };
  std::deque<entry> jobs_;
  size_t bytes_ = 0, peak_ = 0;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace troupe
