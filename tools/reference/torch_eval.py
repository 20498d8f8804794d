#!/usr/bin/env python3
"""
PyTorch oracle for the evaluation harness (src/eval): log-likelihoods of multiple-choice continuations (with and
without the context, for acc_answer) and the rolling log-likelihood of a document, computed from full forward
passes of tools/reference/torch_llama.py's model on byte-level tokens (id = byte + 3, BOS = 1), float32.

Writes test/fixtures/torch-eval.safetensors: the weights, and in its metadata the task documents and the expected
sums. test/eval-reference.test.ts runs llama-ts's runTask (batched, KV-cache scoring) on them and compares within
1e-4. Run with Debian's python3-torch:  /usr/bin/python3 tools/reference/torch_eval.py [out.safetensors]
The test suite only reads the committed fixture; it never needs PyTorch.
"""
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_llama import forward, make_params, write_safetensors  # noqa: E402

torch.manual_seed(1)
torch.set_num_threads(1)

CFG = dict(dim=32, nLayers=2, nHeads=4, nKvHeads=2, vocabSize=259, multipleOf=16, ffnDimMultiplier=None,
           normEps=1e-5, ropeTheta=10000.0, maxSeqLen=64)
BOS = 1
DELIM = " "
UNCONDITIONAL = "Answer:"
STRIDE = 16

DOCS = [
    {"ctx": "The sky on a clear day is", "endings": ["blue.", "green.", "made of cheese."], "label": 0},
    {"ctx": "To cut paper, use", "endings": ["a spoon.", "scissors.", "a pillow."], "label": 1},
    {"ctx": "Ice in the sun will", "endings": ["freeze.", "sing.", "melt."], "label": 2},
]
ROLLING = ("Call me Ishmael. Some years ago, never mind how long precisely, having little or no money in my purse, "
           "and nothing particular to interest me on shore, I thought I would sail about a little.")


def encode(text):
    return [b + 3 for b in text.encode("utf-8")]


def token_logprobs(p, ids):
    """log P(ids[i] | ids[:i]) for i >= 1, from one full forward pass."""
    with torch.no_grad():
        logits = forward(p, CFG, torch.tensor([ids[:-1]]))[0]
        lp = F.log_softmax(logits.float(), dim=-1)
    return [float(lp[i - 1, ids[i]]) for i in range(1, len(ids))]


def continuation_loglik(p, context, continuation):
    ctx = [BOS] + encode(context)
    ids = ctx + encode(continuation)
    return sum(token_logprobs(p, ids)[len(ctx) - 1:])


def rolling_loglik(p, text, max_seq, stride):
    """Every token once: the first window predicts all of its tokens, each later one the next `stride`, fed the
    max_seq tokens before them (the rule of llama-ts's rollingWindows, written out here independently)."""
    seq = [BOS] + encode(text)
    total = 0.0
    predicted = 0  # tokens seq[1..predicted] done
    while predicted < len(seq) - 1:
        first = predicted + 1
        last = min(len(seq) - 1, max_seq if predicted == 0 else predicted + stride)
        for i in range(first, last + 1):
            start = max(0, last - max_seq)  # the window feeds seq[start..last-1]
            window = seq[start:last + 1]
            total += token_logprobs(p, window)[i - start - 1]
        predicted = last
    return total


def main():
    out_path = sys.argv[1] if len(sys.argv) > 1 else "test/fixtures/torch-eval.safetensors"
    p = make_params(CFG)
    cond = [[continuation_loglik(p, d["ctx"], DELIM + e) for e in d["endings"]] for d in DOCS]
    uncond = [[continuation_loglik(p, UNCONDITIONAL, DELIM + e) for e in d["endings"]] for d in DOCS]
    rolling = rolling_loglik(p, ROLLING, CFG["maxSeqLen"], STRIDE)
    out = {f"param.{k}": v.detach().clone() for k, v in p.items()}
    meta = {"config": json.dumps(CFG), "docs": json.dumps(DOCS), "loglik": json.dumps(cond),
            "loglik_unconditional": json.dumps(uncond), "rolling_text": ROLLING, "rolling_stride": str(STRIDE),
            "rolling_loglik": repr(rolling), "torch": torch.__version__}
    write_safetensors(out_path, out, meta)
    print(f"wrote {out_path}: loglik {cond}, rolling {rolling}")


if __name__ == "__main__":
    main()
