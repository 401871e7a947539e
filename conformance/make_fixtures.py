#!/usr/bin/env python3
"""Generate lorac conformance fixtures from Hugging Face transformers + PEFT.

For tiny random models of each family lorac reads (Llama 2, GPT-2,
Llama 3 with RoPE scaling and a head_dim apart from hidden/heads, Qwen2 with
q/k/v biases, Qwen3 with per-head q/k norms, Mistral with a sliding window
shorter than the sequence, Gemma with scaled embeddings, (1 + w) norms and
GeGLU, Gemma 2 with soft-capping, sandwich norms and alternating windows,
Gemma 3 with q/k norms and RoPE per layer type) this writes, under conformance/testdata/<arch>/:

  config.json              the base model's config (save_pretrained)
  model.safetensors        the base model's weights, F32, Hugging Face names
  adapter/                 a PEFT LoRA adapter (adapter_config.json +
                           adapter_model.safetensors), B non-zero
  reference.safetensors    tokens, targets, logits (adapter on / off / merged),
                           loss, gradients of every lora_A / lora_B, merged
                           weights
  expected.json            dims and the library versions used

Everything is deterministic: fixed seeds, float32, CPU, dropout 0, eval mode.
Run with the venv described in conformance/README.md:

    python conformance/make_fixtures.py [--out conformance/testdata]
"""

import argparse
import copy
import json
import os
import shutil
import sys
import tempfile

import torch
import torch.nn.functional as F

import peft
import safetensors
import transformers
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file, save_file
from transformers import (AutoModelForCausalLM, Gemma2Config, Gemma3TextConfig, GemmaConfig, GPT2Config, LlamaConfig,
                          MistralConfig, Qwen2Config, Qwen3Config)

BATCH = 2
SEQ = 7
SEED = 1234


def llama_spec():
    cfg = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=32,
        rms_norm_eps=1e-6,
        rope_theta=10000.0,
        tie_word_embeddings=False,
        attention_bias=False,
        mlp_bias=False,
        hidden_act="silu",
    )
    lora = LoraConfig(
        r=4,
        lora_alpha=8,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        rank_pattern={"down_proj": 2},
        alpha_pattern={"down_proj": 3},
        lora_dropout=0.0,
        bias="none",
        task_type="CAUSAL_LM",
        init_lora_weights=False,
    )
    return cfg, lora


def gpt2_spec():
    cfg = GPT2Config(
        vocab_size=64,
        n_positions=32,
        n_embd=32,
        n_layer=2,
        n_head=4,
        activation_function="gelu_new",
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        layer_norm_epsilon=1e-5,
        tie_word_embeddings=True,
    )
    lora = LoraConfig(
        r=4,
        lora_alpha=8,
        target_modules=["c_attn", "c_fc"],
        fan_in_fan_out=True,
        use_rslora=True,
        lora_dropout=0.0,
        bias="none",
        init_lora_weights=False,
    )
    return cfg, lora


def llama3_spec():
    """Llama 3.2 style: llama3 RoPE scaling whose bounds put the head's
    frequencies in all three regimes (kept, blended, divided), head_dim 16
    with hidden/heads = 8, a tied head."""
    cfg = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=32,
        rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 32},
        tie_word_embeddings=True,
        attention_bias=False,
        mlp_bias=False,
        hidden_act="silu",
    )
    lora = LoraConfig(
        r=4,
        lora_alpha=8,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        lora_dropout=0.0,
        bias="none",
        task_type="CAUSAL_LM",
        init_lora_weights=False,
    )
    return cfg, lora


def qwen2_spec():
    """Qwen2 / Qwen2.5: biases on q, k and v only, a tied head."""
    cfg = Qwen2Config(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=32,
        rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
        tie_word_embeddings=True,
        use_sliding_window=False,
        hidden_act="silu",
    )
    lora = LoraConfig(
        r=4,
        lora_alpha=16,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "down_proj"],
        rank_pattern={"k_proj": 2},
        lora_dropout=0.0,
        bias="none",
        task_type="CAUSAL_LM",
        init_lora_weights=False,
    )
    return cfg, lora


def qwen3_spec():
    """Qwen3: an RMSNorm on each head of q and k before RoPE, head_dim 16
    with hidden/heads = 8, an untied head."""
    cfg = Qwen3Config(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=32,
        rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
        tie_word_embeddings=False,
        attention_bias=False,
        use_sliding_window=False,
        hidden_act="silu",
    )
    lora = LoraConfig(
        r=4,
        lora_alpha=8,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        use_rslora=True,
        lora_dropout=0.0,
        bias="none",
        task_type="CAUSAL_LM",
        init_lora_weights=False,
    )
    return cfg, lora


def mistral_spec():
    """Mistral: sliding-window attention, the window (4) shorter than the
    sequence (SEQ)."""
    cfg = MistralConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=32,
        rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        sliding_window=4,
        tie_word_embeddings=False,
        hidden_act="silu",
    )
    lora = LoraConfig(
        r=4,
        lora_alpha=8,
        target_modules=["q_proj", "v_proj", "gate_proj"],
        lora_dropout=0.0,
        bias="none",
        task_type="CAUSAL_LM",
        init_lora_weights=False,
    )
    return cfg, lora


def gemma_spec():
    """Gemma (1): embeddings scaled by sqrt(hidden_size), RMSNorm as (1 + w),
    GeGLU (tanh GELU gate), head_dim 16 with hidden/heads = 8, a tied head."""
    cfg = GemmaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=1,
        head_dim=16,
        max_position_embeddings=32,
        rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        hidden_act="gelu_pytorch_tanh",
        tie_word_embeddings=True,
        attention_bias=False,
    )
    lora = LoraConfig(
        r=4,
        lora_alpha=8,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        lora_dropout=0.0,
        bias="none",
        task_type="CAUSAL_LM",
        init_lora_weights=False,
    )
    return cfg, lora


def gemma2_spec():
    """Gemma 2: Gemma's features plus query_pre_attn_scalar (24, not the head
    size 16), soft-capped attention scores and logits (caps small enough to
    bend this tiny model's values), post-attention and pre/post feed-forward
    norms, and a sliding window (4, shorter than the sequence) on layer 0
    while layer 1 attends to everything."""
    cfg = Gemma2Config(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=32,
        rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        hidden_activation="gelu_pytorch_tanh",
        query_pre_attn_scalar=24,
        sliding_window=4,
        attn_logit_softcapping=0.5,
        final_logit_softcapping=1.5,
        tie_word_embeddings=True,
        attention_bias=False,
    )
    lora = LoraConfig(
        r=4,
        lora_alpha=8,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        lora_dropout=0.0,
        bias="none",
        task_type="CAUSAL_LM",
        init_lora_weights=False,
    )
    return cfg, lora


def gemma3_spec():
    """Gemma 3 (text): Gemma 2's layout without soft-caps, (1 + w) RMSNorms
    on each head of q and k, and RoPE per layer type: the sliding layer 0
    (window 4, shorter than the sequence) with base 10000 unscaled, the full
    layer 1 with base 1e6 and linear scaling 2."""
    cfg = Gemma3TextConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=32,
        rms_norm_eps=1e-6,
        rope_parameters={"full_attention": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1000000.0},
                         "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}},
        layer_types=["sliding_attention", "full_attention"],
        hidden_activation="gelu_pytorch_tanh",
        query_pre_attn_scalar=24,
        sliding_window=4,
        tie_word_embeddings=True,
        attention_bias=False,
    )
    lora = LoraConfig(
        r=4,
        lora_alpha=8,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        lora_dropout=0.0,
        bias="none",
        task_type="CAUSAL_LM",
        init_lora_weights=False,
    )
    return cfg, lora


SPECS = {"llama": llama_spec, "gpt2": gpt2_spec, "llama3": llama3_spec, "qwen2": qwen2_spec,
         "qwen3": qwen3_spec, "mistral": mistral_spec, "gemma": gemma_spec,
         "gemma2": gemma2_spec, "gemma3": gemma3_spec}
# Seeds: llama and gpt2 keep theirs, so their committed fixtures stay
# byte-identical when the others are added.
SEED_OFFSET = {"llama": 0, "gpt2": 100, "llama3": 200, "qwen2": 300, "qwen3": 400, "mistral": 500, "gemma": 600, "gemma2": 700, "gemma3": 800}


def is_norm(module):
    name = type(module).__name__.lower()
    return isinstance(module, torch.nn.LayerNorm) or "rmsnorm" in name or "layernorm" in name


def build_base(cfg, seed):
    """A tiny random causal LM, float32, eager attention, with non-trivial
    norms and biases (their default init is all ones / all zeros)."""
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager", dtype=torch.float32)
    model = model.to(torch.float32).eval()
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for _, module in model.named_modules():
            if is_norm(module):
                for p in (getattr(module, "weight", None), getattr(module, "bias", None)):
                    if p is not None:
                        p.add_(0.1 * torch.randn(p.shape, generator=gen))
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                # Matrices and embeddings: std 0.02 -> ~0.1, so attention is
                # not near-uniform and RoPE / masking mistakes show up.
                p.add_(0.1 * torch.randn(p.shape, generator=gen))
            elif name.endswith(".bias"):
                # Biases of the linear layers (GPT-2 Conv1D) start at zero too.
                owner = model.get_submodule(name.rsplit(".", 1)[0])
                if not is_norm(owner):
                    p.add_(0.1 * torch.randn(p.shape, generator=gen))
    return model


def ensure_nonzero_b(peft_model, seed):
    """init_lora_weights=False leaves A and B at nn.Linear's default init, so
    B is already non-zero. Guard against a PEFT version that zeroes it anyway."""
    gen = torch.Generator().manual_seed(seed + 2)
    fixed = 0
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if ".lora_B." in name and torch.count_nonzero(p) == 0:
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
                fixed += 1
    return fixed


def saved_key(param_name, adapter_name="default"):
    """named_parameters name -> adapter_model.safetensors key."""
    return param_name.replace(f".{adapter_name}.", ".")


def forward_logits(model, tokens):
    pos = torch.arange(tokens.shape[1]).unsqueeze(0).expand(tokens.shape[0], -1)
    return model(input_ids=tokens, position_ids=pos).logits.float()


def make_arch(arch, out_root):
    cfg, lora_cfg = SPECS[arch]()
    seed = SEED + SEED_OFFSET[arch]
    out = os.path.join(out_root, arch)
    if os.path.isdir(out):
        shutil.rmtree(out)
    os.makedirs(out)

    base = build_base(cfg, seed)

    # 1 + 2: config.json and model.safetensors, exactly as save_pretrained
    # writes them (base model, before PEFT injects its layers).
    with tempfile.TemporaryDirectory() as tmp:
        base.save_pretrained(tmp)
        for fname in ("config.json", "model.safetensors"):
            src = os.path.join(tmp, fname)
            if not os.path.exists(src):
                sys.exit(f"{arch}: save_pretrained wrote no {fname}: {sorted(os.listdir(tmp))}")
            shutil.copy(src, os.path.join(out, fname))
    base_sd = load_file(os.path.join(out, "model.safetensors"))
    for k, v in base_sd.items():
        if v.dtype != torch.float32:
            sys.exit(f"{arch}: {k} is {v.dtype}, want float32")

    # 3: PEFT adapter.
    torch.manual_seed(seed + 3)
    pm = get_peft_model(base, lora_cfg)
    pm.eval()
    fixed_b = ensure_nonzero_b(pm, seed)
    adapter_dir = os.path.join(out, "adapter")
    pm.save_pretrained(adapter_dir)
    # PEFT also writes a model card; lorac needs only the config and weights.
    card = os.path.join(adapter_dir, "README.md")
    if os.path.exists(card):
        os.remove(card)
    adapter_sd = load_file(os.path.join(adapter_dir, "adapter_model.safetensors"))

    # 4: reference tensors.
    gen = torch.Generator().manual_seed(seed + 4)
    V = cfg.vocab_size
    tokens = torch.randint(0, V, (BATCH, SEQ), generator=gen)
    targets = torch.randint(0, V, (BATCH, SEQ), generator=gen)

    ref = {
        "tokens": tokens.to(torch.float32),
        "targets": targets.to(torch.float32),
    }

    pm.zero_grad(set_to_none=True)
    logits = forward_logits(pm, tokens)
    loss = F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1))
    loss.backward()
    ref["logits"] = logits.detach().clone()
    ref["loss"] = loss.detach().reshape(1).clone()

    lora_params = {}
    for name, p in pm.named_parameters():
        if ".lora_A." in name or ".lora_B." in name:
            if p.grad is None:
                sys.exit(f"{arch}: no gradient for {name}")
            lora_params[saved_key(name)] = p
    if set(lora_params) != set(adapter_sd):
        sys.exit(f"{arch}: parameter/adapter key mismatch:\n"
                 f"  only params: {sorted(set(lora_params) - set(adapter_sd))}\n"
                 f"  only file:   {sorted(set(adapter_sd) - set(lora_params))}")
    for k in sorted(lora_params):
        if not torch.equal(lora_params[k].detach(), adapter_sd[k]):
            sys.exit(f"{arch}: saved {k} differs from the live parameter")
        ref["grad." + k] = lora_params[k].grad.detach().clone().float()

    with torch.no_grad():
        with pm.disable_adapter():
            ref["logits_base"] = forward_logits(pm, tokens).clone()

        merged = copy.deepcopy(pm).merge_and_unload().eval()
        modules = sorted({k[len("base_model.model."):].rsplit(".lora_", 1)[0] for k in adapter_sd})
        for mod in modules:
            w = merged.get_submodule(mod).weight.detach().float().clone()
            if w.shape != base_sd[mod + ".weight"].shape:
                sys.exit(f"{arch}: merged {mod} is {tuple(w.shape)}, base is {tuple(base_sd[mod + '.weight'].shape)}")
            ref["merged." + mod + ".weight"] = w
        ref["logits_merged"] = forward_logits(merged, tokens).clone()

    ref = {k: v.contiguous() for k, v in ref.items()}
    save_file(ref, os.path.join(out, "reference.safetensors"), metadata={"format": "pt"})

    # 5: expected.json
    with open(os.path.join(adapter_dir, "adapter_config.json")) as f:
        acfg = json.load(f)
    base_keys = sorted(base_sd)
    expected = {
        "arch": arch,
        "batch": BATCH,
        "seq": SEQ,
        "vocab": V,
        "seed": seed,
        "loss": float(loss.detach()),
        "num_base_tensors": len(base_keys),
        "base_has_lm_head": "lm_head.weight" in base_sd,
        "base_key_prefixes": sorted({k.split(".")[0] for k in base_keys}),
        "adapted_modules": modules,
        "lora_scaling": {m: float(merged_scale(pm, m)) for m in modules},
        "lora_B_filled_by_script": fixed_b,
        "max_abs_logits_minus_merged": float((ref["logits"] - ref["logits_merged"]).abs().max()),
        "max_abs_logits": float(ref["logits"].abs().max()),
        "max_abs_logits_minus_base": float((ref["logits"] - ref["logits_base"]).abs().max()),
        "peft_type": acfg.get("peft_type"),
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "peft": peft.__version__,
            "safetensors": safetensors.__version__,
        },
    }
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f, indent=2, sort_keys=True)
        f.write("\n")
    return out, expected


def merged_scale(pm, module_name):
    """PEFT's scaling factor (alpha/r or alpha/sqrt(r)) for one adapted module."""
    layer = pm.base_model.model.get_submodule(module_name)
    return layer.scaling["default"]


def summarize(out_root, results):
    total = 0
    print(f"{'file':64s} {'bytes':>9s}")
    for root, _, files in sorted(os.walk(out_root)):
        for fname in sorted(files):
            path = os.path.join(root, fname)
            size = os.path.getsize(path)
            total += size
            print(f"{os.path.relpath(path, out_root):64s} {size:9d}")
    print(f"{'total':64s} {total:9d}")
    for arch, exp in results:
        print(f"{arch}: loss={exp['loss']:.6f} "
              f"max|logits-logits_merged|={exp['max_abs_logits_minus_merged']:.3e} "
              f"max|logits-logits_base|={exp['max_abs_logits_minus_base']:.3e} "
              f"lm_head.weight in model.safetensors: {exp['base_has_lm_head']} "
              f"prefixes: {exp['base_key_prefixes']}")
    if total > 2 * 1024 * 1024:
        sys.exit(f"fixtures are {total} bytes, over the 2 MiB budget")


def main():
    # PEFT stores target_modules from a Python set, so its order in
    # adapter_config.json follows string hashing. Pin the hash seed so that
    # regenerating the fixtures gives byte-identical files.
    if os.environ.get("PYTHONHASHSEED") != "0":
        env = dict(os.environ, PYTHONHASHSEED="0")
        os.execve(sys.executable, [sys.executable] + sys.argv, env)
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(here, "testdata"), help="output root (default: %(default)s)")
    ap.add_argument("--arch", action="append", choices=sorted(SPECS), help="only these (default: all)")
    args = ap.parse_args()

    torch.set_grad_enabled(True)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)  # stable reduction order
    os.makedirs(args.out, exist_ok=True)
    results = []
    for arch in args.arch or list(SPECS):
        _, exp = make_arch(arch, args.out)
        results.append((arch, exp))
    summarize(args.out, results)


if __name__ == "__main__":
    main()
