#!/usr/bin/env python3
"""PyTorch reference training step for the llama-ts throughput benchmark (same LLaMA shape, float32, AdamW,
gradient clipping at 1.0). Prints one JSON line. Run with OMP_WAIT_POLICY=PASSIVE; --threads sets torch threads.

  python3 tools/reference/torch_train_bench.py --dim 288 --layers 6 --heads 6 --kv-heads 6 --vocab 32000 \
      --hidden 768 --batch 8 --seq 256 --steps 3
"""
import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_tables(head_dim, seq, theta):
    freqs = 1.0 / (theta ** (torch.arange(0, head_dim, 2).float() / head_dim))
    ang = torch.outer(torch.arange(seq).float(), freqs)
    return torch.cos(ang), torch.sin(ang)


def apply_rope(x, cos, sin):
    # x: [B, T, H, hd], adjacent pairs rotated (Meta's layout)
    x0, x1 = x[..., 0::2], x[..., 1::2]
    c, s = cos[None, :, None, :], sin[None, :, None, :]
    return torch.stack((x0 * c - x1 * s, x0 * s + x1 * c), dim=-1).flatten(-2)


class Block(nn.Module):
    def __init__(self, a):
        super().__init__()
        hd = a.dim // a.heads
        self.h, self.kv, self.hd = a.heads, a.kv_heads, hd
        self.attention_norm = RMSNorm(a.dim, a.eps)
        self.wq = nn.Linear(a.dim, a.heads * hd, bias=False)
        self.wk = nn.Linear(a.dim, a.kv_heads * hd, bias=False)
        self.wv = nn.Linear(a.dim, a.kv_heads * hd, bias=False)
        self.wo = nn.Linear(a.heads * hd, a.dim, bias=False)
        self.ffn_norm = RMSNorm(a.dim, a.eps)
        self.w1 = nn.Linear(a.dim, a.hidden, bias=False)
        self.w2 = nn.Linear(a.hidden, a.dim, bias=False)
        self.w3 = nn.Linear(a.dim, a.hidden, bias=False)

    def forward(self, x, cos, sin, mask):
        B, T, _ = x.shape
        h = self.attention_norm(x)
        q = apply_rope(self.wq(h).view(B, T, self.h, self.hd), cos, sin)
        k = apply_rope(self.wk(h).view(B, T, self.kv, self.hd), cos, sin)
        v = self.wv(h).view(B, T, self.kv, self.hd)
        rep = self.h // self.kv
        if rep > 1:
            k = k.repeat_interleave(rep, dim=2)
            v = v.repeat_interleave(rep, dim=2)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        s = (q @ k.transpose(-2, -1)) / math.sqrt(self.hd) + mask
        o = (F.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(B, T, -1)
        x = x + self.wo(o)
        h = self.ffn_norm(x)
        return x + self.w2(F.silu(self.w1(h)) * self.w3(h))


class Llama(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.tok_embeddings = nn.Embedding(a.vocab, a.dim)
        self.layers = nn.ModuleList([Block(a) for _ in range(a.layers)])
        self.norm = RMSNorm(a.dim, a.eps)
        self.output = nn.Linear(a.dim, a.vocab, bias=False)
        cos, sin = rope_tables(a.dim // a.heads, a.seq, a.theta)
        self.register_buffer('cos', cos)
        self.register_buffer('sin', sin)
        self.register_buffer('mask', torch.full((a.seq, a.seq), float('-inf')).triu(1))

    def forward(self, tokens):
        x = self.tok_embeddings(tokens)
        for layer in self.layers:
            x = layer(x, self.cos, self.sin, self.mask)
        return self.output(self.norm(x))


def main():
    p = argparse.ArgumentParser()
    for k, d in [('dim', 288), ('layers', 6), ('heads', 6), ('kv-heads', 6), ('vocab', 32000), ('hidden', 768),
                 ('batch', 8), ('seq', 256), ('steps', 3), ('threads', 2)]:
        p.add_argument('--' + k, type=int, default=d)
    p.add_argument('--eps', type=float, default=1e-5)
    p.add_argument('--theta', type=float, default=10000.0)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = Llama(a)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    tokens = torch.randint(0, a.vocab, (a.batch, a.seq))
    targets = torch.randint(0, a.vocab, (a.batch, a.seq))
    steps, fwd, bwd, optim = [], [], [], []
    for s in range(a.steps + 1):
        t0 = time.perf_counter()
        logits = model(tokens)
        loss = F.cross_entropy(logits.view(-1, a.vocab), targets.view(-1))
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        t3 = time.perf_counter()
        if s == 0:
            continue  # warm-up
        steps.append(t3 - t0)
        fwd.append(t1 - t0)
        bwd.append(t2 - t1)
        optim.append(t3 - t2)
    med = lambda xs: sorted(xs)[len(xs) // 2]
    step = med(steps)
    print(json.dumps({
        'backend': 'pytorch', 'torch': torch.__version__, 'threads': torch.get_num_threads(),
        'params': sum(p.numel() for p in model.parameters()), 'batch': a.batch, 'seq': a.seq, 'steps': a.steps,
        'tokens_per_s': round(a.batch * a.seq / step, 3), 'step_ms': round(step * 1000, 3),
        'phase_ms': {'forward_loss': round(med(fwd) * 1000, 3), 'backward': round(med(bwd) * 1000, 3),
                     'optimizer': round(med(optim) * 1000, 3)},
        'loss': round(loss.item(), 3),
    }))


if __name__ == '__main__':
    main()
