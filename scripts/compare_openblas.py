#!/usr/bin/env python3
"""Compare qkv's matrix multiply with numpy's OpenBLAS, the `gemm` crate and
`matrixmultiply`, all on one thread, and print a Markdown table of time ratios.

Run from the crate root, with no other benchmark running at the same time:

    flock /tmp/qkv-bench.lock python3 scripts/compare_openblas.py

Each of `--runs` rounds first runs `cargo bench --bench matmul` (qkv and the Rust
baselines in one criterion run), then times numpy's `matmul` on the same shapes. The
numpy timing runs in a child process whose environment lacks OPENBLAS_CORETYPE and
OPENBLAS_L2_SIZE, because some machines set them to force an older, slower OpenBLAS
kernel. The child asks threadpoolctl which kernel OpenBLAS runs, and the script
prints it. `--skip-cargo` reuses the last criterion results under target/criterion.

A ratio is qkv's time divided by the baseline's, so a value at or below 1.00 means
qkv is at least as fast. Each round gives one ratio per shape, from median times; the
table shows the median ratio over the rounds and, in brackets, the lowest and highest.

Requires numpy and threadpoolctl (`pip install numpy threadpoolctl`).
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

# (name, m, k, n, b_transposed): the shapes of benches/matmul.rs. A transposed B is
# stored n × k and read as its transpose, as attention reads the keys in Q·Kᵀ.
SQUARE = [8, 16, 32, 64, 128, 256, 512, 1024]
SHAPES = [(str(n), n, n, n, False) for n in SQUARE] + [
    ("2048x64*64x2048", 2048, 64, 2048, True),
    ("2048x2048*2048x64", 2048, 2048, 64, False),
]
TYPES = ["f32", "f64"]
CRITERION = Path("target/criterion")


def time_numpy():
    """Times numpy's matmul on one thread; returns {(type, shape): seconds} and the
    OpenBLAS description that threadpoolctl reports."""
    import numpy as np
    from threadpoolctl import threadpool_info, threadpool_limits

    blas = [info for info in threadpool_info() if info.get("internal_api") == "openblas"]
    results = {}
    rng = np.random.default_rng(0)
    with threadpool_limits(limits=1, user_api="blas"):
        for type_name in TYPES:
            dtype = np.float32 if type_name == "f32" else np.float64
            for name, m, k, n, b_transposed in SHAPES:
                a = rng.uniform(-1, 1, (m, k)).astype(dtype)
                b = rng.uniform(-1, 1, (n, k) if b_transposed else (k, n)).astype(dtype)
                b = b.T if b_transposed else b
                c = np.empty((m, n), dtype=dtype)
                results[(type_name, name)] = median_time(lambda: np.matmul(a, b, out=c), 2.0 * m * n * k)
    return results, blas


def median_time(f, flops):
    """Returns the median time of one call of `f`, over batches of about 20 ms."""
    f()
    calls = max(1, int(2e7 / max(flops, 1.0) * 100))
    start = time.perf_counter()
    for _ in range(calls):
        f()
    per_call = (time.perf_counter() - start) / calls
    calls = max(1, int(0.02 / per_call))
    samples = []
    for _ in range(25):
        start = time.perf_counter()
        for _ in range(calls):
            f()
        samples.append((time.perf_counter() - start) / calls)
    samples.sort()
    return samples[len(samples) // 2]


def criterion_median(group, bench, shape):
    """Returns criterion's median time in seconds, or None when it was not measured."""
    shape_dir = shape.replace("*", "_")
    path = CRITERION / group / bench / shape_dir / "new" / "estimates.json"
    if not path.exists():
        return None
    return json.loads(path.read_text())["median"]["point_estimate"] * 1e-9


def ratio(numerator, denominator):
    """Returns numerator / denominator, or None when either is missing."""
    if numerator is None or denominator is None:
        return None
    return numerator / denominator


def summary(ratios):
    """Formats the median of the ratios with their range, or a dash for none."""
    ratios = sorted(r for r in ratios if r is not None)
    if not ratios:
        return "–"
    median = ratios[len(ratios) // 2] if len(ratios) % 2 else (ratios[len(ratios) // 2 - 1] + ratios[len(ratios) // 2]) / 2
    if len(ratios) == 1:
        return f"{median:.2f}"
    return f"{median:.2f} ({ratios[0]:.2f}–{ratios[-1]:.2f})"


def measure_round(skip_cargo, measurement_time):
    """Runs one round and returns {(type, shape, baseline): ratio} and the BLAS info."""
    if not skip_cargo:
        command = ["cargo", "bench", "--bench", "matmul", "--", "--noplot", "--measurement-time", str(measurement_time)]
        subprocess.run(command, check=True)

    env = {key: value for key, value in os.environ.items() if key not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    child = subprocess.run(
        [sys.executable, __file__, "--numpy-only"], env=env, check=True, capture_output=True, text=True
    )
    numpy_result = json.loads(child.stdout)
    openblas = {(t, s): v for t, s, v in numpy_result["times"]}

    ratios = {}
    for type_name in TYPES:
        group = f"matmul_{type_name}"
        for name, *_ in SHAPES:
            qkv = criterion_median(group, "qkv", name)
            ratios[(type_name, name, "time")] = qkv
            ratios[(type_name, name, "OpenBLAS")] = ratio(qkv, openblas.get((type_name, name)))
            for bench in ("gemm", "matrixmultiply", "naive"):
                ratios[(type_name, name, bench)] = ratio(qkv, criterion_median(group, bench, name))
            ratios[(type_name, name, "2 threads")] = ratio(qkv, criterion_median(group, "qkv-2-threads", name))
    return ratios, numpy_result["blas"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip-cargo", action="store_true", help="reuse the last criterion results")
    parser.add_argument("--runs", type=int, default=3, help="rounds of measurement (default 3)")
    parser.add_argument(
        "--measurement-time", type=float, default=2.0, help="criterion measurement time per benchmark, in seconds"
    )
    parser.add_argument("--numpy-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.numpy_only:
        results, blas = time_numpy()
        json.dump({"blas": blas, "times": [[t, s, v] for (t, s), v in results.items()]}, sys.stdout)
        return

    rounds = []
    for _ in range(args.runs):
        ratios, blas = measure_round(args.skip_cargo, args.measurement_time)
        rounds.append(ratios)

    for info in blas:
        print(f"OpenBLAS {info.get('version')}, kernel {info.get('architecture')}, {info.get('filepath')}")
    if not any(info.get("architecture") == "SkylakeX" for info in blas):
        print("warning: OpenBLAS does not run its SkylakeX (AVX-512) kernel", file=sys.stderr)

    def column(type_name, name, key):
        return summary(r.get((type_name, name, key)) for r in rounds)

    print()
    print(f"Ratios of qkv's time to each baseline's over {len(rounds)} rounds (median, then range):")
    print()
    print("| type | shape | qkv time | qkv / OpenBLAS | qkv / gemm | qkv / matrixmultiply | qkv / naive |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for type_name in TYPES:
        for name, *_ in SHAPES:
            times = sorted(t for r in rounds if (t := r.get((type_name, name, "time"))) is not None)
            if not times:
                continue
            row = [type_name, name.replace("*", "·"), f"{times[len(times) // 2] * 1e6:.1f} µs"]
            row += [column(type_name, name, key) for key in ("OpenBLAS", "gemm", "matrixmultiply", "naive")]
            print("| " + " | ".join(row) + " |")

    print()
    print("| type | n | speed-up of 2 threads (1-thread time / 2-thread time) |")
    print("| --- | --- | ---: |")
    for type_name in TYPES:
        print(f"| {type_name} | 1024 | {column(type_name, '1024', '2 threads')} |")


if __name__ == "__main__":
    main()
