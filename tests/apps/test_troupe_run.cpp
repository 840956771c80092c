// Runs the `troupe` binary as a user would and checks what it reports.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

namespace {

struct run_result {
  int rc = -1;
  std::string output;  // stdout and stderr
};

/// redirect: what to do with stderr ("2>&1": with stdout; "2>/dev/null"; "2>&1 1>/dev/null":
/// stderr alone).
run_result run(const std::string& args, const std::string& redirect = "2>&1") {
  // Bounded: a run that hangs ends with 124 and fails its test instead of the suite.
  std::string cmd = "timeout 120 " + std::string{TROUPE_BINARY} + " " + args + " " + redirect;
  run_result r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.output.append(buf.data(), n);
  int status = pclose(p);
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string temp_path(const std::string& name) {
  return ::testing::TempDir() + "troupe_" + std::to_string(getpid()) + "_" + name;
}

void write(const std::string& path, const std::string& text) {
  std::ofstream{path} << text;
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream in{path};
  return nlohmann::json::parse(in);
}

}  // namespace

TEST(TroupeRun, DefaultWorkloadReportsEveryOutcomeInJson) {
  auto json_path = temp_path("report.json");
  auto r = run("run --tasks 300 --workers 2 --json " + json_path);
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_NE(r.output.find("makespan"), std::string::npos) << r.output;
  auto j = read_json(json_path);
  // 300 tasks: 6 fail on their first attempt only and complete when retried.
  EXPECT_EQ(j["submitted"], 300);
  EXPECT_EQ(j["completed"], 300);
  EXPECT_EQ(j["failed"], 0);
  EXPECT_EQ(j["cancelled"], 0);
  EXPECT_EQ(j["retries"], 6);
  EXPECT_GT(j["throughput_tps"].get<double>(), 0);
  // The seed's figures: 6 failed attempts of 306, each task recovered; efficiency from them.
  EXPECT_NEAR(j["error_rate"].get<double>(), 6.0 / 306.0, 1e-9);
  EXPECT_EQ(j["recovered"], 6);
  EXPECT_GT(j["recovery_ms"].get<double>(), 0);
  EXPECT_GE(j["recovery_ms"].get<double>(), j["handling_ms"].get<double>());
  auto e = j["error_rate"].get<double>() * j["detection_ms"].get<double>() +
           j["handling_ms"].get<double>();
  ASSERT_TRUE(j["efficiency"].is_number());
  EXPECT_NEAR(j["efficiency"].get<double>(), 1000.0 / e, 1e-6 * (1000.0 / e));
  // Each task's completion counts from its submit: the sum is at least the makespan.
  EXPECT_GE(j["sum_completion_s"].get<double>(), j["makespan_s"].get<double>());
  EXPECT_GT(j["utilisation"]["cpu"].get<double>(), 0);
  EXPECT_LE(j["utilisation"]["cpu"].get<double>(), 1.01);
  EXPECT_TRUE(j["lower_bound_is"] == "work / workers" || j["lower_bound_is"] == "the longest task");
  EXPECT_GE(j["makespan_s"].get<double>(), j["lower_bound_s"].get<double>() * 0.99);
  for (auto* kind : {"gemm", "mlp", "fail"}) {
    ASSERT_TRUE(j["latency_ms"].contains(kind)) << kind;
    auto& l = j["latency_ms"][kind];
    EXPECT_LE(l["p50"].get<double>(), l["p95"].get<double>());
    EXPECT_LE(l["p95"].get<double>(), l["p99"].get<double>());
  }
  ASSERT_EQ(j["workers"].size(), 2u);
  for (auto& w : j["workers"]) {
    EXPECT_GT(w["utilisation"].get<double>(), 0.0);
    EXPECT_LE(w["utilisation"].get<double>(), 1.01);
  }
}

TEST(TroupeRun, WorkloadFileRunsAndBadLinesAreNamed) {
  auto wl = temp_path("workload.jsonl");
  write(wl,
        "# two kinds\n"
        "{\"kind\": \"gemm\", \"params\": {\"size\": 32}, \"count\": 5}\n"
        "{\"kind\": \"mlp\", \"params\": {\"layers\": [8, 4], \"batch\": 2}, \"priority\": 3}\n"
        "{\"kind\": \"sleep\", \"params\": {\"ms\": 1}, \"preemptible\": true}\n");
  auto json_path = temp_path("wl.json");
  auto r = run("run --quiet --workload " + wl + " --json " + json_path);
  ASSERT_EQ(r.rc, 0) << r.output;
  auto j = read_json(json_path);
  EXPECT_EQ(j["completed"], 7);
  EXPECT_EQ(j["preempted"], 0) << "nothing more urgent came after the preemptible task";

  write(wl, "{\"kind\": \"sleep\", \"preemptible\": 1}\n");
  r = run("run --quiet --workload " + wl);
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.output.find(wl + ":1: field 'preemptible' must be true or false"), std::string::npos)
      << r.output;

  write(wl, "{\"kind\": \"gemm\"}\n{\"kind\": \"gemm\", \"prio\": 1}\n");
  r = run("run --quiet --workload " + wl);
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.output.find(wl + ":2: unknown field 'prio'"), std::string::npos) << r.output;
}

TEST(TroupeRun, TraceIsChromeTraceEventJsonWithEveryTaskOnItsWorkerAndAGanttChart) {
  auto wl = temp_path("traced.jsonl");
  write(wl,
        "{\"kind\": \"sleep\", \"params\": {\"ms\": 2}, \"count\": 20}\n"
        "{\"kind\": \"noop\", \"labels\": {\"name\": \"the-named-one\"}}\n");
  auto trace = temp_path("trace.json"), gantt = temp_path("gantt.svg");
  auto r =
      run("run --quiet --workers 2 --workload " + wl + " --trace " + trace + " --gantt " + gantt);
  ASSERT_EQ(r.rc, 0) << r.output;
  auto j = read_json(trace);
  ASSERT_TRUE(j["traceEvents"].is_array());
  std::map<int, std::vector<std::pair<double, double>>> runs;  // per worker: [start, end)
  std::map<int, std::string> rows;
  bool named = false;
  for (auto& e : j["traceEvents"]) {
    if (e["ph"] == "M" && e["name"] == "thread_name") rows[e["tid"]] = e["args"]["name"];
    if (e["ph"] != "X") continue;
    ASSERT_TRUE(e["name"].is_string());
    EXPECT_EQ(e["pid"], 1);
    EXPECT_GE(e["ts"].get<double>(), 0);
    EXPECT_GE(e["dur"].get<double>(), 0);
    EXPECT_GE(e["args"]["queued_ms"].get<double>(), 0);
    EXPECT_EQ(e["args"]["outcome"], "completed");
    if (e["args"]["kind"] == "sleep") {
      EXPECT_GE(e["dur"].get<double>(), 2000);  // 2 ms, in microseconds
    }
    named = named || e["name"] == "the-named-one";
    runs[e["tid"]].push_back(
        {e["ts"].get<double>(), e["ts"].get<double>() + e["dur"].get<double>()});
  }
  EXPECT_TRUE(named);
  size_t total = 0;
  for (auto& [worker, spans] : runs) {
    EXPECT_TRUE(rows.count(worker)) << "no row name for worker " << worker;
    total += spans.size();
    // A CPU worker runs one task at a time: its events never overlap.
    std::sort(spans.begin(), spans.end());
    for (size_t i = 1; i < spans.size(); ++i)
      EXPECT_LE(spans[i - 1].second, spans[i].first + 1) << "worker " << worker;
  }
  EXPECT_EQ(total, 21u);  // every task, once
  EXPECT_EQ(rows.size(), 2u);
  std::ifstream svg{gantt};
  std::string text{std::istreambuf_iterator<char>(svg), {}};
  EXPECT_EQ(text.rfind("<svg", 0), 0u);
  EXPECT_NE(text.find("the-named-one"), std::string::npos);
  EXPECT_NE(text.find("</svg>"), std::string::npos);
}

// Numbers the fuzzer found (tests/fuzz): each is named with its line, none is undefined behaviour.
TEST(TroupeRun, OutOfRangeNumbersInAWorkloadAreNamedWithTheirLine) {
  auto wl = temp_path("numbers.jsonl");
  for (auto [line, expected] : std::initializer_list<std::pair<const char*, const char*>>{
           {"{\"kind\": \"noop\", \"priority\": 1e400}", ":1: not valid JSON"},
           {"{\"kind\": \"noop\", \"priority\": 1e300}", ":1: field 'priority' must be an integer"},
           {"{\"kind\": \"noop\", \"priority\": 1.9}", ":1: field 'priority' must be an integer"},
           {"{\"kind\": \"noop\", \"priority\": 3000000000}",
            ":1: field 'priority' is out of range"},
           {"{\"kind\": \"noop\", \"deadline_ms\": 9223372036854775807}",
            ":1: field 'deadline_ms' must be in [0, "}}) {
    write(wl, std::string{line} + "\n");
    auto r = run("run --quiet --workload " + wl);
    EXPECT_EQ(r.rc, 2) << line << "\n" << r.output;
    EXPECT_NE(r.output.find(wl + expected), std::string::npos) << line << "\n" << r.output;
  }
}

TEST(TroupeRun, BadConfigNamesFileLineAndKey) {
  auto cfg = temp_path("bad.toml");
  write(cfg, "[queue]\nbound = 10\norder = \"random\"\n");
  auto r = run("run --quiet --config " + cfg);
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.output.find(cfg + ":3: key 'queue.order'"), std::string::npos) << r.output;
  r = run("run --quiet --set workers.cpu=lots");
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.output.find("workers.cpu"), std::string::npos) << r.output;
}

TEST(TroupeRun, RejectedTasksAreReportedNotLost) {
  auto wl = temp_path("rejects.jsonl");
  write(wl,
        "{\"kind\": \"nosuchkind\"}\n"
        "{\"kind\": \"noop\", \"count\": 3}\n");
  auto json_path = temp_path("rejects.json");
  auto r = run("run --quiet --workload " + wl + " --json " + json_path);
  EXPECT_EQ(r.rc, 1) << r.output;
  EXPECT_NE(r.output.find("unknown task kind 'nosuchkind'"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("1 of 4 tasks did not complete"), std::string::npos) << r.output;
  auto j = read_json(json_path);
  EXPECT_EQ(j["rejected"], 1);
  EXPECT_EQ(j["completed"], 3);
}

TEST(TroupeRun, ARunWhoseTasksFailExitsNonZeroAndSaysHowMany) {
  auto wl = temp_path("failing.jsonl");
  write(wl,
        "{\"kind\": \"fail\", \"params\": {\"error\": \"task_failed_permanently\"}, "
        "\"count\": 2}\n"
        "{\"kind\": \"noop\"}\n");
  auto r = run("run --quiet --workload " + wl);
  EXPECT_EQ(r.rc, 1) << r.output;
  EXPECT_NE(r.output.find("2 of 3 tasks did not complete (2 failed"), std::string::npos)
      << r.output;
}

// Copies of one line share its idempotency key: they are one task, and the run ends.
TEST(TroupeRun, ALineWithAKeyAndACountIsOneTaskAndTheRunEnds) {
  auto wl = temp_path("keyed.jsonl");
  write(wl, "{\"kind\": \"noop\", \"key\": \"once\", \"count\": 3}\n");
  auto json_path = temp_path("keyed.json");
  auto r = run("run --workload " + wl + " --json " + json_path, "2>&1 </dev/null");
  ASSERT_EQ(r.rc, 0) << r.output;
  auto j = read_json(json_path);
  EXPECT_EQ(j["completed"], 1);
}

// A line with "gang": true submits its `count` tasks as one gang (docs/reservations.md): on 2
// workers a gang of 2 runs, and a gang of 3 is refused whole, naming why, where the same 3 tasks
// as plain lines would simply run.
TEST(TroupeRun, AGangLineIsPlacedWholeOrRefusedWhole) {
  auto wl = temp_path("gangs.jsonl");
  write(wl,
        "{\"kind\": \"noop\", \"count\": 3}\n"
        "{\"kind\": \"sleep\", \"params\": {\"ms\": 5}, \"count\": 2, \"gang\": true}\n"
        "{\"kind\": \"noop\"}\n");
  auto json_path = temp_path("gangs.json");
  auto r = run("run --quiet --workers 2 --workload " + wl + " --json " + json_path);
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_EQ(read_json(json_path)["completed"], 6);

  write(wl, "{\"kind\": \"noop\", \"count\": 3, \"gang\": true}\n{\"kind\": \"noop\"}\n");
  r = run("run --quiet --workers 2 --workload " + wl + " --json " + json_path);
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.output.find("gang of 3 tasks needs as many distinct workers"), std::string::npos)
      << r.output;
  auto j = read_json(json_path);
  EXPECT_EQ(j["completed"], 1) << "the plain task after the gang still runs";

  write(wl, "{\"kind\": \"noop\", \"count\": 2, \"gang\": true, \"key\": \"k\"}\n");
  r = run("run --quiet --workload " + wl);
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.output.find(wl + ":1: a gang takes no 'key'"), std::string::npos) << r.output;
}

// Reports go to stdout, log lines to stderr: `troupe run > report.txt` holds the report alone.
TEST(TroupeRun, TheReportGoesToStdoutAndLogLinesToStderr) {
  auto out = run("run --tasks 20 --workers 2", "2>/dev/null");
  ASSERT_EQ(out.rc, 0) << out.output;
  EXPECT_NE(out.output.find("makespan"), std::string::npos) << out.output;
  EXPECT_EQ(out.output.find("[troupe]"), std::string::npos) << out.output;
  auto err = run("run --tasks 20 --workers 2", "2>&1 1>/dev/null");
  ASSERT_EQ(err.rc, 0) << err.output;
  EXPECT_NE(err.output.find("[troupe] [info]"), std::string::npos) << err.output;
  EXPECT_EQ(err.output.find("makespan"), std::string::npos) << err.output;
}

TEST(TroupeKeygen, WritesAPrivatePairAndItsPublicHalfAndNeverOverwrites) {
  auto path = temp_path("key");
  std::remove(path.c_str());
  std::remove((path + ".pub").c_str());
  auto r = run("keygen " + path);
  ASSERT_EQ(r.rc, 0) << r.output;
  std::ifstream secret{path}, pub{path + ".pub"};
  std::string secret_text((std::istreambuf_iterator<char>(secret)), {});
  std::string pub_text((std::istreambuf_iterator<char>(pub)), {});
  EXPECT_NE(secret_text.find("secret_key = \""), std::string::npos) << secret_text;
  EXPECT_EQ(pub_text.find("secret_key"), std::string::npos) << pub_text;
  // The public key it prints is the one in both files.
  auto at = r.output.find("public key: ");
  ASSERT_NE(at, std::string::npos) << r.output;
  auto key = r.output.substr(at + 12, 40);
  EXPECT_NE(pub_text.find(key), std::string::npos);
  EXPECT_NE(secret_text.find(key), std::string::npos);
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // A second run would lose the first key: refused, and the file is unchanged.
  auto again = run("keygen " + path);
  EXPECT_NE(again.rc, 0);
  EXPECT_NE(again.output.find("remove it first"), std::string::npos) << again.output;
  std::ifstream after{path};
  EXPECT_EQ(std::string((std::istreambuf_iterator<char>(after)), {}), secret_text);
}

TEST(TroupeSubmit, ABadGraphFileIsRefusedNamingTheTaskAndNothingIsSent) {
  // No head listens there: each refusal comes before anything is sent.
  auto to = " --to ipc://" + temp_path("nobody.ipc");
  auto graph = temp_path("graph.json");
  auto submit = [&](const std::string& text) {
    write(graph, text);
    return run("submit" + to + " --graph " + graph + " --wait --timeout-ms 2000");
  };
  auto r = submit(R"({"tasks": [{"name": "a", "kind": "noop", "afterr": ["b"]}]})");
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.output.find(graph + ": tasks[0]: unknown field 'afterr'"), std::string::npos)
      << r.output;
  r = submit(R"({"tasks": [{"kind": "noop"}]})");
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.output.find("tasks[0]: field 'name' is required"), std::string::npos) << r.output;
  r = submit(R"({"tasks": [], "on_failure": "give_up"})");
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.output.find("on_failure is 'give_up'"), std::string::npos) << r.output;
  r = submit(R"({"tasks": [{"name": "a", "kind": "noop", "after": ["b"]},
                           {"name": "b", "kind": "noop", "inputs": {"x": "a.v"}}]})");
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.output.find("the graph has a cycle: 'a' -> 'b' -> 'a'; nothing was sent"),
            std::string::npos)
      << r.output;
  r = submit(R"({"tasks": [{"name": "a", "kind": "noop", "inputs": {"x": "ghost.v"}}]})");
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.output.find("input 'x' takes from 'ghost', which is not a task of the graph"),
            std::string::npos)
      << r.output;
  r = run("submit" + to + " --kind noop --graph " + graph);
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.output.find("excludes"), std::string::npos) << r.output;
}

TEST(TroupeSubmit, ALabelThatIsNotKeyEqualsValueIsRefusedBeforeAnythingIsSent) {
  auto to = " --to ipc://" + temp_path("nobody.ipc");
  auto r = run("submit" + to + " --kind noop --label reservation --timeout-ms 2000");
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.output.find("--label 'reservation': expected KEY=VALUE"), std::string::npos)
      << r.output;
}
