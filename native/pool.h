// One persistent thread pool per process, shared by every kernel. The calling (JS) thread takes part in
// each job, so a pool of n threads starts n-1 workers once; no thread is ever created per call.
#pragma once
#include <cstddef>

namespace lt {

typedef void (*TaskFn)(void* ctx, long task);

// Runs fn(ctx, t) for t in [0, ntasks), spread over the pool; returns when all are done.
void parallel_for(long ntasks, TaskFn fn, void* ctx);

// Convenience for lambdas: parallel_for(n, [&](long t) {...}).
template <class F>
void parallel_for(long ntasks, F&& f) {
  parallel_for(ntasks, [](void* c, long t) { (*static_cast<F*>(c))(t); }, (void*)&f);
}

int pool_threads();
// Resizes the pool (joins the old workers, starts new ones). n <= 0 restores the default.
void pool_set_threads(int n);
// Default size: LLAMA_TS_THREADS if set, else the CPUs this process may run on.
int pool_default_threads();

// Index of the calling thread inside the pool (0 = the caller), for per-thread scratch.
int pool_thread_index();

}  // namespace lt
