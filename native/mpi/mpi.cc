// MPI binding for src/parallel/mpi.ts (build/Release/llama_ts_mpi.node), built only where mpicc/mpi.h exist
// (scripts/build-mpi.mjs). Loaded only when the process runs under mpirun/srun.
//
// Design: one communication thread per process makes every MPI call (MPI_Init_thread, the collectives,
// MPI_Comm_split, MPI_Finalize). The JS thread enqueues operations (FIFO) and either blocks on a condition variable
// until its operation has completed (blocking collectives, `wait()`) or returns at once with a request (the i*
// variants). OpenMPI 4.1 has no asynchronous progress: a nonblocking MPI_Iallreduce advances only inside MPI calls,
// so it would not move while the JS thread and the native pool compute. A blocking collective running on a
// dedicated thread progresses by itself, and `test()` is an atomic load (no MPI call from the JS thread).
//
// Consequence of the FIFO: collectives run one at a time, in the order this process started them, across all
// communicators. Every rank must therefore start its collectives (including those on split communicators) in the
// same program order — the usual SPMD discipline; otherwise two ranks can wait on each other forever.
//
// Buffers of nonblocking operations are held by napi references until the operation has completed and the JS thread
// has observed it (wait/test, or the sweep at the next call when the request object was garbage-collected first).
#include <node_api.h>
#include <mpi.h>

#include <dlfcn.h>

#include <atomic>
#include <climits>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

enum OpKind { OP_ALLREDUCE = 0, OP_REDUCE_SCATTER = 1, OP_ALLGATHER = 2, OP_BROADCAST = 3, OP_BARRIER = 4,
              OP_SPLIT = 5, OP_INIT = 6, OP_FINALIZE = 7 };

struct Op {
  int kind = 0;
  int comm = 0;  // index into comms
  void* a = nullptr;  // allreduce/broadcast buf; reduce-scatter/all-gather send (nullptr = in place)
  void* b = nullptr;  // reduce-scatter/all-gather recv
  int count = 0;      // elements: allreduce/broadcast all; reduce-scatter/all-gather per rank
  MPI_Datatype type = MPI_DATATYPE_NULL;
  int root = 0, color = 0, key = 0;
  // results
  int out_comm = -1, out_rank = -1, out_size = -1;
  std::string error;
  std::atomic<bool> done{false};
  // JS-thread only: references keeping the typed arrays of a nonblocking operation alive
  napi_ref refs[2] = {nullptr, nullptr};
};

// Process-lifetime state, deliberately never destroyed: when a rank exits without MPI_Finalize (an error), the comm
// thread is still blocked on these, and destroying a condition variable with a waiter blocks exit() forever in glibc.
std::mutex& mu = *new std::mutex;
std::condition_variable& cv_work = *new std::condition_variable;  // comm thread waits for work
std::condition_variable& cv_done = *new std::condition_variable;  // JS thread waits for completion
std::deque<std::shared_ptr<Op>>& queue = *new std::deque<std::shared_ptr<Op>>;
std::vector<MPI_Comm>& comms = *new std::vector<MPI_Comm>;  // comm thread only (index 0 = MPI_COMM_WORLD)
std::atomic<int> ncomms{0};  // comms.size(), for checking handles on the JS thread
bool started = false, finalized = false;
int world_rank = -1, world_size = -1, thread_level = -1;
std::string& init_error = *new std::string;

// Operations whose request object was collected before they completed: their references are released by the JS
// thread at a later call once they are done.
std::vector<std::shared_ptr<Op>>& orphans = *new std::vector<std::shared_ptr<Op>>;

std::string mpi_error(int rc) {
  char s[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(rc, s, &len) != MPI_SUCCESS) return "MPI error " + std::to_string(rc);
  return std::string(s, len);
}

void run_op(Op& op) {
  int rc = MPI_SUCCESS;
  if (op.kind == OP_INIT) {
    // Make libmpi's symbols global before MPI_Init: Node opens addons RTLD_LOCAL, and OpenMPI's plugins (dlopened
    // by MPI_Init) may resolve symbols from libmpi through the global scope (what mpi4py does too).
    Dl_info info;
    if (dladdr(reinterpret_cast<void*>(&MPI_Init_thread), &info) && info.dli_fname) {
      dlopen(info.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
    }
    int provided = 0;
    rc = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided);
    if (rc == MPI_SUCCESS) {
      thread_level = provided;
      MPI_Comm_rank(MPI_COMM_WORLD, &op.out_rank);
      MPI_Comm_size(MPI_COMM_WORLD, &op.out_size);
      comms.push_back(MPI_COMM_WORLD);
      ncomms.store(1);
      op.out_comm = 0;
    }
  } else if (op.kind == OP_FINALIZE) {
    for (size_t i = 1; i < comms.size(); i++) {
      if (comms[i] != MPI_COMM_NULL) MPI_Comm_free(&comms[i]);
    }
    rc = MPI_Finalize();
  } else {
    MPI_Comm c = comms[op.comm];
    switch (op.kind) {
      case OP_ALLREDUCE:
        rc = MPI_Allreduce(MPI_IN_PLACE, op.a, op.count, op.type, MPI_SUM, c);
        break;
      case OP_REDUCE_SCATTER:
        rc = MPI_Reduce_scatter_block(op.a, op.b, op.count, op.type, MPI_SUM, c);
        break;
      case OP_ALLGATHER:
        rc = MPI_Allgather(op.a ? op.a : MPI_IN_PLACE, op.a ? op.count : 0, op.type, op.b, op.count, op.type, c);
        break;
      case OP_BROADCAST:
        rc = MPI_Bcast(op.a, op.count, op.type, op.root, c);
        break;
      case OP_BARRIER:
        rc = MPI_Barrier(c);
        break;
      case OP_SPLIT: {
        MPI_Comm nc = MPI_COMM_NULL;
        rc = MPI_Comm_split(c, op.color, op.key, &nc);
        if (rc == MPI_SUCCESS) {
          MPI_Comm_rank(nc, &op.out_rank);
          MPI_Comm_size(nc, &op.out_size);
          comms.push_back(nc);
          op.out_comm = int(comms.size() - 1);
          ncomms.store(int(comms.size()));
        }
        break;
      }
    }
  }
  if (rc != MPI_SUCCESS) op.error = mpi_error(rc);
}

void comm_thread() {
  for (;;) {
    std::shared_ptr<Op> op;
    {
      std::unique_lock<std::mutex> lk(mu);
      cv_work.wait(lk, [] { return !queue.empty(); });
      op = queue.front();
    }
    run_op(*op);
    bool last = op->kind == OP_FINALIZE || (op->kind == OP_INIT && !op->error.empty());
    {
      std::lock_guard<std::mutex> lk(mu);
      queue.pop_front();
      op->done.store(true, std::memory_order_release);
    }
    cv_done.notify_all();
    if (last) return;
  }
}

void submit(const std::shared_ptr<Op>& op) {
  {
    std::lock_guard<std::mutex> lk(mu);
    queue.push_back(op);
  }
  cv_work.notify_one();
}

void wait_done(Op& op) {
  if (op.done.load(std::memory_order_acquire)) return;
  std::unique_lock<std::mutex> lk(mu);
  cv_done.wait(lk, [&] { return op.done.load(std::memory_order_acquire); });
}

void release_refs(napi_env env, Op& op) {
  for (auto& r : op.refs) {
    if (r) {
      napi_delete_reference(env, r);
      r = nullptr;
    }
  }
}

void sweep_orphans(napi_env env) {
  for (size_t i = 0; i < orphans.size();) {
    if (orphans[i]->done.load(std::memory_order_acquire)) {
      release_refs(env, *orphans[i]);
      orphans[i] = orphans.back();
      orphans.pop_back();
    } else {
      i++;
    }
  }
}

// ---- argument helpers ----

bool throw_error(napi_env env, const std::string& msg, bool range = false) {
  if (range) napi_throw_range_error(env, nullptr, msg.c_str());
  else napi_throw_error(env, nullptr, msg.c_str());
  return false;
}

struct Buf {
  void* data = nullptr;
  size_t len = 0;  // elements
  size_t elem = 0;
  MPI_Datatype type = MPI_DATATYPE_NULL;
  napi_value value = nullptr;
};

bool get_buf(napi_env env, napi_value v, const char* what, Buf& out) {
  bool is = false;
  napi_is_typedarray(env, v, &is);
  if (!is) return throw_error(env, std::string(what) + " must be a Float32Array or Float64Array");
  napi_typedarray_type t;
  size_t len = 0;
  void* data = nullptr;
  napi_value ab;
  size_t off = 0;
  napi_get_typedarray_info(env, v, &t, &len, &data, &ab, &off);
  if (t == napi_float32_array) {
    out.type = MPI_FLOAT;
    out.elem = 4;
  } else if (t == napi_float64_array) {
    out.type = MPI_DOUBLE;
    out.elem = 8;
  } else {
    return throw_error(env, std::string(what) + " must be a Float32Array or Float64Array");
  }
  out.data = data;
  out.len = len;
  out.value = v;
  return true;
}

bool get_int(napi_env env, napi_value v, const char* what, int& out) {
  double d = 0;
  if (napi_get_value_double(env, v, &d) != napi_ok || d != d || d < INT_MIN || d > INT_MAX || double(int(d)) != d) {
    return throw_error(env, std::string(what) + " must be an integer");
  }
  out = int(d);
  return true;
}

bool overlap(const Buf& x, const Buf& y) {
  auto a = reinterpret_cast<uintptr_t>(x.data), b = reinterpret_cast<uintptr_t>(y.data);
  return a < b + y.len * y.elem && b < a + x.len * x.elem;
}

bool check_comm(napi_env env, int comm) {
  std::lock_guard<std::mutex> lk(mu);
  if (!started || !init_error.empty()) return throw_error(env, "MPI is not initialised");
  if (finalized) return throw_error(env, "MPI has been finalised");
  if (comm < 0 || comm >= ncomms.load()) return throw_error(env, "invalid communicator " + std::to_string(comm), true);
  return true;
}

// Parses (kind, comm, a, b, root) into an Op. Returns null after throwing.
std::shared_ptr<Op> parse_op(napi_env env, napi_callback_info info, const char* name, napi_value* keep, int& nkeep) {
  size_t argc = 5;
  napi_value argv[5];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  auto op = std::make_shared<Op>();
  nkeep = 0;
  if (argc < 2 || !get_int(env, argv[0], "op", op->kind) || !get_int(env, argv[1], "comm", op->comm)) return nullptr;
  if (!check_comm(env, op->comm)) return nullptr;
  std::string n = name;
  switch (op->kind) {
    case OP_ALLREDUCE:
    case OP_BROADCAST: {
      Buf a;
      if (argc < 3 || !get_buf(env, argv[2], "buf", a)) return nullptr;
      if (a.len > size_t(INT_MAX)) return throw_error(env, n + ": buffers over 2^31-1 elements are not supported", true), nullptr;
      op->a = a.data;
      op->count = int(a.len);
      op->type = a.type;
      keep[nkeep++] = a.value;
      if (op->kind == OP_BROADCAST && (argc < 5 || !get_int(env, argv[4], "root", op->root))) return nullptr;
      break;
    }
    case OP_REDUCE_SCATTER:
    case OP_ALLGATHER: {
      Buf s, r;
      if (argc < 4 || !get_buf(env, argv[2], "send", s) || !get_buf(env, argv[3], "recv", r)) return nullptr;
      if (s.type != r.type) return throw_error(env, n + ": send and recv must have the same element type", false), nullptr;
      const Buf& part = op->kind == OP_REDUCE_SCATTER ? r : s;
      if (part.len > size_t(INT_MAX)) return throw_error(env, n + ": buffers over 2^31-1 elements per rank are not supported", true), nullptr;
      op->count = int(part.len);
      op->type = s.type;
      op->a = s.data;
      op->b = r.data;
      // all-gather in place: send is recv's own slot for this rank (the caller checked which slot)
      if (op->kind == OP_ALLGATHER && s.len > 0 && overlap(s, r)) op->a = nullptr;
      else if (s.len > 0 && r.len > 0 && overlap(s, r)) return throw_error(env, n + ": send and recv overlap", true), nullptr;
      keep[nkeep++] = s.value;
      keep[nkeep++] = r.value;
      break;
    }
    case OP_BARRIER:
      break;
    default:
      return throw_error(env, n + ": unknown operation"), nullptr;
  }
  return op;
}

napi_value undefined(napi_env env) {
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

napi_value make_int(napi_env env, int v) {
  napi_value r;
  napi_create_int32(env, v, &r);
  return r;
}

// ---- exported functions ----

// init(): starts the comm thread, which calls MPI_Init_thread. Returns { rank, size, threadLevel }.
napi_value Init(napi_env env, napi_callback_info) {
  bool first = false;
  {
    std::lock_guard<std::mutex> lk(mu);
    if (!init_error.empty()) return throw_error(env, init_error), nullptr;
    first = !started;
    started = true;
  }
  if (first) {
    auto op = std::make_shared<Op>();
    op->kind = OP_INIT;
    submit(op);
    std::thread(comm_thread).detach();  // never joined: it ends after MPI_Finalize, or with the process
    wait_done(*op);
    if (!op->error.empty()) {
      std::lock_guard<std::mutex> lk(mu);
      init_error = "MPI_Init_thread failed: " + op->error;
      return throw_error(env, init_error), nullptr;
    }
    world_rank = op->out_rank;
    world_size = op->out_size;
  }
  napi_value r;
  napi_create_object(env, &r);
  napi_set_named_property(env, r, "rank", make_int(env, world_rank));
  napi_set_named_property(env, r, "size", make_int(env, world_size));
  napi_set_named_property(env, r, "threadLevel", make_int(env, thread_level));
  return r;
}

// The typed arrays a collective reads or writes (kept alive by references while a nonblocking one runs).
struct Call {
  napi_value keep[2];
  int nkeep = 0;
};

// Every collective call starts here: release finished orphans, then parse and check the arguments.
std::shared_ptr<Op> begin_call(napi_env env, napi_callback_info info, const char* name, Call& c) {
  sweep_orphans(env);
  return parse_op(env, info, name, c.keep, c.nkeep);
}

// run(op, comm, a, b, root): a blocking collective (enqueued behind any pending nonblocking ones).
napi_value Run(napi_env env, napi_callback_info info) {
  Call c;
  auto op = begin_call(env, info, "run", c);
  if (!op) return nullptr;
  submit(op);
  wait_done(*op);
  if (!op->error.empty()) return throw_error(env, op->error), nullptr;
  return undefined(env);
}

void finalize_request(napi_env env, void* data, void*) {
  auto* p = static_cast<std::shared_ptr<Op>*>(data);
  if ((*p)->done.load(std::memory_order_acquire)) release_refs(env, **p);
  else orphans.push_back(*p);
  delete p;
}

std::shared_ptr<Op>* get_request(napi_env env, napi_value v) {
  void* data = nullptr;
  if (napi_get_value_external(env, v, &data) != napi_ok || !data) {
    throw_error(env, "not a request");
    return nullptr;
  }
  return static_cast<std::shared_ptr<Op>*>(data);
}

// start(op, comm, a, b, root): a nonblocking collective. Returns a request for wait/test.
napi_value Start(napi_env env, napi_callback_info info) {
  Call c;
  auto op = begin_call(env, info, "start", c);
  if (!op) return nullptr;
  for (int i = 0; i < c.nkeep; i++) napi_create_reference(env, c.keep[i], 1, &op->refs[i]);
  auto* holder = new std::shared_ptr<Op>(op);
  napi_value ext;
  if (napi_create_external(env, holder, finalize_request, nullptr, &ext) != napi_ok) {
    release_refs(env, *op);
    delete holder;
    return throw_error(env, "could not create a request"), nullptr;
  }
  submit(op);
  return ext;
}

// The request passed as the only argument of wait/test (a JS exception is pending when null).
std::shared_ptr<Op>* request_arg(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  return argc ? get_request(env, argv[0]) : (throw_error(env, "not a request"), nullptr);
}

// wait(req): blocks until done; releases the buffers; throws the MPI error if it failed.
napi_value Wait(napi_env env, napi_callback_info info) {
  auto* p = request_arg(env, info);
  if (!p) return nullptr;
  wait_done(**p);
  release_refs(env, **p);
  if (!(*p)->error.empty()) return throw_error(env, (*p)->error), nullptr;
  return undefined(env);
}

// test(req): true once done (an atomic load; no MPI call).
napi_value Test(napi_env env, napi_callback_info info) {
  auto* p = request_arg(env, info);
  if (!p) return nullptr;
  bool d = (*p)->done.load(std::memory_order_acquire);
  if (d) release_refs(env, **p);
  napi_value r;
  napi_get_boolean(env, d, &r);
  return r;
}

// split(comm, color, key): MPI_Comm_split. Returns { comm, rank, size }.
napi_value Split(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  auto op = std::make_shared<Op>();
  op->kind = OP_SPLIT;
  if (argc < 3 || !get_int(env, argv[0], "comm", op->comm) || !get_int(env, argv[1], "color", op->color) ||
      !get_int(env, argv[2], "key", op->key)) {
    return nullptr;
  }
  if (op->color < 0) return throw_error(env, "split: color must be >= 0", true), nullptr;
  if (!check_comm(env, op->comm)) return nullptr;
  submit(op);
  wait_done(*op);
  if (!op->error.empty()) return throw_error(env, op->error), nullptr;
  napi_value r;
  napi_create_object(env, &r);
  napi_set_named_property(env, r, "comm", make_int(env, op->out_comm));
  napi_set_named_property(env, r, "rank", make_int(env, op->out_rank));
  napi_set_named_property(env, r, "size", make_int(env, op->out_size));
  return r;
}

// finalize(): MPI_Finalize after every queued operation, then the comm thread ends. Idempotent.
napi_value Finalize(napi_env env, napi_callback_info) {
  {
    std::lock_guard<std::mutex> lk(mu);
    if (!started || finalized || !init_error.empty()) return undefined(env);
    finalized = true;
  }
  auto op = std::make_shared<Op>();
  op->kind = OP_FINALIZE;
  submit(op);
  wait_done(*op);
  if (!op->error.empty()) return throw_error(env, "MPI_Finalize failed: " + op->error), nullptr;
  return undefined(env);
}

napi_value Version(napi_env env, napi_callback_info) {
  char s[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  MPI_Get_library_version(s, &len);  // callable before MPI_Init
  std::string v(s, len);
  size_t nl = v.find_first_of("\r\n,");
  if (nl != std::string::npos) v.resize(nl);
  napi_value r;
  napi_create_string_utf8(env, v.c_str(), v.size(), &r);
  return r;
}

napi_value ModuleInit(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"init", nullptr, Init, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"run", nullptr, Run, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"start", nullptr, Start, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"wait", nullptr, Wait, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"test", nullptr, Test, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"split", nullptr, Split, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"finalize", nullptr, Finalize, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"version", nullptr, Version, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, ModuleInit)
