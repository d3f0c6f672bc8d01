"""Analytical queueing model vs discrete-event simulation -> docs/queueing.md (tables part).

Run: python bench/queueing_report.py > /tmp/tables.md  (seeded; ~20 s on 2 cores)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from infercap.catalog import load_catalog  # noqa: E402
from infercap.queueing import Lengths, analyse, capacity, lognormal_samples  # noqa: E402
from infercap.simulate import simulate  # noqa: E402
from test_queueing import engine_for  # noqa: E402

CASES = [
    ("llama-3.1-70b", "h100-sxm", "fp8", 4, 256, Lengths.fixed(2000, 300), "2000 / 300 fixed"),
    ("llama-3.1-70b", "h100-sxm", "fp8", 4, 64, Lengths.fixed(2000, 300),
     "2000 / 300 fixed, cap 64"),
    ("llama-3.1-8b", "h100-sxm", "bf16", 1, 256, Lengths.fixed(512, 512), "512 / 512 fixed"),
    ("llama-3.1-8b", "h100-sxm", "bf16", 1, 32, Lengths.fixed(128, 1024),
     "128 / 1024 fixed, cap 32"),
    ("llama-3.1-70b", "h200-sxm", "fp8", 2, 512,
     Lengths(lognormal_samples(2000, {"p90": 4000}), lognormal_samples(300, {"p90": 700})),
     "lognormal 2000 (p90 4000) / 300 (p90 700)"),
]


def main() -> None:
    cat = load_catalog()
    for model, gpu, prec, tp, cap, lengths, label in CASES:
        e = engine_for(cat, model, gpu, prec, tp, cap, lengths)
        c = capacity(e)[0]
        print(f"\n### {model} · {gpu} · {prec} · tp{tp} · {label} (batch cap "
              f"{int(e.batch_cap[0])}, capacity {c:.2f} requests/s)\n")
        print("| load | TTFT p50 ms (model / sim / err) | TTFT p99 ms | TPOT p50 ms | "
              "TPOT p99 ms |")
        print("|---|---|---|---|---|")
        for load in (0.1, 0.3, 0.5, 0.7, 0.8, 0.9):
            q = analyse(e, np.array([load * c]))
            s = simulate(e, 0, load * c, requests=8000, seed=1).percentiles((0.5, 0.99))
            a_t, a_p = q.ttft_quantiles((0.5, 0.99))[0], q.tpot_quantiles((0.5, 0.99))[0]
            cells = []
            for a, b in ((a_t[0], s["ttft"][0]), (a_t[1], s["ttft"][1]), (a_p[0], s["tpot"][0]),
                         (a_p[1], s["tpot"][1])):
                err = (a / b - 1) * 100
                mark = " **" if abs(err) > 15 else ""
                cells.append(f"{a * 1e3:.1f} / {b * 1e3:.1f} / {err:+.0f}%{mark}")
            print(f"| {load:.0%} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
