"""Annotate the shipped InferenceX DeepSeek-R1 cases with the engine settings of their scripts.

The InferenceX runs (infercap/benchmarks/inferencex.yaml) were launched by the scripts in
SemiAnalysisAI/InferenceX benchmarks/ (read 2026-12-02; the scripts changed over the runs'
dates, so these are the settings of the scripts' current versions):

- SGLang, dsr1_fp8_b200.sh: TP 8: --scheduler-recv-interval 30 if CONC >= 16 else 10,
  --max-running-requests 128, --mem-fraction-static 0.82, --chunked-prefill-size 32768;
  TP 4: 10, 32, 0.95, 8192; --kv-cache-dtype fp8_e4m3.
- SGLang, dsr1_fp4_b200.sh: recv interval 30 / 10 as above, --max-running-requests 256,
  --mem-fraction-static 0.85, --chunked-prefill-size 16384, fp8 KV.
- SGLang, dsr1_fp8_h200.sh: --max-running-requests 512 (1k/1k) else 256, chunked prefill 32768,
  --mem-fraction-static 0.82, no recv interval, KV in the model dtype.
- TensorRT-LLM, dsr1_fp{4,8}_{b200,h200}_trt.sh: kv_cache_config dtype fp8,
  free_gpu_memory_fraction 0.8 (B200; fp8 B200: 0.7 at CONC >= 256 for 1k/1k and 1k/8k, 0.75
  at TP 4 for 8k/1k) or 0.75 (H200), --max_num_tokens max(8192, ceil64(CONC + ISL + 64)),
  with DP attention attention_dp_config {enable_balance: true, timeout_iters: 60,
  batching_wait_iters: 0}; fp8 B200 1k/1k at 64 <= CONC < 256: batch_wait_timeout_iters 40,
  batch_wait_max_tokens_ratio 0.8 (PyExecutor applies batch waiting only without DP attention).

A run's max-running-requests is stated only where the run's concurrency is within it: runs at
a higher concurrency measured a TPOT that only a larger running batch explains (the scripts
set the cap to the concurrency in their earlier versions).

Run from the repository root: python bench/annotate_engine_args.py (idempotent: cases that
already carry engine_args are left alone).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import yaml

FILE = Path("infercap/benchmarks/inferencex.yaml")
NOTE = "# the InferenceX script of the run (bench/annotate_engine_args.py)"


def nominal(c: dict, key: str) -> int:
    rng = c.get(f"{key}_tokens_range")
    return int(rng[1]) if rng else int(round(c[f"{key}_tokens"]))


def settings(c: dict) -> tuple[dict, str | None] | None:
    if not str(c.get("source", "")).startswith("InferenceX") or c.get("engine_args"):
        return None
    if c.get("model") not in ("deepseek-r1", "deepseek-v3") or c.get("scenario") != "concurrency":
        return None
    if c.get("disaggregated"):
        return None
    conc, tp, dp = int(c["concurrency"]), int(c["tp"]), int(c.get("dp", 1))
    isl, osl = nominal(c, "input"), nominal(c, "output")
    gpu, w, eng = c["gpu"], c["weights"], c.get("engine")
    out = _settings(conc, tp, dp, isl, osl, gpu, w, eng)
    if out and eng == "sglang" and out[0].get("max_batch_size", conc) < conc:
        del out[0]["max_batch_size"]
    return out


def _settings(conc: int, tp: int, dp: int, isl: int, osl: int, gpu: str, w: str,
              eng: str | None) -> tuple[dict, str | None] | None:
    if eng == "sglang" and tp in (4, 8) and dp == 1:
        if gpu == "b200" and w == "fp8":
            if tp == 8:
                args = {"recv_interval_iterations": 30 if conc >= 16 else 10,
                        "max_batch_size": 128, "gpu_memory_utilization": 0.82,
                        "max_num_tokens": 32768}
            else:
                args = {"recv_interval_iterations": 10, "max_batch_size": 32,
                        "gpu_memory_utilization": 0.95, "max_num_tokens": 8192}
            return args, "fp8"
        if gpu == "b200" and w == "fp4":
            return {"recv_interval_iterations": 30 if conc >= 16 else 10, "max_batch_size": 256,
                    "gpu_memory_utilization": 0.85, "max_num_tokens": 16384}, "fp8"
        if gpu == "h200-sxm" and w == "fp8":
            return {"max_batch_size": 512 if (isl, osl) == (1024, 1024) else 256,
                    "gpu_memory_utilization": 0.82, "max_num_tokens": 32768}, None
        return None
    if eng == "trtllm" and tp * dp <= 8:
        tokens = max(8192, math.ceil((conc + isl + 64) / 64) * 64)
        if gpu == "h200-sxm":
            frac = 0.75
        elif w == "fp8" and conc >= 256 and (isl, osl) in ((1024, 1024), (1024, 8192)):
            frac = 0.7
        elif w == "fp8" and tp * dp == 4 and (isl, osl) == (8192, 1024):
            frac = 0.75
        else:
            frac = 0.8
        args: dict = {"max_num_tokens": tokens, "kv_cache_free_memory_fraction": frac}
        if dp > 1:
            args["dp_balance_timeout_iterations"] = 60
        elif gpu == "b200" and w == "fp8" and (isl, osl) == (1024, 1024) and 64 <= conc < 256:
            args.update(batch_wait_iterations=40, batch_wait_tokens_fraction=0.8)
        return args, "fp8"
    return None


def main() -> None:
    text = FILE.read_text()
    cases = {c["id"]: c for c in yaml.safe_load(text)["cases"]}
    out: list[str] = []
    current: str | None = None
    n = 0
    for line in text.splitlines(keepends=True):
        m = re.match(r"- id: (\S+)", line)
        if m:
            current = m.group(1)
        if current and line.startswith("  metric:"):
            got = settings(cases[current])
            if got:
                args, kv = got
                if kv and "kv_cache" not in cases[current]:
                    out.append(f"  kv_cache: {kv}\n")
                body = ", ".join(f"{k}: {v}" for k, v in args.items())
                out.append(f"  engine_args: {{{body}}}  {NOTE}\n")
                n += 1
            current = None
        out.append(line)
    FILE.write_text("".join(out))
    print(f"annotated {n} cases")


if __name__ == "__main__":
    main()
