// Read-only memory mapping of model files (not a kernel op: bound beside the op table in addon.cc).
// JavaScript side: src/util/mmap.ts (ModelFile); tests: test/mmap.test.ts.
//
//   mapOpen(path, populate) -> handle     open O_RDONLY, fstat, mmap(PROT_READ, MAP_PRIVATE) the whole file,
//                                         advised MADV_HUGEPAGE; populate: page tables filled at once
//                                         (MADV_POPULATE_READ, or MAP_POPULATE on kernels before 5.14; reads a
//                                         cold file)
//   mapSize(handle) -> bytes              the size the mapping was made with (fstat of the mapped descriptor)
//   mapRange(handle, offset, length)      an external ArrayBuffer over [offset, offset+length) of the mapping,
//                                         no copy; it keeps the mapping alive until it is collected
//   mapFileSize(handle) -> bytes          the file's size now (fstat of the same descriptor: a truncation shows)
//   mapFaults(handle) -> count            bus errors this mapping absorbed (see below)
//   mapRelease(handle, offset, length)    madvise(MADV_DONTNEED) over the whole pages inside [offset, offset+length):
//                                         drops them from this process (its RSS) but not from the page cache; a later
//                                         read faults them back in from the file (never-written MAP_PRIVATE pages, so
//                                         nothing is lost). For tensors the model keeps in a converted copy (the Q4_0 /
//                                         Q8_0 weights repacked for decode). Returns the bytes released.
//   mapClose(handle)                      drops the handle's reference (views keep the mapping until collected)
//   firstNonFinite(Float32Array) -> i     index of the first NaN/±Inf, or -1 (one vectorised pass; the loaders'
//                                         corrupt-weight check without a JavaScript loop over every mapped float)
//   adviseHugePages(typed array) -> bytes madvise(MADV_HUGEPAGE) over the whole 2 MiB pages inside the array's
//                                         memory; returns the bytes advised (0 where the kernel refuses or lacks it).
//                                         Called on large buffers before their first write, so that their pages
//                                         fault in as transparent huge pages (THP "madvise" mode): streaming the
//                                         weights through the TLB 2 MiB at a time is what batch-1 decode needs.
//   alignSkip(typed array, align) -> n    the elements to skip from the array's start for its data to begin on an
//                                         `align`-byte boundary (a power of two, at most 4096); the native backend's
//                                         alloc over-allocates by as much and returns the aligned view (a row of
//                                         64-byte vector loads then touches one cache line per load, not two).
//
// Truncation while mapped. Pages of a MAP_PRIVATE mapping that were never written are the file's page-cache pages;
// when the file is truncated below them, touching them raises SIGBUS, which would kill the process. A SIGBUS handler
// installed with the first mapping looks the faulting address up in a fixed table of live mappings: inside one, it
// replaces the rest of that mapping, from the faulting page on, with anonymous zero pages (mmap MAP_FIXED), counts
// the fault and returns, so the access is retried and reads zeros. The JavaScript side checks the count and the
// file's size between decode steps and stops with an error (the weights are no longer the file's). A SIGBUS outside
// every mapping goes to the handler that was there before (the default: terminate). Writes into the file in place
// show through the mapping (as with any shared page cache); llama-ts's own writers replace files by rename, which
// leaves a mapped file's inode untouched.
#include <node_api.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <string>

namespace lt {
namespace {

const int MAX_MAPS = 1024;

// The table the signal handler reads: plain atomics, no locks, no allocation.
struct Slot {
  std::atomic<uintptr_t> base{0};
  std::atomic<size_t> len{0};
  std::atomic<long> faults{0};
};
Slot g_slots[MAX_MAPS];
std::mutex g_table_mutex;  // guards slot allocation and release (never taken by the handler)
struct sigaction g_old_bus;
std::atomic<bool> g_handler_installed{false};
uintptr_t g_page = 4096;  // set before the handler is installed (sysconf is not async-signal-safe)

void on_sigbus(int sig, siginfo_t* info, void* ctx) {
  uintptr_t a = reinterpret_cast<uintptr_t>(info->si_addr);
  for (int i = 0; i < MAX_MAPS; i++) {
    uintptr_t b = g_slots[i].base.load(std::memory_order_acquire);
    size_t n = g_slots[i].len.load(std::memory_order_acquire);
    if (b == 0 || a < b || a >= b + n) continue;
    uintptr_t from = a & ~(g_page - 1);
    void* r = mmap(reinterpret_cast<void*>(from), b + n - from, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (r != MAP_FAILED) {
      g_slots[i].faults.fetch_add(1, std::memory_order_relaxed);
      return;  // the faulting load is retried and reads zeros
    }
    break;
  }
  // not ours (or the zero mapping failed): the previous disposition decides
  if (g_old_bus.sa_flags & SA_SIGINFO) {
    if (g_old_bus.sa_sigaction) return g_old_bus.sa_sigaction(sig, info, ctx);
  } else if (g_old_bus.sa_handler != SIG_DFL && g_old_bus.sa_handler != SIG_IGN && g_old_bus.sa_handler) {
    return g_old_bus.sa_handler(sig);
  }
  sigaction(SIGBUS, &g_old_bus, nullptr);  // default: the retried access terminates the process
}

void install_handler() {
  if (g_handler_installed.exchange(true)) return;
  g_page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_sigbus;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGBUS, &sa, &g_old_bus);
}

struct Mapping {
  int fd = -1;
  void* base = nullptr;
  size_t size = 0;
  int slot = -1;
  std::atomic<long> refs{1};
  void unref() {
    if (refs.fetch_sub(1) != 1) return;
    {
      std::lock_guard<std::mutex> lock(g_table_mutex);
      if (slot >= 0) {
        g_slots[slot].base.store(0, std::memory_order_release);
        g_slots[slot].len.store(0, std::memory_order_release);
      }
    }
    if (base) munmap(base, size);
    if (fd >= 0) close(fd);
    delete this;
  }
};

// A handle: the mapping plus whether mapClose already dropped its reference.
struct Handle {
  Mapping* m;
  bool closed = false;
};

napi_value fail(napi_env env, const std::string& msg, bool range = true) {
  if (range) napi_throw_range_error(env, nullptr, msg.c_str());
  else napi_throw_type_error(env, nullptr, msg.c_str());
  return nullptr;
}

napi_value num(napi_env env, double d) {
  napi_value r;
  napi_create_double(env, d, &r);
  return r;
}

Handle* handle_arg(napi_env env, napi_value v, const char* fn) {
  void* p = nullptr;
  if (napi_get_value_external(env, v, &p) != napi_ok || !p) {
    fail(env, std::string(fn) + ": expects a mapping handle", false);
    return nullptr;
  }
  Handle* h = static_cast<Handle*>(p);
  if (h->closed) {
    fail(env, std::string(fn) + ": the mapping was closed");
    return nullptr;
  }
  return h;
}

// the live mapping handle a one-argument function (mapSize, mapFileSize, mapFaults) was called with; null after throwing
Handle* only_handle(napi_env env, napi_callback_info info, const char* fn) {
  napi_value argv[1];
  size_t argc = 1;
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  if (argc < 1) {
    fail(env, std::string(fn) + ": expects a mapping handle", false);
    return nullptr;
  }
  return handle_arg(env, argv[0], fn);
}

bool size_arg(napi_env env, napi_value v, double* out) {
  return napi_get_value_double(env, v, out) == napi_ok && *out >= 0 && *out == (double)(int64_t)*out && *out <= 9007199254740991.0;
}

napi_value MapOpen(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  size_t argc = 2;
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  size_t len = 0;
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], nullptr, 0, &len) != napi_ok) return fail(env, "mapOpen: expects a path", false);
  std::string path(len, '\0');
  napi_get_value_string_utf8(env, argv[0], &path[0], len + 1, &len);
  bool populate = false;
  if (argc > 1) napi_get_value_bool(env, argv[1], &populate);
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(env, "cannot open '" + path + "': " + strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return fail(env, "'" + path + "' is not a regular file");
  }
  if (st.st_size == 0) {
    close(fd);
    return fail(env, "'" + path + "' is empty");
  }
  size_t size = static_cast<size_t>(st.st_size);
  // Huge pages first, then the page tables: advised before any page is read, a cold file is read into 2 MiB page
  // cache folios that this and later mappings map whole (a warm file maps whatever folios the page cache holds).
  // Populating afterwards (MADV_POPULATE_READ, Linux 5.14) keeps the advice in force; older kernels fall back to
  // MAP_POPULATE at mmap time.
  bool populated_late = false;
#if defined(MADV_HUGEPAGE) && defined(MADV_POPULATE_READ)
  populated_late = populate;
#endif
  void* base = mmap(nullptr, size, PROT_READ, MAP_PRIVATE | MAP_NORESERVE | (populate && !populated_late ? MAP_POPULATE : 0), fd, 0);
  if (base == MAP_FAILED) {
    int e = errno;
    close(fd);
    return fail(env, "cannot map '" + path + "': " + strerror(e));
  }
#if defined(MADV_HUGEPAGE)
  madvise(base, size, MADV_HUGEPAGE);  // advice only: refused where THP is off
#endif
#if defined(MADV_POPULATE_READ)
  if (populated_late) madvise(base, size, MADV_POPULATE_READ);  // errors ignored: such a page faults when read
#endif
  install_handler();
  Mapping* m = new Mapping();
  m->fd = fd;
  m->base = base;
  m->size = size;
  {
    std::lock_guard<std::mutex> lock(g_table_mutex);
    for (int i = 0; i < MAX_MAPS; i++) {
      if (g_slots[i].base.load() != 0) continue;
      g_slots[i].faults.store(0);
      g_slots[i].len.store(size, std::memory_order_release);
      g_slots[i].base.store(reinterpret_cast<uintptr_t>(base), std::memory_order_release);
      m->slot = i;
      break;
    }
  }
  if (m->slot < 0) {
    m->unref();
    return fail(env, "mapOpen: more than 1024 files mapped at once");
  }
  Handle* h = new Handle{m};
  napi_value out;
  napi_create_external(env, h, [](napi_env, void* p, void*) {
    Handle* h = static_cast<Handle*>(p);
    if (!h->closed) h->m->unref();
    delete h;
  }, nullptr, &out);
  return out;
}

napi_value MapSize(napi_env env, napi_callback_info info) {
  Handle* h = only_handle(env, info, "mapSize");
  if (!h) return nullptr;
  return num(env, (double)h->m->size);
}

// The (handle, offset, length) of a call about a range of the mapping, checked; nullptr after throwing.
Handle* range_args(napi_env env, napi_callback_info info, const char* what, double* off, double* n) {
  napi_value argv[3];
  size_t argc = 3;
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  const std::string name(what);
  if (argc < 3) return fail(env, name + ": expects (handle, offset, length)", false), nullptr;
  Handle* h = handle_arg(env, argv[0], what);
  if (!h) return nullptr;
  if (!size_arg(env, argv[1], off) || !size_arg(env, argv[2], n)) return fail(env, name + ": offset and length must be non-negative integers"), nullptr;
  if (*off + *n > (double)h->m->size) {
    return fail(env, name + ": bytes " + std::to_string((int64_t)*off) + ".." + std::to_string((int64_t)(*off + *n)) + " lie outside the " + std::to_string(h->m->size) + "-byte mapping"), nullptr;
  }
  return h;
}

napi_value MapRange(napi_env env, napi_callback_info info) {
  double off = 0, n = 0;
  Handle* h = range_args(env, info, "mapRange", &off, &n);
  if (!h) return nullptr;
  Mapping* m = h->m;
  m->refs.fetch_add(1);
  napi_value ab;
  // a zero-length range still needs a valid pointer: the mapping's base
  char* p = static_cast<char*>(m->base) + (size_t)off;
  napi_status s = napi_create_external_arraybuffer(env, p, (size_t)n, [](napi_env, void*, void* hint) { static_cast<Mapping*>(hint)->unref(); }, m, &ab);
  if (s != napi_ok) {
    m->unref();
    return fail(env, "mapRange: this Node.js does not allow external ArrayBuffers");
  }
  return ab;
}

napi_value MapRelease(napi_env env, napi_callback_info info) {
  double off = 0, n = 0;
  Handle* h = range_args(env, info, "mapRelease", &off, &n);
  if (!h) return nullptr;
  const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
  const uintptr_t a = (uintptr_t)h->m->base + (uintptr_t)off, e = a + (uintptr_t)n;
  const uintptr_t lo = (a + page - 1) / page * page, hi = e / page * page;
  if (hi <= lo || madvise((void*)lo, hi - lo, MADV_DONTNEED) != 0) return num(env, 0);
  return num(env, (double)(hi - lo));
}

napi_value MapFileSize(napi_env env, napi_callback_info info) {
  Handle* h = only_handle(env, info, "mapFileSize");
  if (!h) return nullptr;
  struct stat st;
  if (fstat(h->m->fd, &st) != 0) return num(env, -1);
  return num(env, (double)st.st_size);
}

napi_value MapFaults(napi_env env, napi_callback_info info) {
  Handle* h = only_handle(env, info, "mapFaults");
  if (!h) return nullptr;
  return num(env, (double)g_slots[h->m->slot].faults.load());
}

napi_value MapClose(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  size_t argc = 1;
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  void* p = nullptr;
  if (argc < 1 || napi_get_value_external(env, argv[0], &p) != napi_ok || !p) return fail(env, "mapClose: expects a mapping handle", false);
  Handle* h = static_cast<Handle*>(p);
  if (!h->closed) {
    h->closed = true;
    h->m->unref();
  }
  return nullptr;
}

// The one typed-array argument of a call: its type, length and data; false when it is not a typed array.
bool only_typed_array(napi_env env, napi_callback_info info, napi_typedarray_type* t, size_t* n, void** data) {
  napi_value argv[1];
  size_t argc = 1;
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  return argc >= 1 && napi_get_typedarray_info(env, argv[0], t, n, data, nullptr, nullptr) == napi_ok;
}

// index of the first non-finite float, or -1; blocks of 256 are OR-reduced (vectorised), a hit is searched linearly
napi_value FirstNonFinite(napi_env env, napi_callback_info info) {
  napi_typedarray_type t;
  size_t n = 0;
  void* data = nullptr;
  if (!only_typed_array(env, info, &t, &n, &data) || t != napi_float32_array) {
    return fail(env, "firstNonFinite: expects a Float32Array", false);
  }
  const uint32_t* u = static_cast<const uint32_t*>(data);
  const size_t B = 256;
  for (size_t i0 = 0; i0 < n; i0 += B) {
    size_t e = i0 + B < n ? i0 + B : n;
    uint32_t bad = 0;
    for (size_t i = i0; i < e; i++) bad |= (u[i] & 0x7f800000u) == 0x7f800000u;
    if (!bad) continue;
    for (size_t i = i0; i < e; i++)
      if ((u[i] & 0x7f800000u) == 0x7f800000u) return num(env, (double)i);
  }
  return num(env, -1);
}

napi_value AdviseHugePages(napi_env env, napi_callback_info info) {
  napi_typedarray_type t;
  size_t n = 0;
  void* data = nullptr;
  if (!only_typed_array(env, info, &t, &n, &data)) return fail(env, "adviseHugePages: expects a typed array", false);
  size_t el = t == napi_float64_array ? 8 : t == napi_float32_array || t == napi_int32_array || t == napi_uint32_array ? 4
             : t == napi_uint16_array || t == napi_int16_array ? 2 : 1;
#if defined(MADV_HUGEPAGE)
  const uintptr_t H = (uintptr_t)2 << 20;
  uintptr_t a = (uintptr_t)data, e = a + n * el;
  uintptr_t a0 = (a + H - 1) & ~(H - 1), e0 = e & ~(H - 1);
  if (data && e0 > a0 && madvise((void*)a0, e0 - a0, MADV_HUGEPAGE) == 0) return num(env, (double)(e0 - a0));
#else
  (void)el;
#endif
  return num(env, 0);
}

napi_value AlignSkip(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  bool is_ta = false;
  if (argc < 2 || napi_is_typedarray(env, argv[0], &is_ta) != napi_ok || !is_ta) return fail(env, "alignSkip: expects a typed array and an alignment", false);
  napi_typedarray_type t;
  size_t n = 0;
  void* data = nullptr;
  napi_get_typedarray_info(env, argv[0], &t, &n, &data, nullptr, nullptr);
  double align = 0;
  napi_get_value_double(env, argv[1], &align);
  const size_t el = t == napi_float64_array || t == napi_bigint64_array || t == napi_biguint64_array ? 8
                    : t == napi_float32_array || t == napi_int32_array || t == napi_uint32_array ? 4
                    : t == napi_uint16_array || t == napi_int16_array ? 2 : 1;
  const size_t a = (size_t)align;
  if (!(align >= 1 && align <= 4096) || (a & (a - 1)) != 0) return fail(env, "alignSkip: the alignment must be a power of two up to 4096", false);
  const size_t bytes = (a - (uintptr_t)data % a) % a;
  return num(env, bytes % el == 0 ? (double)(bytes / el) : 0);
}

}  // namespace

// Called from addon.cc's module init: the mapping functions beside the op table.
void register_mmap(napi_env env, napi_value exports) {
  struct Fn {
    const char* name;
    napi_callback cb;
  } fns[] = {
      {"mapOpen", MapOpen}, {"mapSize", MapSize}, {"mapRange", MapRange}, {"mapRelease", MapRelease}, {"mapFileSize", MapFileSize},
      {"mapFaults", MapFaults}, {"mapClose", MapClose}, {"firstNonFinite", FirstNonFinite},
      {"adviseHugePages", AdviseHugePages}, {"alignSkip", AlignSkip},
  };
  for (const Fn& f : fns) {
    napi_value fn;
    napi_create_function(env, f.name, NAPI_AUTO_LENGTH, f.cb, nullptr, &fn);
    napi_set_named_property(env, exports, f.name, fn);
  }
}

}  // namespace lt
