#!/usr/bin/env python3
"""Generate the fixtures of `lorac combine` from PEFT's add_weighted_adapter.

On a tiny random GPT-2 (Conv1D layers, fan_in_fan_out) this makes three
random LoRA adapters, ad1 and ad2 of rank 4 and ad3 of rank 2, with other
alphas and targets (rsLoRA on ad2; c_proj is both attn.c_proj and
mlp.c_proj), and combines them with PEFT:

  linear   ad1·0.7 + ad2·(-0.4)             (same rank)
  cat      ad1·0.6 + ad3·1.3                (rank 4 + 2)
  svd      ad1·0.5 + ad2·0.8 + ad3·(-1.1)   (rank 4, the largest)
  svd3     ad1·1.0 + ad3·0.9                (svd_rank 3)

and writes every adapter as a PEFT directory under
conformance/testdata/combine/<name>/, plus expected.json (the weights and
methods, the library versions). Deterministic: fixed seeds, float32, CPU.

    python conformance/make_combine_fixtures.py [--out conformance/testdata/combine]
"""

import argparse
import json
import os
import shutil
import tempfile

import peft
import torch
import transformers
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, GPT2Config

SEED = 4321

ADAPTERS = {
    "ad1": dict(r=4, lora_alpha=8, target_modules=["c_attn", "c_fc"]),
    "ad2": dict(r=4, lora_alpha=6, target_modules=["c_attn", "c_proj"], use_rslora=True),
    "ad3": dict(r=2, lora_alpha=3, target_modules=["c_attn", "c_fc"]),
}

COMBINATIONS = {
    "linear": dict(adapters=["ad1", "ad2"], weights=[0.7, -0.4], combination_type="linear"),
    "cat": dict(adapters=["ad1", "ad3"], weights=[0.6, 1.3], combination_type="cat"),
    "svd": dict(adapters=["ad1", "ad2", "ad3"], weights=[0.5, 0.8, -1.1], combination_type="svd"),
    "svd3": dict(adapters=["ad1", "ad3"], weights=[1.0, 0.9], combination_type="svd", svd_rank=3),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "testdata", "combine"))
    args = ap.parse_args()
    torch.manual_seed(SEED)
    cfg = GPT2Config(vocab_size=64, n_positions=16, n_embd=16, n_layer=2, n_head=2, n_inner=24,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    base = AutoModelForCausalLM.from_config(cfg)
    model = None
    for i, (name, kw) in enumerate(ADAPTERS.items()):
        lc = LoraConfig(lora_dropout=0.0, init_lora_weights=False, fan_in_fan_out=True, **kw)
        if model is None:
            model = get_peft_model(base, lc, adapter_name=name)
        else:
            model.add_adapter(name, lc)
    # init_lora_weights=False draws A and B at random; make them larger so
    # the products are well above float32 noise.
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_" in n:
                p.copy_(torch.randn_like(p) * 0.5)
    for name, c in COMBINATIONS.items():
        model.add_weighted_adapter(adapter_name=name, **c)
    if os.path.isdir(args.out):
        shutil.rmtree(args.out)
    os.makedirs(args.out)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        for name in list(ADAPTERS) + list(COMBINATIONS):
            src = tmp if name == "default" else os.path.join(tmp, name)
            if not os.path.isdir(src):
                src = tmp  # the first adapter is saved at the top
            dst = os.path.join(args.out, name)
            os.makedirs(dst)
            for f in ("adapter_config.json", "adapter_model.safetensors"):
                shutil.copy(os.path.join(src, f), os.path.join(dst, f))
    with open(os.path.join(args.out, "expected.json"), "w") as f:
        json.dump({
            "combinations": COMBINATIONS,
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__},
        }, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
