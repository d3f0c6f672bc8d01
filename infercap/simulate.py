"""A discrete-event simulation of one continuously batching replica (seeded, seconds not minutes).

It runs the scheduler that ``infercap.queueing`` models analytically, iteration by iteration,
on the same iteration-time model (``queueing.Engine``), so the two differ only by the queueing
approximations, which is what ``docs/queueing.md`` measures:

- requests arrive as a Poisson process (or all at once: a burst), or from a finite closed loop
  (a benchmark client with ``concurrency`` requests in flight: the first ``concurrency`` at
  once, each later one as soon as one finishes), with (input, output) lengths drawn from the
  workload's pairs; a request reaches the engine ``request_overhead_s`` after the client sends
  it (the HTTP server's own work before the GPU), and TTFT counts from the send;
- a request takes a slot when fewer than ``batch_cap`` sequences are admitted (FCFS);
- each iteration decodes one token for every decoding sequence, then spends the rest of the
  ``token_budget`` on admitted prompts, FCFS, in chunks (chunked prefill);
- the iteration lasts D(n decoding, their mean context) + the engine-seconds of its prompt
  tokens; a prompt's first token comes at the end of the iteration that finishes its prefill,
  and a sequence with output o leaves after o - 1 more iterations.

Only the bookkeeping is a Python loop (a few microseconds per iteration: completions are
indexed by the iteration they happen in, not searched; a stretch of pure decode iterations
with nothing to admit is summed in closed form up to the next completion).
"""

from __future__ import annotations

import heapq
from collections import defaultdict, deque
from dataclasses import dataclass

import numpy as np

from infercap.queueing import QUANTILES, Engine


@dataclass(frozen=True)
class Simulated:
    """Per-request results of the measured window (seconds)."""

    ttft: np.ndarray
    tpot: np.ndarray  # requests with more than one output token
    output_tokens_per_s: float
    itl_mean: float  # mean gap between streamed tokens (weighted by tokens, unlike TPOT)
    mean_batch: float
    iterations: int

    def percentiles(self, quantiles: tuple[float, ...] = QUANTILES) -> dict[str, np.ndarray]:
        # NaN where nothing was measured (one output token: no time per output token)
        return {k: (np.quantile(v, quantiles) if len(v) else np.full(len(quantiles), np.nan))
                for k, v in (("ttft", self.ttft), ("tpot", self.tpot))}


def simulate(e: Engine, p: int, rate: float, requests: int = 20_000, seed: int = 0,
             warmup: float = 0.1, concurrency: int | None = None) -> Simulated:
    """Simulate configuration ``p`` of ``e`` at ``rate`` requests/s (``rate`` = inf: all
    ``requests`` arrive at time 0), or, with ``concurrency``, as a finite closed loop (``rate``
    ignored): ``concurrency`` requests sent at time 0, and each later one the moment an earlier
    one's last token is out. Requests sent in the first and last ``warmup`` share of the run
    are simulated but not measured."""
    rng = np.random.default_rng(seed)
    n_req = int(requests)
    ovh = float(e.request_overhead_s[p])
    closed = concurrency is not None
    if closed:
        send = np.full(n_req, np.inf)
        send[:max(1, min(int(concurrency), n_req))] = 0.0  # type: ignore[arg-type]
        issued = int(np.isfinite(send).sum())
    elif np.isinf(rate):
        send = np.zeros(n_req)
    else:
        send = np.cumsum(rng.exponential(1.0 / rate, n_req))
    arrive = send + ovh  # at the engine: after the server's own pre-processing
    pick = rng.integers(len(e.lengths.input), size=n_req)
    isl = np.maximum(np.round(e.lengths.input[pick]), 1.0)
    osl = np.maximum(np.round(e.lengths.output[pick]), 1.0)
    per_token = (e.prefill_s[p] / np.maximum(e.lengths.input, 1.0))[pick]
    cap = int(e.batch_cap[p])
    budget_all = float(e.token_budget[p])
    ns = np.arange(cap + 1, dtype=float)
    d_at = np.interp(np.maximum(ns, 1.0), e.n, e.decode_s[p])
    slope_at = np.interp(np.maximum(ns, 1.0), e.n, e.decode_s_per_context[p])
    ctx0 = float(e.context[p])
    # TensorRT-LLM's batch waiting (PyExecutor._waiting_requests): while prompts wait, an
    # iteration that would schedule fewer than fraction x budget tokens (prompt + decode) runs
    # without them, up to wait_iters iterations in a row; an idle engine does not wait
    wait_iters = int(e.batch_wait_iterations[p]) if e.batch_wait_iterations is not None else 0
    wait_tokens = (float(e.batch_wait_tokens_fraction[p]) * budget_all
                   if e.batch_wait_tokens_fraction is not None else 0.0)
    waited = 0
    # SGLang's SchedulerRecvSkipper: a decode iteration adds 1 to a counter, an iteration with
    # prefill its default weight of 1000 (here: the interval, so it polls at once); new
    # requests are taken in when the counter reaches the interval
    recv_every = max(int(e.recv_interval_iterations[p]), 1) \
        if e.recv_interval_iterations is not None else 1
    recv_count = recv_every
    inbox: deque[int] = deque()  # at the engine, not yet taken in by the scheduler
    # TensorRT-LLM attention-DP balancing (PyExecutor._balance_adp_requests): each admitted
    # request goes to the DP rank with the fewest active ones; prompts are scheduled only in an
    # iteration where every rank has one, or when some rank has nothing to decode, or after
    # ``timeout`` iterations of holding (the counter runs every iteration, prompts or not)
    dp = int(e.dp[p]) if e.dp is not None else 1
    balance = int(e.dp_balance_timeout_iterations[p]) \
        if e.dp_balance_timeout_iterations is not None and dp > 1 else 0
    rank_of = np.zeros(n_req, dtype=int)
    rank_active = np.zeros(dp, dtype=int)
    rank_dec = np.zeros(dp, dtype=int)
    held = 0

    first = np.full(n_req, np.nan)
    end = np.full(n_req, np.nan)
    waiting: deque[int] = deque()
    prefilling: deque[list] = deque()  # [request, prompt tokens left]
    finish: dict[int, list[int]] = defaultdict(list)
    due: list[int] = []  # heap of the iterations in ``finish``
    t, it, nxt, done, n_dec, ctx_total = 0.0, 0, 0, 0, 0, 0.0
    batch_time = 0.0

    def complete(r: int) -> None:
        nonlocal done, issued
        end[r] = t
        done += 1
        if closed and issued < n_req:  # the client sends its next request at once
            send[issued] = t
            arrive[issued] = t + ovh
            issued += 1

    while done < n_req:
        while nxt < n_req and arrive[nxt] <= t:
            inbox.append(nxt)
            nxt += 1
        if n_dec == 0 and not prefilling:
            recv_count = recv_every  # an idle scheduler polls continuously
        if recv_count >= recv_every:  # the poll resets the counter, requests or not
            waiting.extend(inbox)
            inbox.clear()
            recv_count = 0
        while waiting and n_dec + len(prefilling) < cap:
            r = waiting.popleft()
            prefilling.append([r, isl[r]])
            if dp > 1:
                rank_of[r] = int(np.argmin(rank_active))
                rank_active[rank_of[r]] += 1
        if n_dec == 0 and not prefilling:
            t = arrive[nxt]  # idle until the next arrival
            continue
        if not prefilling and not inbox and (nxt >= n_req or not np.isfinite(arrive[nxt])) \
                and due:
            # nothing to admit until a completion: k pure decode iterations, the mean context
            # growing by one token each (tau_i = d + slope (cm + i - 1 - ctx0)), summed
            k = due[0] - it - 1
            if k > 0:
                cm = ctx_total / n_dec
                span = k * (d_at[n_dec] + slope_at[n_dec] * (cm - ctx0)) \
                    + slope_at[n_dec] * k * (k - 1) / 2.0
                t += span
                it += k
                batch_time += n_dec * span
                ctx_total += n_dec * k
                held = (held + k) % balance if balance else 0  # its counter runs on
                recv_count = (recv_count + k) % recv_every
        budget = budget_all - n_dec
        work = 0.0
        ready: list[int] = []
        if wait_iters and prefilling and n_dec:
            ctx = min(sum(entry[1] for entry in prefilling), max(budget, 0.0))
            if waited < wait_iters and ctx + n_dec < wait_tokens:
                waited += 1
                budget = 0.0  # the prompts wait: a decode-only iteration
            else:
                waited = 0
        if balance:
            ranks_ctx = np.zeros(dp, dtype=bool)
            for entry in prefilling:
                ranks_ctx[rank_of[entry[0]]] = True
            if ranks_ctx.all():
                held = 0
            else:
                held += 1
                if held >= balance or not (rank_dec > 0).all():
                    held = 0
                else:
                    budget = 0.0  # prompts held for balance: a decode-only iteration
        for entry in prefilling:
            if budget <= 0:
                break
            take = min(entry[1], budget)
            work += take * per_token[entry[0]]
            entry[1] -= take
            budget -= take
            if entry[1] <= 0:
                ready.append(entry[0])
        for _ in ready:
            prefilling.popleft()
        if n_dec:
            dec = d_at[n_dec] + slope_at[n_dec] * (ctx_total / n_dec - ctx0)
        else:
            dec = d_at[1]
        tau = dec + work
        recv_count += recv_every if work > 0 else 1
        t += tau
        it += 1
        batch_time += n_dec * tau
        ctx_total += n_dec
        if due and due[0] == it:
            heapq.heappop(due)
        for r in finish.pop(it, ()):
            n_dec -= 1
            ctx_total -= isl[r] + osl[r]
            if dp > 1:
                rank_active[rank_of[r]] -= 1
                rank_dec[rank_of[r]] -= 1
            complete(r)
        for r in ready:
            first[r] = t
            if osl[r] <= 1:
                if dp > 1:
                    rank_active[rank_of[r]] -= 1
                complete(r)
            else:
                if dp > 1:
                    rank_dec[rank_of[r]] += 1
                n_dec += 1
                ctx_total += isl[r] + 1
                at = it + int(osl[r]) - 1
                if at not in finish:
                    heapq.heappush(due, at)
                finish[at].append(r)
    lo, hi = int(warmup * n_req), int((1 - warmup) * n_req)
    window = np.arange(n_req)[lo:max(hi, lo + 1)]
    ttft = first[window] - send[window]
    multi = window[osl[window] > 1]
    tpot = (end[multi] - first[multi]) / (osl[multi] - 1)
    itl = float((end[multi] - first[multi]).sum() / max((osl[multi] - 1).sum(), 1.0))
    span = max(t - float(send[0]), 1e-12)
    return Simulated(ttft, tpot, float(osl.sum() / span), itl, batch_time / max(t, 1e-12), it)
