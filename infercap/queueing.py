"""Latency percentiles of a continuously batching engine under Poisson load (pure, vectorised).

One serving replica is an engine that runs iterations. An iteration decodes one token for each
of the ``n`` running sequences and prefills the prompts that arrived during the previous
iteration (chunked prefill: a budget of ``max_num_tokens`` tokens per iteration, decode tokens
first). The engine admits at most ``batch_cap`` sequences (vLLM ``max_num_seqs``, TensorRT-LLM
``max_batch_size``); later requests wait for a slot. This is the scheduler of vLLM V1, SGLang
and TensorRT-LLM's in-flight batching, and exactly the one ``infercap.simulate`` simulates.

The iteration-time model (``Engine``) comes from the roofline model in ``perf``:

    iteration(n, prefill work X) = D(n) + X

with D(n) the decode step of n sequences at their mean context plus the host's per-step
overhead, and X the engine-seconds of the prompt tokens in the step. The analytical queueing
model built on it (``analyse``) has three parts, each named in its code:

1. **Prefill load** rho_p = rate x E[P] (P: engine-seconds of one prompt). Iteration lengths
   follow tau' = D + work of the arrivals during tau, so E[tau] = D / (1 - rho_p) and
   Var[tau] = (Var D + rate E[P^2] E[tau]) / (1 - rho_p^2).
2. **Slots**: requests in the system form a birth-death chain with arrival rate ``rate`` and
   departure rate min(n, B) / (osl x tau(min(n, B))): each running sequence leaves after osl
   iterations. The chain is exact for the symmetric (processor-sharing-like) part below the cap
   (insensitive to the output-length distribution; Kelly 1979, ch. 3) and a geometric queue
   above it. It gives the chance an arrival waits for a slot, the wait (exponential, as in
   M/M/c), and the distribution of the running batch.
3. **TTFT** once admitted: the residual of the iteration the request arrives in (length-biased;
   a long prompt's iterations are one block, held until its last chunk: head-of-line
   blocking), then one iteration holding its prompt and the prompts that arrived with it; an
   arrival that finds the engine empty starts at once. **TPOT**: the
   mean iteration over the request's decode; it varies with the prefill work of the requests
   arriving meanwhile (compound Poisson, amplified by 1 / (1 - rho_p) because longer
   iterations admit more work) and with the batch size (its time average over a lifetime has
   2/3 of the variance of the batch itself, the triangular autocorrelation of M/D/inf).

Percentiles come from two-moment gamma fits (Wilson-Hilferty quantiles) and, for TTFT, the
mixture of "admitted at once" and "waited for a slot". ``docs/queueing.md`` shows how far this
is from the simulation, load by load.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Array = np.ndarray

QUANTILES = (0.5, 0.9, 0.99)


# ------------------------------------------------------------------------------ lengths


@dataclass(frozen=True)
class Lengths:
    """Request lengths as equally weighted (input, output) pairs."""

    input: Array
    output: Array

    @classmethod
    def fixed(cls, input_tokens: float, output_tokens: float) -> "Lengths":
        return cls(np.array([float(input_tokens)]), np.array([float(output_tokens)]))

    @property
    def mean_input(self) -> float:
        return float(self.input.mean())

    @property
    def mean_output(self) -> float:
        return float(self.output.mean())

    @property
    def decode_context(self) -> float:
        """Mean context of a decoding sequence: a sequence with output o spends o iterations
        at contexts from i to i + o, so time-weighted the mean is E[o (i + o/2)] / E[o]."""
        o = self.output
        return float((o * (self.input + o / 2.0)).sum() / max(o.sum(), 1e-9))

    @property
    def tail_ratio(self) -> float:
        """p99 over mean of the longer-tailed of input and output lengths (1 for fixed lengths):
        above about 3 the analytical p99s run low (docs/queueing.md, heavy-tailed lengths)."""
        return float(max(np.quantile(x, 0.99) / max(x.mean(), 1e-9)
                         for x in (self.input, self.output)))

    def quantile_pairs(self, n: int = 32) -> "Lengths":
        """At most ``n`` pairs standing for the distribution (for vectorised moments)."""
        if len(self.input) <= n:
            return self
        order = np.argsort(self.input, kind="stable")
        groups = np.array_split(order, n)
        return Lengths(np.array([self.input[g].mean() for g in groups]),
                       np.array([self.output[g].mean() for g in groups]))


def lognormal_samples(mean: float, percentiles: dict[str, float], n: int = 64) -> Array:
    """``n`` equally weighted values of a lognormal with the given mean and percentiles.

    sigma is fitted in least squares to ln(p_q / mean) = z_q sigma - sigma^2 / 2 (a lognormal
    with mean m has median m exp(-sigma^2 / 2)); no percentiles: a fixed length."""
    if not percentiles:
        return np.full(1, float(mean))
    zs = np.array([normal_quantile(float(k[1:]) / 100.0) for k in percentiles])
    ys = np.log(np.array(list(percentiles.values()), dtype=float) / mean)
    grid = np.linspace(0.0, 3.0, 3001)
    err = ((zs[None, :] * grid[:, None] - grid[:, None] ** 2 / 2.0 - ys[None, :]) ** 2).sum(1)
    sigma = float(grid[np.argmin(err)])
    mu = np.log(mean) - sigma**2 / 2.0
    qs = (np.arange(n) + 0.5) / n
    return np.exp(mu + sigma * normal_quantile(qs))


# ------------------------------------------------------------------------- special functions


def normal_quantile(p: Array | float) -> Array:
    """Inverse of the standard normal CDF (Acklam's rational approximation, relative error
    below 1.2e-9)."""
    p = np.asarray(p, dtype=float)
    a = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02,
         1.383577518672690e02, -3.066479806614716e01, 2.506628277459239e00)
    b = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02,
         6.680131188771972e01, -1.328068155288572e01)
    c = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00,
         -2.549732539343734e00, 4.374664141464968e00, 2.938163982698783e00)
    d = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00,
         3.754408661907416e00)
    lo, hi = 0.02425, 1 - 0.02425
    q = np.sqrt(-2 * np.log(np.clip(np.minimum(p, 1 - p), 1e-300, None)))
    tail = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / \
        ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
    r = (p - 0.5) ** 2
    mid = (p - 0.5) * (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) / \
        (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
    return np.where(p < lo, tail, np.where(p > hi, -tail, mid))


def normal_cdf(x: Array) -> Array:
    """Standard normal CDF via erf (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7)."""
    x = np.asarray(x, dtype=float)
    z = np.abs(x) / np.sqrt(2.0)
    t = 1.0 / (1.0 + 0.3275911 * z)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027
                                                                          + t * 1.061405429))))
    erf = 1.0 - poly * np.exp(-z * z)
    return 0.5 * (1.0 + np.sign(x) * erf)


def gamma_quantile(mean: Array, var: Array, q: Array | float) -> Array:
    """Quantile of the gamma distribution with this mean and variance (Wilson & Hilferty 1931:
    (X / mean)^(1/3) is nearly normal with mean 1 - 1/(9k), variance 1/(9k), k = mean^2/var)."""
    mean = np.asarray(mean, dtype=float)
    var = np.maximum(np.asarray(var, dtype=float), 1e-30)
    k = np.maximum(mean**2 / var, 1e-6)
    z = normal_quantile(q)
    h = 1.0 / (9.0 * k)
    base = np.maximum(1.0 - h + z * np.sqrt(h), 0.0)
    return mean * base**3


def gamma_cdf(x: Array, mean: Array, var: Array) -> Array:
    """CDF of the same Wilson-Hilferty gamma approximation."""
    mean = np.asarray(mean, dtype=float)
    var = np.maximum(np.asarray(var, dtype=float), 1e-30)
    k = np.maximum(mean**2 / var, 1e-6)
    h = 1.0 / (9.0 * k)
    u = np.cbrt(np.maximum(np.asarray(x, dtype=float), 0.0) / np.maximum(mean, 1e-30))
    return normal_cdf((u - (1.0 - h)) / np.sqrt(h))


def log_factorial(n: Array) -> Array:
    """ln(n!) by Stirling's series (exact to 1e-9 for n >= 1; 0 at n = 0)."""
    n = np.asarray(n, dtype=float)
    m = np.maximum(n, 1.0)
    s = m * np.log(m) - m + 0.5 * np.log(2 * np.pi * m) + 1 / (12 * m) - 1 / (360 * m**3)
    return np.where(n < 1, 0.0, s)


# ------------------------------------------------------------------------------ engine


def batch_grid(largest: float) -> Array:
    """Batch sizes the chain is evaluated at: every integer to 64, then steps of 3 %."""
    small = np.arange(1.0, 65.0)
    if largest <= 64:
        return small[small <= max(largest, 1.0)]
    big = np.unique(np.round(64.0 * 1.03 ** np.arange(1, 1 + int(np.ceil(
        np.log(largest / 64.0) / np.log(1.03))) + 1)))
    return np.concatenate([small, big[big > 64]])


@dataclass(frozen=True)
class Engine:
    """Iteration-time model of one replica, for P configurations (arrays over P).

    ``decode_s[p, k]``: seconds of one iteration decoding ``n[k]`` sequences at the mean decode
    context (host step overhead included; a prefill-only iteration costs ``decode_s`` at n=1:
    the weights are read either way). ``decode_s_per_context`` is its slope per token of mean
    context (the simulation follows the context as it grows). ``prefill_s[p, j]``: engine
    seconds of the prompt of length pair j when prompts share ``token_budget`` chunks.
    """

    n: Array  # (K,) shared batch grid, n[0] = 1
    decode_s: Array  # (P, K)
    decode_s_per_context: Array  # (P, K)
    context: Array  # (P,) mean decode context the decode_s were evaluated at
    prefill_s: Array  # (P, S)
    lengths: Lengths  # S pairs
    batch_cap: Array  # (P,)
    token_budget: Array  # (P,)
    request_overhead_s: Array  # (P,)
    # scheduler batch waiting (TensorRT-LLM batch_wait_*): new prompts are held up to this many
    # iterations unless the iteration's scheduled tokens reach the fraction of the budget
    batch_wait_iterations: Array | None = None  # (P,); None: no waiting
    batch_wait_tokens_fraction: Array | None = None  # (P,)
    # SGLang --scheduler-recv-interval: the scheduler takes new requests in only after this
    # many decode iterations (at once after an iteration with prefill, or when idle); 1: always
    recv_interval_iterations: Array | None = None  # (P,)
    # TensorRT-LLM attention_dp_config (enable_balance, timeout_iters): with DP attention, new
    # prompts wait until every DP rank has one, at most this many iterations; 0: off
    dp_balance_timeout_iterations: Array | None = None  # (P,)
    dp: Array | None = None  # (P,) attention data-parallel ranks

    def take(self, idx: Array) -> "Engine":
        def sub(x: Array | None) -> Array | None:
            return None if x is None else x[idx]

        return Engine(self.n, self.decode_s[idx], self.decode_s_per_context[idx],
                      self.context[idx], self.prefill_s[idx], self.lengths,
                      self.batch_cap[idx], self.token_budget[idx], self.request_overhead_s[idx],
                      sub(self.batch_wait_iterations), sub(self.batch_wait_tokens_fraction),
                      sub(self.recv_interval_iterations), sub(self.dp_balance_timeout_iterations),
                      sub(self.dp))

    def decode_at(self, n: Array) -> Array:
        """D(n) for a (P, M) array of batch sizes (linear interpolation on the grid)."""
        return _interp_grid(self.n, self.decode_s, np.asarray(n, dtype=float))


def build_engine(a, lay, b, f, rates, lengths: Lengths, batch_cap: Array,  # type: ignore[no-untyped-def]
                 coarse: int = 24, cached_fraction: float = 0.0, prefill: bool = True) -> Engine:
    """The iteration-time model of P configurations from the roofline model (``perf``).

    The decode step is evaluated on ``coarse`` batch sizes (geometric) at two contexts and
    interpolated; the prefill cost of each length pair comes from ``serving``'s chunked
    prefill cost. With a prefix-cache hit rate h the engine computes only the uncached suffix:
    cost(i) - cost(h i) (the suffix still attends to the cached prefix). ``prefill=False``: a
    decode-only engine (disaggregated serving: the KV cache arrives from a prefill pool)."""
    from infercap.perf import pipeline_decode
    from infercap.serving import step_overhead

    cap = np.asarray(batch_cap, dtype=float)
    P = cap.shape[0]
    n = batch_grid(float(cap.max()))
    pts = np.unique(np.concatenate([np.round(np.geomspace(1, n[-1], coarse)), [1.0, n[-1]]]))

    def col(x: Array) -> Array:
        return np.broadcast_to(np.asarray(x, dtype=float), (P,))[:, None]

    lay2 = type(lay)(col(lay.tp), col(lay.pp), col(lay.ep), col(lay.dp))
    rates2 = type(rates)(*(col(getattr(rates, k)) for k in rates.__dataclass_fields__))
    b2 = type(b)(*(col(getattr(b, k)) for k in b.__dataclass_fields__))
    f2 = type(f)({k: col(v) for k, v in f.values.items()})
    ctx = lengths.decode_context
    batch = np.broadcast_to(pts[None, :], (P, len(pts)))
    t_ctx, _ = pipeline_decode(a, lay2, b2, f2, rates2, batch, np.float64(ctx))
    t_one, _ = pipeline_decode(a, lay2, b2, f2, rates2, batch, np.float64(max(ctx / 2, 1.0)))
    t_ctx = t_ctx + step_overhead(f2, batch)
    # the step overhead is in t_ctx only, so the difference is the context-dependent part
    slope = (t_ctx - step_overhead(f2, batch) - t_one) / max(ctx - max(ctx / 2, 1.0), 1e-9)
    # interpolate from the coarse points onto the grid (decode time is smooth in n)
    at = np.broadcast_to(n[None, :], (P, len(n)))
    dec, slp = _interp_grid(pts, t_ctx, at), _interp_grid(pts, slope, at)
    pairs = lengths.quantile_pairs()
    isl = pairs.input[None, :]
    full = np.broadcast_to(isl, (P, isl.shape[1]))
    pre = _marginal_prefill(a, lay2, b2, f2, rates2, full, t_ctx[:, :1])
    if cached_fraction > 0:
        hit = np.maximum(full * cached_fraction, 1.0)
        pre = pre - _marginal_prefill(a, lay2, b2, f2, rates2, hit, t_ctx[:, :1]) * (hit < full)
    if not prefill:
        pre = np.zeros_like(pre)
    return Engine(n, dec, slp, np.full(P, ctx), pre, pairs, cap,
                  # each DP attention rank schedules its own token budget
                  np.broadcast_to(np.asarray(f.max_num_tokens, dtype=float)
                                  * np.asarray(lay.dp, dtype=float), (P,)).copy(),
                  np.broadcast_to(np.asarray(f.request_overhead_ms, dtype=float) * 1e-3,
                                  (P,)).copy(),
                  np.broadcast_to(np.asarray(f.batch_wait_iterations, dtype=float), (P,)).copy(),
                  np.broadcast_to(np.asarray(f.batch_wait_tokens_fraction, dtype=float),
                                  (P,)).copy(),
                  np.broadcast_to(np.asarray(f.recv_interval_iterations, dtype=float),
                                  (P,)).copy(),
                  np.broadcast_to(np.asarray(f.dp_balance_timeout_iterations, dtype=float),
                                  (P,)).copy(),
                  np.broadcast_to(np.asarray(lay.dp, dtype=float), (P,)).copy())


def _marginal_prefill(a, lay, b, f, rates, isl: Array, d1: Array) -> Array:  # type: ignore[no-untyped-def]
    """Engine-seconds a prompt adds to an iteration that runs anyway: its share of a chunk of
    max_num_tokens prompt tokens, less the chunk's share of one decode step at batch 1 (the
    weight read and fixed per-layer time every iteration pays once, already in D(n)). A lone
    prompt on an idle engine then costs D(1) + marginal = the chunk's full prefill time."""
    from infercap.serving import prefill_cost_per_prompt

    per_chunk = np.maximum(np.floor(f.max_num_tokens / isl), 1.0) * lay.dp
    full = prefill_cost_per_prompt(a, lay, b, f, rates, isl)
    return np.maximum(full - d1 / (per_chunk * lay.pp), 0.25 * full)


# ------------------------------------------------------------------------------ analysis


@dataclass(frozen=True)
class Queue:
    """Analytical results per point (seconds). Percentiles: ``ttft_quantiles(qs)`` and
    ``tpot_quantiles(qs)`` give (P, len(qs)) arrays; ``*_cdf(x)`` the chance of at most x."""

    saturated: Array  # (P,) bool: the rate reaches the replica's capacity
    capacity_rps: Array  # (P,) requests/s the replica sustains at its batch cap
    utilisation: Array  # (P,) rate / capacity
    mean_batch: Array  # (P,) mean running sequences
    slot_wait_prob: Array  # (P,) chance an arrival waits for a slot
    prefill_share: Array  # (P,) share of engine time spent on prompts
    ttft_mean: Array
    tpot_mean: Array
    output_tokens_per_s: Array  # (P,)
    mixture: "_Mixture"
    wait_mean: Array  # (P,) mean slot wait of those who wait
    overhead: Array  # (P,) request overhead (front end), added to TTFT
    tpot_var: Array  # (P, S) TPOT variance of a request of each output length

    def ttft_cdf(self, x: Array) -> Array:
        """P(TTFT <= x), x of shape (P, M)."""
        y = np.asarray(x, dtype=float) - self.overhead[:, None]
        m_w = self.mixture.mean + self.wait_mean
        v_w = self.mixture.var + self.wait_mean**2
        pw = self.slot_wait_prob[:, None]
        out = ((1 - pw) * self.mixture.cdf(y) + pw * gamma_cdf(y, m_w[:, None], v_w[:, None]))
        return np.where(self.saturated[:, None], 0.0, out)

    def tpot_cdf(self, x: Array) -> Array:
        x = np.asarray(x, dtype=float)
        c = gamma_cdf(x[:, :, None], self.tpot_mean[:, None, None], self.tpot_var[:, None, :])
        return np.where(self.saturated[:, None], 0.0, c.mean(axis=2))

    def ttft_quantiles(self, qs: tuple[float, ...] = QUANTILES) -> Array:
        mix = self.mixture
        hi = (mix.const_max + mix.row_max(mix.tau) + 6 * mix.row_max(mix.spread)
              + self.overhead
              + np.where(self.slot_wait_prob > 1e-9, 14 * self.wait_mean
                         + 5 * np.sqrt(self.mixture.var), 0.0))
        return _bisect(self.ttft_cdf, qs, hi, self.saturated)

    def tpot_quantiles(self, qs: tuple[float, ...] = QUANTILES) -> Array:
        hi = self.tpot_mean + 12 * np.sqrt(self.tpot_var.max(axis=1)) + 1e-6
        return _bisect(self.tpot_cdf, qs, hi, self.saturated)


def _bisect(cdf, qs: tuple[float, ...], hi: Array, saturated: Array,  # type: ignore[no-untyped-def]
            steps: int = 40) -> Array:
    q = np.asarray(qs, dtype=float)[None, :]
    lo = np.zeros((hi.shape[0], q.shape[1]))
    hi = np.broadcast_to(hi[:, None], lo.shape).copy()
    for _ in range(steps):
        mid = (lo + hi) / 2
        below = cdf(mid) < q
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    return np.where(saturated[:, None], np.inf, (lo + hi) / 2)


def capacity(e: Engine) -> Array:
    """Requests/s one replica sustains: at the batch cap every request costs osl / B decode
    iterations of D(B) plus its own prefill, so rate x (osl D(B) / B + E[P]) = 1."""
    d_cap = e.decode_at(e.batch_cap[:, None])[:, 0]
    m1 = e.prefill_s.mean(axis=1)
    return 1.0 / (e.lengths.mean_output * d_cap / e.batch_cap + m1)


def analyse(e: Engine, rate: Array) -> Queue:
    """TTFT and TPOT (means, distributions) of P replicas each offered ``rate`` requests/s."""
    lam = np.maximum(np.asarray(rate, dtype=float), 1e-12)
    P = lam.shape[0]
    osl = e.lengths.mean_output
    m1 = e.prefill_s.mean(axis=1)
    m2 = (e.prefill_s**2).mean(axis=1)
    cap_rps = capacity(e)
    B = e.batch_cap

    # 1. prefill load
    rho_p = np.minimum(lam * m1, 0.999999)
    stretch = 1.0 / (1.0 - rho_p)

    # 2. birth-death chain over the requests in the system
    n = e.n[None, :]  # (1, K)
    below = n < B[:, None]  # states under the cap
    d = e.decode_s  # D(n) on the grid, (P, K)
    log_tau = np.log(d * stretch[:, None])
    # sum_{k<=n} ln tau(k) by Euler-Maclaurin on the grid: integral + half the end points
    steps = np.diff(e.n)
    cum = np.concatenate([np.zeros((P, 1)),
                          np.cumsum((log_tau[:, 1:] + log_tau[:, :-1]) / 2 * steps, axis=1)], 1)
    sum_log_tau = cum + (log_tau[:, :1] + log_tau) / 2
    log_w = n * np.log(lam * osl)[:, None] + sum_log_tau - log_factorial(n)
    # the state at the cap B itself (interpolated), and the geometric tail above it
    d_cap = e.decode_at(B[:, None])[:, 0]
    tau_cap = d_cap * stretch
    r = np.minimum(lam * osl * tau_cap / B, 0.999999)  # lambda / mu(B)
    saturated = (lam >= cap_rps) | (lam * m1 >= 1.0)
    log_w_cap = _interp_rows(e.n, log_w, B)
    # trapezoid weights of the grid as a sum over integers
    wt = np.ones_like(e.n)
    if len(e.n) > 1:
        gaps = np.diff(e.n)
        wt = np.concatenate([[1.0], (gaps[:-1] + gaps[1:]) / 2, [gaps[-1]]])
        wt[e.n <= 64] = 1.0
    ref = np.maximum(np.max(np.where(below, log_w, -np.inf), axis=1), log_w_cap)
    ref = np.maximum(ref, 0.0)
    w_states = np.exp(np.where(below, log_w - ref[:, None], -np.inf)) * wt[None, :]
    w0 = np.exp(-ref)  # empty system
    w_tail = np.exp(log_w_cap - ref) / (1.0 - r)  # states >= B
    z = w0 + w_states.sum(1) + w_tail
    p_wait = w_tail / z
    # running batch m = min(N, B); the decode time it sees
    mean_running = ((w_states * n).sum(1) + B * w_tail) / z
    d_mean = (w0 * d[:, 0] + (w_states * d).sum(1) + d_cap * w_tail) / z
    d_sq = (w0 * d[:, 0] ** 2 + (w_states * d**2).sum(1) + d_cap**2 * w_tail) / z
    d_var = np.maximum(d_sq - d_mean**2, 0.0)
    t1 = d_mean * stretch  # mean iteration

    # 3a. TTFT once admitted: the residual of the iteration it arrives in, then the next
    # iteration, which prefills its prompt and those of its companions (the other arrivals of
    # that iteration). Mixture over j prompts in the landing iteration and k companions.
    chunks = np.ceil(e.lengths.input[None, :] / np.maximum(e.token_budget[:, None], 1.0))
    # an arrival that finds the engine empty (probability w0 / z, PASTA) starts its prefill at
    # once: no residual, no companions, an iteration of D(1) + its prompt
    p_idle = w0 / z
    mix = _admitted_mixture(lam, d_mean, m1, m2, rho_p, e.prefill_s,
                            (chunks - 1) * d_mean[:, None], p_idle, d[:, 0])
    # slot wait: exponential with the chain's drain rate at the cap, scaled by Allen-Cunneen's
    # (1 + cs^2) / 2 for the near-deterministic service (cs: variation of the output length)
    mu_cap = B / (osl * tau_cap)
    cs2 = float(np.var(e.lengths.output) / max(osl**2, 1e-9))
    wait_mean = (1.0 + cs2) / 2.0 / np.maximum(mu_cap * (1.0 - r), 1e-30)
    over = e.request_overhead_s
    ttft_mean = over + mix.mean + p_wait * wait_mean

    # 3b. TPOT: the mean iteration over a request's o - 1 decode iterations; its variance from
    # the prompts arriving meanwhile (compound Poisson) and the batch's drift, amplified by
    # 1 / (1 - rho_p) since longer iterations gather more prompts
    outs = e.lengths.output[None, :]
    tpot_var = ((lam * m2 * t1)[:, None] / np.maximum(outs - 1.0, 1.0)
                + (2.0 / 3.0) * d_var[:, None]) / ((1.0 - rho_p) ** 2)[:, None]

    inf = np.inf
    tput = np.where(saturated, cap_rps, lam) * osl
    return Queue(saturated, cap_rps, lam / cap_rps, mean_running, p_wait,
                 np.minimum(lam, cap_rps) * m1, np.where(saturated, inf, ttft_mean),
                 np.where(saturated, inf, t1), tput, mix, wait_mean, over, tpot_var)


def closed_loop(e: Engine, concurrency: Array) -> tuple[Array, Array, Array]:
    """(TTFT mean, TPOT mean, output tokens/s) of P replicas each holding ``concurrency``
    requests in flight (a closed loop: a finished request is replaced at once).

    In steady state every iteration decodes c sequences and prefills the c / osl prompts that
    replace those finishing (as in ``serving.steady_state``): tau = D(c) + (c / osl) E[P]. A new
    request is issued at an iteration's end and lands in the next one, with at least its own
    prompt: TTFT = overhead + D(c) + max(1, c / osl) E[P] (+ the decode time of the extra
    iterations a prompt longer than the token budget needs)."""
    want = np.maximum(np.asarray(concurrency, dtype=float), 1.0)
    c = np.minimum(want, e.batch_cap)
    osl = max(e.lengths.mean_output, 1.0)
    m1 = e.prefill_s.mean(axis=1)
    d = e.decode_at(c[:, None])[:, 0]
    tau = d + c / osl * m1
    chunks = np.ceil(e.lengths.input / np.maximum(e.token_budget[:, None], 1.0)).mean(axis=1)
    # beyond the batch cap the rest queue: a new request waits for (want - c) departures,
    # which come at c / (osl tau) per second
    wait = (want - c) * osl * tau / c
    ttft = e.request_overhead_s + wait + d * chunks + np.maximum(1.0, c / osl) * m1
    return ttft, tau, c / tau


def _interp_grid(x: Array, y: Array, at: Array) -> Array:
    """y[p](at[p, m]) by linear interpolation along each row of y (x shared, increasing)."""
    at = np.clip(at, x[0], x[-1])
    if len(x) == 1:
        return np.broadcast_to(y[:, :1], at.shape).copy()
    j = np.clip(np.searchsorted(x, at, side="right") - 1, 0, len(x) - 2)
    w = (at - x[j]) / (x[j + 1] - x[j])
    rows = np.arange(y.shape[0])[:, None]
    return y[rows, j] * (1 - w) + y[rows, j + 1] * w


def _interp_rows(x: Array, y: Array, at: Array) -> Array:
    """y[p](at[p]) for one point per row."""
    return _interp_grid(x, y, np.asarray(at, dtype=float)[:, None])[:, 0]


@dataclass(frozen=True)
class _Mixture:
    """TTFT of an admitted request: sum over (j, k, s) of weight_jk / S x (U(0, tau_j) + base_k
    + own_s + N(0, sd_k)) where tau_j = D + j E[P] is the landing iteration (j prompts in it,
    length-biased), base_k + own_s = D + k E[P] + the request's own prompt s the next one with
    k companions, sd_k^2 = k Var[P]. Stored flat, only the (j, k) that carry weight: most of
    the grid is a tail of negligible weight (for heavy-tailed lengths 85% of it below 1e-12),
    and dropping it moves no CDF by more than its sum, < 1e-5."""

    rows: int  # P
    row: Array  # (N,) the configuration each (j, k) component belongs to
    weight: Array  # (N,) its weight, shared equally by the S own-prompt pairs
    tau: Array  # (N,)
    base: Array  # (N,)
    spread: Array  # (N,)
    own: Array  # (P, S) engine-seconds of the request's own prompt, per length pair
    mean: Array  # (P,)
    var: Array  # (P,)

    def row_max(self, values: Array) -> Array:
        """Per configuration, the largest of ``values`` (one per component)."""
        out = np.zeros(self.rows)
        np.maximum.at(out, self.row, values)
        return out

    @property
    def const_max(self) -> Array:
        return self.row_max(self.base) + self.own.max(axis=1)

    def cdf(self, x: Array) -> Array:
        """P(T <= x) for x of shape (P, M)."""
        S = self.own.shape[1]
        out = np.zeros((self.rows, x.shape[1]))
        step = max(CDF_CHUNK // S, 1)
        # in chunks: the (n, S, M) temporaries stay in cache instead of being mapped afresh
        for lo in range(0, len(self.row), step):
            sl = slice(lo, lo + step)
            row = self.row[sl]
            y = (x[row][:, None, :] - self.base[sl, None, None]
                 - self.own[row][:, :, None])  # (n, S, M)
            s, tau = self.spread[sl, None, None], self.tau[sl, None, None]
            point = tau < 1e-9  # no residual (the idle component): a step at const
            u = np.where(point, normal_cdf(y / np.maximum(s, 1e-12)),
                         (_int_cdf(y, s) - _int_cdf(y - tau, s)) / np.maximum(tau, 1e-12))
            wu = (self.weight[sl, None] / S) * u.sum(axis=1)  # (n, M)
            for m in range(x.shape[1]):
                out[:, m] += np.bincount(row, weights=wu[:, m], minlength=self.rows)
        return out


def _int_cdf(y: Array, s: Array) -> Array:
    """Integral of the N(0, s) CDF from -inf to y (s = 0: max(y, 0))."""
    s = np.maximum(s, 1e-12)
    z = y / s
    return y * normal_cdf(z) + s * np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi)


def _pmf_grid(mean: Array, var: Array, size: int) -> Array:
    """(P, size) negative-binomial (var > mean) or Poisson pmf on 0..size-1, renormalised."""
    k = np.arange(size)[None, :]
    mean = np.maximum(mean, 1e-12)[:, None]
    var = np.maximum(var[:, None], mean * (1 + 1e-9))
    r = mean**2 / (var - mean)  # NB shape
    p = mean / var
    from math import lgamma

    lg = np.vectorize(lgamma, otypes=[float])
    logpmf = (lg(k + r) - lg(r) - log_factorial(k) + r * np.log(p) + k * np.log1p(-p))
    pmf = np.exp(logpmf - logpmf.max(axis=1, keepdims=True))
    return pmf / pmf.sum(axis=1, keepdims=True)


def _poisson_grid(mean: Array, size: int) -> Array:
    k = np.arange(size)
    logpmf = k * np.log(np.maximum(mean[..., None], 1e-300)) - mean[..., None] - log_factorial(k)
    pmf = np.exp(logpmf)
    return pmf / np.maximum(pmf.sum(axis=-1, keepdims=True), 1e-300)


CDF_CHUNK = 1 << 15  # mixture components evaluated at a time
MIXTURE_WEIGHT_FLOOR = 1e-12  # TTFT mixture components lighter than this are not evaluated
LANDING_GROUPS = 8  # size classes of the prompt that sets the landing block's length


def _admitted_mixture(lam: Array, d: Array, m1: Array, m2: Array, rho: Array, own: Array,
                      extra: Array, p_idle: Array, d_idle: Array) -> _Mixture:
    """Prompts per iteration follow j' ~ Poisson(lam (D + j E[P])): a branching process with
    immigration, mean lam D / (1 - rho), variance mean / (1 - rho^2); approximated by the
    negative binomial with those moments. The landing iteration is length-biased. The request's
    own prompt is one of the S length pairs (``own``: its engine-seconds, ``extra``: the decode
    time of the further iterations a prompt longer than the token budget needs). With
    probability ``p_idle`` the engine is empty: one more component, the prompt alone in an
    iteration of ``d_idle`` + its own cost, with no residual."""
    mean_j = lam * d / (1 - rho)
    var_j = mean_j / (1 - rho**2)
    J0 = int(np.clip(np.ceil(np.max(mean_j + 7 * np.sqrt(var_j) + 3)), 4, 48))
    pj = _pmf_grid(mean_j, var_j, J0)
    # the landing block holds j prompts: one drawn from L groups of the lengths (by size), the
    # other j - 1 at the mean; the block lasts until that prompt's last chunk (a long prompt
    # holds every later arrival for all its chunks: head-of-line blocking). Length-biased.
    S = own.shape[1]
    L = min(S, LANDING_GROUPS)
    groups = np.array_split(np.arange(S), L)
    block = np.stack([(own + extra)[:, g].mean(axis=1) for g in groups], axis=1)  # (P, L)
    j = np.arange(J0)[None, :, None]
    tau = np.where(j == 0, d[:, None, None],
                   d[:, None, None] + (j - 1) * m1[:, None, None] + block[:, None, :])
    wj = (pj[:, :, None] / L) * tau
    P = len(lam)
    J = J0 * L
    tau = tau.reshape(P, J)
    wj = wj.reshape(P, J)
    wj = wj / wj.sum(axis=1, keepdims=True)
    comp = lam[:, None] * tau  # companions: Poisson over the landing block
    K = int(np.clip(np.ceil(np.max(comp + 7 * np.sqrt(comp) + 3)), 4, 48))
    pk = _poisson_grid(comp, K)  # (P, J, K)
    # the (j, k) components that carry weight (each shared by the S own-prompt pairs)
    w3 = wj[:, :, None] * pk * (1.0 - p_idle)[:, None, None]
    p_i, j_i, k_i = np.nonzero(w3 > MIXTURE_WEIGHT_FLOOR)
    oe = own + extra  # (P, S)
    weight = w3[p_i, j_i, k_i]
    tau_c = tau[p_i, j_i]
    base = d[p_i] + k_i * m1[p_i]
    spread = np.sqrt(k_i * np.maximum(m2 - m1**2, 0.0)[p_i])
    # the idle component: no residual (tau = 0), no companions, the prompt alone
    idle = np.flatnonzero(p_idle > MIXTURE_WEIGHT_FLOOR)
    row = np.concatenate([p_i, idle])
    weight = np.concatenate([weight, p_idle[idle]])
    tau_c = np.concatenate([tau_c, np.zeros(len(idle))])
    base = np.concatenate([base, d_idle[idle]])
    spread = np.concatenate([spread, np.zeros(len(idle))])
    # moments over the S pairs: E[own], E[own^2] per configuration
    o1, o2 = oe.mean(axis=1)[row], (oe**2).mean(axis=1)[row]
    mean = np.bincount(row, weights=weight * (tau_c / 2 + base + o1), minlength=P)
    second = np.bincount(row, weights=weight * (tau_c**2 / 3 + tau_c * (base + o1)
                                                + base**2 + 2 * base * o1 + o2 + spread**2),
                         minlength=P)
    return _Mixture(P, row, weight, tau_c, base, spread, oe, mean,
                    np.maximum(second - mean**2, 0))
