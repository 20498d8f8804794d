// Node-API bindings. The kernel ops are not bound one by one: src/kernels/native.ts calls `op(name, signature)` for
// each op of the op table (src/kernels/ops/table.ts), with the signature text of src/kernels/ops/signature.ts
// (`encodeSignature`). `op` compiles it once and returns a function that checks every call against it — typed arrays
// of the declared type and at least the declared length, sizes that are integers 0 ≤ n ≤ 2^40, the table's `where`
// conditions — and only then runs the op's entry (native/ops/*.cc, `LT_OP`) with the arrays passed by pointer, no
// copy. A mismatch throws a descriptive RangeError/TypeError; no memory outside a buffer is touched.
// Also here: threads, setThreads, simd, simdDetected, setSimd (the pool and the SIMD path), bf16Path, bf16Detected,
// setBf16Path, amxBf16 (the bfloat16 GEMM path, native/bgemm.h); beside them, not in the op table, the file-mapping
// functions of mmap.cc (mapOpen, mapRange, ...: src/util/mmap.ts).
#include <node_api.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "op.h"
#include "pool.h"
#include "simd.h"
#include "bgemm.h"

namespace lt {

namespace {
const int64_t MAX_ELEMS = int64_t(1) << 40;
const int MAX_ARGS = 32;
const int64_t INVALID = -1;  // an expression that divides by zero or overflows

enum Kind : uint8_t { K_F, K_I32, K_F64, K_U8, K_BF16, K_INT, K_NUM, K_BOOL };
const int N_KINDS = 8;
const char* const KIND_NAMES[] = {"f", "i32", "f64", "u8", "bf16", "int", "num", "bool"};

// postfix integer expression: a token >= 0 is a variable, OP_LIT is followed by a literal, the rest are operators
enum : int64_t { OP_LIT = -1, OP_ADD = -2, OP_SUB = -3, OP_MUL = -4, OP_DIV = -5, OP_MOD = -6 };
using Expr = std::vector<int64_t>;

int64_t eval(const Expr& e, const int64_t* var) {
  int64_t st[32];
  int sp = 0;
  for (size_t i = 0; i < e.size(); i++) {
    int64_t t = e[i];
    if (t >= 0) {
      st[sp++] = var[t];
      continue;
    }
    if (t == OP_LIT) {
      st[sp++] = e[++i];
      continue;
    }
    int64_t b = st[--sp], a = st[--sp], r = 0;
    if (a == INVALID || b == INVALID) return INVALID;
    bool bad = false;
    switch (t) {
      case OP_ADD: bad = __builtin_add_overflow(a, b, &r); break;
      case OP_SUB: bad = __builtin_sub_overflow(a, b, &r); break;
      case OP_MUL: bad = __builtin_mul_overflow(a, b, &r); break;
      case OP_DIV: bad = b == 0; r = bad ? 0 : a / b; break;
      default: bad = b == 0; r = bad ? 0 : a % b; break;
    }
    if (bad) return INVALID;
    st[sp++] = r;
  }
  return st[0];
}

std::string fmt(double d) {
  char b[64];
  std::snprintf(b, sizeof b, "%.17g", d);
  return b;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t at = 0;
  for (size_t e; (e = s.find(sep, at)) != std::string::npos; at = e + 1) out.push_back(s.substr(at, e - at));
  out.push_back(s.substr(at));
  return out;
}
}  // namespace

struct Slot {
  Kind kind;
  int arg;
  std::string field, parent;  // field: a property of the object at `arg` (empty: the argument itself)
  bool optional, nullable;
  int v, bind;  // the int variable this scalar defines / this buffer's length binds, or -1
  std::string name;
  Expr len;  // required length (empty: none)
};

struct Condition {
  Expr lhs, rhs;
  std::string cmp;
  std::vector<std::pair<std::string, Expr>> message;  // literal text, then an expression to quote (may be empty)
  bool holds(const int64_t* var) const {
    int64_t a = eval(lhs, var), b = eval(rhs, var);
    if (a == INVALID || b == INVALID) return false;
    return cmp == "==" ? a == b : cmp == "!=" ? a != b : cmp == "<" ? a < b : cmp == "<=" ? a <= b : cmp == ">" ? a > b : a >= b;
  }
};

struct Signature {
  std::string op;
  bool returns_num = false;
  std::vector<std::string> vars;
  std::vector<Slot> slots;
  std::vector<Condition> where;
  OpFn fn = nullptr;
  int nargs = 0;
};

// ---- Call: what an op's entry reads ----

static const OpEntry* g_entries = nullptr;

OpEntry::OpEntry(const char* n, OpFn f) : name(n), fn(f), next(g_entries) { g_entries = this; }

const OpEntry* OpEntry::find(const std::string& name) {
  for (const OpEntry* e = g_entries; e; e = e->next)
    if (name == e->name) return e;
  return nullptr;
}

void Call::range_error(const std::string& msg) {
  if (failed_) return;
  failed_ = true;
  napi_throw_range_error((napi_env)env_, nullptr, (sig_.op + ": " + msg).c_str());
}

void Call::type_error(const std::string& msg) {
  if (failed_) return;
  failed_ = true;
  napi_throw_type_error((napi_env)env_, nullptr, (sig_.op + ": " + msg).c_str());
}

// index of the slot `name` if its kind is in `kinds` (a mask of 1 << Kind), else -1 and a TypeError: the entry and
// the table disagree
int Call::slot(const char* name, unsigned kinds) {
  for (size_t s = 0; s < sig_.slots.size(); s++) {
    const Slot& sl = sig_.slots[s];
    if (sl.name == name && (kinds >> sl.kind & 1)) return (int)s;
  }
  type_error(std::string("internal: src/kernels/ops/table.ts declares no argument '") + name + "' of the kind native/ops reads");
  return -1;
}

float* Call::f(const char* name) {
  int s = slot(name, 1u << K_F);
  return s < 0 ? nullptr : static_cast<float*>(ptr[s]);
}
const int32_t* Call::i32(const char* name) {
  int s = slot(name, 1u << K_I32);
  return s < 0 ? nullptr : static_cast<const int32_t*>(ptr[s]);
}
const double* Call::f64(const char* name) {
  int s = slot(name, 1u << K_F64);
  return s < 0 ? nullptr : static_cast<const double*>(ptr[s]);
}
const uint8_t* Call::u8(const char* name) {
  int s = slot(name, 1u << K_U8);
  return s < 0 ? nullptr : static_cast<const uint8_t*>(ptr[s]);
}
uint16_t* Call::bf16(const char* name) {
  int s = slot(name, 1u << K_BF16);
  return s < 0 ? nullptr : static_cast<uint16_t*>(ptr[s]);
}
long Call::len(const char* name) {
  int s = slot(name, 1u << K_F | 1u << K_I32 | 1u << K_F64 | 1u << K_U8 | 1u << K_BF16);
  return s < 0 ? 0 : (long)length[s];
}
long Call::i(const char* name) {
  for (size_t v = 0; v < sig_.vars.size(); v++)
    if (sig_.vars[v] == name) return (long)var[v];
  type_error(std::string("internal: the op table declares no int '") + name + "'");
  return 0;
}
double Call::num(const char* name) {
  int s = slot(name, 1u << K_NUM);
  return s < 0 ? 0 : scalar[s];
}
bool Call::flag(const char* name) {
  int s = slot(name, 1u << K_BOOL);
  return s < 0 ? false : scalar[s] != 0;
}

namespace {

// ---- compiling a signature (once per op) ----

// A postfix expression of signature text; sets *err when the text is malformed.
Expr parse_expr(const std::string& text, size_t nvars, std::string* err) {
  Expr e;
  int depth = 0;
  bool ok = true;
  for (const std::string& t : split(text, ' ')) {
    if (t.empty()) continue;
    const char* ops = "+-*/%";
    const char* op = t.size() == 1 ? std::strchr(ops, t[0]) : nullptr;
    if (op) {
      if (!(ok = depth >= 2)) break;
      e.push_back(OP_ADD - (op - ops));
      depth--;
      continue;
    }
    bool var = t[0] == 'v';
    char* end = nullptr;
    long long x = std::strtoll(t.c_str() + var, &end, 10);
    if (!(ok = end != t.c_str() + var && !*end && x >= 0 && (!var || (size_t)x < nvars) && depth < 32)) break;
    if (!var) e.push_back(OP_LIT);
    e.push_back(x);
    depth++;
  }
  if (!ok || (!e.empty() && depth != 1)) *err = "bad expression '" + text + "'";
  return e;
}

// The Signature of signature text (src/kernels/ops/signature.ts, encodeSignature); nullptr and *err when malformed.
std::unique_ptr<Signature> compile(const std::string& name, const std::string& text, std::string* err) {
  auto sig = std::make_unique<Signature>();
  sig->op = name;
  for (const std::string& line : split(text, '\n')) {
    std::vector<std::string> f = split(line, '\t');
    size_t nv = sig->vars.size();
    if (f[0] == "r" && f.size() == 2) {
      sig->returns_num = f[1] == "num";
    } else if (f[0] == "v" && f.size() == 2) {
      sig->vars.push_back(f[1]);
    } else if (f[0] == "s" && f.size() == 10 && f[5].size() == 2) {
      Slot s;
      int k = 0;
      while (k < N_KINDS && f[1] != KIND_NAMES[k]) k++;
      s.kind = (Kind)k;
      s.arg = std::atoi(f[2].c_str());
      s.field = f[3] == "-" ? "" : f[3];
      s.parent = f[4] == "-" ? "" : f[4];
      s.optional = f[5][0] == 'o';
      s.nullable = f[5][1] == 'n';
      s.v = std::atoi(f[6].c_str());
      s.bind = std::atoi(f[7].c_str());
      s.name = f[8];
      s.len = parse_expr(f[9], nv, err);
      if (k == N_KINDS || s.arg < 0 || s.arg >= MAX_ARGS || s.v >= (int)nv || s.bind >= (int)nv) *err = "cannot read '" + line + "'";
      sig->nargs = std::max(sig->nargs, s.arg + 1);
      sig->slots.push_back(s);
    } else if (f[0] == "w" && f.size() == 5) {
      Condition c;
      c.lhs = parse_expr(f[1], nv, err);
      c.cmp = f[2];
      c.rhs = parse_expr(f[3], nv, err);
      const std::string& m = f[4];
      size_t at = 0;
      for (size_t o; (o = m.find('{', at)) != std::string::npos;) {
        size_t e = m.find('}', o);
        if (e == std::string::npos) e = m.size() - 1, *err = "unclosed { in '" + m + "'";
        c.message.push_back({m.substr(at, o - at), parse_expr(m.substr(o + 1, e - o - 1), nv, err)});
        at = e + 1;
      }
      c.message.push_back({m.substr(at), Expr()});
      sig->where.push_back(c);
    } else {
      *err = "cannot read '" + line + "'";
    }
    if (!err->empty()) return nullptr;
  }
  if (sig->slots.size() > (size_t)Call::MAX_SLOTS || sig->vars.size() > (size_t)Call::MAX_VARS) {
    *err = "too many arguments";
    return nullptr;
  }
  return sig;
}

// ---- checking a call ----

const napi_typedarray_type TA_TYPES[] = {napi_float32_array, napi_int32_array, napi_float64_array, napi_uint8_array, napi_uint16_array};
const char* const TA_NAMES[] = {"Float32Array", "Int32Array", "Float64Array", "Uint8Array", "Uint16Array (bfloat16 bits)"};

// the value of a slot: the argument itself or a property of the object argument
bool slot_value(napi_env env, Call& c, const Slot& s, napi_value* argv, size_t argc, napi_value* out) {
  napi_value a;
  if (s.arg < (int)argc) a = argv[s.arg];
  else napi_get_undefined(env, &a);
  if (s.field.empty()) {
    *out = a;
    return true;
  }
  napi_valuetype t;
  napi_typeof(env, a, &t);
  if (t != napi_object || napi_get_named_property(env, a, s.field.c_str(), out) != napi_ok) {
    c.type_error(s.parent + " must be an object");
    return false;
  }
  return true;
}

bool absent(napi_env env, napi_value v) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  return t == napi_undefined || t == napi_null;
}

bool read_scalar(napi_env env, Call& c, const Slot& s, int i, napi_value v) {
  if (s.kind == K_BOOL) {
    bool b = false;
    if (!absent(env, v) && napi_get_value_bool(env, v, &b) != napi_ok) {
      napi_value coerced;
      napi_coerce_to_bool(env, v, &coerced);
      napi_get_value_bool(env, coerced, &b);
    }
    c.scalar[i] = b;
    return true;
  }
  if (s.optional && absent(env, v)) return true;  // 0
  double d = 0;
  if (napi_get_value_double(env, v, &d) != napi_ok) {
    c.type_error(s.name + " must be a number");
    return false;
  }
  c.scalar[i] = d;
  if (s.kind == K_INT) {
    if (!(d >= 0) || d != std::floor(d) || d > (double)MAX_ELEMS) {
      c.range_error("bad size " + fmt(d) + " for " + s.name);
      return false;
    }
    c.var[s.v] = (int64_t)d;
  }
  return true;
}

bool read_buffer(napi_env env, Call& c, const Slot& s, int i, napi_value v) {
  if (s.nullable && absent(env, v)) return true;  // nullptr
  const char* want = TA_NAMES[s.kind];
  bool is = false;
  napi_is_typedarray(env, v, &is);
  if (!is) {
    c.type_error(s.name + " must be a " + want);
    return false;
  }
  napi_typedarray_type t;
  size_t len;
  void* data;
  napi_get_typedarray_info(env, v, &t, &len, &data, nullptr, nullptr);
  if (t != TA_TYPES[s.kind]) {
    c.type_error(s.name + " must be a " + want + (s.kind == K_F ? " (the native backend computes in float32)" : ""));
    return false;
  }
  c.ptr[i] = data;
  c.length[i] = (int64_t)len;
  if (s.bind >= 0) c.var[s.bind] = (int64_t)len;
  if (s.len.empty()) return true;
  int64_t need = eval(s.len, c.var);
  if (need == INVALID || need > MAX_ELEMS) {
    c.range_error("bad size for " + s.name);
    return false;
  }
  if ((int64_t)len < need) {
    c.range_error(s.name + " has " + std::to_string(len) + " elements, shape needs " + std::to_string(need));
    return false;
  }
  return true;
}

// scalars, then buffers that bind a length, then the conditions, then the other buffers (as checkCall in signature.ts)
bool check(napi_env env, Call& c, const Signature& sig, napi_value* argv, size_t argc) {
  const size_t n = sig.slots.size();
  napi_value v;
  for (size_t i = 0; i < n; i++) {
    const Slot& s = sig.slots[i];
    if (s.kind >= K_INT && !(slot_value(env, c, s, argv, argc, &v) && read_scalar(env, c, s, (int)i, v))) return false;
  }
  for (size_t i = 0; i < n; i++) {
    const Slot& s = sig.slots[i];
    if (s.kind < K_INT && s.bind >= 0 && !(slot_value(env, c, s, argv, argc, &v) && read_buffer(env, c, s, (int)i, v))) return false;
  }
  for (const Condition& w : sig.where) {
    if (w.holds(c.var)) continue;
    std::string msg;
    for (const auto& p : w.message) {
      msg += p.first;
      if (!p.second.empty()) msg += std::to_string(eval(p.second, c.var));
    }
    c.range_error(msg);
    return false;
  }
  for (size_t i = 0; i < n; i++) {
    const Slot& s = sig.slots[i];
    if (s.kind < K_INT && s.bind < 0 && !(slot_value(env, c, s, argv, argc, &v) && read_buffer(env, c, s, (int)i, v))) return false;
  }
  return true;
}

napi_value call_op(napi_env env, napi_callback_info info) {
  napi_value argv[MAX_ARGS];
  size_t argc = MAX_ARGS;
  void* data;
  napi_get_cb_info(env, info, &argc, argv, nullptr, &data);
  const Signature& sig = *static_cast<const Signature*>(data);
  Call c(env, sig);
  if (!check(env, c, sig, argv, argc)) return nullptr;
  double r = sig.fn(c);
  if (c.failed()) return nullptr;
  napi_value out;
  if (sig.returns_num) napi_create_double(env, r, &out);
  else napi_get_undefined(env, &out);
  return out;
}

napi_value throw_error(napi_env env, const std::string& msg, bool range = false) {
  if (range) napi_throw_range_error(env, nullptr, msg.c_str());
  else napi_throw_type_error(env, nullptr, msg.c_str());
  return nullptr;
}

std::string string_arg(napi_env env, napi_value v, bool* ok) {
  size_t len = 0;
  *ok = napi_get_value_string_utf8(env, v, nullptr, 0, &len) == napi_ok;
  if (!*ok) return "";
  std::string s(len, '\0');
  napi_get_value_string_utf8(env, v, &s[0], len + 1, &len);
  return s;
}

// op(name, signature) -> the checked function of the op's entry
napi_value BindOp(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  size_t argc = 2;
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  bool ok1 = false, ok2 = false;
  std::string name = argc > 0 ? string_arg(env, argv[0], &ok1) : "";
  std::string text = argc > 1 ? string_arg(env, argv[1], &ok2) : "";
  if (!ok1 || !ok2) return throw_error(env, "op: expects (name, signature) strings");
  const OpEntry* e = OpEntry::find(name);
  if (!e) return throw_error(env, "op: the addon has no op '" + name + "' (rebuild it: npm run build:native)", true);
  std::string err;
  std::unique_ptr<Signature> sig = compile(name, text, &err);
  if (!sig) return throw_error(env, "op: " + name + ": " + err, true);
  sig->fn = e->fn;
  napi_value fn;
  napi_create_function(env, name.c_str(), name.size(), call_op, sig.get(), &fn);
  napi_add_finalizer(env, fn, sig.get(), [](napi_env, void* p, void*) { delete static_cast<Signature*>(p); }, nullptr, nullptr);
  sig.release();
  return fn;
}

napi_value number(napi_env env, double d) {
  napi_value r;
  napi_create_double(env, d, &r);
  return r;
}

napi_value str(napi_env env, const char* s) {
  napi_value r;
  napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &r);
  return r;
}

napi_value Threads(napi_env env, napi_callback_info) { return number(env, pool_threads()); }

// setThreads(n): n <= 0 restores the default; returns the new size
napi_value SetThreads(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  size_t argc = 1;
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  double d = 0;
  if (argc < 1 || napi_get_value_double(env, argv[0], &d) != napi_ok) return throw_error(env, "setThreads: threads must be a number");
  if (d != std::floor(d) || std::fabs(d) > (double)MAX_ELEMS)
    return throw_error(env, "setThreads: threads must be an integer, got " + fmt(d), true);
  if (d > 1024) return throw_error(env, "setThreads: at most 1024 threads", true);
  pool_set_threads((int)d);
  return number(env, pool_threads());
}

napi_value Simd(napi_env env, napi_callback_info) { return str(env, simd_name(simd_level())); }
napi_value SimdDetected(napi_env env, napi_callback_info) { return str(env, simd_name(simd_detect())); }

// setSimd('generic' | 'avx2' | 'avx512' | 'default') -> level now in use (clamped to the CPU)
napi_value SetSimd(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  size_t argc = 1;
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  bool ok = false;
  std::string s = argc > 0 ? string_arg(env, argv[0], &ok) : "";
  if (!ok) return throw_error(env, "setSimd: expects a string");
  int lvl = s == "generic" ? SIMD_GENERIC : s == "avx2" ? SIMD_AVX2 : s == "avx512" ? SIMD_AVX512 : s == "default" ? -1 : -2;
  if (lvl == -2) return throw_error(env, "setSimd: unknown level '" + s + "' (generic, avx2, avx512, default)", true);
  return str(env, simd_name(simd_set(lvl)));
}

napi_value GetBf16Path(napi_env env, napi_callback_info) { return str(env, bf16_name(bf16_path())); }
napi_value Bf16Detected(napi_env env, napi_callback_info) { return str(env, bf16_name(bf16_detect())); }
napi_value AmxBf16(napi_env env, napi_callback_info) {
  napi_value r;
  napi_get_boolean(env, amx_bf16_detected(), &r);
  return r;
}

// setBf16Path('avx512bf16' | 'convert' | 'default') -> path now in use (clamped to the CPU)
napi_value SetBf16Path(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  size_t argc = 1;
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  bool ok = false;
  std::string s = argc > 0 ? string_arg(env, argv[0], &ok) : "";
  if (!ok) return throw_error(env, "setBf16Path: expects a string");
  int p = s == "convert" ? BF16_CONVERT : s == "avx512bf16" ? BF16_AVX512 : s == "default" ? -1 : -2;
  if (p == -2) return throw_error(env, "setBf16Path: unknown path '" + s + "' (avx512bf16, convert, default)", true);
  bf16_set(p);
  return str(env, bf16_name(bf16_path()));
}

}  // namespace

void register_mmap(napi_env env, napi_value exports);  // mmap.cc: file mapping, beside the op table
}  // namespace lt

NAPI_MODULE_INIT() {
  struct Fn {
    const char* name;
    napi_callback cb;
  } fns[] = {
      {"op", lt::BindOp}, {"threads", lt::Threads}, {"setThreads", lt::SetThreads},
      {"simd", lt::Simd}, {"simdDetected", lt::SimdDetected}, {"setSimd", lt::SetSimd},
      {"bf16Path", lt::GetBf16Path}, {"bf16Detected", lt::Bf16Detected}, {"setBf16Path", lt::SetBf16Path}, {"amxBf16", lt::AmxBf16},
  };
  for (const Fn& f : fns) {
    napi_value fn;
    napi_create_function(env, f.name, NAPI_AUTO_LENGTH, f.cb, nullptr, &fn);
    napi_set_named_property(env, exports, f.name, fn);
  }
  lt::register_mmap(env, exports);
  return exports;
}
