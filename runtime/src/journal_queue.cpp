#include "journal_queue.hpp"

#include <exception>

#include "journal.hpp"
#include "troupe/model/log.hpp"

namespace troupe {

journal_queue::journal_queue(std::unique_ptr<journal> j, size_t max_bytes)
    : journal_(std::move(j)), max_bytes_(max_bytes), thread_([this] { run(); }) {}

journal_queue::~journal_queue() {
  stop();
}

bool journal_queue::has_room(size_t bytes) const {
  std::lock_guard<std::mutex> guard{mutex_};
  return jobs_.empty() || bytes_ + bytes <= max_bytes_;
}

void journal_queue::post(job j, size_t bytes) {
  {
    std::lock_guard<std::mutex> guard{mutex_};
    jobs_.push_back({std::move(j), bytes});
    bytes_ += bytes;
    if (bytes_ > peak_) peak_ = bytes_;
  }
  ready_.notify_one();
}

void journal_queue::stop() {
  {
    std::lock_guard<std::mutex> guard{mutex_};
    stopping_ = true;
  }
  ready_.notify_one();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

size_t journal_queue::queued_bytes() const {
  std::lock_guard<std::mutex> guard{mutex_};
  return bytes_;
}

size_t journal_queue::peak_bytes() const {
  std::lock_guard<std::mutex> guard{mutex_};
  return peak_;
}

void journal_queue::run() {
  std::unique_lock<std::mutex> lock{mutex_};
  for (;;) {
    ready_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
    if (jobs_.empty()) return;  // stopping, and everything posted has run
    auto e = std::move(jobs_.front());
    jobs_.pop_front();
    lock.unlock();
    try {
      e.work(*journal_);
    } catch (const std::exception& ex) {
      // The jobs catch journal errors themselves; this is a bug in one, not a disk problem.
      troupe::logger().error("head: journal queue: a job threw: {}", ex.what());
    }
    lock.lock();
    bytes_ -= e.bytes;
  }
}

}  // namespace troupe
