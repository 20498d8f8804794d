#!/usr/bin/env python3
"""
Independent LLaMA reference in PyTorch (after Meta's llama/model.py: complex-number RoPE on adjacent pairs,
repeat_kv for grouped-query attention, SwiGLU, RMSNorm, untied head) used as a numeric oracle for llama-ts.

Writes test/fixtures/torch-reference.safetensors: the weights, a token batch, logits, loss, every gradient,
and the weights and losses after three AdamW steps with clipping. Float32 throughout.

Run with Debian's python3-torch:  /usr/bin/python3 tools/reference/torch_llama.py [out.safetensors]
The test suite only reads the committed fixture; it never needs PyTorch.
"""
import json
import math
import struct
import sys

import torch
import torch.nn.functional as F

torch.manual_seed(0)
torch.set_num_threads(1)

CFG = dict(dim=32, nLayers=2, nHeads=4, nKvHeads=2, vocabSize=37, multipleOf=16, ffnDimMultiplier=None,
           normEps=1e-5, ropeTheta=10000.0, maxSeqLen=8)
B, T = 2, 8
LR, WD, BETAS, EPS, CLIP, STEPS = 1e-2, 0.1, (0.9, 0.95), 1e-8, 1.0, 3


def hidden_dim(c):
    h = int(2 * 4 * c["dim"] / 3)
    if c["ffnDimMultiplier"] is not None:
        h = int(c["ffnDimMultiplier"] * h)
    m = c["multipleOf"]
    return m * ((h + m - 1) // m)


def make_params(c):
    d, hd = c["dim"], c["dim"] // c["nHeads"]
    hid = hidden_dim(c)
    p = {"tok_embeddings.weight": torch.randn(c["vocabSize"], d) * 0.5}
    for l in range(c["nLayers"]):
        pre = f"layers.{l}."
        p[pre + "attention_norm.weight"] = 1 + 0.1 * torch.randn(d)
        p[pre + "attention.wq.weight"] = torch.randn(c["nHeads"] * hd, d) / math.sqrt(d)
        p[pre + "attention.wk.weight"] = torch.randn(c["nKvHeads"] * hd, d) / math.sqrt(d)
        p[pre + "attention.wv.weight"] = torch.randn(c["nKvHeads"] * hd, d) / math.sqrt(d)
        p[pre + "attention.wo.weight"] = torch.randn(d, c["nHeads"] * hd) / math.sqrt(d)
        p[pre + "ffn_norm.weight"] = 1 + 0.1 * torch.randn(d)
        p[pre + "feed_forward.w1.weight"] = torch.randn(hid, d) / math.sqrt(d)
        p[pre + "feed_forward.w2.weight"] = torch.randn(d, hid) / math.sqrt(hid)
        p[pre + "feed_forward.w3.weight"] = torch.randn(hid, d) / math.sqrt(d)
    p["norm.weight"] = 1 + 0.1 * torch.randn(d)
    p["output.weight"] = torch.randn(c["vocabSize"], d) / math.sqrt(d)
    return {k: v.float().requires_grad_(True) for k, v in p.items()}


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def freqs_cis(hd, T, theta):
    freqs = 1.0 / (theta ** (torch.arange(0, hd, 2)[: hd // 2].float() / hd))
    t = torch.arange(T, dtype=torch.float32)
    return torch.polar(torch.ones(T, hd // 2), torch.outer(t, freqs))


def apply_rope(x, fc):  # x: [B, T, H, hd]; adjacent pairs form the complex numbers
    xc = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
    out = torch.view_as_real(xc * fc[None, :, None, :]).flatten(3)
    return out.type_as(x)


def forward(p, c, tokens):
    d, H, KV = c["dim"], c["nHeads"], c["nKvHeads"]
    hd = d // H
    Bn, Tn = tokens.shape
    fc = freqs_cis(hd, Tn, c["ropeTheta"])
    mask = torch.full((Tn, Tn), float("-inf")).triu(1)
    h = p["tok_embeddings.weight"][tokens]
    for l in range(c["nLayers"]):
        pre = f"layers.{l}."
        x = rms_norm(h, p[pre + "attention_norm.weight"], c["normEps"])
        q = (x @ p[pre + "attention.wq.weight"].T).view(Bn, Tn, H, hd)
        k = (x @ p[pre + "attention.wk.weight"].T).view(Bn, Tn, KV, hd)
        v = (x @ p[pre + "attention.wv.weight"].T).view(Bn, Tn, KV, hd)
        q, k = apply_rope(q, fc), apply_rope(k, fc)
        k = k.repeat_interleave(H // KV, dim=2)  # repeat_kv
        v = v.repeat_interleave(H // KV, dim=2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        s = q @ k.transpose(2, 3) / math.sqrt(hd) + mask
        a = (F.softmax(s.float(), dim=-1) @ v).transpose(1, 2).reshape(Bn, Tn, H * hd)
        h = h + a @ p[pre + "attention.wo.weight"].T
        x = rms_norm(h, p[pre + "ffn_norm.weight"], c["normEps"])
        g = F.silu(x @ p[pre + "feed_forward.w1.weight"].T) * (x @ p[pre + "feed_forward.w3.weight"].T)
        h = h + g @ p[pre + "feed_forward.w2.weight"].T
    h = rms_norm(h, p["norm.weight"], c["normEps"])
    return h @ p["output.weight"].T


def write_safetensors(path, tensors, meta):
    header, blobs, off = {"__metadata__": meta}, [], 0
    for name, t in tensors.items():
        b = t.detach().contiguous().float().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def main():
    out_path = sys.argv[1] if len(sys.argv) > 1 else "test/fixtures/torch-reference.safetensors"
    c = CFG
    p = make_params(c)
    tokens = torch.randint(0, c["vocabSize"], (B, T))
    targets = torch.randint(0, c["vocabSize"], (B, T))
    targets[0, 3] = -1  # an ignored position
    out = {f"param.{k}": v.detach().clone() for k, v in p.items()}
    out["tokens"] = tokens.float()
    out["targets"] = targets.float()

    logits = forward(p, c, tokens)
    loss = F.cross_entropy(logits.view(-1, c["vocabSize"]), targets.view(-1), ignore_index=-1)
    loss.backward()
    out["logits"] = logits.detach().reshape(B * T, -1)
    out["loss"] = loss.detach().reshape(1)
    for k, v in p.items():
        out[f"grad.{k}"] = v.grad.detach().clone()

    decay = [v for v in p.values() if v.dim() >= 2]
    no_decay = [v for v in p.values() if v.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WD}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=LR, betas=BETAS, eps=EPS)
    losses, norms = [], []
    for _ in range(STEPS):
        opt.zero_grad()
        l = F.cross_entropy(forward(p, c, tokens).view(-1, c["vocabSize"]), targets.view(-1), ignore_index=-1)
        l.backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_(list(p.values()), CLIP)))
        losses.append(float(l))
        opt.step()
    for k, v in p.items():
        out[f"after.{k}"] = v.detach().clone()
    out["steps.loss"] = torch.tensor(losses)
    out["steps.grad_norm"] = torch.tensor(norms)
    meta = {"config": json.dumps(c), "batch": str(B), "seq": str(T),
            "adamw": json.dumps(dict(lr=LR, weightDecay=WD, beta1=BETAS[0], beta2=BETAS[1], eps=EPS, clip=CLIP, steps=STEPS)),
            "torch": torch.__version__}
    write_safetensors(out_path, out, meta)
    print(f"wrote {out_path}: loss {float(loss):.6f}, losses {losses}")


if __name__ == "__main__":
    main()
