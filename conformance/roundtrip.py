#!/usr/bin/env python3
"""Round-trip lorac against Hugging Face transformers + PEFT (run by hand).

Compare mode -- check logits that lorac computed:

    lorac eval ... --tokens 1,2,3 --dump-logits lorac_logits.safetensors
    python conformance/roundtrip.py --model-dir DIR --adapter ADAPTER_DIR \\
        --logits lorac_logits.safetensors --tokens 1,2,3

  loads the base model from DIR (config.json + model.safetensors), wraps it
  with PeftModel.from_pretrained(model, ADAPTER_DIR), runs the tokens as one
  sequence (position ids 0..T-1) and compares PEFT's logits with the tensor
  `logits` ([T, V], or [1, T, V]) in the given file. The error reported is

      max|lorac - peft| / max|peft|

  (relative to the largest logit, so near-zero logits do not blow it up);
  the exit status is 1 when it exceeds --tol (default 1e-5). If --tokens is
  omitted, the `tokens` tensor of the logits file is used.

Export mode -- make an adapter with PEFT for lorac to load:

    python conformance/roundtrip.py --model-dir DIR --export-adapter OUT_DIR --tokens 1,2,3

  writes a PEFT LoRA adapter (adapter_config.json + adapter_model.safetensors,
  with random non-zero B so the adapter changes the output) into OUT_DIR, and
  OUT_DIR/peft_logits.safetensors with `logits` [T, V] (adapter active) and
  `tokens` [T] (F32). Point lorac at DIR and OUT_DIR, dump its logits for the
  same tokens and compare them with peft_logits.safetensors (or run compare
  mode above with --adapter OUT_DIR).
"""

import argparse
import json
import os
import sys

import torch

from peft import LoraConfig, PeftModel, get_peft_model
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

# Default LoRA targets per model_type for export mode.
DEFAULT_TARGETS = {
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "mistral": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "qwen2": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "qwen3": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "gemma": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "gemma2": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "gemma3_text": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "gpt2": ["c_attn", "c_proj", "c_fc"],
}
# Models whose linear layers are transformers' Conv1D ([in, out] weights).
CONV1D_MODELS = {"gpt2"}


def fail(msg, code=2):
    print(f"roundtrip: {msg}", file=sys.stderr)
    sys.exit(code)


def parse_tokens(text):
    try:
        toks = [int(t) for t in text.replace(" ", "").split(",") if t != ""]
    except ValueError:
        fail(f"--tokens: want comma-separated integers, got {text!r}")
    if not toks:
        fail("--tokens: empty")
    return toks


def load_base(model_dir):
    for fname in ("config.json", "model.safetensors"):
        if not os.path.exists(os.path.join(model_dir, fname)):
            fail(f"{model_dir}: no {fname}")
    model = AutoModelForCausalLM.from_pretrained(
        model_dir, dtype=torch.float32, attn_implementation="eager"
    )
    return model.to(torch.float32).eval()


def run_logits(model, tokens):
    vocab = model.config.vocab_size
    bad = [t for t in tokens if t < 0 or t >= vocab]
    if bad:
        fail(f"tokens {bad} outside the vocabulary [0, {vocab})")
    ids = torch.tensor([tokens], dtype=torch.long)
    pos = torch.arange(len(tokens)).unsqueeze(0)
    with torch.no_grad():
        out = model(input_ids=ids, position_ids=pos).logits
    return out[0].float()  # [T, V]


def compare(args):
    if not args.adapter:
        fail("compare mode needs --adapter (or use --export-adapter)")
    if not args.logits:
        fail("compare mode needs --logits")
    with safe_open(args.logits, "pt") as f:
        names = set(f.keys())
        if "logits" not in names:
            fail(f"{args.logits}: no tensor 'logits' (has {sorted(names)})")
        got = f.get_tensor("logits").float()
        file_tokens = f.get_tensor("tokens") if "tokens" in names else None

    if args.tokens:
        tokens = parse_tokens(args.tokens)
    elif file_tokens is not None:
        tokens = [int(round(float(t))) for t in file_tokens.reshape(-1)]
    else:
        fail("no --tokens and no 'tokens' tensor in the logits file")
    if file_tokens is not None and args.tokens:
        ft = [int(round(float(t))) for t in file_tokens.reshape(-1)]
        if ft != tokens:
            print(f"warning: --tokens {tokens} differ from the file's tokens {ft}", file=sys.stderr)

    model = load_base(args.model_dir)
    model = PeftModel.from_pretrained(model, args.adapter).eval()
    want = run_logits(model, tokens)

    if got.dim() == 3 and got.shape[0] == 1:
        got = got[0]
    if tuple(got.shape) != tuple(want.shape):
        fail(f"shape mismatch: {args.logits} has {tuple(got.shape)}, PEFT gives {tuple(want.shape)} [T, V]")

    diff = (got - want).abs()
    max_abs = float(diff.max())
    scale = max(float(want.abs().max()), 1e-12)
    rel = max_abs / scale
    t, v = divmod(int(diff.argmax()), want.shape[1])
    print(f"tokens: {tokens}")
    print(f"logits [T={want.shape[0]}, V={want.shape[1]}]  max|peft|={scale:.6g}")
    print(f"max abs error: {max_abs:.3e} at (t={t}, v={v}): lorac={float(got[t, v]):.8g} peft={float(want[t, v]):.8g}")
    print(f"max relative error (max|diff| / max|peft|): {rel:.3e}  tol {args.tol:.1e}")
    same_argmax = bool((got.argmax(-1) == want.argmax(-1)).all())
    print(f"argmax agrees at every position: {same_argmax}")
    if not rel <= args.tol:  # also catches NaN
        print("FAIL")
        sys.exit(1)
    print("OK")


def export(args):
    if not args.tokens:
        fail("export mode needs --tokens")
    tokens = parse_tokens(args.tokens)
    model = load_base(args.model_dir)
    mtype = model.config.model_type
    if args.target_modules:
        targets = [t for t in args.target_modules.split(",") if t]
    elif mtype in DEFAULT_TARGETS:
        targets = DEFAULT_TARGETS[mtype]
    else:
        fail(f"no default target modules for model_type {mtype!r}; pass --target-modules")

    cfg = LoraConfig(
        r=args.r,
        lora_alpha=int(args.alpha) if float(args.alpha).is_integer() else args.alpha,
        target_modules=targets,
        fan_in_fan_out=mtype in CONV1D_MODELS,
        use_rslora=args.rslora,
        lora_dropout=0.0,
        bias="none",
        task_type="CAUSAL_LM",
        init_lora_weights=False,
    )
    torch.manual_seed(args.seed)
    pm = get_peft_model(model, cfg).eval()
    # Draw A and B ourselves so B is surely non-zero, whatever PEFT's
    # init_lora_weights=False does in this version.
    gen = torch.Generator().manual_seed(args.seed)
    with torch.no_grad():
        for name, p in pm.named_parameters():
            if ".lora_A." in name or ".lora_B." in name:
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))

    os.makedirs(args.export_adapter, exist_ok=True)
    pm.save_pretrained(args.export_adapter)
    card = os.path.join(args.export_adapter, "README.md")
    if os.path.exists(card):
        os.remove(card)
    logits = run_logits(pm, tokens)
    with torch.no_grad(), pm.disable_adapter():
        base_logits = run_logits(pm, tokens)
    out = os.path.join(args.export_adapter, "peft_logits.safetensors")
    save_file(
        {
            "logits": logits.contiguous(),
            "tokens": torch.tensor(tokens, dtype=torch.float32),
        },
        out,
        metadata={"format": "pt"},
    )
    with open(os.path.join(args.export_adapter, "adapter_config.json")) as f:
        acfg = json.load(f)
    print(f"wrote {args.export_adapter}/adapter_config.json, adapter_model.safetensors")
    print(f"wrote {out}: logits {tuple(logits.shape)}, tokens {tokens}")
    print(f"r={acfg['r']} lora_alpha={acfg['lora_alpha']} use_rslora={acfg['use_rslora']} "
          f"fan_in_fan_out={acfg['fan_in_fan_out']} targets={sorted(acfg['target_modules'])}")
    print(f"max|logits - logits with adapter disabled| = {float((logits - base_logits).abs().max()):.3e}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", required=True, help="directory with config.json + model.safetensors")
    ap.add_argument("--adapter", help="PEFT adapter directory (compare mode)")
    ap.add_argument("--logits", help="safetensors file with lorac's `logits` [T, V] (compare mode)")
    ap.add_argument("--tokens", help="comma-separated token ids, e.g. 1,2,3")
    ap.add_argument("--tol", type=float, default=1e-5, help="max relative error (default %(default)g)")
    ap.add_argument("--export-adapter", metavar="OUT_DIR", help="export mode: write a PEFT adapter and its logits here")
    ap.add_argument("--r", type=int, default=4, help="export: LoRA rank (default %(default)d)")
    ap.add_argument("--alpha", type=float, default=8, help="export: lora_alpha (default %(default)g)")
    ap.add_argument("--rslora", action="store_true", help="export: use_rslora (scale alpha/sqrt(r))")
    ap.add_argument("--target-modules", help="export: comma-separated module names (default per model_type)")
    ap.add_argument("--seed", type=int, default=0, help="export: seed for A and B (default %(default)d)")
    args = ap.parse_args()

    torch.set_num_threads(1)
    if args.export_adapter:
        export(args)
    else:
        compare(args)


if __name__ == "__main__":
    main()
