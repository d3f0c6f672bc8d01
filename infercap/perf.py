"""The performance model: pure, vectorised functions (numpy arrays in, numpy arrays out).

One configuration is a model (an ``Arch``, scalars), and per-configuration arrays that
broadcast together: the GPU's rates (``Rates``), the efficiency figures (``Figs``), the parallel
layout (tp, pp, ep), the precision's bytes per element, and the batch and lengths.

Physics, per pipeline stage (the slowest stage sets the pace):

- GEMM time per forward = max(weight bytes / achieved bandwidth,
  FLOPs / (dense peak x gemm_peak_fraction x M / (M + gemm_half_tokens))) — a roofline with a
  compute efficiency that grows with the M (tokens) of the GEMM, as measured on H100/H200
  (bench/derive_kernel_figures.py). Routed experts are a separate GEMM group: a decode step
  reads only the experts its tokens touch, each with M = tokens routed to it.
- attention: decode reads the KV cache (bandwidth-bound, with a saturation term for kernels
  that do not split the KV sequence); prefill is causal flash attention at a share of peak,
  counted in (query, key) pairs, capped by sliding/chunked windows on local layers.
- activation traffic of unfused element-wise ops: ``activation_io_passes`` over each token's
  hidden and intermediate activations.
- tensor parallel: two all-reduces per layer; ring, or inside an NVLink domain the one-/two-shot
  kernels when the message is small (allreduce_time).
- fixed GPU time per layer (small kernels), and CPU dispatch per layer for eager forwards:
  forward = max(GPU time, CPU time).
- pipeline parallel: m = min(batch, pp) micro-batches; a token passes every stage.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from infercap.arch import Arch

ACT_BYTES = 2.0  # activations between kernels and in collectives: 16-bit
Array = np.ndarray


@dataclass(frozen=True)
class Rates:
    """Per-configuration hardware rates (arrays or scalars, SI units)."""

    peak_flops: Array  # dense peak of the GEMM compute dtype, FLOP/s
    peak16_flops: Array  # dense 16-bit peak (attention), FLOP/s
    bandwidth: Array  # peak memory bandwidth, B/s
    memory: Array  # memory capacity, B
    scale_up: Array  # scale-up link bandwidth per GPU per direction, B/s
    scale_out: Array  # scale-out bandwidth per GPU per direction, B/s
    domain: Array  # GPUs in one scale-up domain
    gemm_bits: Array  # 16, 8 or 4: which gemm_peak_fraction applies


@dataclass(frozen=True)
class Figs:
    """Efficiency figures as arrays (see profile.FIGURES for meanings)."""

    values: Mapping[str, Array]

    def __getattr__(self, name: str) -> Array:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None


@dataclass(frozen=True)
class Layout:
    """A parallel layout of one serving instance (arrays broadcast together).

    - ``tp``: tensor-parallel ranks of attention and dense layers;
    - ``pp``: pipeline stages;
    - ``dp``: data-parallel attention replicas per stage (DeepSeek/SGLang "DP attention"): each
      holds the attention and dense weights and 1/dp of the sequences;
    - ``ep``: expert-parallel ranks over the dp x tp GPUs of a stage (divides dp x tp); each
      expert is split over the remaining dp x tp / ep ranks. dp = ep = 1: experts TP-split.
    """

    tp: Array
    pp: Array
    ep: Array
    dp: Array = np.float64(1.0)

    @property
    def gpus(self) -> Array:
        return self.tp * self.pp * self.dp

    @property
    def stage_gpus(self) -> Array:
        return self.tp * self.dp


@dataclass(frozen=True)
class Bytes:
    """Bytes per element of each tensor class."""

    weights: Array  # dense and attention linear layers
    experts: Array  # routed and shared experts
    kv: Array


# ---------------------------------------------------------------------------- helpers


def stage_layers(a: Arch, pp: Array) -> Array:
    """Layers on the busiest pipeline stage (uneven splits give one stage the remainder)."""
    return np.ceil(a.layers / pp)


def stage_fraction(a: Arch, pp: Array) -> Array:
    return stage_layers(a, pp) / a.layers


def kv_heads_per_gpu(a: Arch, tp: Array) -> Array:
    """KV heads a TP rank holds: split down to one head, then replicated (vLLM/TRT-LLM)."""
    return np.ceil(a.kv_heads / tp)


def kv_fraction_per_gpu(a: Arch, tp: Array) -> Array:
    """Share of one layer's KV cache a TP rank holds (MLA latent: replicated, 1)."""
    if not a.kv_split_over_tp:
        return np.ones_like(np.asarray(tp, dtype=float))
    return kv_heads_per_gpu(a, tp) / a.kv_heads


def gemm_efficiency(f: Figs, rates: Rates, tokens: Array) -> Array:
    """Share of the dense peak a GEMM with ``tokens`` rows achieves (compute side only)."""
    peak = np.where(
        rates.gemm_bits == 4,
        f.gemm_peak_fraction_4bit,
        np.where(rates.gemm_bits == 8, f.gemm_peak_fraction_8bit, f.gemm_peak_fraction_16bit),
    )
    tokens = np.maximum(tokens, 1e-9)
    return peak * tokens / (tokens + f.gemm_half_tokens)


def link_bandwidth(f: Figs, rates: Rates, span: Array) -> Array:
    """Achieved per-direction bandwidth of a collective over ``span`` GPUs: scale-up inside
    one domain, the scale-out network beyond it (the slowest hop sets a ring's pace)."""
    up = rates.scale_up * f.scale_up_bandwidth_fraction
    out = rates.scale_out * f.scale_out_bandwidth_fraction
    return np.where(span <= rates.domain, up, np.minimum(up, out))


def allreduce_time(f: Figs, rates: Rates, n: Array, nbytes: Array) -> Array:
    """All-reduce of ``nbytes`` over ``n`` GPUs by the fastest algorithm for the message size,
    L = one synchronizing hop (collective_latency_us), B = the link's achieved bandwidth:

    - ring (NCCL; any span, the only one across the scale-out network): 2(n-1) steps of L, each
      GPU sends 2(n-1)/n x bytes (Patarasuk & Yuan 2009);
    - inside one scale-up domain (NVSwitch/NVLink), the small-message kernels of TensorRT-LLM,
      vLLM and SGLang (custom all-reduce; NVIDIA, "3x Faster AllReduce with NVSwitch and
      TensorRT-LLM MultiShot", 2024): two-shot = reduce-scatter + all-gather, 2 L and the ring's
      bytes; one-shot = every GPU reads all n-1 peers' buffers, L and (n-1) x bytes.

    Latency-bound decode messages take one-shot, mid sizes two-shot, large prefill ones ring."""
    bw = link_bandwidth(f, rates, n)
    lat = f.collective_latency_us * 1e-6
    steps = 2.0 * (n - 1)
    ring = steps * lat + steps / n * nbytes / bw
    two = 2.0 * lat + steps / n * nbytes / bw
    one = lat + (n - 1) * nbytes / bw
    inside = np.minimum(np.minimum(ring, two), one)
    t = np.where(n <= rates.domain, inside, ring)
    return np.where(n > 1, t, 0.0)


def hop_time(f: Figs, rates: Rates, lay: Layout, nbytes: Array) -> Array:
    """Pipeline hand-off of activations between stages (point-to-point)."""
    bw = link_bandwidth(f, rates, lay.gpus)
    return np.where(lay.pp > 1, f.collective_latency_us * 1e-6 + nbytes / bw, 0.0)


def causal_pairs(s: Array, window: float = 0, chunked: bool = False) -> Array:
    """(query, key) pairs in causal attention over a prompt of ``s`` tokens.

    Global: s(s+1)/2. Sliding window W: each query sees at most W keys. Chunked (Llama 4):
    queries see only keys of their own chunk of W tokens.
    """
    s = np.asarray(s, dtype=float)
    full = s * (s + 1) / 2
    if not window:
        return full
    w = float(window)
    if chunked:
        n, r = np.floor(s / w), np.mod(s, w)
        return n * w * (w + 1) / 2 + r * (r + 1) / 2
    return np.where(s <= w, full, w * (w + 1) / 2 + (s - w) * w)


def attended(c: Array, window: float, chunked: bool) -> Array:
    """Keys one decoding query attends at context ``c`` on a windowed layer."""
    c = np.asarray(c, dtype=float)
    if chunked:
        # position c sits in a chunk holding (c mod W) earlier tokens; averaged over a
        # sequence's decode that is about min(c, W/2).
        return np.minimum(c, window / 2.0)
    return np.minimum(c, float(window))


def context_layers(a: Arch, c: Array) -> Array:
    """Sum over layers of the keys a query attends at context c (global + local layers)."""
    glob = a.layers - a.local_layers
    if a.local_layers:
        return glob * c + a.local_layers * attended(c, a.window, a.chunked)
    return glob * np.asarray(c, dtype=float)


def kv_cached_layers(a: Arch, c: Array) -> Array:
    """Sum over layers of the tokens held in KV cache for one sequence of context c."""
    glob = a.layers - a.local_layers
    if a.local_layers:
        return glob * c + a.local_layers * np.minimum(c, float(a.window))
    return glob * np.asarray(c, dtype=float)


def mean_active_width(a: Arch) -> float:
    """Mean MLP intermediate width one token activates per layer (for activation traffic)."""
    moe_w = a.experts_per_token * a.expert_width + (a.shared / (3 * a.hidden) if a.hidden else 0)
    return (a.n_dense_layers * a.dense_width + a.n_moe_layers * moe_w) / a.layers


# ---------------------------------------------------------------------------- memory


def params_per_gpu(a: Arch, lay: Layout) -> tuple[Array, Array, Array]:
    """(dense-linear, expert, embedding) parameters on the busiest GPU (dense and attention
    replicated over DP ranks, experts sharded over all dp x tp GPUs of a stage)."""
    tp, pp = lay.tp, lay.pp
    frac = stage_fraction(a, pp)
    attn = a.attn_sharded / tp + a.attn_kv * kv_heads_per_gpu(a, tp) / max(a.kv_heads, 1)
    attn = attn + a.attn_replicated
    dense = a.layers * attn + a.n_dense_layers * a.dense_mlp / tp + a.n_moe_layers * a.router
    # routed experts: E/ep experts per rank, each split over dp x tp / ep ranks
    # -> E x expert / (dp x tp); shared experts are TP-split like a dense MLP.
    experts = a.n_moe_layers * (a.num_experts * a.expert / lay.stage_gpus + a.shared / tp)
    # embeddings: vocab-parallel over TP; with PP the first stage holds the embedding and the
    # last the LM head (a tied head is a copy of the embedding there).
    head = a.lm_head if a.lm_head else a.embed
    emb = np.where(pp > 1, np.maximum(a.embed, head), a.embed + a.lm_head) / tp
    return dense * frac, experts * frac, emb


def weight_bytes_per_gpu(a: Arch, lay: Layout, b: Bytes) -> Array:
    dense, experts, emb = params_per_gpu(a, lay)
    return dense * b.weights + experts * b.experts + emb * ACT_BYTES


def kv_bytes_per_sequence(a: Arch, lay: Layout, b: Bytes, context: Array) -> Array:
    """KV-cache bytes one sequence of ``context`` tokens holds on the busiest GPU."""
    per_layer_tok = a.kv_elems_per_token_layer * kv_fraction_per_gpu(a, lay.tp) * b.kv
    return per_layer_tok * kv_cached_layers(a, context) * stage_fraction(a, lay.pp)


def workspace_bytes_per_gpu(a: Arch, lay: Layout, f: Figs) -> Array:
    """Activation workspace of a forward over ``max_num_tokens`` tokens (buffers reused layer
    to layer): the residual stream and its norm, q/k/v, the MLP intermediate (gate and up)."""
    tokens = f.max_num_tokens
    width = max(a.dense_width, a.experts_per_token * a.expert_width)
    per_token = (4 * a.hidden + (a.heads + 2 * a.kv_heads) * a.head_dim / lay.tp
                 + 2 * width / lay.tp) * ACT_BYTES
    return tokens * per_token


def kv_budget_per_gpu(a: Arch, lay: Layout, b: Bytes, f: Figs, rates: Rates) -> Array:
    """Bytes of KV cache on the busiest GPU (negative: the weights do not fit).

    The engine may use ``gpu_memory_utilization`` of the memory; the CUDA context and library
    workspaces (``runtime_reserved_gib``), the weights and the activation workspace come off
    it, and ``kv_cache_free_memory_fraction`` of what is left becomes KV cache."""
    usable = rates.memory * f.gpu_memory_utilization - f.runtime_reserved_gib * 2**30
    free = usable - weight_bytes_per_gpu(a, lay, b) - workspace_bytes_per_gpu(a, lay, f)
    return np.where(free > 0, free * f.kv_cache_free_memory_fraction, free)


def max_sequences(a: Arch, lay: Layout, b: Bytes, f: Figs, rates: Rates, context: Array) -> Array:
    """Largest number of sequences of ``context`` tokens whose KV cache fits in the instance
    (0 if none): what one GPU holds, times the DP ranks that each hold their own."""
    budget = kv_budget_per_gpu(a, lay, b, f, rates)
    per_seq = np.maximum(kv_bytes_per_sequence(a, lay, b, context), 1e-9)
    return np.floor(np.maximum(budget, 0.0) / per_seq) * lay.dp


def busiest_rank(batch: Array, dp: Array) -> Array:
    """Sequences on the busiest DP rank when ``batch`` are spread over ``dp`` ranks."""
    return np.maximum(batch / dp, np.minimum(batch, 1.0))


# ---------------------------------------------------------------------------- time


@dataclass(frozen=True)
class StepTime:
    """Components of one forward of the busiest pipeline stage, seconds (arrays)."""

    gemm_compute: Array
    gemm_memory: Array
    gemm: Array  # roofline of the two, summed over GEMM groups
    attention: Array
    activation_io: Array
    communication: Array
    overhead: Array  # fixed per-layer GPU time
    host: Array  # CPU dispatch (eager); the forward takes max(GPU, host)

    @property
    def gpu(self) -> Array:
        return self.gemm + self.attention + self.activation_io + self.communication + self.overhead

    @property
    def total(self) -> Array:
        return np.maximum(self.gpu, self.host)


def _forward(
    a: Arch,
    lay: Layout,
    b: Bytes,
    f: Figs,
    rates: Rates,
    tokens: Array,
    attn_flops: Array,
    kv_read: Array,
    attn_blocks: Array,
    host_us_per_layer: Array,
    lm_rows: Array,
    local_tokens: Array | None = None,
) -> StepTime:
    """One forward of ``tokens`` tokens (the whole instance's) on the busiest stage; with DP
    attention each replica runs tokens / dp of them through attention and dense layers, and
    the experts see every token routed to them."""
    tp, dp = lay.tp, lay.dp
    local = tokens / dp if local_tokens is None else local_tokens  # the busiest DP rank's
    lm_rows = lm_rows * local / np.maximum(tokens, 1e-9)
    ls = stage_layers(a, lay.pp)
    frac = stage_fraction(a, lay.pp)
    bw = rates.bandwidth * f.memory_bandwidth_fraction
    dense_p, expert_p, _ = params_per_gpu(a, lay)
    head_p = (a.lm_head if a.lm_head else a.embed) / tp  # the LM head GEMM (last stage)

    # dense GEMMs: every weight read once, M = tokens (LM head: one row per sequence)
    dense_bytes = dense_p * b.weights + head_p * ACT_BYTES
    dense_flops = 2.0 * local * dense_p
    head_flops = 2.0 * lm_rows * head_p
    c_dense = dense_flops / (rates.peak_flops * gemm_efficiency(f, rates, local))
    c_head = head_flops / (rates.peak16_flops * gemm_efficiency(f, rates, lm_rows))
    m_dense = dense_bytes / bw
    gemm = np.maximum(c_dense + c_head, m_dense)
    comp, mem = c_dense + c_head, m_dense

    if a.n_moe_layers:
        e, k = a.num_experts, a.experts_per_token
        # expected distinct experts hit by `tokens` top-k draws: E (1 - (1 - k/E)^tokens)
        touched = e * -np.expm1(tokens * np.log1p(-k / e)) if k < e else e * np.ones_like(tokens)
        share = touched / e
        routed_p = a.n_moe_layers * a.num_experts * a.expert / lay.stage_gpus * frac
        shared_p = a.n_moe_layers * a.shared / tp * frac
        imbalance = np.where(lay.ep > 1, f.moe_load_imbalance, 1.0)
        exp_bytes = (routed_p * share + shared_p) * b.experts
        m_tok = tokens * k / np.maximum(touched, 1e-9)  # rows of each touched expert's GEMM
        routed_flops = (2.0 * tokens * k * a.expert * a.n_moe_layers / lay.stage_gpus * frac
                        * imbalance)
        shared_flops = 2.0 * local * shared_p
        c_exp = routed_flops / (rates.peak_flops * gemm_efficiency(f, rates, m_tok))
        c_exp = c_exp + shared_flops / (rates.peak_flops * gemm_efficiency(f, rates, local))
        m_exp = exp_bytes / bw
        gemm = gemm + np.maximum(c_exp, m_exp)
        comp, mem = comp + c_exp, mem + m_exp

    # attention: KV read (bandwidth, saturating with parallel work) vs attention FLOPs
    sat = np.minimum(1.0, attn_blocks / f.decode_attention_saturation_blocks)
    attn_mem = kv_read / (bw * sat)
    attn_comp = attn_flops / (rates.peak16_flops * f.attention_peak_fraction)
    attention = np.maximum(attn_mem, attn_comp)

    act = f.activation_io_passes * local * (a.hidden + mean_active_width(a) / tp)
    act_io = act * ACT_BYTES * ls / bw

    comm = 2.0 * ls * allreduce_time(f, rates, tp, local * a.hidden * ACT_BYTES)
    if a.n_moe_layers:
        # DP attention + EP: every MoE layer dispatches each token's hidden state to its k
        # experts and combines the results back (two all-to-alls over the stage's GPUs)
        n = lay.stage_gpus
        sent = local / tp * a.experts_per_token * a.hidden * ACT_BYTES * (n - 1) / n
        a2a = f.collective_latency_us * 1e-6 + sent / link_bandwidth(f, rates, n)
        moe_layers = a.n_moe_layers * frac
        comm = comm + np.where(dp > 1, 2.0 * moe_layers * a2a, 0.0)
    overhead = f.layer_overhead_us * 1e-6 * ls
    host = host_us_per_layer * 1e-6 * ls
    z = np.zeros_like(gemm)
    return StepTime(comp + z, mem + z, gemm, attention + z, act_io + z, comm + z, overhead + z,
                    host + z)


def decode_step(
    a: Arch, lay: Layout, b: Bytes, f: Figs, rates: Rates, batch: Array, context: Array
) -> StepTime:
    """One decode iteration of one pipeline stage for a micro-batch of ``batch`` sequences,
    each attending ``context`` cached tokens."""
    frac = stage_fraction(a, lay.pp)
    tp = lay.tp
    kv_elems = a.kv_elems_per_token_layer * kv_fraction_per_gpu(a, tp)
    local = busiest_rank(batch, lay.dp)  # sequences of the busiest DP rank
    kv_read = local * kv_elems * b.kv * context_layers(a, context) * frac
    heads = a.heads / tp
    if a.mla_latent:
        # absorbed MLA (FlashMLA): q.k over latent+rope, p.v over the latent, per head
        per_key = 2.0 * (a.mla_latent + a.mla_rope) + 2.0 * a.mla_latent
    else:
        per_key = 2.0 * (a.qk_dim + a.v_dim)
    attn_flops = local * heads * per_key * context_layers(a, context) * frac
    blocks = local * np.maximum(a.kv_heads / tp, 1.0) if a.kv_split_over_tp else local * heads
    return _forward(a, lay, b, f, rates, batch, attn_flops, kv_read, blocks,
                    f.decode_host_overhead_us_per_layer, batch, local)


def prefill(
    a: Arch, lay: Layout, b: Bytes, f: Figs, rates: Rates, prompts: Array, length: Array
) -> StepTime:
    """One forward over ``prompts`` prompts of ``length`` tokens each (no chunking)."""
    frac = stage_fraction(a, lay.pp)
    tokens = prompts * length
    glob = a.layers - a.local_layers
    pairs = glob * causal_pairs(length)
    if a.local_layers:
        pairs = pairs + a.local_layers * causal_pairs(length, a.window, a.chunked)
    local = np.ceil(prompts / lay.dp) * length  # whole prompts go to one DP rank each
    attn_flops = (local / length) * 2.0 * (a.qk_dim + a.v_dim) * (a.heads / lay.tp) * pairs * frac
    zero = np.zeros_like(np.asarray(tokens, dtype=float))
    return _forward(a, lay, b, f, rates, tokens, attn_flops, zero, np.ones_like(zero),
                    f.prefill_host_overhead_us_per_layer, prompts, local)


def pipeline_decode(
    a: Arch, lay: Layout, b: Bytes, f: Figs, rates: Rates, batch: Array, context: Array
) -> tuple[Array, StepTime]:
    """Time per output token for ``batch`` sequences through all stages, and the stage step.

    m = min(batch, pp) micro-batches rotate through the pp stages, so each sequence gets a
    token every pp x (stage time + hand-off)."""
    m = np.maximum(np.minimum(batch, lay.pp), 1.0)
    micro = batch / m
    step = decode_step(a, lay, b, f, rates, micro, context)
    hop = hop_time(f, rates, lay, micro * a.hidden * ACT_BYTES)
    return lay.pp * (step.total + hop), step


def prefill_stage(
    a: Arch, lay: Layout, b: Bytes, f: Figs, rates: Rates, prompts: Array, length: Array
) -> tuple[Array, Array, Array, StepTime]:
    """(time one pipeline stage spends on ``prompts`` prompts, chunks, hop time per chunk,
    step) with prefill chunked by the engine's ``max_num_tokens`` budget."""
    tokens = prompts * length
    chunks = np.maximum(np.ceil(tokens / f.max_num_tokens), 1.0)
    step = prefill(a, lay, b, f, rates, prompts, length)
    if np.any(chunks > 1):
        # chunked prefill: the attention work is the same; weight reads, overheads and the
        # memory floor repeat per chunk of max_num_tokens tokens.
        per = prefill(a, lay, b, f, rates, np.ones_like(tokens),
                      np.minimum(tokens, f.max_num_tokens))
        extra = (chunks - 1) * np.maximum(per.gemm_memory - per.gemm_compute, 0.0)
        extra = extra + (chunks - 1) * np.maximum(per.overhead, per.host)
        total = step.total + extra
    else:
        total = step.total
    hop = hop_time(f, rates, lay, np.minimum(tokens, f.max_num_tokens) * a.hidden * ACT_BYTES)
    return total, chunks, hop, step


def pipeline_prefill(
    a: Arch, lay: Layout, b: Bytes, f: Figs, rates: Rates, prompts: Array, length: Array
) -> tuple[Array, StepTime]:
    """Prefill latency of ``prompts`` prompts through all pp stages, chunked by the engine's
    ``max_num_tokens`` budget (each chunk re-reads the weights). Pipelined stages: the first
    chunk crosses every stage, the others follow one stage behind (micro-batching), so the
    latency is the stage time x (1 + (pp - 1) / chunks), pp x the stage time for one chunk,
    plus each chunk's activation hop between consecutive stages."""
    total, chunks, hop, step = prefill_stage(a, lay, b, f, rates, prompts, length)
    return total * (1.0 + (lay.pp - 1) / chunks) + (lay.pp - 1) * hop, step
