"""Number formats: bytes per element, and which tensor-core rate a GPU runs a precision at.

A precision is three formats: weights, activations (the GEMM inputs) and KV cache. The GEMM
runs at the GPU's dense rate for the *compute* dtype, decided here:

- weights and activations both 8-bit (fp8 or int8) and the GPU has that tensor core: 8-bit rate;
- weights and activations both 4-bit float and the GPU has fp4 tensor cores: 4-bit rate;
- anything else runs weight-only: the weights are stored narrow (saving memory and bandwidth)
  and de-quantised to 16-bit for the GEMM (Marlin/AWQ-style kernels), priced at the 16-bit rate;
- 16-bit runs at the bf16 rate, or fp16 where the GPU has no bf16 (T4, V100-class).

A GPU is never priced at a rate its catalog entry does not list.
"""

from __future__ import annotations

from dataclasses import dataclass

from infercap.catalog import GPU
from infercap.errors import UsageError

# Bytes per element, including block-scale overhead:
# - int4 (AWQ/GPTQ, group 128 with a 16-bit scale and zero): 4 + 32/128 bits = 4.25 bits;
# - mxfp4 (OCP MX: 32-element blocks with an 8-bit E8M0 scale): 4 + 8/32 = 4.25 bits;
# - nvfp4 (16-element blocks with an FP8 E4M3 scale, NVIDIA Blackwell): 4 + 8/16 = 4.5 bits;
#   "fp4" in measurement files means NVFP4 (TensorRT-LLM's FP4 format).
# - fp8 per-tensor or 128x128 block scales: overhead below 0.01% -> 1 byte.
BYTES = {
    "bf16": 2.0,
    "fp16": 2.0,
    "fp32": 4.0,
    "fp8": 1.0,
    "int8": 1.0,
    "int4": 4.25 / 8,
    "mxfp4": 4.25 / 8,
    "nvfp4": 4.5 / 8,
    "fp4": 4.5 / 8,
}
WEIGHT_FORMATS = ("bf16", "fp16", "fp8", "int8", "int4", "fp4", "mxfp4", "nvfp4")
ACT_FORMATS = ("bf16", "fp16", "fp8", "int8", "fp4", "mxfp4", "nvfp4")
KV_FORMATS = ("bf16", "fp16", "fp8", "int8", "fp4", "nvfp4")

_FAMILY = {
    "bf16": "16bit",
    "fp16": "16bit",
    "fp8": "fp8",
    "int8": "int8",
    "int4": "int4",
    "fp4": "fp4",
    "mxfp4": "fp4",
    "nvfp4": "fp4",
}


@dataclass(frozen=True)
class Precision:
    """Formats of weights, GEMM activations and KV cache."""

    weights: str
    activations: str
    kv_cache: str
    label: str = ""  # preset name, when built from one

    @property
    def name(self) -> str:
        if self.label:
            return self.label
        if self.weights == self.activations == self.kv_cache:
            return self.weights
        return f"w{self.weights}-a{self.activations}-kv{self.kv_cache}"

    @property
    def weight_bytes(self) -> float:
        return BYTES[self.weights]

    @property
    def kv_bytes(self) -> float:
        return BYTES[self.kv_cache]


# Presets offered by `infercap plan --precision`: weights/activations/KV.
PRESETS = {
    "bf16": Precision("bf16", "bf16", "bf16", "bf16"),
    "fp16": Precision("fp16", "fp16", "fp16", "fp16"),
    "fp8": Precision("fp8", "fp8", "fp8", "fp8"),  # W8A8 fp8, fp8 KV cache
    "int8": Precision("int8", "int8", "fp8", "int8"),  # W8A8 int8 (SmoothQuant), fp8 KV
    "int4": Precision("int4", "bf16", "bf16", "int4"),  # W4A16 (AWQ/GPTQ), 16-bit KV
    "fp4": Precision("fp4", "fp4", "fp8", "fp4"),  # W4A4 NVFP4, fp8 KV (ModelOpt)
    "mxfp4": Precision("mxfp4", "bf16", "bf16", "mxfp4"),  # MXFP4 experts, 16-bit rest
}


def parse_precision(weights: str, activations: str | None, kv_cache: str | None) -> Precision:
    """Build a precision from a measurement/CLI triple; missing parts follow the weights."""
    if weights not in WEIGHT_FORMATS:
        raise UsageError(f"expected one of {', '.join(WEIGHT_FORMATS)}, got {weights!r}",
                         key="weights")
    fam = _FAMILY[weights]
    if activations is None:
        activations = weights if fam in ("16bit", "fp8", "int8", "fp4") else "bf16"
    if activations not in ACT_FORMATS:
        raise UsageError(f"expected one of {', '.join(ACT_FORMATS)}, got {activations!r}",
                         key="activations")
    if kv_cache is None:
        # Engines keep KV in 16-bit unless asked (vLLM kv_cache_dtype=auto; TRT-LLM keeps
        # bf16 KV for fp8 checkpoints unless the checkpoint quantises KV).
        kv_cache = "fp16" if weights == "fp16" else "bf16"
    if kv_cache not in KV_FORMATS:
        raise UsageError(f"expected one of {', '.join(KV_FORMATS)}, got {kv_cache!r}",
                         key="kv_cache")
    return Precision(weights, activations, kv_cache)


def sixteen_bit(gpu: GPU, prefer: str = "bf16") -> str | None:
    """The 16-bit tensor dtype the GPU runs: bf16, else fp16 (or None)."""
    if prefer in gpu.dense_tflops:
        return prefer
    for dtype in ("bf16", "fp16"):
        if dtype in gpu.dense_tflops:
            return dtype
    return None


@dataclass(frozen=True)
class ComputeMode:
    """How a precision runs on one GPU."""

    dtype: str  # tensor-core dtype the GEMMs run in (a dense_tflops key)
    tflops: float  # the GPU's dense peak for it
    weight_only: bool  # weights de-quantised to 16-bit before the GEMM
    note: str

    @property
    def bits(self) -> str:
        return {"fp8": "8bit", "int8": "8bit", "fp4": "4bit"}.get(self.dtype, "16bit")


def compute_mode(gpu: GPU, p: Precision) -> ComputeMode | None:
    """Tensor-core dtype for ``p`` on ``gpu``; None when the GPU has no usable 16-bit rate."""
    base = sixteen_bit(gpu, "fp16" if p.weights == "fp16" else "bf16")
    if base is None:
        return None
    wf, af = _FAMILY[p.weights], _FAMILY.get(p.activations, "16bit")
    if wf == af and wf in ("fp8", "int8", "fp4"):
        native = wf
        if native in gpu.dense_tflops:
            return ComputeMode(native, gpu.dense_tflops[native], False, f"{native} tensor cores")
        return ComputeMode(
            base,
            gpu.dense_tflops[base],
            True,
            f"no {native} tensor cores on {gpu.id}: weight-only {p.weights}, {base} compute",
        )
    if wf == "16bit":
        note = f"{base} tensor cores"
        if base != p.weights:
            note += f" ({p.weights} weights run as {base}: {gpu.id} lacks {p.weights})"
        return ComputeMode(base, gpu.dense_tflops[base], False, note)
    return ComputeMode(
        base, gpu.dense_tflops[base], True, f"weight-only {p.weights}, {base} compute"
    )
