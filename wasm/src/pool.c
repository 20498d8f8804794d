// The thread pool of the wasm backend. Every thread runs the same module over one shared memory: the calling thread
// (tid 0) and the workers that src/kernels/wasm.ts starts (Node worker_threads, or Web Workers), each parked in
// lt_worker(tid) waiting on `wake`. A job is split into tasks that threads claim from `state` = (job id << 16) | next
// task; the caller works too, so a job finishes even when no worker has started. Each task writes its own part of
// the output, so results do not depend on the number of threads.
#include "lt.h"

#define SEQ __ATOMIC_SEQ_CST

#ifdef LT_SINGLE
// The single-threaded module (no shared memory: a page that is not cross-origin isolated): tasks run in order.
int LT_EXPORT(lt_set_threads)(int n) {
  (void)n;
  return 1;
}
int lt_threads(void) { return 1; }
void lt_parallel(lt_task fn, void* ctx, int n) {
  for (int t = 0; t < n; t++) fn(ctx, t, 0);
}
void LT_EXPORT(lt_worker)(int tid) { (void)tid; }
#else

struct job {
  lt_task fn;
  void* ctx;
  int n;
};

static struct job jobs[2];  // double-buffered: job id's descriptor is rewritten only two jobs later
static int state;
static int done;
static int wake;
static int job_id;
static int n_threads = 1;

int LT_EXPORT(lt_set_threads)(int n) {
  n_threads = n < 1 ? 1 : n > LT_MAX_THREADS ? LT_MAX_THREADS : n;
  return n_threads;
}

int lt_threads(void) { return n_threads; }

static void work(int id, int tid) {
  struct job* j = &jobs[id & 1];
  for (;;) {
    int s = __atomic_load_n(&state, SEQ);
    if ((s >> 16) != id || (s & 0xffff) >= j->n) return;
    if (!__atomic_compare_exchange_n(&state, &s, s + 1, 0, SEQ, SEQ)) continue;
    j->fn(j->ctx, s & 0xffff, tid);  // the job cannot finish (nor its descriptor change) before this task is done
    if (__atomic_add_fetch(&done, 1, SEQ) == j->n) __builtin_wasm_memory_atomic_notify(&done, 1);
  }
}

struct group {
  lt_task fn;
  void* ctx;
  int n, per;
};

static void group_task(void* ctx, int t, int tid) {
  struct group* g = ctx;
  int end = (t + 1) * g->per < g->n ? (t + 1) * g->per : g->n;
  for (int i = t * g->per; i < end; i++) g->fn(g->ctx, i, tid);
}

void lt_parallel(lt_task fn, void* ctx, int n) {
  if (n <= 0) return;
  // many small tasks (a row each) cost more in claiming than in work: run consecutive tasks as one, 8 groups per
  // thread (the grouping depends on the pool size, but every task still writes only its own part of the output)
  int most = 8 * n_threads;
  if (n > most) {
    struct group g = {fn, ctx, n, (n + most - 1) / most};
    lt_parallel(group_task, &g, (n + g.per - 1) / g.per);
    return;
  }
  if (n_threads <= 1 || n == 1) {
    for (int t = 0; t < n; t++) fn(ctx, t, 0);
    return;
  }
  int id = job_id = (job_id + 1) & 0x7fff;
  struct job* j = &jobs[id & 1];
  j->fn = fn;
  j->ctx = ctx;
  j->n = n;
  __atomic_store_n(&done, 0, SEQ);
  __atomic_store_n(&state, id << 16, SEQ);
  __atomic_add_fetch(&wake, 1, SEQ);
  __builtin_wasm_memory_atomic_notify(&wake, n_threads - 1);
  work(id, 0);
  for (int spin = 0;; spin++) {
    int d = __atomic_load_n(&done, SEQ);
    if (d >= n) break;
    if (spin > 4000) __builtin_wasm_memory_atomic_wait32(&done, d, 1000000);  // 1 ms at most, then look again
  }
}

/** A worker's life: wait for a job, take its tasks, wait again. Never returns. */
void LT_EXPORT(lt_worker)(int tid) {
  for (;;) {
    int w = __atomic_load_n(&wake, SEQ);
    work(__atomic_load_n(&state, SEQ) >> 16, tid);
    for (int spin = 0; __atomic_load_n(&wake, SEQ) == w; spin++) {
      if (spin > 2000) __builtin_wasm_memory_atomic_wait32(&wake, w, -1);  // spin briefly: cores may be shared
    }
  }
}
#endif
