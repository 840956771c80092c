// `troupe bench`: each figure beside a baseline measured in the same run, with the ratio.
//   pipeline: empty tasks through submit -> queue -> balancer -> worker -> result, one by one
//             and batched, beside a mutex+condvar thread pool with as many threads as workers.
//   latency:  submit-to-result with one task in flight, beside the same round trip through the
//             thread pool (submit, future.get()).
//   gemm:     512^3 float32 through troupe beside direct cblas_sgemm calls on as many threads.
//   remote-latency, remote-pipeline, events, payload, graph-data: across processes
//   (bench_cluster.cpp).
#include <cblas.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <fstream>
#include <functional>
#include <future>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "troupe/kernels/builtins.hpp"
#include "troupe/kernels/gpu_discovery.hpp"
#include "troupe/model/devices.hpp"
#include "troupe/runtime.hpp"
#include "troupe/workload.hpp"

namespace troupe::cli {

nlohmann::json bench_remote_latency(int rounds);
nlohmann::json bench_payload();
nlohmann::json bench_graph_data();
nlohmann::json bench_remote_pipeline(size_t tasks);
nlohmann::json bench_events(size_t tasks);
nlohmann::json bench_graph(uint32_t workers, size_t empty_tasks);

namespace {

using seconds_d = std::chrono::duration<double>;

/// The baseline: a plain mutex + condvar pool.
class thread_pool {
 public:
  explicit thread_pool(size_t n) {
    for (size_t i = 0; i < n; ++i)
      threads_.emplace_back([this] {
        for (;;) {
          std::function<void()> f;
          {
            std::unique_lock<std::mutex> lock{m_};
            cv_.wait(lock, [&] { return stop_ || !q_.empty(); });
            if (q_.empty()) return;
            f = std::move(q_.front());
            q_.pop_front();
          }
          f();
        }
      });
  }
  ~thread_pool() {
    {
      std::lock_guard<std::mutex> g{m_};
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  void post(std::function<void()> f) {
    {
      std::lock_guard<std::mutex> g{m_};
      q_.push_back(std::move(f));
    }
    cv_.notify_one();
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> q_;
  std::vector<std::thread> threads_;
  bool stop_ = false;
};

struct counter {
  std::mutex m;
  std::condition_variable cv;
  size_t n = 0, target = 0;
  void hit() {
    std::lock_guard<std::mutex> g{m};
    if (++n == target) cv.notify_all();
  }
  void wait() {
    std::unique_lock<std::mutex> lock{m};
    cv.wait(lock, [&] { return n >= target; });
  }
};

double pool_rate(size_t workers, size_t tasks) {
  thread_pool pool{workers};
  counter c;
  c.target = tasks;
  auto t0 = clock::now();
  for (size_t i = 0; i < tasks; ++i) pool.post([&c] { c.hit(); });
  c.wait();
  return double(tasks) / seconds_d(clock::now() - t0).count();
}

std::vector<std::string> bench_overrides;  // --set, applied to every runtime of the run

runtime_config bench_config(uint32_t workers) {
  runtime_config cfg;
  for (auto& o : bench_overrides) apply_override(cfg, o);
  cfg.cpu_workers = workers;
  cfg.cuda = cuda_selection::none;  // CPU figures compare CPU with CPU; gpu-gemm selects its GPU
  cfg.queue_bound = uint64_t(1) << 32;
  cfg.log_level = "warn";
  return cfg;
}

/// A subscriber whose callback blocks until released: the worst subscriber a runtime can have.
struct stalled_subscriber {
  std::mutex mutex;
  std::condition_variable cv;
  bool released = false;
  void attach(runtime& rt) {
    rt.subscribe("", [this](const event&) {
      std::unique_lock<std::mutex> lock{mutex};
      cv.wait(lock, [&] { return released; });
    });
  }
  void release() {
    std::lock_guard<std::mutex> guard{mutex};
    released = true;
    cv.notify_all();
  }
};

enum class subscriber_mode { none, steady, stalled };

double troupe_rate(uint32_t workers, size_t tasks, size_t batch,
                   subscriber_mode mode = subscriber_mode::none) {
  stalled_subscriber stall;  // outlives the runtime, whose subscriber thread calls it
  std::atomic<uint64_t> seen{0};
  runtime rt{bench_config(workers)};
  if (mode == subscriber_mode::stalled) stall.attach(rt);
  if (mode == subscriber_mode::steady)
    rt.subscribe("", [&](const event&) { seen.fetch_add(1, std::memory_order_relaxed); });
  task_spec noop;
  noop.kind = "noop";
  auto t0 = clock::now();
  if (batch <= 1) {
    for (size_t i = 0; i < tasks; ++i) rt.submit(noop);
  } else {
    for (size_t done = 0; done < tasks; done += batch)
      rt.submit_batch(std::vector<task_spec>(std::min(batch, tasks - done), noop));
  }
  rt.wait_idle(std::chrono::minutes(10));
  auto rate = double(tasks) / seconds_d(clock::now() - t0).count();
  stall.release();
  auto s = rt.stats();
  if (s.completed != tasks)
    std::fprintf(stderr, "warning: %llu of %zu tasks completed\n",
                 static_cast<unsigned long long>(s.completed), tasks);
  return rate;
}

template <class F>
double median_of(int reps, F f) {
  std::vector<double> v;
  for (int i = 0; i < reps; ++i) v.push_back(f());
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double pct(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, size_t(q * double(v.size())))];
}

}  // namespace

int run_bench(const std::vector<std::string>& which_in, size_t tasks, const std::string& json_path,
              uint32_t workers, const std::vector<std::string>& overrides) {
  bench_overrides = overrides;
  auto which = which_in.empty()
                   ? std::vector<std::string>{"pipeline",           "latency",         "gemm",
                                              "gpu-gemm",           "gpu-mlp",         "gpu-mixed",
                                              "remote-latency",     "remote-pipeline", "events",
                                              "stalled-subscriber", "payload",         "graph",
                                              "graph-data"}
                   : which_in;
  if (workers == 0) workers = std::max(1u, std::thread::hardware_concurrency());
  nlohmann::json out;
  out["workers"] = workers;
  auto wants = [&](const char* w) {
    return std::find(which.begin(), which.end(), w) != which.end();
  };

  if (wants("pipeline")) {
    auto pool = median_of(3, [&] { return pool_rate(workers, tasks); });
    auto batched = median_of(3, [&] { return troupe_rate(workers, tasks, 10000); });
    auto single_n = std::max<size_t>(1, tasks / 5);
    auto single = median_of(3, [&] { return troupe_rate(workers, single_n, 1); });
    std::printf("pipeline  empty tasks, %u workers, median of 3\n", workers);
    std::printf("  condvar thread pool        %12.0f tasks/s  (%zu tasks)\n", pool, tasks);
    std::printf("  troupe, batches of 10000   %12.0f tasks/s  ratio %.3f\n", batched,
                batched / pool);
    std::printf("  troupe, one by one         %12.0f tasks/s  ratio %.3f  (%zu tasks)\n", single,
                single / pool, single_n);
    out["pipeline"] = {{"pool_tps", pool},
                       {"batched_tps", batched},
                       {"batched_ratio", batched / pool},
                       {"single_tps", single},
                       {"single_ratio", single / pool}};
  }

  if (wants("stalled-subscriber")) {
    // Scheduling throughput with one in-process subscriber that never returns, beside none.
    auto rate = [&](subscriber_mode m) {
      return median_of(3, [&] { return troupe_rate(workers, tasks, 10000, m); });
    };
    auto none = rate(subscriber_mode::none), steady = rate(subscriber_mode::steady),
         stalled = rate(subscriber_mode::stalled);
    std::printf("stalled-subscriber  empty tasks in batches of 10000, %u workers, median of 3\n",
                workers);
    std::printf("  no subscriber              %12.0f tasks/s\n", none);
    std::printf("  one steady subscriber      %12.0f tasks/s  ratio %.3f\n", steady, steady / none);
    std::printf("  one stalled subscriber     %12.0f tasks/s  ratio %.3f (%.3f of steady)\n",
                stalled, stalled / none, stalled / steady);
    out["stalled_subscriber"] = {{"none_tps", none},
                                 {"steady_tps", steady},
                                 {"stalled_tps", stalled},
                                 {"ratio", stalled / none},
                                 {"ratio_to_steady", stalled / steady}};
  }

  if (wants("remote-latency")) out["remote_latency"] = bench_remote_latency(5000);
  if (wants("payload")) out["payload"] = bench_payload();
  if (wants("graph-data")) out["graph_data"] = bench_graph_data();
  if (wants("remote-pipeline"))
    out["remote_pipeline"] = bench_remote_pipeline(std::min<size_t>(tasks, 200000));
  if (wants("events")) out["events"] = bench_events(std::min<size_t>(tasks, 200000));

  if (wants("latency")) {
    const int rounds = 5000;
    double idle_cores = 0;
    std::vector<double> base, ours;
    {
      thread_pool pool{workers};
      for (int i = 0; i < rounds; ++i) {
        auto t0 = clock::now();
        std::promise<int> p;
        auto f = p.get_future();
        pool.post([&p] { p.set_value(1); });
        f.get();
        base.push_back(std::chrono::duration<double, std::micro>(clock::now() - t0).count());
      }
    }
    {
      runtime rt{bench_config(workers)};
      task_spec noop;
      noop.kind = "noop";
      for (int i = 0; i < rounds; ++i) {
        auto t0 = clock::now();
        rt.submit(noop).get();
        ours.push_back(std::chrono::duration<double, std::micro>(clock::now() - t0).count());
      }
      // What the runtime costs while it has nothing to do: its threads must sleep, not spin.
      // The process's CPU time over 2 s of idleness (after the heartbeats' first rounds).
      auto cpu_s = [] {
        rusage u{};
        getrusage(RUSAGE_SELF, &u);
        return double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
               double(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
      };
      auto c0 = cpu_s();
      auto w0 = clock::now();
      std::this_thread::sleep_for(std::chrono::seconds(2));  // measuring idleness itself
      idle_cores = (cpu_s() - c0) / seconds_d(clock::now() - w0).count();
    }
    std::printf("latency   submit -> result, one task in flight, %d rounds, microseconds\n",
                rounds);
    std::printf("  condvar thread pool   p50 %8.1f  p99 %8.1f\n", pct(base, .5), pct(base, .99));
    std::printf("  troupe                p50 %8.1f  p99 %8.1f  (ratio p50 %.2f, p99 %.2f)\n",
                pct(ours, .5), pct(ours, .99), pct(ours, .5) / pct(base, .5),
                pct(ours, .99) / pct(base, .99));
    std::printf("  idle runtime          %.3f cores busy (target <= 0.05)\n", idle_cores);
    out["idle_cores"] = idle_cores;
    out["latency_us"] = {{"pool_p50", pct(base, .5)},
                         {"pool_p99", pct(base, .99)},
                         {"troupe_p50", pct(ours, .5)},
                         {"troupe_p99", pct(ours, .99)}};
  }

  if (wants("gemm")) {
    const int64_t n = 512;
    const size_t count = 64 * workers;
    std::vector<float> a, b;
    kernels::gemm_inputs(n, n, n, 1, a, b);
    std::vector<uint8_t> payload((a.size() + b.size()) * sizeof(float));
    std::memcpy(payload.data(), a.data(), a.size() * sizeof(float));
    std::memcpy(payload.data() + a.size() * sizeof(float), b.data(), b.size() * sizeof(float));
    openblas_set_num_threads(1);
    // Both sides get the same data: one copy of the inputs per call, as tasks have.
    std::vector<std::vector<uint8_t>> inputs(count, payload);
    auto direct = [&] {
      auto t0 = clock::now();
      std::vector<std::thread> threads;
      std::atomic<size_t> next{0};
      for (uint32_t w = 0; w < workers; ++w)
        threads.emplace_back([&] {
          for (size_t i; (i = next.fetch_add(1)) < count;) {
            auto* in = reinterpret_cast<const float*>(inputs[i].data());
            std::unique_ptr<float[]> c{new float[size_t(n * n)]};
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(n), int(n), int(n), 1.0f, in,
                        int(n), in + n * n, int(n), 0.0f, c.get(), int(n));
          }
        });
      for (auto& t : threads) t.join();
      return double(count) / seconds_d(clock::now() - t0).count();
    };
    runtime rt{bench_config(workers)};
    task_spec spec;
    spec.kind = "gemm";
    spec.params = {{"size", n}};
    spec.payload = payload;
    auto through = [&] {
      // Copies of the inputs, made before timing: a buffer each, as the direct side reads.
      std::vector<task_spec> specs(count, spec);
      for (auto& s : specs) s.payload = payload;
      auto t0 = clock::now();
      auto hs = rt.submit_batch(std::move(specs));
      for (auto& h : hs)
        if (!h.get().ok()) std::fprintf(stderr, "gemm failed: %s\n", h.get().error.message.c_str());
      return double(count) / seconds_d(clock::now() - t0).count();
    };
    through();  // warm-up: the performance model learns the kind
    double d = 0, t = 0;
    d = median_of(5, direct);
    t = median_of(5, through);
    std::printf("gemm      512^3 float32, %zu calls on %u threads/workers, median of 5\n", count,
                workers);
    std::printf("  direct cblas_sgemm    %8.1f calls/s  (%.1f GFLOP/s)\n", d,
                d * 2 * n * n * n / 1e9);
    std::printf("  troupe gemm tasks     %8.1f tasks/s  (%.1f GFLOP/s)  ratio %.3f\n", t,
                t * 2 * n * n * n / 1e9, t / d);
    out["gemm"] = {{"direct_per_s", d}, {"troupe_per_s", t}, {"ratio", t / d}};
  }
  if (wants("gpu-gemm")) {
#ifdef TROUPE_WITH_CUDA
    auto inv = discover_gpus();
    if (inv.gpus.empty()) {
      std::printf("gpu-gemm  skipped: %s\n", inv.note.c_str());
    } else {
      const int64_t n = 4096;
      const size_t count = 40;
      auto& gpu = inv.gpus.front();
      // Direct: the same product, inputs already on the device, back-to-back calls (through the
      // CUDA module, like everything of troupe that calls CUDA).
      std::vector<float> a, b;
      kernels::gemm_inputs(n, n, n, 1, a, b);
      kernels::cuda::direct_gemm baseline{gpu.index, n, a, b};
      auto direct = [&] { return baseline.calls_per_s(count, false); };
      direct();  // warm-up: cuBLAS picks its kernel, clocks ramp up
      auto runtime_cfg = bench_config(1);
      runtime_cfg.cuda = cuda_selection::list;
      runtime_cfg.cuda_devices = {gpu.index};
      runtime rt{runtime_cfg};
      task_spec spec;
      spec.kind = "gemm";
      spec.params = {{"size", n}, {"seed", int64_t{1}}};
      spec.needs.gpu_count = 1;  // the GPU only: this measures the GPU path
      auto through = [&] {
        auto t0 = clock::now();
        auto hs = rt.submit_batch(std::vector<task_spec>(count, spec));
        for (auto& hd : hs)
          if (!hd.get().ok())
            std::fprintf(stderr, "gpu gemm: %s\n", hd.get().error.message.c_str());
        return double(count) / seconds_d(clock::now() - t0).count();
      };
      through();  // warm-up: inputs generated and uploaded once, the model learns
      auto d = median_of(5, direct), t = median_of(5, through);
      auto flop = 2.0 * double(n) * double(n) * double(n);
      std::printf("gpu-gemm  4096^3 float32 on GPU %d (%s), %zu calls, median of 5\n", gpu.index,
                  gpu.name.c_str(), count);
      std::printf("  direct cublasSgemm    %8.2f calls/s  (%.1f TFLOP/s)\n", d, d * flop / 1e12);
      std::printf("  troupe gemm tasks     %8.2f tasks/s  (%.1f TFLOP/s)  ratio %.3f\n", t,
                  t * flop / 1e12, t / d);
      out["gpu_gemm"] = {
          {"gpu", gpu.name}, {"direct_per_s", d}, {"troupe_per_s", t}, {"ratio", t / d}};
      // bf16 inputs, float32 accumulation: direct cublasGemmEx on inputs converted beforehand;
      // a troupe task converts its float32 inputs on the GPU (counted in its time).
      auto direct_bf16 = [&] { return baseline.calls_per_s(count, true); };
      direct_bf16();
      spec.params.set("precision", std::string{"bf16"});
      through();
      auto d16 = median_of(5, direct_bf16), t16 = median_of(5, through);
      std::printf("  direct cublasGemmEx bf16 %8.2f calls/s  (%.1f TFLOP/s)\n", d16,
                  d16 * flop / 1e12);
      std::printf("  troupe gemm bf16      %8.2f tasks/s  (%.1f TFLOP/s)  ratio %.3f\n", t16,
                  t16 * flop / 1e12, t16 / d16);
      out["gpu_gemm_bf16"] = {{"direct_per_s", d16}, {"troupe_per_s", t16}, {"ratio", t16 / d16}};
    }
#else
    std::printf("gpu-gemm  skipped: built without CUDA\n");
#endif
  }

  if (wants("gpu-mlp") || wants("gpu-mixed")) {
    auto inv = discover_gpus();
    if (inv.gpus.empty()) {
      std::printf("gpu-mlp, gpu-mixed  skipped: %s\n", inv.note.c_str());
    } else {
      auto gpu_cfg = [&](bool batching) {
        auto c = bench_config(workers);
        c.cuda = cuda_selection::list;
        c.cuda_devices = {inv.gpus.front().index};
        c.batching_enabled = batching;
        return c;
      };
      if (wants("gpu-mlp")) {
        // Batch-1 inference requests, all in flight at once, on the GPU only.
        const size_t n = 20000;
        task_spec s;
        s.kind = "mlp";
        s.params = {{"layers", std::vector<int64_t>{1024, 4096, 4096, 1000}},
                    {"batch", int64_t{1}},
                    {"seed", int64_t{3}}};
        s.needs.gpu_count = 1;
        // Requests carry their input, as inference requests do (4 KiB each), made before timing.
        std::vector<task_spec> requests(n, s);
        for (size_t i = 0; i < n; ++i) {
          std::vector<float> x(1024);
          kernels::fill_uniform(x.data(), x.size(), i, 1.0f);
          auto* bytes = reinterpret_cast<const uint8_t*>(x.data());
          requests[i].payload.assign(bytes, bytes + x.size() * sizeof(float));
        }
        std::atomic<uint64_t> batched_starts{0}, launches{0};
        auto measure = [&](bool batching) {
          runtime rt{gpu_cfg(batching)};
          if (batching)  // how many tasks each launch carried (one event per task, once per launch)
            rt.subscribe("task.started", [&](const event& e) {
              auto at = e.detail.find("batch of ");
              if (at == std::string::npos) return ++launches, void();
              ++batched_starts;
              auto size = std::stoull(e.detail.substr(at + 9));
              if (batched_starts % size == 0) ++launches;
            });
          rt.submit(s).get();  // warm-up: weights on the device
          auto t0 = clock::now();
          auto hs = rt.submit_batch(requests);
          std::vector<double> lat;
          for (auto& h : hs) {
            auto& r = h.get();
            lat.push_back(
                std::chrono::duration<double, std::milli>(r.timings.finished - r.timings.submitted)
                    .count());
          }
          auto tps = double(n) / seconds_d(clock::now() - t0).count();
          return std::make_pair(tps, pct(lat, 0.99));
        };
        auto off = measure(false), on = measure(true);
        std::printf(
            "gpu-mlp   %zu batch-1 mlp requests [1024,4096,4096,1000] with their inputs on %s, "
            "all in flight\n",
            n, inv.gpus.front().name.c_str());
        std::printf("  without batching   %9.0f tasks/s  p99 %8.1f ms\n", off.first, off.second);
        std::printf("  dynamic batching   %9.0f tasks/s  p99 %8.1f ms  (%.1fx the throughput)\n",
                    on.first, on.second, on.first / off.first);
        std::printf("  launches %llu, %.1f tasks per launch on average\n",
                    static_cast<unsigned long long>(launches.load()),
                    launches ? double(n + 1) / double(launches) : 0.0);
        out["gpu_mlp"] = {{"unbatched_tps", off.first},
                          {"unbatched_p99_ms", off.second},
                          {"batched_tps", on.first},
                          {"batched_p99_ms", on.second},
                          {"speedup", on.first / off.first}};
      }
      if (wants("gpu-mixed")) {
        // The default AI mix without its fail tasks, placed three ways.
        std::vector<task_spec> mix;
        for (auto& s : default_workload(42, 2000))
          if (s.kind != "fail") mix.push_back(s);
        auto makespan = [&](runtime_config c, bool gpu_only) {
          runtime rt{c};
          auto specs = mix;
          if (gpu_only)
            for (auto& s : specs) s.needs.gpu_count = 1;
          auto t0 = clock::now();
          auto hs = rt.submit_batch(std::move(specs));
          for (auto& h : hs) h.get();
          return seconds_d(clock::now() - t0).count();
        };
        auto both = makespan(gpu_cfg(true), false);
        auto gpu_only = makespan(gpu_cfg(true), true);
        auto cpu_only = makespan(bench_config(workers), false);
        std::printf("gpu-mixed %zu gemm+mlp tasks of the default mix, makespan\n", mix.size());
        std::printf("  cpu only (%u workers)   %7.3f s\n", workers, cpu_only);
        std::printf("  gpu only               %7.3f s\n", gpu_only);
        std::printf("  cpu + gpu              %7.3f s  (%.2fx faster than the better of the two)\n",
                    both, std::min(cpu_only, gpu_only) / both);
        out["gpu_mixed"] = {{"cpu_only_s", cpu_only}, {"gpu_only_s", gpu_only}, {"both_s", both}};
      }
    }
  }
  if (wants("graph")) out["graph"] = bench_graph(workers, std::min<size_t>(tasks, 100000));
  if (!json_path.empty()) std::ofstream{json_path} << out.dump(2) << "\n";
  return 0;
}

}  // namespace troupe::cli
