/* OpenBLAS behind the three llama-ts matmul entry points (matmul, matmulBackwardInput, matmulBackwardWeight), for the
 * interleaved timing of tools/reference/sgemm_interleaved.cjs only (never a dependency of llama-ts).
 * Build: gcc -O2 -shared -fPIC -I/usr/include/node openblas_napi.c -o openblas_napi.node -lopenblas */
#include <node_api.h>
#include <cblas.h>
static float* f32(napi_env env, napi_value v) { void* d; size_t n; napi_typedarray_type t; napi_value ab; size_t off; napi_get_typedarray_info(env, v, &t, &n, &d, &ab, &off); return (float*)d; }
static long num(napi_env env, napi_value v) { int64_t x; napi_get_value_int64(env, v, &x); return (long)x; }
static napi_value mm(napi_env env, napi_callback_info info) {
  size_t argc = 7; napi_value a[7]; napi_get_cb_info(env, info, &argc, a, NULL, NULL);
  float *out = f32(env, a[0]), *x = f32(env, a[1]), *w = f32(env, a[2]); long M = num(env, a[3]), K = num(env, a[4]), N = num(env, a[5]);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.f, x, K, w, K, 0.f, out, N); return NULL; }
static napi_value mbi(napi_env env, napi_callback_info info) {
  size_t argc = 7; napi_value a[7]; napi_get_cb_info(env, info, &argc, a, NULL, NULL);
  float *dx = f32(env, a[0]), *dy = f32(env, a[1]), *w = f32(env, a[2]); long M = num(env, a[3]), K = num(env, a[4]), N = num(env, a[5]);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, K, N, 1.f, dy, N, w, K, 0.f, dx, K); return NULL; }
static napi_value mbw(napi_env env, napi_callback_info info) {
  size_t argc = 6; napi_value a[6]; napi_get_cb_info(env, info, &argc, a, NULL, NULL);
  float *dw = f32(env, a[0]), *dy = f32(env, a[1]), *x = f32(env, a[2]); long M = num(env, a[3]), K = num(env, a[4]), N = num(env, a[5]);
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, K, M, 1.f, dy, N, x, K, 1.f, dw, K); return NULL; }
NAPI_MODULE_INIT() {
  napi_value f;
  napi_create_function(env, "matmul", NAPI_AUTO_LENGTH, mm, NULL, &f); napi_set_named_property(env, exports, "matmul", f);
  napi_create_function(env, "matmulBackwardInput", NAPI_AUTO_LENGTH, mbi, NULL, &f); napi_set_named_property(env, exports, "matmulBackwardInput", f);
  napi_create_function(env, "matmulBackwardWeight", NAPI_AUTO_LENGTH, mbw, NULL, &f); napi_set_named_property(env, exports, "matmulBackwardWeight", f);
  return exports;
}
