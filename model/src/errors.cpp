#include "troupe/model/errors.hpp"

#include "troupe/model/registry.hpp"
#include "troupe/model/task.hpp"

namespace troupe {

const char* to_string(errc code) noexcept {
  switch (code) {
    case errc::none:
      return "none";
    case errc::unknown_kind:
      return "unknown_kind";
    case errc::invalid_params:
      return "invalid_params";
    case errc::unsatisfiable_resources:
      return "unsatisfiable_resources";
    case errc::no_implementation:
      return "no_implementation";
    case errc::queue_full:
      return "queue_full";
    case errc::duplicate_id:
      return "duplicate_id";
    case errc::deadline_expired:
      return "deadline_expired";
    case errc::cancelled:
      return "cancelled";
    case errc::task_failed:
      return "task_failed";
    case errc::task_failed_permanently:
      return "task_failed_permanently";
    case errc::kernel_crashed:
      return "kernel_crashed";
    case errc::worker_lost:
      return "worker_lost";
    case errc::out_of_memory:
      return "out_of_memory";
    case errc::supervisor_gave_up:
      return "supervisor_gave_up";
    case errc::shutting_down:
      return "shutting_down";
    case errc::config_error:
      return "config_error";
    case errc::timed_out:
      return "timed_out";
    case errc::output_too_large:
      return "output_too_large";
    case errc::head_unreachable:
      return "head_unreachable";
    case errc::result_lost:
      return "result_lost";
    case errc::not_authorized:
      return "not_authorized";
    case errc::upstream_failed:
      return "upstream_failed";
    case errc::preempted:
      return "preempted";
  }
  return "unknown_error";
}

bool is_retryable(errc code) noexcept {
  switch (code) {
    case errc::task_failed:
    case errc::timed_out:
    case errc::kernel_crashed:
    case errc::worker_lost:
      return true;
    default:
      return false;
  }
}

const char* to_string(outcome o) noexcept {
  switch (o) {
    case outcome::pending:
      return "pending";
    case outcome::completed:
      return "completed";
    case outcome::failed:
      return "failed";
    case outcome::cancelled:
      return "cancelled";
    case outcome::expired:
      return "expired";
    case outcome::rejected:
      return "rejected";
  }
  return "unknown";
}

const char* to_string(device_class d) noexcept {
  return d == device_class::cpu ? "cpu" : "cuda";
}

}  // namespace troupe
