// Replica of Taichi 1.7's ThreadPool: condvar wake, atomic task counter, master waits.
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>
#include <cstdio>
#include <cmath>
#include <chrono>
#include <algorithm>
#include <cstdlib>
struct Pool {
  std::mutex m; std::condition_variable slave, master;
  long ts = 1, last_finished = 0; int running = 0; bool started = false, exiting = false;
  std::atomic<int> head{0}; int tail = 0; int work = 0; int nthreads; std::vector<std::thread> th;
  std::atomic<int> done_by[8];
  float sink[8];
  Pool(int n) : nthreads(n) { for (int i = 0; i < n; i++) { done_by[i] = 0; th.emplace_back([this, i] { target(i); }); } }
  void run(int splits, int w) {
    { std::lock_guard<std::mutex> g(m); started = false; head = 0; tail = splits; work = w; ts++; }
    slave.notify_all();
    std::unique_lock<std::mutex> l(m); master.wait(l, [this] { return started && running == 0; });
  }
  void target(int id) {
    long last = 0;
    while (true) {
      { std::unique_lock<std::mutex> l(m);
        slave.wait(l, [&] { return ts > last || exiting; });
        last = ts; if (exiting) return;
        if (last_finished >= last) continue;
        started = true; running++; }
      while (true) { int t = head.fetch_add(1); if (t >= tail) break;
        float x = 1; for (int r = 0; r < work; r++) x = std::sin(x * 1.0001f + r * 1e-9f); sink[id] = x; done_by[id]++; }
      bool all = false; { std::lock_guard<std::mutex> g(m); if (--running == 0) { all = true; last_finished = last; } }
      if (all) master.notify_one();
    }
  }
};
int main(int argc, char** argv) {
  int n = atoi(argv[1]);
  Pool p(n);
  for (int splits : {2, 16, 256, 8192}) for (int total : {8192 * 5, 8192 * 40, 8192 * 160}) {
    int w = total / splits; std::vector<double> ts;
    for (int i = 0; i < 8; i++) p.done_by[i] = 0;
    for (int r = 0; r < 30; r++) { auto a = std::chrono::steady_clock::now(); p.run(splits, w);
      ts.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - a).count()); }
    std::sort(ts.begin(), ts.end());
    printf("threads %d splits %5d work %7d: median %.2f ms  tasks by worker %d/%d\n", n, splits, total, ts[15], p.done_by[0].load(), p.done_by[1].load());
  }
  fflush(stdout); _Exit(0);
}
