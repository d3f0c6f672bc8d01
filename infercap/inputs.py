"""Turn catalog objects into the per-configuration arrays the performance model takes.

GPUs and precisions are tabulated once (shape [G, Q]); a configuration picks a row of each
with index arrays, so building a million configurations is a few fancy-indexing operations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from infercap.catalog import GPU
from infercap.perf import Bytes, Figs, Rates
from infercap.precision import BYTES, Precision, compute_mode
from infercap.profile import FIGURES, Profile, Resolver


@dataclass(frozen=True)
class Tables:
    gpus: Sequence[GPU]
    precisions: Sequence[Precision]
    peak_flops: np.ndarray  # [G, Q] FLOP/s of the compute dtype
    gemm_bits: np.ndarray  # [G, Q]
    compute_dtype: np.ndarray  # [G, Q] str
    runnable: np.ndarray  # [G, Q] bool
    reason: np.ndarray  # [G, Q] str: why not runnable, or how it runs
    peak16: np.ndarray  # [G]
    bandwidth: np.ndarray  # [G] B/s
    memory: np.ndarray  # [G] B
    scale_up: np.ndarray  # [G] B/s
    scale_out: np.ndarray  # [G] B/s
    domain: np.ndarray  # [G]
    price: np.ndarray  # [G] USD per GPU-hour
    figures: dict[str, np.ndarray]  # name -> [G]
    w_bytes: np.ndarray  # [Q]
    e_bytes: np.ndarray  # [Q]
    kv_bytes: np.ndarray  # [Q]


def expert_only_quant(p: Precision) -> bool:
    """MXFP4 checkpoints (gpt-oss) quantise only the MoE experts; attention stays 16-bit."""
    return p.weights == "mxfp4"


def tabulate(
    gpus: Sequence[GPU],
    precisions: Sequence[Precision],
    resolver: Resolver,
    engine: Profile | None = None,
    *,
    allow_weight_only_fp4: bool = False,
) -> Tables:
    G, Q = len(gpus), len(precisions)
    peak = np.zeros((G, Q))
    bits = np.full((G, Q), 16.0)
    cdt = np.empty((G, Q), dtype=object)
    ok = np.zeros((G, Q), dtype=bool)
    why = np.empty((G, Q), dtype=object)
    for i, g in enumerate(gpus):
        for j, p in enumerate(precisions):
            mode = compute_mode(g, p)
            if mode is None:
                why[i, j] = f"{g.id} has no 16-bit tensor rate in its catalog entry"
                cdt[i, j] = "-"
                continue
            w4a4 = p.weights in ("fp4", "nvfp4") and p.activations in ("fp4", "nvfp4")
            if w4a4 and mode.weight_only and not allow_weight_only_fp4:
                why[i, j] = f"no fp4 tensor cores on {g.id}: {p.name} not offered"
                cdt[i, j] = "-"
                continue
            ok[i, j] = True
            peak[i, j] = mode.tflops * 1e12
            bits[i, j] = {"8bit": 8.0, "4bit": 4.0}.get(mode.bits, 16.0)
            cdt[i, j] = mode.dtype + ("(w-only)" if mode.weight_only else "")
            why[i, j] = mode.note
    figs = {name: np.zeros(G) for name in FIGURES}
    for i, g in enumerate(gpus):
        values = resolver.figures(g, engine)
        for name in FIGURES:
            figs[name][i] = values[name]

    def col(fn: object) -> np.ndarray:
        return np.array([fn(g) for g in gpus], dtype=float)  # type: ignore[operator]

    return Tables(
        gpus=list(gpus),
        precisions=list(precisions),
        peak_flops=peak,
        gemm_bits=bits,
        compute_dtype=cdt,
        runnable=ok,
        reason=why,
        peak16=col(lambda g: g.dense_tflops.get("bf16", g.dense_tflops.get("fp16", 0.0)) * 1e12),
        bandwidth=col(lambda g: g.memory_bandwidth_tb_per_s * 1e12),
        memory=col(lambda g: g.memory_bytes),
        scale_up=col(lambda g: g.scale_up_gb_per_s_per_direction * 1e9),
        scale_out=col(lambda g: g.scale_out_gb_per_s_per_direction * 1e9),
        domain=col(lambda g: g.scale_up_domain_gpus),
        price=col(lambda g: g.price.usd_per_gpu_hour),
        figures=figs,
        w_bytes=np.array(
            [BYTES["bf16"] if expert_only_quant(p) else p.weight_bytes for p in precisions]
        ),
        e_bytes=np.array([p.weight_bytes for p in precisions]),
        kv_bytes=np.array([p.kv_bytes for p in precisions]),
    )


def gather(t: Tables, gi: np.ndarray, qi: np.ndarray) -> tuple[Rates, Figs, Bytes]:
    """Per-configuration arrays for GPU indices ``gi`` and precision indices ``qi``."""
    rates = Rates(
        peak_flops=t.peak_flops[gi, qi],
        peak16_flops=t.peak16[gi],
        bandwidth=t.bandwidth[gi],
        memory=t.memory[gi],
        scale_up=t.scale_up[gi],
        scale_out=t.scale_out[gi],
        domain=t.domain[gi],
        gemm_bits=t.gemm_bits[gi, qi],
    )
    figs = Figs({k: v[gi] for k, v in t.figures.items()})
    byt = Bytes(weights=t.w_bytes[qi], experts=t.e_bytes[qi], kv=t.kv_bytes[qi])
    return rates, figs, byt
