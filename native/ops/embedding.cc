// Native ops embedding, embeddingBackward.
// Declared in src/kernels/ops/table.ts; reference src/kernels/ops/embedding.ts; kernel native/kernels.cc.
// Tests: test/native-kernels.test.ts ('embedding and its backward ...', 'shape mismatches ...'),
// test/kernels-grad.test.ts ('embedding backward ...').
#include <string>

#include "../kernels.h"
#include "../op.h"

using namespace lt;

namespace {
// Every token must index a row of the [vocab, dim] table `table` (as checkTokens in embedding.ts).
bool tokens_in_vocab(Call& c, const char* table) {
  long n = c.i("n"), dim = c.i("dim"), vocab = dim > 0 ? c.len(table) / dim : 0;
  const int32_t* tok = c.i32("tokens");
  for (long i = 0; i < n && !c.failed(); i++)
    if (tok[i] < 0 || tok[i] >= vocab)
      c.range_error("token id " + std::to_string(tok[i]) + " at position " + std::to_string(i) +
                    " is outside the vocabulary (0.." + std::to_string(vocab - 1) + ")");
  return !c.failed();
}
}  // namespace

LT_OP(embedding) {  // out[n,:] = table[tokens[n],:]
  float *out = c.f("out"), *table = c.f("table");
  if (tokens_in_vocab(c, "table")) embedding(out, table, c.i32("tokens"), c.i("n"), c.i("dim"));
}

LT_OP(embeddingBackward) {  // dtable[tokens[n],:] += dout[n,:]
  float *dtable = c.f("dtable"), *dout = c.f("dout");
  if (tokens_in_vocab(c, "dtable")) embedding_backward(dtable, dout, c.i32("tokens"), c.i("n"), c.i("dim"));
}
