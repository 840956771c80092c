#include "process_host.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <unordered_map>

#include "troupe/transport/codec.hpp"

namespace troupe {

namespace {

/// How often a waiting runner looks at its attempt's stop and cancel flags.
constexpr int flag_poll_ms = 5;
/// How long a child whose socket closed may take to finish dying.
constexpr int dying_grace_ms = 1000;

bool write_all(int fd, const void* data, size_t n) {
  auto* p = static_cast<const char*>(data);
  while (n > 0) {
    auto w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= size_t(w);
  }
  return true;
}

bool read_all(int fd, void* data, size_t n) {
  auto* p = static_cast<char*>(data);
  while (n > 0) {
    auto r = ::read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= size_t(r);
  }
  return true;
}

bool send_frame(int fd, const std::string& body) {
  uint64_t size = body.size();
  return write_all(fd, &size, sizeof size) && write_all(fd, body.data(), body.size());
}

/// A frame of at most `limit` bytes, or false (closed, or larger than allowed).
bool read_frame(int fd, std::string& body, size_t limit) {
  uint64_t size = 0;
  if (!read_all(fd, &size, sizeof size) || size > limit) return false;
  body.resize(size_t(size));
  return read_all(fd, body.data(), body.size());
}

std::string describe(int status) {
  if (WIFSIGNALED(status)) {
    auto sig = WTERMSIG(status);
    const char* name = strsignal(sig);
    return "was killed by signal " + std::to_string(sig) + " (" + (name ? name : "?") + ")";
  }
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  return "ended";
}

using kind_snapshot = std::unordered_map<std::string, const kind_entry*>;

/// The child: reads one task at a time, runs it, answers. Only what is safe after fork() in a
/// process that had other threads: no logging, no registry lock (a snapshot taken before the
/// fork), no actor or socket of the parent. Ends when the parent's end closes.
[[noreturn]] void serve(int fd, const kind_snapshot& kinds, const wire::limits& lim,
                        int32_t worker) {
  std::string frame;
  while (read_frame(fd, frame, lim.max_frame_bytes)) {
    wire::results out;
    out.records.resize(1);
    auto& r = out.records[0];
    try {
      auto in = wire::decode<wire::assign>(frame.data(), frame.size(), lim);
      if (in.tasks.size() != 1) throw std::runtime_error("expected one task");
      auto& t = in.tasks[0];
      r.id = t.id;
      r.attempt = t.attempt;
      auto k = kinds.find(t.spec.kind);
      if (k == kinds.end() || !k->second->def.cpu)
        throw std::runtime_error("kind '" + t.spec.kind + "' is not in this worker process");
      task_context ctx{t.spec, t.attempt, worker, device_class::cpu};
      r.output = k->second->def.cpu(ctx);
    } catch (const task_failure& f) {
      r.code = f.code == errc::none ? errc::task_failed : f.code;
      r.message = f.message;
    } catch (const std::exception& e) {
      r.code = errc::kernel_crashed;
      r.message = std::string{"threw "} + e.what();
    } catch (...) {
      r.code = errc::kernel_crashed;
      r.message = "threw a non-standard exception";
    }
    if (!send_frame(fd, wire::encode(out))) break;
  }
  _exit(0);
}

class process_host final : public kernel_host {
 public:
  process_host(std::shared_ptr<task_registry> registry, uint64_t max_payload, int32_t worker,
               std::vector<std::string> exec_command)
      : registry_(std::move(registry)),
        lim_(wire::limits::for_payload(max_payload)),
        worker_(worker),
        exec_(std::move(exec_command)) {
    if (!exec_.empty()) {
      exec_.push_back("--worker");
      exec_.push_back(std::to_string(worker));
    }
  }
  ~process_host() override { end_child(); }

  task_output run(const kind_entry& kind, const task_context& ctx, task_id id) override {
    if (pid_ > 0 && !kinds_.count(kind.def.name)) end_child();  // registered since its fork
    if (pid_ <= 0) start_child();
    wire::assign in;
    in.tasks.push_back({id, ctx.attempt, ctx.worker, ctx.spec});
    if (!send_frame(fd_, wire::encode(in))) return crashed(id);
    for (;;) {
      pollfd p{fd_, POLLIN, 0};
      auto ready = ::poll(&p, 1, flag_poll_ms);
      if (ready < 0 && errno != EINTR) return crashed(id);
      if (ready > 0) break;
      if (ctx.cancelled()) {  // past its limit, cancelled, or the worker is going
        end_child();
        return {};
      }
    }
    std::string frame;
    if (!read_frame(fd_, frame, lim_.max_frame_bytes)) return crashed(id);
    auto out = wire::decode<wire::results>(frame.data(), frame.size(), lim_);
    if (out.records.size() != 1) throw kernel_host_crash("the worker process answered nonsense");
    auto& r = out.records[0];
    if (r.code == errc::kernel_crashed) {
      end_child();  // an exception: as on a thread, the worker restarts (with a fresh child)
      throw kernel_host_crash(r.message);
    }
    if (r.code != errc::none) throw task_failure{r.code, std::move(r.message)};
    return std::move(r.output);
  }

 private:
  void start_child() {
    kind_snapshot kinds;
    for (auto& name : registry_->kinds())
      if (auto* k = registry_->find(name)) kinds.emplace(name, k);
    // argv of the program to exec, built before the fork (the child may not allocate safely).
    std::vector<char*> argv;
    for (auto& a : exec_) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
      throw kernel_host_crash(std::string{"cannot make the worker process's socket: "} +
                              std::strerror(errno));
    auto parent = ::getpid();
    auto pid = ::fork();
    if (pid < 0) {
      ::close(fds[0]);
      ::close(fds[1]);
      throw kernel_host_crash(std::string{"cannot start a worker process: "} +
                              std::strerror(errno));
    }
    if (pid == 0) {
      // The child: die with the runner thread that forked it; default signal handling (the
      // node's handlers write to the node's own pipes); nothing of the parent's open but its
      // socket (fd 3).
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) _exit(1);
      for (int sig = 1; sig < NSIG; ++sig) ::signal(sig, SIG_DFL);
      sigset_t none;
      sigemptyset(&none);
      ::pthread_sigmask(SIG_SETMASK, &none, nullptr);
      if (::dup2(fds[1], 3) != 3) _exit(1);
      ::close_range(4, ~0U, 0);
      if (!exec_.empty()) {  // a fresh process: nothing of this one's locks or threads
        ::execv(argv[0], argv.data());
        _exit(127);
      }
      serve(3, kinds, lim_, worker_);
    }
    ::close(fds[1]);
    fd_ = fds[0];
    pid_ = pid;
    kinds_ = std::move(kinds);
  }

  /// The child took the attempt down with it: what it died of, as a crash.
  task_output crashed(task_id id) {
    auto why = end_child(dying_grace_ms);
    throw kernel_host_crash("the worker process " + why + " while running task " +
                            std::to_string(id));
  }

  /// Kills and reaps the child (if it still runs); what ended it. A child whose socket closed
  /// is dying: it gets up to grace_ms to finish, so that its status says what it died of.
  std::string end_child(int grace_ms = 0) {
    std::string why = "ended";
    if (pid_ > 0) {
      int status = 0;
      if (grace_ms > 0) {
        int pidfd = int(::syscall(SYS_pidfd_open, pid_, 0));
        if (pidfd >= 0) {
          pollfd p{pidfd, POLLIN, 0};
          ::poll(&p, 1, grace_ms);
          ::close(pidfd);
        }
      }
      // A child that died on its own has a status already; else it is killed now.
      if (::waitpid(pid_, &status, WNOHANG) == 0) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        why = "was stopped";
      } else {
        why = describe(status);
      }
    }
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    pid_ = -1;
    kinds_.clear();
    return why;
  }

  std::shared_ptr<task_registry> registry_;
  wire::limits lim_;
  int32_t worker_;
  std::vector<std::string> exec_;  ///< the worker process program, or empty: fork only
  int fd_ = -1;
  pid_t pid_ = -1;
  kind_snapshot kinds_;
};

}  // namespace

kernel_host_factory process_hosts(std::shared_ptr<task_registry> registry,
                                  uint64_t max_payload_bytes,
                                  std::vector<std::string> exec_command) {
  return
      [registry, max_payload_bytes, exec_command](int32_t worker) -> std::unique_ptr<kernel_host> {
        return std::make_unique<process_host>(registry, max_payload_bytes, worker, exec_command);
      };
}

void serve_tasks(int fd, const task_registry& registry, uint64_t max_payload_bytes,
                 int32_t worker) {
  kind_snapshot kinds;
  for (auto& name : registry.kinds())
    if (auto* k = registry.find(name)) kinds.emplace(name, k);
  serve(fd, kinds, wire::limits::for_payload(max_payload_bytes), worker);
}

}  // namespace troupe
