#include "pool.h"

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>
#if defined(__linux__)
#include <sched.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define LT_PAUSE() _mm_pause()
#else
#define LT_PAUSE() ((void)0)
#endif

namespace lt {
namespace {

thread_local int tl_index = 0;

struct Pool {
  std::vector<std::thread> workers;
  std::mutex mu;
  std::condition_variable cv_work, cv_done;
  // current job (written under mu by the caller, read by workers under mu)
  TaskFn fn = nullptr;
  void* ctx = nullptr;
  long ntasks = 0;
  std::atomic<long> next{0};
  std::atomic<long> done{0};
  std::atomic<int> active{0};         // workers inside the current job
  std::atomic<unsigned long> gen{0};  // job generation
  bool stop = false;
  int nthreads = 1;
  std::mutex call_mu;  // one job at a time

  void work(TaskFn f, void* c, long n) {
    for (;;) {
      long t = next.fetch_add(1, std::memory_order_relaxed);
      if (t >= n) break;
      f(c, t);
      done.fetch_add(1, std::memory_order_release);
    }
  }

  void worker_main(int idx) {
    tl_index = idx;
    unsigned long seen = gen.load(std::memory_order_acquire);
    for (;;) {
      // spin a little for the next job (kernels come back to back), then sleep
      for (int i = 0; i < 4000 && gen.load(std::memory_order_acquire) == seen; i++) LT_PAUSE();
      TaskFn f;
      void* c;
      long n;
      {
        std::unique_lock<std::mutex> lk(mu);
        cv_work.wait(lk, [&] { return stop || gen.load(std::memory_order_relaxed) != seen; });
        if (stop) return;
        seen = gen.load(std::memory_order_relaxed);
        f = fn;
        c = ctx;
        n = ntasks;
        active.fetch_add(1, std::memory_order_relaxed);
      }
      work(f, c, n);
      if (active.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard<std::mutex> lk(mu);
        cv_done.notify_all();
      }
    }
  }

  void start(int n) {
    nthreads = n < 1 ? 1 : n;
    stop = false;
    for (int i = 1; i < nthreads; i++) workers.emplace_back([this, i] { worker_main(i); });
  }

  void shutdown() {
    {
      std::lock_guard<std::mutex> lk(mu);
      stop = true;
    }
    cv_work.notify_all();
    for (auto& t : workers) t.join();
    workers.clear();
  }

  void run(long n, TaskFn f, void* c) {
    if (n <= 0) return;
    if (nthreads == 1 || n == 1) {
      for (long t = 0; t < n; t++) f(c, t);
      return;
    }
    std::lock_guard<std::mutex> call(call_mu);
    {
      std::unique_lock<std::mutex> lk(mu);
      // a worker that woke late for the previous job may still be leaving it
      cv_done.wait(lk, [&] { return active.load(std::memory_order_acquire) == 0; });
      fn = f;
      ctx = c;
      ntasks = n;
      next.store(0, std::memory_order_relaxed);
      done.store(0, std::memory_order_relaxed);
      gen.fetch_add(1, std::memory_order_release);
    }
    cv_work.notify_all();
    work(f, c, n);
    // wait until every task finished and no worker is still inside this job
    for (int i = 0; i < 4000; i++) {
      if (done.load(std::memory_order_acquire) == n && active.load(std::memory_order_acquire) == 0) return;
      LT_PAUSE();
    }
    std::unique_lock<std::mutex> lk(mu);
    cv_done.wait(lk, [&] {
      return done.load(std::memory_order_acquire) == n && active.load(std::memory_order_acquire) == 0;
    });
  }
};

Pool* g_pool = nullptr;

Pool& pool() {
  if (!g_pool) {
    g_pool = new Pool();  // never destroyed: workers are detached at process exit by the OS
    g_pool->start(pool_default_threads());
  }
  return *g_pool;
}

}  // namespace

int pool_default_threads() {
  const char* env = std::getenv("LLAMA_TS_THREADS");
  if (env && *env) {
    int n = std::atoi(env);
    if (n >= 1 && n <= 1024) return n;
  }
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n >= 1) return n;
  }
#endif
  unsigned n = std::thread::hardware_concurrency();
  return n ? (int)n : 1;
}

void parallel_for(long ntasks, TaskFn fn, void* ctx) { pool().run(ntasks, fn, ctx); }

int pool_threads() { return pool().nthreads; }

void pool_set_threads(int n) {
  if (n <= 0) n = pool_default_threads();
  Pool& p = pool();
  if (n == p.nthreads) return;
  std::lock_guard<std::mutex> call(p.call_mu);
  p.shutdown();
  p.start(n);
}

int pool_thread_index() { return tl_index; }

}  // namespace lt
