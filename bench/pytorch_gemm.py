"""PyTorch's float32 GEMM at the kernel shapes of lorac's benchmarks, for
side-by-side figures with `go test ./runtime/kern -bench CPULinear`.

For each (M tokens, K in, N out) it times y = x @ w.T + b (torch.nn.functional
.linear, as an nn.Linear layer runs) at each thread count, after one warm-up
call, and prints the median and [min-max] GFLOP/s of --repeats calls.

    python bench/pytorch_gemm.py [--repeats 5] [--threads 1,2]
"""

import argparse
import statistics
import time

import torch

SHAPES = [(2048, 768, 768), (2048, 768, 3072), (2048, 3072, 768), (1024, 4096, 4096),
          (2048, 256, 768), (2048, 256, 1024), (2048, 1024, 256)]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", default="1,2")
    args = p.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}: linear GFLOP/s, median [min-max] of {args.repeats}")
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        for m, k, n in SHAPES:
            x, w, b = torch.randn(m, k), torch.randn(n, k) / k**0.5, torch.randn(n)
            torch.nn.functional.linear(x, w, b)
            rates = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                torch.nn.functional.linear(x, w, b)
                rates.append(2 * m * k * n / (time.perf_counter() - start) / 1e9)
            rates.sort()
            print(f"{m}x{k}x{n:<6} threads {threads}  {statistics.median(rates):7.1f} [{rates[0]:.1f}-{rates[-1]:.1f}]")


if __name__ == "__main__":
    main()
