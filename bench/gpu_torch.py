"""torch.matmul (cuBLAS) at the shapes bench/gpu_check.sh times lorac at:
y = x·Wᵀ + s·(x·Aᵀ)·Bᵀ, fp32 (TF32 off, as lorac's exact path) and bf16,
CUDA events over 20 repeats after 3 warm-ups. One JSON line per shape."""
import json

import torch

SHAPES = [(2048, 768, 768, 8), (2048, 768, 768, 64), (2048, 768, 3072, 16), (2048, 3072, 768, 16), (1024, 4096, 4096, 16),
          (4096, 4096, 4096, 16)]


def time_ms(fn, reps=20):
    for _ in range(3):
        fn()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / reps


def main():
    torch.backends.cuda.matmul.allow_tf32 = False
    g = torch.Generator(device="cuda").manual_seed(0)
    for tokens, k, m, r in SHAPES:
        rec = {"tokens": tokens, "in": k, "out": m, "r": r}
        for name, dtype in (("f32", torch.float32), ("bf16", torch.bfloat16)):
            x = torch.rand(tokens, k, device="cuda", generator=g).to(dtype)
            w = torch.rand(m, k, device="cuda", generator=g).to(dtype)
            a = torch.rand(r, k, device="cuda", generator=g).to(dtype)
            b = torch.rand(m, r, device="cuda", generator=g).to(dtype)
            rec["torch_%s_ms" % name] = time_ms(lambda: torch.matmul(x, w.t()) + 2.0 * torch.matmul(torch.matmul(x, a.t()), b.t()))
            rec["torch_%s_base_ms" % name] = time_ms(lambda: torch.matmul(x, w.t()))
            # The fused GEMM's work with t given: x*W^T + t*B^T, as cuBLAS
            # does it (a matmul, then addmm adding the rank-r product).
            t = torch.matmul(x, a.t())
            rec["torch_%s_fused_ms" % name] = time_ms(lambda: torch.addmm(torch.matmul(x, w.t()), t, b.t()))
        print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    main()
