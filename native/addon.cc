// Node-API bindings: typed arrays are passed to C by pointer (no copy). Every buffer is checked against the shape
// it is used with before any kernel runs; a mismatch throws a descriptive RangeError/TypeError.
#include <node_api.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>

#include "attention.h"
#include "gemm.h"
#include "kernels.h"
#include "pool.h"
#include "simd.h"

using namespace lt;

namespace {

const int64_t MAX_ELEMS = int64_t(1) << 40;

struct Args {
  napi_env env;
  const char* op;
  napi_value v[16];
  size_t n = 16;
  bool failed = false;

  Args(napi_env e, napi_callback_info info, const char* o) : env(e), op(o) {
    napi_get_cb_info(env, info, &n, v, nullptr, nullptr);
  }
  void range_error(const std::string& msg) {
    if (failed) return;
    failed = true;
    napi_throw_range_error(env, nullptr, (std::string(op) + ": " + msg).c_str());
  }
  void type_error(const std::string& msg) {
    if (failed) return;
    failed = true;
    napi_throw_type_error(env, nullptr, (std::string(op) + ": " + msg).c_str());
  }
  bool present(size_t i) {
    if (i >= n) return false;
    napi_valuetype t;
    napi_typeof(env, v[i], &t);
    return t != napi_undefined && t != napi_null;
  }
  double num(size_t i, const char* name) {
    if (failed) return 0;
    double d = 0;
    if (i >= n || napi_get_value_double(env, v[i], &d) != napi_ok) {
      type_error(std::string(name) + " must be a number");
      return 0;
    }
    return d;
  }
  // a non-negative integer size
  int64_t size(size_t i, const char* name) {
    double d = num(i, name);
    if (failed) return 0;
    if (!(d >= 0) || d != std::floor(d) || d > (double)MAX_ELEMS) {
      range_error("bad size " + fmt(d) + " for " + name);
      return 0;
    }
    return (int64_t)d;
  }
  int64_t integer(size_t i, const char* name) {
    double d = num(i, name);
    if (failed) return 0;
    if (d != std::floor(d) || std::fabs(d) > (double)MAX_ELEMS) {
      range_error(std::string(name) + " must be an integer, got " + fmt(d));
      return 0;
    }
    return (int64_t)d;
  }
  bool flag(size_t i) {
    if (!present(i)) return false;
    bool b = false;
    if (napi_get_value_bool(env, v[i], &b) != napi_ok) {
      napi_value c;
      napi_coerce_to_bool(env, v[i], &c);
      napi_get_value_bool(env, c, &b);
    }
    return b;
  }
  void* typed(size_t i, const char* name, napi_typedarray_type want, const char* want_name, int64_t need, int64_t* len_out) {
    if (failed) return nullptr;
    bool is = false;
    if (i < n) napi_is_typedarray(env, v[i], &is);
    if (!is) {
      type_error(std::string(name) + " must be a " + want_name);
      return nullptr;
    }
    napi_typedarray_type t;
    size_t len;
    void* data;
    napi_get_typedarray_info(env, v[i], &t, &len, &data, nullptr, nullptr);
    if (t != want) {
      type_error(std::string(name) + " must be a " + want_name +
                 (want == napi_float32_array ? " (the native backend computes in float32)" : ""));
      return nullptr;
    }
    if (need > MAX_ELEMS || (int64_t)len < need) {
      range_error(std::string(name) + " has " + std::to_string(len) + " elements, shape needs " + std::to_string(need));
      return nullptr;
    }
    if (len_out) *len_out = (int64_t)len;
    return data;
  }
  float* f32(size_t i, const char* name, int64_t need, int64_t* len = nullptr) {
    return static_cast<float*>(typed(i, name, napi_float32_array, "Float32Array", need, len));
  }
  const double* f64(size_t i, const char* name, int64_t need) {
    return static_cast<const double*>(typed(i, name, napi_float64_array, "Float64Array", need, nullptr));
  }
  const int32_t* i32(size_t i, const char* name, int64_t need, int64_t* len = nullptr) {
    return static_cast<const int32_t*>(typed(i, name, napi_int32_array, "Int32Array", need, len));
  }
  static std::string fmt(double d) {
    char b[64];
    std::snprintf(b, sizeof b, "%.17g", d);
    return b;
  }
  napi_value undef() {
    napi_value u;
    napi_get_undefined(env, &u);
    return u;
  }
  napi_value number(double d) {
    napi_value r;
    napi_create_double(env, d, &r);
    return r;
  }
};

// out[M,N] (+)= x[M,K]·w[N,K]ᵀ
napi_value Matmul(napi_env env, napi_callback_info info) {
  Args a(env, info, "matmul");
  int64_t M = a.size(3, "M"), K = a.size(4, "K"), N = a.size(5, "N");
  float* out = a.f32(0, "out", M * N);
  const float* x = a.f32(1, "x", M * K);
  const float* w = a.f32(2, "w", N * K);
  bool acc = a.flag(6);
  if (a.failed) return nullptr;
  sgemm(M, N, K, x, K, 1, w, 1, K, out, N, acc);
  return a.undef();
}

// dx[M,K] (+)= dy[M,N]·w[N,K]
napi_value MatmulBackwardInput(napi_env env, napi_callback_info info) {
  Args a(env, info, "matmulBackwardInput");
  int64_t M = a.size(3, "M"), K = a.size(4, "K"), N = a.size(5, "N");
  float* dx = a.f32(0, "dx", M * K);
  const float* dy = a.f32(1, "dy", M * N);
  const float* w = a.f32(2, "w", N * K);
  bool acc = a.flag(6);
  if (a.failed) return nullptr;
  sgemm(M, K, N, dy, N, 1, w, K, 1, dx, K, acc);
  return a.undef();
}

// dw[N,K] += dy[M,N]ᵀ·x[M,K]
napi_value MatmulBackwardWeight(napi_env env, napi_callback_info info) {
  Args a(env, info, "matmulBackwardWeight");
  int64_t M = a.size(3, "M"), K = a.size(4, "K"), N = a.size(5, "N");
  float* dw = a.f32(0, "dw", N * K);
  const float* dy = a.f32(1, "dy", M * N);
  const float* x = a.f32(2, "x", M * K);
  if (a.failed) return nullptr;
  sgemm(N, K, M, dy, 1, N, x, K, 1, dw, K, true);
  return a.undef();
}

// General strided sgemm for benchmarks: (C, A, B, M, N, K, transA, transB, accumulate); A is [M,K] (or [K,M] when
// transA), B is [K,N] (or [N,K] when transB), C is [M,N].
napi_value Sgemm(napi_env env, napi_callback_info info) {
  Args a(env, info, "sgemm");
  int64_t M = a.size(3, "M"), N = a.size(4, "N"), K = a.size(5, "K");
  bool ta = a.flag(6), tb = a.flag(7), acc = a.flag(8);
  float* C = a.f32(0, "C", M * N);
  const float* A = a.f32(1, "A", M * K);
  const float* B = a.f32(2, "B", K * N);
  if (a.failed) return nullptr;
  sgemm(M, N, K, A, ta ? 1 : K, ta ? M : 1, B, tb ? 1 : N, tb ? K : 1, C, N, acc);
  return a.undef();
}

napi_value Embedding(napi_env env, napi_callback_info info) {
  Args a(env, info, "embedding");
  int64_t dim = a.size(3, "dim"), ntok = 0, tlen = 0;
  const int32_t* tok = a.i32(2, "tokens", 0, &ntok);
  float* out = a.f32(0, "out", ntok * dim);
  const float* table = a.f32(1, "table", 0, &tlen);
  if (a.failed) return nullptr;
  int64_t vocab = dim > 0 ? tlen / dim : 0;
  for (int64_t i = 0; i < ntok; i++)
    if (tok[i] < 0 || tok[i] >= vocab) {
      a.range_error("token id " + std::to_string(tok[i]) + " at position " + std::to_string(i) +
                    " is outside the vocabulary (0.." + std::to_string(vocab - 1) + ")");
      return nullptr;
    }
  embedding(out, table, tok, ntok, dim);
  return a.undef();
}

napi_value EmbeddingBackward(napi_env env, napi_callback_info info) {
  Args a(env, info, "embeddingBackward");
  int64_t dim = a.size(3, "dim"), ntok = 0, tlen = 0;
  const int32_t* tok = a.i32(2, "tokens", 0, &ntok);
  float* dtable = a.f32(0, "dtable", 0, &tlen);
  const float* dout = a.f32(1, "dout", ntok * dim);
  if (a.failed) return nullptr;
  int64_t vocab = dim > 0 ? tlen / dim : 0;
  for (int64_t i = 0; i < ntok; i++)
    if (tok[i] < 0 || tok[i] >= vocab) {
      a.range_error("token id " + std::to_string(tok[i]) + " is outside the vocabulary");
      return nullptr;
    }
  embedding_backward(dtable, dout, tok, ntok, dim);
  return a.undef();
}

napi_value Rmsnorm(napi_env env, napi_callback_info info) {
  Args a(env, info, "rmsnorm");
  int64_t rows = a.size(4, "rows"), dim = a.size(5, "dim");
  double eps = a.num(6, "eps");
  float* out = a.f32(0, "out", rows * dim);
  float* rstd = a.f32(1, "rstd", rows);
  const float* x = a.f32(2, "x", rows * dim);
  const float* w = a.f32(3, "w", dim);
  if (a.failed) return nullptr;
  rmsnorm(out, rstd, x, w, rows, dim, (float)eps);
  return a.undef();
}

napi_value RmsnormBackward(napi_env env, napi_callback_info info) {
  Args a(env, info, "rmsnormBackward");
  int64_t rows = a.size(6, "rows"), dim = a.size(7, "dim");
  float* dx = a.f32(0, "dx", rows * dim);
  float* dw = a.f32(1, "dw", dim);
  const float* dout = a.f32(2, "dout", rows * dim);
  const float* x = a.f32(3, "x", rows * dim);
  const float* w = a.f32(4, "w", dim);
  const float* rstd = a.f32(5, "rstd", rows);
  if (a.failed) return nullptr;
  rmsnorm_backward(dx, dw, dout, x, w, rstd, rows, dim);
  return a.undef();
}

// (x, batch, seq, nHeads, cos, sin, headDim, maxSeqLen, posOffset, sign)
napi_value Rope(napi_env env, napi_callback_info info) {
  Args a(env, info, "rope");
  double sign = a.num(9, "sign");
  if (!a.failed && sign < 0) a.op = "ropeBackward";
  int64_t batch = a.size(1, "batch"), seq = a.size(2, "seq"), nHeads = a.size(3, "nHeads");
  int64_t hd = a.size(6, "headDim"), maxSeq = a.size(7, "maxSeqLen"), pos = a.integer(8, "posOffset");
  if (a.failed) return nullptr;
  if (hd % 2 != 0) {
    a.range_error("head dimension " + std::to_string(hd) + " must be even");
    return nullptr;
  }
  float* x = a.f32(0, "x", batch * seq * nHeads * hd);
  if (a.failed) return nullptr;
  if (pos < 0 || pos + seq > maxSeq) {
    a.range_error("positions " + std::to_string(pos) + ".." + std::to_string(pos + seq - 1) + " exceed the rope table (" +
                  std::to_string(maxSeq) + ")");
    return nullptr;
  }
  const double* c = a.f64(4, "cos", maxSeq * (hd / 2));
  const double* s = a.f64(5, "sin", maxSeq * (hd / 2));
  if (a.failed) return nullptr;
  rope(x, batch, seq, nHeads, hd, c, s, pos, sign < 0 ? -1.0 : 1.0);
  return a.undef();
}

bool attn_shape(Args& a, size_t i, int64_t* B, int64_t* T, int64_t* H, int64_t* KV, int64_t* hd) {
  *B = a.size(i, "batch");
  *T = a.size(i + 1, "seq");
  *H = a.size(i + 2, "nHeads");
  *KV = a.size(i + 3, "nKvHeads");
  *hd = a.size(i + 4, "headDim");
  if (a.failed) return false;
  if (*KV == 0 || *H % *KV != 0) {
    a.range_error("nHeads " + std::to_string(*H) + " not divisible by nKvHeads " + std::to_string(*KV));
    return false;
  }
  return true;
}

napi_value Attention(napi_env env, napi_callback_info info) {
  Args a(env, info, "attention");
  int64_t B, T, H, KV, hd;
  if (!attn_shape(a, 5, &B, &T, &H, &KV, &hd)) return nullptr;
  int64_t nq = B * T * H * hd, nk = B * T * KV * hd;
  float* out = a.f32(0, "out", nq);
  float* lse = a.f32(1, "lse", B * H * T);
  const float* q = a.f32(2, "q", nq);
  const float* k = a.f32(3, "k", nk);
  const float* v = a.f32(4, "v", nk);
  if (a.failed) return nullptr;
  attention_forward(out, lse, q, k, v, B, T, H, KV, hd);
  return a.undef();
}

// out[n,H,hd] = attention of q[n,H,hd] (positions pos..pos+n-1) over the cache k/v[pos+n, KV, hd]
napi_value AttentionCached(napi_env env, napi_callback_info info) {
  Args a(env, info, "attentionCached");
  int64_t n = a.size(4, "n"), pos = a.size(5, "pos"), H = a.size(6, "nHeads"), KV = a.size(7, "nKvHeads");
  int64_t hd = a.size(8, "headDim");
  if (a.failed) return nullptr;
  if (KV == 0 || H % KV != 0) {
    a.range_error("nHeads " + std::to_string(H) + " not divisible by nKvHeads " + std::to_string(KV));
    return nullptr;
  }
  float* out = a.f32(0, "out", n * H * hd);
  const float* q = a.f32(1, "q", n * H * hd);
  const float* k = a.f32(2, "k", (pos + n) * KV * hd);
  const float* v = a.f32(3, "v", (pos + n) * KV * hd);
  if (a.failed) return nullptr;
  attention_cached(out, q, k, v, n, pos, H, KV, hd);
  return a.undef();
}

napi_value AttentionBackward(napi_env env, napi_callback_info info) {
  Args a(env, info, "attentionBackward");
  int64_t B, T, H, KV, hd;
  if (!attn_shape(a, 9, &B, &T, &H, &KV, &hd)) return nullptr;
  int64_t nq = B * T * H * hd, nk = B * T * KV * hd;
  float* dq = a.f32(0, "dq", nq);
  float* dk = a.f32(1, "dk", nk);
  float* dv = a.f32(2, "dv", nk);
  const float* dout = a.f32(3, "dout", nq);
  const float* q = a.f32(4, "q", nq);
  const float* k = a.f32(5, "k", nk);
  const float* v = a.f32(6, "v", nk);
  const float* out = a.f32(7, "out", nq);
  const float* lse = a.f32(8, "lse", B * H * T);
  if (a.failed) return nullptr;
  attention_backward(dq, dk, dv, dout, q, k, v, out, lse, B, T, H, KV, hd);
  return a.undef();
}

napi_value Swiglu(napi_env env, napi_callback_info info) {
  Args a(env, info, "swiglu");
  int64_t n = a.size(3, "n");
  float* out = a.f32(0, "out", n);
  const float* x = a.f32(1, "a", n);
  const float* y = a.f32(2, "b", n);
  if (a.failed) return nullptr;
  swiglu(out, x, y, n);
  return a.undef();
}

napi_value SwigluBackward(napi_env env, napi_callback_info info) {
  Args a(env, info, "swigluBackward");
  int64_t n = a.size(5, "n");
  float* da = a.f32(0, "da", n);
  float* db = a.f32(1, "db", n);
  const float* dout = a.f32(2, "dout", n);
  const float* x = a.f32(3, "a", n);
  const float* y = a.f32(4, "b", n);
  if (a.failed) return nullptr;
  swiglu_backward(da, db, dout, x, y, n);
  return a.undef();
}

napi_value Add(napi_env env, napi_callback_info info) {
  Args a(env, info, "add");
  int64_t n = a.size(3, "n");
  float* out = a.f32(0, "out", n);
  const float* x = a.f32(1, "a", n);
  const float* y = a.f32(2, "b", n);
  if (a.failed) return nullptr;
  add(out, x, y, n);
  return a.undef();
}

// (logits, targets, rows, V, dlogits|null, gradScale) -> summed loss
napi_value CrossEntropy(napi_env env, napi_callback_info info) {
  Args a(env, info, "crossEntropy");
  int64_t rows = a.size(2, "rows"), V = a.size(3, "V");
  double gs = a.num(5, "gradScale");
  const float* logits = a.f32(0, "logits", rows * V);
  const int32_t* tg = a.i32(1, "targets", rows);
  float* dl = a.present(4) ? a.f32(4, "dlogits", rows * V) : nullptr;
  if (a.failed) return nullptr;
  for (int64_t r = 0; r < rows; r++)
    if (tg[r] >= V) {
      a.range_error("target " + std::to_string(tg[r]) + " at row " + std::to_string(r) + " is outside the vocabulary (" +
                    std::to_string(V) + ")");
      return nullptr;
    }
  return a.number(cross_entropy(logits, tg, rows, V, dl, (float)gs));
}

// (p, g, m, v, n, lr, beta1, beta2, eps, weightDecay, step)
napi_value Adamw(napi_env env, napi_callback_info info) {
  Args a(env, info, "adamw");
  int64_t n = a.size(4, "n");
  double lr = a.num(5, "lr"), b1 = a.num(6, "beta1"), b2 = a.num(7, "beta2"), eps = a.num(8, "eps"),
         wd = a.num(9, "weightDecay"), step = a.num(10, "step");
  float* p = a.f32(0, "p", n);
  const float* g = a.f32(1, "g", n);
  float* m = a.f32(2, "m", n);
  float* v = a.f32(3, "v", n);
  if (a.failed) return nullptr;
  adamw(p, g, m, v, n, lr, b1, b2, eps, wd, step);
  return a.undef();
}

napi_value SumSquares(napi_env env, napi_callback_info info) {
  Args a(env, info, "sumSquares");
  int64_t n = a.size(1, "n");
  const float* x = a.f32(0, "x", n);
  if (a.failed) return nullptr;
  return a.number(sum_squares(x, n));
}

napi_value Scale(napi_env env, napi_callback_info info) {
  Args a(env, info, "scale");
  double s = a.num(1, "s");
  int64_t n = a.size(2, "n");
  float* x = a.f32(0, "x", n);
  if (a.failed) return nullptr;
  scale(x, s, n);
  return a.undef();
}

napi_value Threads(napi_env env, napi_callback_info info) {
  Args a(env, info, "threads");
  return a.number(pool_threads());
}

napi_value SetThreads(napi_env env, napi_callback_info info) {
  Args a(env, info, "setThreads");
  int64_t n = a.integer(0, "threads");
  if (a.failed) return nullptr;
  if (n > 1024) {
    a.range_error("at most 1024 threads");
    return nullptr;
  }
  pool_set_threads((int)n);
  return a.number(pool_threads());
}

napi_value str(napi_env env, const char* s) {
  napi_value r;
  napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &r);
  return r;
}

napi_value Simd(napi_env env, napi_callback_info) { return str(env, simd_name(simd_level())); }
napi_value SimdDetected(napi_env env, napi_callback_info) { return str(env, simd_name(simd_detect())); }

// setSimd('generic' | 'avx2' | 'avx512' | 'default') -> level now in use (clamped to the CPU)
napi_value SetSimd(napi_env env, napi_callback_info info) {
  Args a(env, info, "setSimd");
  char buf[32] = {0};
  size_t len = 0;
  if (a.n < 1 || napi_get_value_string_utf8(env, a.v[0], buf, sizeof buf, &len) != napi_ok) {
    a.type_error("expects a string");
    return nullptr;
  }
  std::string s(buf);
  int lvl = s == "generic" ? SIMD_GENERIC : s == "avx2" ? SIMD_AVX2 : s == "avx512" ? SIMD_AVX512 : s == "default" ? -1 : -2;
  if (lvl == -2) {
    a.range_error("unknown level '" + s + "' (generic, avx2, avx512, default)");
    return nullptr;
  }
  return str(env, simd_name(simd_set(lvl)));
}

}  // namespace

NAPI_MODULE_INIT() {
  struct Fn {
    const char* name;
    napi_callback cb;
  } fns[] = {
      {"matmul", Matmul}, {"matmulBackwardInput", MatmulBackwardInput}, {"matmulBackwardWeight", MatmulBackwardWeight},
      {"sgemm", Sgemm}, {"embedding", Embedding}, {"embeddingBackward", EmbeddingBackward}, {"rmsnorm", Rmsnorm},
      {"rmsnormBackward", RmsnormBackward}, {"rope", Rope}, {"attention", Attention}, {"attentionCached", AttentionCached},
      {"attentionBackward", AttentionBackward}, {"swiglu", Swiglu}, {"swigluBackward", SwigluBackward}, {"add", Add},
      {"crossEntropy", CrossEntropy}, {"adamw", Adamw}, {"sumSquares", SumSquares}, {"scale", Scale},
      {"threads", Threads}, {"setThreads", SetThreads}, {"simd", Simd}, {"simdDetected", SimdDetected},
      {"setSimd", SetSimd},
  };
  for (const Fn& f : fns) {
    napi_value fn;
    napi_create_function(env, f.name, NAPI_AUTO_LENGTH, f.cb, nullptr, &fn);
    napi_set_named_property(env, exports, f.name, fn);
  }
  return exports;
}
