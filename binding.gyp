{
  "targets": [
    {
      "target_name": "llama_ts_native",
      "sources": [
        "native/addon.cc",
        "native/mmap.cc",
        "native/pool.cc",
        "native/simd.cc",
        "native/gemm.cc",
        "native/bgemm.cc",
        "native/kernels.cc",
        "native/attention.cc",
        "native/attention-bf16.cc",
        "native/quant.cc",
        "native/quant-x8.cc",
        "native/ops/matmul.cc",
        "native/ops/embedding.cc",
        "native/ops/rmsnorm.cc",
        "native/ops/rope.cc",
        "native/ops/attention.cc",
        "native/ops/swiglu.cc",
        "native/ops/elementwise.cc",
        "native/ops/crossentropy.cc",
        "native/ops/adamw.cc",
        "native/ops/quant.cc",
        "native/ops/bf16.cc",
        "native/ops/decode.cc"
      ],
      "cflags_cc": ["-O3", "-std=gnu++17", "-fno-math-errno", "-fno-trapping-math", "-Wno-unused-function"],
      "ldflags": ["-pthread"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
