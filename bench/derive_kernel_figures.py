"""Derive the GPU-level efficiency figures from measured GEMM and copy kernels.

Input: bench/data/kernels-<gpu>.json (copied from ../shared/benchmarks: cuBLAS bf16/fp8 GEMM
times for M x K x N from 1 to 16,384 rows, and a device-to-device copy rate, measured with
PyTorch on one H100 SXM and one H200 SXM).

Output (printed as YAML, pasted into hardware/<gpu>.yaml `efficiency:` and
infercap/profiles/default.yaml): gemm_peak_fraction_16bit, gemm_peak_fraction_8bit,
memory_bandwidth_fraction, gemm_half_tokens — the figures of the GEMM roofline in
infercap/perf.py:  t = max(bytes / (BW x bw_frac), flops / (peak x frac x M / (M + half))),
plus a fixed kernel latency t0 that the per-layer overhead figure carries.

    python bench/derive_kernel_figures.py
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
# dense peaks and bandwidth from the hardware catalog (sources there)
SPECS = {
    "h100-sxm": {"bf16": 989.4e12, "fp8": 1978.9e12, "bw": 3.35e12},
    "h200-sxm": {"bf16": 989e12, "fp8": 1978e12, "bw": 4.8e12},
}


def fit(gpu: str) -> dict[str, float]:
    d = json.loads((HERE / "data" / f"kernels-{gpu}.json").read_text())
    spec = SPECS[gpu]
    bf = [g for g in d["gemm"] if g["dtype"] == "bf16"]
    f8 = [g for g in d["gemm"] if g["dtype"] == "fp8"]
    frac16 = statistics.median(g["tflops"] * 1e12 / spec["bf16"] for g in bf if g["M"] >= 1024)
    frac8 = statistics.median(g["tflops"] * 1e12 / spec["fp8"] for g in f8 if g["M"] >= 1024)
    # weight streaming: GEMMs with M <= 16 rows are bound by reading the K x N weights. Fit
    # t = t0 + bytes / BW over them (least squares): the slope is the achieved bandwidth, the
    # intercept t0 the fixed latency of one kernel (carried by the per-layer overhead figure).
    # The copy kernel's rate caps it (no streaming kernel beats a plain copy).
    small = [g for g in bf if g["M"] <= 16]
    x = np.array([2.0 * g["K"] * g["N"] for g in small])
    y = np.array([g["ms"] * 1e-3 for g in small])
    slope, t0 = np.polyfit(x, y, 1)
    copy = d["copy_GBps_read_plus_write"] * 1e9 / spec["bw"]
    bw = min(1.0 / slope / spec["bw"], copy)
    # the ramp: least squares on log time over all bf16 GEMMs
    best = (1e9, 0.0)
    for half in np.arange(0.0, 512.0, 1.0):
        err = 0.0
        for g in bf:
            m, k, n = g["M"], g["K"], g["N"]
            nbytes = 2.0 * (k * n + m * k + m * n)
            t_mem = nbytes / (spec["bw"] * bw)
            t_cmp = 2.0 * m * k * n / (spec["bf16"] * frac16 * m / (m + half))
            err += np.log((t0 + max(t_mem, t_cmp)) / (g["ms"] * 1e-3)) ** 2
        best = min(best, (err, half))
    rms = float(np.sqrt(best[0] / len(bf)))
    return {
        "gemm_peak_fraction_16bit": round(frac16, 3),
        "gemm_peak_fraction_8bit": round(frac8, 3),
        "memory_bandwidth_fraction": round(bw, 3),
        "gemm_half_tokens": float(best[1]),
        "copy_fraction": round(copy, 3),
        "kernel_latency_us": round(float(t0) * 1e6, 1),
        "rms_log_error_of_gemm_roofline": round(rms, 3),
    }


if __name__ == "__main__":
    for gpu in SPECS:
        print(f"{gpu}:")
        for k, v in fit(gpu).items():
            print(f"  {k}: {v}")
