"""PyTorch + PEFT reference for lorac's benchmarks (docs/perf.md).

Builds one of the three benchmark configurations of examples/ in Hugging Face
transformers, on random float32 weights (torch.manual_seed), and wraps it
with a PEFT LoRA adapter as its .lora file says (dropout 0: none of them sets
one, and lorac's default is 0; the models themselves have no dropout):

    tiny   examples/bench-tiny   GPT-2: vocab 256, context 128, dim 256,
           4 layers, 4 heads, ffn 1024, biases, untied head; LoRA rank 8,
           alpha 16 on c_attn; batch 16 x 128
    gpt2s  examples/bench-gpt2s  GPT-2 small: vocab 50257, context 1024,
           dim 768, 12 layers, 12 heads, ffn 3072, biases, tied head;
           LoRA rank 16, alpha 32 on c_attn; batch 4 x 256
    llama  examples/bench-llama  LLaMA (RMSNorm eps 1e-6, RoPE theta 10000,
           SwiGLU, GQA): vocab 32000, context 2048, dim 1024, 8 layers,
           16 heads, 4 kv heads, ffn 2816, no biases, untied head; LoRA
           rank 16, alpha 32 on q, k, v, o; batch 4 x 256

It then times what `lorac bench` times (runtime/driver/bench.go), at each
thread count:

    train step, LoRA           forward, backward, gradient clipping (the
                               .lora's clip 1.0) and AdamW on the adapter, in
                               train mode, at the config's batch
    forward, adapter unmerged  one full context (1 x context tokens), as
                               lorac pads every forward to the context
    decode, adapter unmerged   batch-1 decoding with the KV cache, one token
    decode, adapter merged     at a time from an empty cache, of the first
                               --decode-tokens (at most context) tokens of the
                               prompt, as lorac does; merged is a copy of the
                               model after PEFT's merge_and_unload()

Forward and decoding run in eval mode under torch.no_grad(). Each
measurement is warmed up once, then repeated --steps times; the script prints
medians and [min-max] in tokens/s, in the same layout as `lorac bench`.
--rows keeps only the rows whose name contains the text, like lorac's --only
(e.g. --rows decode, --rows train).

    python bench/pytorch_reference.py [--config tiny|gpt2s|llama] [--steps 8]
        [--threads 1,2] [--rows TEXT] [--decode-tokens 64] [--device cpu|cuda]

Needs torch, transformers and peft (conformance/requirements.txt).
"""

import argparse
import copy
import inspect
import statistics
import sys
import time

import torch
from peft import LoraConfig, get_peft_model
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

# The configurations of examples/bench-*/bench-*.lora, which are the source
# of truth; values the files leave out are lorac's defaults (dsl/check.go).
CONFIGS = {
    "tiny": dict(name="bench-tiny", arch="gpt2", vocab=256, context=128, dim=256, layers=4, heads=4,
                 ffn=1024, norm_eps=1e-5, tie=False, rank=8, alpha=16, targets=["c_attn"],
                 batch=16, seq=128, clip=1.0),
    "gpt2s": dict(name="bench-gpt2s", arch="gpt2", vocab=50257, context=1024, dim=768, layers=12,
                  heads=12, ffn=3072, norm_eps=1e-5, tie=True, rank=16, alpha=32, targets=["c_attn"],
                  batch=4, seq=256, clip=1.0),
    "llama": dict(name="bench-llama", arch="llama", vocab=32000, context=2048, dim=1024, layers=8,
                  heads=16, kv_heads=4, ffn=2816, norm_eps=1e-6, rope_theta=10000.0, tie=False,
                  rank=16, alpha=32, targets=["q_proj", "k_proj", "v_proj", "o_proj"],
                  batch=4, seq=256, clip=1.0),
}

ROWS = ("train step, LoRA", "forward, adapter unmerged", "decode, adapter unmerged",
        "decode, adapter merged")


def build(c):
    if c["arch"] == "gpt2":
        cfg = GPT2Config(vocab_size=c["vocab"], n_positions=c["context"], n_embd=c["dim"],
                         n_layer=c["layers"], n_head=c["heads"], n_inner=c["ffn"],
                         layer_norm_epsilon=c["norm_eps"], activation_function="gelu_new",
                         resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                         tie_word_embeddings=c["tie"], bos_token_id=c["vocab"] - 1,
                         eos_token_id=c["vocab"] - 1)
        return GPT2LMHeadModel(cfg), True  # GPT-2's Conv1D stores weights as (in, out)
    cfg = LlamaConfig(vocab_size=c["vocab"], max_position_embeddings=c["context"],
                      hidden_size=c["dim"], num_hidden_layers=c["layers"],
                      num_attention_heads=c["heads"], num_key_value_heads=c["kv_heads"],
                      intermediate_size=c["ffn"], rms_norm_eps=c["norm_eps"],
                      rope_theta=c["rope_theta"], hidden_act="silu", attention_bias=False,
                      mlp_bias=False, attention_dropout=0.0, tie_word_embeddings=c["tie"])
    return LlamaForCausalLM(cfg), False


def sync():
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def timed(fn, steps):
    fn()  # warm up
    sync()
    rates = []
    for _ in range(steps):
        start = time.perf_counter()
        tokens = fn()
        sync()
        rates.append(tokens / (time.perf_counter() - start))
    rates.sort()
    return statistics.median(rates), rates[0], rates[-1]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--config", choices=sorted(CONFIGS), default="tiny")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--threads", default="1,2")
    p.add_argument("--rows", default="", help="measure only the rows whose name contains this text")
    p.add_argument("--decode-tokens", type=int, default=64)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                   help="where the model runs (cuda: float32, TF32 off, as lorac's exact path)")
    args = p.parse_args()
    if args.steps < 1 or args.decode_tokens < 1:
        p.error("--steps and --decode-tokens must be positive")
    rows = [r for r in ROWS if args.rows in r]
    if not rows:
        p.error(f"--rows {args.rows!r} matches no measurement")

    c = CONFIGS[args.config]
    torch.manual_seed(1)
    model, fan_in_fan_out = build(c)
    model = get_peft_model(model, LoraConfig(r=c["rank"], lora_alpha=c["alpha"],
                                             target_modules=c["targets"],
                                             fan_in_fan_out=fan_in_fan_out, lora_dropout=0.0,
                                             bias="none"))
    if args.device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        model = model.to("cuda")
    trainable = [q for q in model.parameters() if q.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=3e-4, weight_decay=0.0)
    V, B, T, C = c["vocab"], c["batch"], c["seq"], c["context"]
    x = torch.randint(0, V, (B, T)).to(args.device)
    y = torch.randint(0, V, (B, T)).to(args.device)
    # As in lorac: the prompt is a full context, repeating the batch's tokens
    # when the context is longer than the batch (bench-llama).
    prompt = x.reshape(-1).repeat((C + B * T - 1) // (B * T))[:C].reshape(1, C)
    n_decode = min(args.decode_tokens, C)
    merged = None

    def train_step():
        model.train()
        logits = model(input_ids=x).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, c["clip"])
        opt.step()
        return B * T

    def forward():
        model.eval()
        with torch.no_grad():
            model(input_ids=prompt)
        return C

    # transformers 5.24 renamed past_key_values to cache (argument and output).
    cache_kw = "cache" if "cache" in inspect.signature(type(model.base_model.model).forward).parameters \
        else "past_key_values"

    def decoder(m):
        def decode():
            m.eval()
            with torch.no_grad():
                past = None  # an empty cache, as lorac's decode starts at position 0
                for i in range(n_decode):
                    out = m(input_ids=prompt[:, i:i + 1], use_cache=True, **{cache_kw: past})
                    past = getattr(out, cache_kw)
            return n_decode
        return decode

    def decode_merged():
        nonlocal merged
        if merged is None:
            merged = copy.deepcopy(model).merge_and_unload()
        return decoder(merged)()

    fns = {"train step, LoRA": train_step, "forward, adapter unmerged": forward,
           "decode, adapter unmerged": decoder(model), "decode, adapter merged": decode_merged}

    n_train = sum(q.numel() for q in trainable)
    print(f"pytorch {torch.__version__} on {args.device} {c['name']} ({c['arch']}): batch {B} x {T}, context {C}, "
          f"LoRA {n_train} trainable; median [min-max] of {args.steps} runs")
    print(f"{'measurement':28s} {'threads':>8s} {'tokens/s':>26s}")
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        for name in rows:
            med, lo, hi = timed(fns[name], args.steps)
            print(f"{name:28s} {threads:8d} {med:10.0f} [{lo:.0f}-{hi:.0f}]")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
