#include "troupe/actors/callback_runner.hpp"

#include "troupe/model/log.hpp"

namespace troupe {

void run_callback_then_set(task_state& t, task_result& r) noexcept {
  try {
    (*t.callback)(r);
  } catch (const std::exception& e) {
    troupe::logger().warn("callback of task {} threw: {}", t.id, e.what());
  } catch (...) {
    troupe::logger().warn("callback of task {} threw a non-exception", t.id);
  }
  t.done.set(std::move(r));
}

callback_runner::callback_runner(std::function<void(uint64_t)> ran)
    : ran_(std::move(ran)), thread_([this] { loop(); }) {}

callback_runner::~callback_runner() {
  {
    std::lock_guard<std::mutex> guard{mutex_};
    stopping_ = true;
  }
  cv_.notify_one();
  thread_.join();
}

void callback_runner::post(std::vector<std::pair<task_ptr, task_result>> tasks) {
  if (tasks.empty()) return;
  {
    std::lock_guard<std::mutex> guard{mutex_};
    waiting_.push_back(std::move(tasks));
  }
  cv_.notify_one();
}

void callback_runner::loop() {
  std::unique_lock<std::mutex> lock{mutex_};
  for (;;) {
    cv_.wait(lock, [&] { return stopping_ || !waiting_.empty(); });
    if (waiting_.empty()) return;  // stopping, and all ran
    auto batch = std::move(waiting_.front());
    waiting_.pop_front();
    lock.unlock();
    for (auto& [t, r] : batch) {
      run_callback_then_set(*t, r);
      t.reset();  // the record goes before the task counts as finished
      ran_(1);    // one at a time: a callback that submits finds its predecessors' places free
    }
    lock.lock();
  }
}

}  // namespace troupe
