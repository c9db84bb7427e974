#!/usr/bin/env python3
"""Compare qkv's fused attention kernel with PyTorch's scaled_dot_product_attention on
the CPU, and measure the kernel's peak memory. Prints Markdown tables for BENCHMARKS.md.

Both sides run one head, f32, on the same shapes in one run, alternating, each timed as
the fastest of --reps repetitions after a warm-up. PyTorch runs with
torch.set_num_threads(1); qkv runs on one thread, and also on two at the largest n.
qkv is timed by examples/attention_timing.rs, built here with `cargo build --release`.

Usage, from the repository root, on an otherwise idle machine:

    pip install torch numpy
    python3 scripts/compare_torch.py [--reps 10] [--sizes 512,2048,4096] [--widths 64,128]

CI does not run this script.
"""

import argparse
import json
import platform
import re
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
TIMING = ROOT / "target" / "release" / "examples" / "attention_timing"
PEAK_MEMORY = ROOT / "target" / "release" / "examples" / "peak_memory"


def torch_seconds(n, d, causal, reps):
    """Returns the fastest of `reps` runs of torch SDPA on one head of n × d, f32."""
    q, k, v = (torch.rand(1, 1, n, d) * 2 - 1 for _ in range(3))
    F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        best = min(best, time.perf_counter() - start)
    return best


def qkv_seconds(n, d, causal, reps, threads=1, f64=False):
    """Returns the fastest of `reps` runs of qkv's fused kernel, from the timing example."""
    cmd = [str(TIMING), "--n", str(n), "--d", str(d), "--threads", str(threads), "--reps", str(reps)]
    if causal:
        cmd.append("--causal")
    if f64:
        cmd.append("--f64")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out)["seconds"]


def peak_rss_kib(n, d):
    """Returns the maximum resident set size, in KiB, of one f32 forward at n × d."""
    result = subprocess.run(
        ["/usr/bin/time", "-v", str(PEAK_MEMORY), str(n), str(d)], check=True, capture_output=True, text=True
    )
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr)
    if match is None:
        raise RuntimeError(f"/usr/bin/time -v printed no maximum resident set size:\n{result.stderr}")
    return int(match.group(1))


def cpu_model():
    try:
        lscpu = subprocess.run(["lscpu"], check=True, capture_output=True, text=True).stdout
        return re.search(r"Model name:\s*(.+)", lscpu).group(1).strip()
    except (OSError, subprocess.CalledProcessError, AttributeError):
        return platform.processor() or "unknown"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=10, help="timed repetitions per measurement (default 10)")
    parser.add_argument("--sizes", default="512,2048,4096", help="comma-separated token counts n")
    parser.add_argument("--widths", default="64,128", help="comma-separated head widths d")
    parser.add_argument("--memory-n", type=int, default=16384, help="n of the peak-memory run (default 16384)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    widths = [int(s) for s in args.widths.split(",")]

    subprocess.run(
        ["cargo", "build", "--release", "--example", "attention_timing", "--example", "peak_memory"],
        cwd=ROOT,
        check=True,
    )
    torch.set_num_threads(1)

    print(f"Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC. CPU: {cpu_model()}. "
          f"PyTorch {torch.__version__} (CPU capability {torch.backends.cpu.get_cpu_capability()}).")
    print()
    print("| n | d | mask | PyTorch f32 (ms) | qkv f32 (ms) | qkv / PyTorch | target | qkv f64 (ms) | f64 / f32 |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|---:|")
    for d in widths:
        for n in sizes:
            for causal in (False, True):
                t_torch = torch_seconds(n, d, causal, args.reps)
                t_qkv = qkv_seconds(n, d, causal, args.reps)
                t_f64 = qkv_seconds(n, d, causal, args.reps, f64=True)
                if n < 2048:
                    target = ""
                elif d == 64:
                    target = "≤ 0.70"
                else:
                    target = "≤ 0.80"
                print(f"| {n} | {d} | {'causal' if causal else 'none'} | {t_torch * 1e3:.2f} | {t_qkv * 1e3:.2f} "
                      f"| {t_qkv / t_torch:.2f} | {target} | {t_f64 * 1e3:.2f} | {t_f64 / t_qkv:.2f} |", flush=True)

    n = max(sizes)
    print()
    print("| n | d | mask | qkv 1 thread (ms) | qkv 2 threads (ms) | speed-up |")
    print("|---:|---:|---|---:|---:|---:|")
    for d in widths:
        for causal in (False, True):
            one_thread = qkv_seconds(n, d, causal, args.reps, threads=1)
            two_threads = qkv_seconds(n, d, causal, args.reps, threads=2)
            print(f"| {n} | {d} | {'causal' if causal else 'none'} | {one_thread * 1e3:.2f} "
                  f"| {two_threads * 1e3:.2f} | {one_thread / two_threads:.2f} |", flush=True)

    n, d = args.memory_n, 64
    io_mib = 4 * n * d * 4 / 2**20
    rss_mib = peak_rss_kib(n, d) / 1024
    print()
    print(f"Peak resident memory of one f32 forward at n = {n}, d = {d}: {rss_mib:.1f} MiB; "
          f"Q, K, V and the output take {io_mib:.1f} MiB, so the rest is {rss_mib - io_mib:.1f} MiB "
          f"(target ≤ 8 MiB). A materialised score matrix alone would take {4 * n * n / 2**20:.0f} MiB.")


if __name__ == "__main__":
    main()
