// Fused elementwise / row kernels. Functions returning long return -1 on success or the index of a bad input.
#pragma once
#include <cstdint>

namespace lt {

void embedding(float* out, const float* table, const int32_t* tokens, long n, long dim);
void embedding_backward(float* dtable, const float* dout, const int32_t* tokens, long n, long dim);
void rmsnorm(float* out, float* rstd, const float* x, const float* w, long rows, long dim, float eps);
void rmsnorm_backward(float* dx, float* dw, const float* dout, const float* x, const float* w, const float* rstd,
                      long rows, long dim);
void rope(float* x, long batch, long seq, long nHeads, long headDim, const double* cos, const double* sin, long posOffset,
          double sign);
void swiglu(float* out, const float* a, const float* b, long n);
void swiglu_backward(float* da, float* db, const float* dout, const float* a, const float* b, long n);
void add(float* out, const float* a, const float* b, long n);
void scale(float* x, double s, long n);
double sum_squares(const float* x, long n);
// dlogits (float32, may alias logits) or dlogits16 (its bfloat16 rounding, --dtype bf16), at most one of them
double cross_entropy(const float* logits, const int32_t* targets, long rows, long V, float* dlogits, float gradScale,
                     uint16_t* dlogits16 = nullptr);
void log_sum_exp(float* out, const float* x, long rows, long V);
void softmax_scaled(float* out, const float* x, const float* lse, long rows, long V, float scale);
void adamw(float* p, const float* g, float* m, float* v, long n, double lr, double beta1, double beta2, double eps,
           double wd, double step);

}  // namespace lt
