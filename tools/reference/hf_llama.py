#!/usr/bin/env python3
"""
Hugging Face-style LLaMA reference (after transformers' modeling_llama.py: rotate_half RoPE with cos/sin of
cat(freqs, freqs), repeat_kv, SwiGLU, RMSNorm) on weights in HF's layout, i.e. q_proj/k_proj rows permuted
within each head relative to Meta's checkpoints. Used to check llama-ts's HF import (the un-permutation) and
export numerically.

Writes test/fixtures/hf-tiny/: config.json and model.safetensors (HF tensor names, float32) and
reference.safetensors (tokens and logits [B*T, vocab]). Float32 throughout.

Run with Debian's python3-torch:  /usr/bin/python3 tools/reference/hf_llama.py [out_dir]
"""
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

from torch_llama import write_safetensors  # same folder; importing it runs nothing

torch.manual_seed(1)
torch.set_num_threads(1)

D, L, H, KV, V, FF, EPS, THETA, MAXPOS = 32, 2, 4, 2, 41, 80, 1e-5, 10000.0, 16
B, T = 2, 12
HD = D // H


def make_params():
    p = {"model.embed_tokens.weight": torch.randn(V, D) * 0.5}
    for l in range(L):
        pre = f"model.layers.{l}."
        p[pre + "input_layernorm.weight"] = 1 + 0.1 * torch.randn(D)
        p[pre + "self_attn.q_proj.weight"] = torch.randn(H * HD, D) / math.sqrt(D) * 1.5
        p[pre + "self_attn.k_proj.weight"] = torch.randn(KV * HD, D) / math.sqrt(D) * 1.5
        p[pre + "self_attn.v_proj.weight"] = torch.randn(KV * HD, D) / math.sqrt(D)
        p[pre + "self_attn.o_proj.weight"] = torch.randn(D, H * HD) / math.sqrt(D)
        p[pre + "post_attention_layernorm.weight"] = 1 + 0.1 * torch.randn(D)
        p[pre + "mlp.gate_proj.weight"] = torch.randn(FF, D) / math.sqrt(D)
        p[pre + "mlp.up_proj.weight"] = torch.randn(FF, D) / math.sqrt(D)
        p[pre + "mlp.down_proj.weight"] = torch.randn(D, FF) / math.sqrt(FF)
    p["model.norm.weight"] = 1 + 0.1 * torch.randn(D)
    p["lm_head.weight"] = torch.randn(V, D) / math.sqrt(D) * 2
    return {k: v.float() for k, v in p.items()}


def rms_norm(x, w):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS))


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def forward(p, tokens):
    Bn, Tn = tokens.shape
    inv_freq = 1.0 / (THETA ** (torch.arange(0, HD, 2).float() / HD))
    freqs = torch.outer(torch.arange(Tn).float(), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos()[None, None], emb.sin()[None, None]  # [1, 1, T, hd]
    mask = torch.full((Tn, Tn), float("-inf")).triu(1)
    h = p["model.embed_tokens.weight"][tokens]
    for l in range(L):
        pre = f"model.layers.{l}."
        x = rms_norm(h, p[pre + "input_layernorm.weight"])
        q = (x @ p[pre + "self_attn.q_proj.weight"].T).view(Bn, Tn, H, HD).transpose(1, 2)
        k = (x @ p[pre + "self_attn.k_proj.weight"].T).view(Bn, Tn, KV, HD).transpose(1, 2)
        v = (x @ p[pre + "self_attn.v_proj.weight"].T).view(Bn, Tn, KV, HD).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(H // KV, dim=1)
        v = v.repeat_interleave(H // KV, dim=1)
        s = q @ k.transpose(2, 3) / math.sqrt(HD) + mask
        a = (F.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(Bn, Tn, H * HD)
        h = h + a @ p[pre + "self_attn.o_proj.weight"].T
        x = rms_norm(h, p[pre + "post_attention_layernorm.weight"])
        g = F.silu(x @ p[pre + "mlp.gate_proj.weight"].T) * (x @ p[pre + "mlp.up_proj.weight"].T)
        h = h + g @ p[pre + "mlp.down_proj.weight"].T
    return rms_norm(h, p["model.norm.weight"]) @ p["lm_head.weight"].T


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "test/fixtures/hf-tiny"
    os.makedirs(out, exist_ok=True)
    p = make_params()
    tokens = torch.randint(0, V, (B, T))
    logits = forward(p, tokens)
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu", "hidden_size": D,
        "intermediate_size": FF, "num_hidden_layers": L, "num_attention_heads": H, "num_key_value_heads": KV,
        "vocab_size": V, "rms_norm_eps": EPS, "rope_theta": THETA, "max_position_embeddings": MAXPOS,
        "tie_word_embeddings": False, "torch_dtype": "float32", "bos_token_id": 1, "eos_token_id": 2,
    }
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    write_safetensors(os.path.join(out, "model.safetensors"), p, {"format": "pt"})
    write_safetensors(os.path.join(out, "reference.safetensors"),
                      {"tokens": tokens.float(), "logits": logits.reshape(B * T, V)},
                      {"batch": str(B), "seq": str(T), "torch": torch.__version__})
    print(f"wrote {out}: logits[0,0,:3] = {logits[0, 0, :3].tolist()}")


if __name__ == "__main__":
    main()
