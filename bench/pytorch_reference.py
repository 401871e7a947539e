"""PyTorch + PEFT reference for lorac's training benchmark (BENCH.md).

Builds the bench-tiny configuration (GPT-2 style: vocab 256, context 128,
dim 256, 4 layers, 4 heads, ffn 1024, biases, untied head), wraps it with a
PEFT LoRA adapter (rank 8, alpha 16 on c_attn), and times training steps
(forward, backward, AdamW on the adapter) at batch 16 x 128, and forward
passes at 1 x 128, on 1 and 2 threads. Prints medians and [min-max] over the
timed steps, in tokens/s, in the same layout as `lorac bench`.

    python bench/pytorch_reference.py [--steps 8] [--threads 1,2]

Needs torch, transformers and peft (conformance/requirements.txt).
"""

import argparse
import statistics
import time

import torch
from peft import LoraConfig, get_peft_model
from transformers import GPT2Config, GPT2LMHeadModel


def timed(fn, steps):
    fn()  # warm up
    rates = []
    for _ in range(steps):
        start = time.perf_counter()
        tokens = fn()
        rates.append(tokens / (time.perf_counter() - start))
    rates.sort()
    return statistics.median(rates), rates[0], rates[-1]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--threads", default="1,2")
    args = p.parse_args()

    torch.manual_seed(1)
    cfg = GPT2Config(vocab_size=256, n_positions=128, n_embd=256, n_layer=4, n_head=4, n_inner=1024,
                     activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                     tie_word_embeddings=False)
    model = GPT2LMHeadModel(cfg)
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["c_attn"],
                                             fan_in_fan_out=True, lora_dropout=0.0, bias="none"))
    trainable = [q for q in model.parameters() if q.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=3e-4, weight_decay=0.0)
    B, T = 16, 128
    x = torch.randint(0, 256, (B, T))
    y = torch.randint(0, 256, (B, T))
    prompt = torch.randint(0, 256, (1, T))

    def train_step():
        model.train()
        logits = model(input_ids=x).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 256), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return B * T

    def forward():
        model.eval()
        with torch.no_grad():
            model(input_ids=prompt)
        return T

    n_train = sum(q.numel() for q in trainable)
    print(f"pytorch {torch.__version__} bench-tiny (gpt2): batch {B} x {T}, LoRA {n_train} trainable; "
          f"median [min-max] of {args.steps} runs")
    print(f"{'measurement':28s} {'threads':>8s} {'tokens/s':>26s}")
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        for name, fn in (("train step, LoRA", train_step), ("forward, adapter unmerged", forward)):
            med, lo, hi = timed(fn, args.steps)
            print(f"{name:28s} {threads:8d} {med:10.0f} [{lo:.0f}-{hi:.0f}]")


if __name__ == "__main__":
    main()
