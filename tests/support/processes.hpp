#pragma once
// Helpers of the multi-process tests (integration, chaos): files, commands, and the children of
// a process, found through /proc.
#include <dirent.h>
#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace troupe::testing_support {

inline std::string read_file(const std::string& path) {
  std::ifstream in{path};
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

/// A command started now; finish() reads all it prints and waits for it.
class command {
 public:
  explicit command(const std::string& cmd) : p_(popen((cmd + " 2>&1").c_str(), "r")) {}
  ~command() {
    if (p_) pclose(p_);
  }
  /// Its output (stdout and stderr) and exit status.
  std::pair<int, std::string> finish() {
    std::string out;
    std::array<char, 4096> buf;
    size_t n;
    while (p_ && (n = fread(buf.data(), 1, buf.size(), p_)) > 0) out.append(buf.data(), n);
    int status = p_ ? pclose(p_) : -1;
    p_ = nullptr;
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
  }

 private:
  FILE* p_;
};

/// Children of `parent` whose command line contains every word of `words`.
inline pid_t find_child(pid_t parent, const std::vector<std::string>& words) {
  DIR* d = opendir("/proc");
  pid_t found = -1;
  while (auto* e = readdir(d)) {
    pid_t pid = atoi(e->d_name);
    if (pid <= 0) continue;
    auto stat = read_file("/proc/" + std::string{e->d_name} + "/stat");
    auto close_paren = stat.rfind(')');
    if (close_paren == std::string::npos) continue;
    int ppid = 0;
    char state = 0;
    if (sscanf(stat.c_str() + close_paren + 1, " %c %d", &state, &ppid) != 2 || ppid != parent)
      continue;
    auto cmd = read_file("/proc/" + std::string{e->d_name} + "/cmdline");
    std::replace(cmd.begin(), cmd.end(), '\0', ' ');
    bool all = true;
    for (auto& w : words) all = all && cmd.find(" " + w + " ") != std::string::npos;
    if (all) found = pid;
  }
  closedir(d);
  return found;
}

/// How many processes have `parent` as their parent.
inline size_t children_of(pid_t parent) {
  size_t n = 0;
  DIR* d = opendir("/proc");
  while (auto* e = readdir(d)) {
    pid_t pid = atoi(e->d_name);
    if (pid <= 0) continue;
    auto stat = read_file("/proc/" + std::string{e->d_name} + "/stat");
    auto close_paren = stat.rfind(')');
    int ppid = 0;
    char state = 0;
    if (close_paren != std::string::npos &&
        sscanf(stat.c_str() + close_paren + 1, " %c %d", &state, &ppid) == 2 && ppid == parent)
      ++n;
  }
  closedir(d);
  return n;
}

}  // namespace troupe::testing_support
