// The native side of an op of the op table (src/kernels/ops/table.ts). An op's entry is written once, in
// native/ops/<file>.cc, as
//
//   LT_OP(matmul) { ...; if (!c.failed()) sgemm(M, N, K, x, ...); }
//
// It runs only after addon.cc has checked the call against the op's signature (the table's argument list, handed
// over by src/kernels/native.ts when it binds the op): every buffer has the type and at least the length its
// declaration asks for, every int is a size. The entry reads its arguments by the table's names and may add checks
// of values (token ids, targets) with c.range_error. An accessor whose name or kind the table does not declare fails the call (TypeError): an
// entry reads everything it needs, then runs its kernel only if !c.failed().
#pragma once
#include <cstdint>
#include <string>

namespace lt {

struct Signature;

class Call {
 public:
  // buffers (nullptr for a null `| null` buffer)
  float* f(const char* name);
  const int32_t* i32(const char* name);
  const double* f64(const char* name);
  const uint8_t* u8(const char* name);
  uint16_t* bf16(const char* name);  // bfloat16 bits (a Uint16Array)
  // a buffer's length in elements
  long len(const char* name);
  // an int argument or field, or a length bound by `name: kind[n]`
  long i(const char* name);
  // a num argument or field
  double num(const char* name);
  // a bool argument (false when omitted)
  bool flag(const char* name);
  // throws a RangeError `<op>: <msg>` once the entry returns
  void range_error(const std::string& msg);
  bool failed() const { return failed_; }

  // used by addon.cc
  Call(void* env, const Signature& sig) : env_(env), sig_(sig) {}
  const Signature& sig_ref() const { return sig_; }
  static constexpr int MAX_SLOTS = 48, MAX_VARS = 16;
  void* ptr[MAX_SLOTS] = {};
  int64_t length[MAX_SLOTS] = {};
  double scalar[MAX_SLOTS] = {};
  int64_t var[MAX_VARS] = {};
  void type_error(const std::string& msg);

 private:
  int slot(const char* name, unsigned kinds);
  void* env_;
  const Signature& sig_;
  bool failed_ = false;
};

using OpFn = double (*)(Call&);

// Registration of an entry under its op's name (a static object in each ops/*.cc).
struct OpEntry {
  const char* name;
  OpFn fn;
  const OpEntry* next;
  OpEntry(const char* n, OpFn f);
  static const OpEntry* find(const std::string& name);
};

}  // namespace lt

// LT_OP(name) { ... } defines the entry of an op returning nothing, LT_OP_NUM(name) { ...; return x; } of one
// returning a number.
#define LT_OP(NAME)                                                                                  \
  static void lt_op_##NAME(lt::Call& c);                                                             \
  static const lt::OpEntry lt_entry_##NAME(#NAME, [](lt::Call& c) { return lt_op_##NAME(c), 0.0; }); \
  static void lt_op_##NAME(lt::Call& c)
#define LT_OP_NUM(NAME)                                     \
  static double lt_op_##NAME(lt::Call& c);                  \
  static const lt::OpEntry lt_entry_##NAME(#NAME, lt_op_##NAME); \
  static double lt_op_##NAME(lt::Call& c)
