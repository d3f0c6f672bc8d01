"""Regenerate the shipped engine profiles (infercap/profiles/<engine>.yaml) by fitting the
priors in bench/priors/ to the shipped measurements (infercap/benchmarks/*.yaml):

    python bench/calibrate_profiles.py            # all engines
    python bench/calibrate_profiles.py trtllm     # one (a release line: trtllm-0.x, trtllm)

The offline TensorRT-LLM 0.x line (many cases on several GPUs) gets per-GPU GEMM/bandwidth
figures; the served lines fit engine-level figures only (see SERVED below).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
# profile id (an engine family's release line) -> fit figures per GPU?
PER_GPU = {"trtllm-0.x": True, "trtllm": True, "vllm": True, "sglang": True, "pytorch": True}
# The served lines (TensorRT-LLM 1.x, vLLM, SGLang behind their HTTP servers, measured by a
# benchmark client: infercap/benchmarks/inferencex*.yaml) are fitted by simulating each finite
# closed-loop run (--simulate), in two stages that each fit the figures a metric depends on:
# TPOT first (the decode step: per-layer, step, per-sequence and collective time, and per GPU
# the achieved memory bandwidth), then TTFT from that (the server's front end, and the B200's
# prefill GEMM shares: no kernel measurement covers B200, while H100/H200 keep the shares their
# measured kernels give). TensorRT-LLM and SGLang fit the front end only: freed, their B200
# shares fall to the bounds (0.15 for fp4) to absorb DeepSeek-R1's TTFT, which their runs'
# flags explain (attention-DP balancing waits, scheduler polling; docs/accuracy.md), and would
# ruin dense models' prefill. The 0.x line keeps the offline fit.
STAGES = {
    "tpot_ms": "step_overhead_ms,sequence_overhead_us,collective_latency_us,layer_overhead_us,"
               "memory_bandwidth_fraction",
    "ttft_ms": "request_overhead_ms,gemm_peak_fraction_8bit@b200,gemm_peak_fraction_4bit@b200",
}
TTFT_FIGURES = {"sglang": "request_overhead_ms", "trtllm": "request_overhead_ms"}
SERVED = {"trtllm", "vllm", "sglang"}
FIGURES: dict[str, str] = {}
SIMULATE = SERVED
SCENARIOS = {"trtllm": "concurrency", "vllm": "concurrency", "sglang": "concurrency"}
NOT_FITTED: set[str] = set()
# what a fitted served figure stands for, beyond "fitted": written into the profile's sources
NOTES = {
    "vllm": {"request_overhead_ms": "fitted by infercap calibrate on the InferenceX vLLM runs' "
             "TTFT (two-stage, bench/calibrate_profiles.py): vLLM's OpenAI server before the "
             "first token; GPUStack measured 28-106 ms (median 45) for its chat endpoint"},
    "trtllm": {"request_overhead_ms": "fitted by infercap calibrate on the InferenceX TensorRT-LLM "
               "1.x runs' TTFT (batch waiting of the Llama runs simulated from their "
               "engine_args): trtllm-serve's front end (GPUStack measured ~36 ms) plus what the "
               "runs' other flags add (attention-DP balancing waits on DeepSeek-R1: "
               "docs/accuracy.md)"},
    "sglang": {"request_overhead_ms": "fitted by infercap calibrate on the InferenceX SGLang runs' "
               "TTFT, at its 100 ms bound: far above SGLang's HTTP front end (GPUStack: 14-30 "
               "ms); it absorbs what the runs' flags add (--scheduler-recv-interval 10-30, "
               "max-running-requests caps) and untagged 2025-11 builds with TTFTs of seconds "
               "(docs/accuracy.md)"},
}
# a served line's fit starts from its prior plus the per-GPU kernel figures of this fitted line
# (TensorRT-LLM 1.x runs the same GEMM and attention kernels on the same GPUs as 0.x)
GPUS_FROM = {"trtllm": "trtllm-0.x"}


def base_file(engine: str) -> Path:
    """The prior of ``engine``, completed with the per-GPU figures of GPUS_FROM's fit."""
    prior = ROOT / "bench" / "priors" / f"{engine}.yaml"
    if engine not in GPUS_FROM:
        return prior
    data = yaml.safe_load(prior.read_text())
    fitted = yaml.safe_load((ROOT / "infercap" / "profiles" / f"{GPUS_FROM[engine]}.yaml")
                            .read_text())
    data["gpus"] = {**fitted.get("gpus", {}), **(data.get("gpus") or {})}
    out = Path(tempfile.mkdtemp()) / f"{engine}.yaml"
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out


def main(engines: list[str]) -> int:
    for engine in engines or list(PER_GPU):
        if engine in NOT_FITTED:
            prior = (ROOT / "bench" / "priors" / f"{engine}.yaml").read_text()
            (ROOT / "infercap" / "profiles" / f"{engine}.yaml").write_text(prior)
            print(f"{engine}: not fitted (no clean cases); shipped the prior", flush=True)
            continue
        target = ROOT / "infercap" / "profiles" / f"{engine}.yaml"
        stages = list(STAGES.items()) if engine in SERVED else [(None, FIGURES.get(engine))]
        base, fits = base_file(engine), {}
        for metric, figures in stages:
            figures = TTFT_FIGURES.get(engine, figures) if metric == "ttft_ms" else figures
            out = target if metric in (None, stages[-1][0]) else \
                Path(tempfile.mkdtemp()) / f"{engine}-{metric}.yaml"
            cmd = [sys.executable, "-m", "infercap", "calibrate", "--engine", engine,
                   "--base", str(base), "--per-gpu" if PER_GPU[engine] else "--global",
                   "-o", str(out)]
            if figures:
                cmd += ["--figures", figures]
            if metric:
                cmd += ["--metric", metric]
            if engine in SCENARIOS:
                cmd += ["--scenario", SCENARIOS[engine]]
            if engine in SIMULATE:
                cmd += ["--simulate"]
            print("$", " ".join(cmd[1:]), flush=True)
            rc = subprocess.call(cmd, cwd=ROOT)
            if rc:
                return rc
            if metric:
                fits[metric] = yaml.safe_load(out.read_text()).get("fit")
            base = out
        if len(fits) > 1:  # keep each stage's fit statistics, by metric
            data = yaml.safe_load(target.read_text())
            data["fit"] = fits
            data.setdefault("sources", {}).update(NOTES.get(engine, {}))
            head = target.read_text().split("\n", 1)[0]
            target.write_text(head + "\n" + yaml.safe_dump(data, sort_keys=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
