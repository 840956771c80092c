#include "troupe/trace.hpp"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>

namespace troupe::cli {
namespace {

/// Tasks that ran on a known worker, and the time everything counts from (the first submit).
struct timeline {
  std::vector<const traced_task*> ran;
  time_point origin = time_point::max();
  time_point end{};
};

timeline timeline_of(const std::vector<traced_task>& tasks, size_t workers) {
  timeline t;
  for (auto& task : tasks) {
    auto& r = *task.result;
    t.origin = std::min(t.origin, r.timings.submitted);
    auto& tm = r.timings;
    if (tm.worker < 0 || size_t(tm.worker) >= workers || tm.started == time_point{} ||
        tm.ran_until < tm.started)
      continue;  // never ran (rejected, expired or cancelled while queued)
    t.ran.push_back(&task);
    t.end = std::max(t.end, tm.ran_until);
  }
  if (t.origin == time_point::max()) t.origin = {};
  return t;
}

double us_between(time_point a, time_point b) {
  return std::chrono::duration<double, std::micro>(b - a).count();
}

std::string escaped(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

}  // namespace

nlohmann::json chrome_trace(const std::vector<traced_task>& tasks,
                            const std::vector<std::string>& worker_names,
                            const std::string& process) {
  auto t = timeline_of(tasks, worker_names.size());
  auto events = nlohmann::json::array();
  events.push_back(
      {{"name", "process_name"}, {"ph", "M"}, {"pid", 1}, {"args", {{"name", process}}}});
  for (size_t w = 0; w < worker_names.size(); ++w)
    events.push_back({{"name", "thread_name"},
                      {"ph", "M"},
                      {"pid", 1},
                      {"tid", w},
                      {"args", {{"name", worker_names[w]}}}});
  for (auto* task : t.ran) {
    auto& r = *task->result;
    auto& tm = r.timings;
    events.push_back(
        {{"name", task->name},
         {"cat", r.kind},
         {"ph", "X"},
         {"pid", 1},
         {"tid", tm.worker},
         {"ts", us_between(t.origin, tm.started)},
         {"dur", us_between(tm.started, tm.ran_until)},
         {"args",
          {{"id", r.id},
           {"kind", r.kind},
           {"outcome", to_string(r.status)},
           {"attempts", r.attempts},
           {"queued_ms",
            std::chrono::duration<double, std::milli>(tm.started - tm.submitted).count()}}}});
  }
  return {{"traceEvents", std::move(events)}, {"displayTimeUnit", "ms"}};
}

std::string gantt_svg(const std::vector<traced_task>& tasks,
                      const std::vector<std::string>& worker_names) {
  auto t = timeline_of(tasks, worker_names.size());
  const double label_w = 140, plot_w = 1000, row_h = 22, top = 30, axis_h = 50;
  double span_us = std::max(1.0, us_between(t.origin, t.end));
  auto x_of = [&](time_point p) { return label_w + plot_w * us_between(t.origin, p) / span_us; };
  double height = top + row_h * double(worker_names.size()) + axis_h;
  // A colour per kind, in the order kinds first appear.
  static const char* palette[] = {"#4e79a7", "#f28e2b", "#59a14f", "#e15759",
                                  "#76b7b2", "#edc948", "#b07aa1", "#9c755f"};
  std::map<std::string, const char*> colour;
  for (auto* task : t.ran)
    if (!colour.count(task->result->kind))
      colour[task->result->kind] = palette[colour.size() % (sizeof palette / sizeof *palette)];

  std::ostringstream o;
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
                "font-family=\"sans-serif\" font-size=\"11\">\n",
                label_w + plot_w + 20, height);
  o << buf;
  std::snprintf(buf, sizeof buf,
                "<text x=\"%.0f\" y=\"18\">%zu tasks on %zu workers, %.3f s</text>\n", label_w,
                t.ran.size(), worker_names.size(), span_us / 1e6);
  o << buf;
  for (size_t w = 0; w < worker_names.size(); ++w) {
    double y = top + row_h * double(w);
    std::snprintf(buf, sizeof buf,
                  "<text x=\"4\" y=\"%.1f\">%s</text>\n<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" "
                  "y2=\"%.1f\" stroke=\"#ddd\"/>\n",
                  y + row_h * 0.65, escaped(worker_names[w]).c_str(), label_w, y + row_h,
                  label_w + plot_w, y + row_h);
    o << buf;
  }
  for (auto* task : t.ran) {
    auto& r = *task->result;
    double x = x_of(r.timings.started), y = top + row_h * double(r.timings.worker) + 2;
    double w = std::max(0.5, x_of(r.timings.ran_until) - x);
    std::snprintf(buf, sizeof buf,
                  "<rect x=\"%.2f\" y=\"%.1f\" width=\"%.2f\" height=\"%.1f\" fill=\"%s\"%s>"
                  "<title>%s (%s, %s)</title></rect>\n",
                  x, y, w, row_h - 4, colour[r.kind],
                  r.status == outcome::completed ? "" : " stroke=\"#000\"",
                  escaped(task->name).c_str(), escaped(r.kind).c_str(), to_string(r.status));
    o << buf;
  }
  // The axis: ten ticks in ms (or s past ten seconds).
  double axis_y = top + row_h * double(worker_names.size()) + 14;
  for (int i = 0; i <= 10; ++i) {
    double us = span_us * i / 10, x = label_w + plot_w * i / 10;
    if (span_us >= 1e7)
      std::snprintf(buf, sizeof buf, "<text x=\"%.1f\" y=\"%.1f\">%.1f s</text>\n", x, axis_y,
                    us / 1e6);
    else
      std::snprintf(buf, sizeof buf, "<text x=\"%.1f\" y=\"%.1f\">%.1f ms</text>\n", x, axis_y,
                    us / 1e3);
    o << buf;
  }
  double legend_x = label_w;
  for (auto& [kind, c] : colour) {
    std::snprintf(buf, sizeof buf,
                  "<rect x=\"%.0f\" y=\"%.1f\" width=\"10\" height=\"10\" fill=\"%s\"/>"
                  "<text x=\"%.0f\" y=\"%.1f\">%s</text>\n",
                  legend_x, axis_y + 6, c, legend_x + 14, axis_y + 15, escaped(kind).c_str());
    o << buf;
    legend_x += 20 + 7 * double(kind.size());
  }
  o << "</svg>\n";
  return o.str();
}

bool write_timeline(const std::vector<traced_task>& tasks,
                    const std::vector<std::string>& worker_names, const std::string& trace_path,
                    const std::string& gantt_path, const char* who) {
  auto write = [&](const std::string& path, const std::string& text) {
    std::ofstream out{path};
    out << text;
    if (!out) std::fprintf(stderr, "%s: cannot write %s\n", who, path.c_str());
    return bool(out);
  };
  if (!trace_path.empty() &&
      !write(trace_path, chrome_trace(tasks, worker_names, who).dump() + "\n"))
    return false;
  return gantt_path.empty() || write(gantt_path, gantt_svg(tasks, worker_names));
}

}  // namespace troupe::cli
