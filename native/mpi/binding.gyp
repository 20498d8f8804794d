# The optional MPI addon (llama_ts_mpi). Configured only by scripts/build-mpi.mjs, after it found mpicc and mpi.h;
# the flags come from `mpicc --showme:*` through that script, so the main addon's ../../binding.gyp never depends on
# MPI being installed.
{
  "targets": [
    {
      "target_name": "llama_ts_mpi",
      "sources": ["mpi.cc"],
      "cflags_cc": ["-O2", "-std=gnu++17", "<!@(node ../../scripts/build-mpi.mjs --flags compile)"],
      "defines": ["NAPI_VERSION=8", "OMPI_SKIP_MPICXX=1", "MPICH_SKIP_MPICXX=1"],
      "ldflags": ["-pthread"],
      "libraries": ["<!@(node ../../scripts/build-mpi.mjs --flags link)", "-ldl"]
    }
  ]
}
