#pragma once
#include <cstdint>

namespace lt {

// Causal attention, FlashAttention style: q [B,T,H,hd], k/v [B,T,KV,hd], out [B,T,H,hd], lse [B,H,T].
// Works on 64x64 tiles of queries x keys with an online softmax; per-thread scratch is O(tile·hd), nothing is
// quadratic in T. Fully masked tiles (keys after the last query of the tile) are never visited.
void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v, long B, long T, long H,
                       long KV, long hd);
// Overwrites dq, dk, dv. Recomputes P = exp(S - lse) tile by tile: one pass over key tiles for dK/dV
// (a task owns a key tile of one kv head, summing over the query heads of its group), one over query tiles for dQ.
void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                        const float* v, const float* out, const float* lse, long B, long T, long H, long KV, long hd);

// The same with bfloat16 q, k, v (after RoPE): float32 scores, statistics and sums, P rounded to bf16 before P·V
// (attention-bf16.cc; reference attentionBf16Ref in src/kernels/ops/attention.ts).
void attention_forward_bf16(float* out, float* lse, const uint16_t* q, const uint16_t* k, const uint16_t* v, long B,
                            long T, long H, long KV, long hd);
// Its backward from bf16 dout, q, k, v and out (the forward's output rounded): P and dS rounded to bf16 before the
// products that take them; dq, dk, dv (float32) overwritten.
void attention_backward_bf16(float* dq, float* dk, float* dv, const uint16_t* dout, const uint16_t* q, const uint16_t* k,
                             const uint16_t* v, const uint16_t* out, const float* lse, long B, long T, long H, long KV,
                             long hd);

// n query rows q [n,H,hd] at positions pos..pos+n-1 over a KV cache k/v [pos+n, KV, hd] (row i sees keys 0..pos+i);
// out [n,H,hd] overwritten. One task per (row, head); per-thread scratch grows to the cache length.
void attention_cached(float* out, const float* q, const float* k, const float* v, long n, long pos, long H, long KV,
                      long hd);

// The same over a KV cache held in IEEE half, head-major: kc/vc [KV, maxSeq, hd] (the bits) hold one layer, each kv
// head's positions contiguous. The n new rows knew/vnew [n, KV, hd] are first rounded into positions pos..pos+n-1;
// then n query rows attend as attention_cached's, the cached rows widened to float32 in registers.
void attention_cached_f16(float* out, const float* q, const float* knew, const float* vnew, uint16_t* kc, uint16_t* vc, long n,
                          long pos, long H, long KV, long hd, long maxSeq);
// out[i] = half(x[i]), round to nearest even (F16C where the CPU has it; the same bits either way)
void f32_to_f16(const float* x, uint16_t* out, long n);

}  // namespace lt
