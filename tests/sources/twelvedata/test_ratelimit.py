"""The credit limiter, driven on virtual time: no 429 a fixed window of any phase could see, and
the budget used in full on long runs."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import pytest

from dataflow.errors import ConfigError, DailyLimitError
from dataflow.sources.twelvedata.ratelimit import CreditLimiter

T = TypeVar("T")


class VirtualTime:
    """A clock and a sleep that advance only when every task is waiting (discrete events)."""

    def __init__(self) -> None:
        self.now = 0.0
        self._timers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._timers, (self.now + max(0.0, delay), next(self._seq), future))
        await future

    async def run(self, main: Coroutine[Any, Any, T]) -> T:
        task = asyncio.ensure_future(main)
        while True:
            for _ in range(50):  # let every runnable task reach its next wait
                await asyncio.sleep(0)
            if task.done():
                return task.result()
            while self._timers and self._timers[0][2].cancelled():
                heapq.heappop(self._timers)
            if not self._timers:
                task.cancel()
                raise AssertionError("deadlock: every task waits and no timer is set")
            at, _, future = heapq.heappop(self._timers)
            self.now = max(self.now, at)
            future.set_result(None)


def cl_limiter(vt: VirtualTime, per_minute: int | None, per_day: int | None = None,
               **kw: Any) -> CreditLimiter:  # fmt: skip
    return CreditLimiter(per_minute, per_day, clock=vt.clock, sleep=vt.sleep, **kw)


def run(main: Callable[[VirtualTime], Awaitable[T]]) -> T:
    vt = VirtualTime()

    async def go() -> T:
        return await vt.run(main(vt))  # type: ignore[arg-type]

    return asyncio.run(go())


async def simulate(
    vt: VirtualTime,
    limiter: CreditLimiter,
    *,
    requests: int,
    workers: int,
    seed: int,
    costs: tuple[int, ...] = (1,),
    latency: tuple[float, float] = (0.05, 2.0),
) -> list[tuple[float, int]]:
    """Workers send requests through the limiter; return (arrival time at the server, credits).

    The server counts a request when it arrives: anywhere between send and answer.
    """
    rng = random.Random(seed)
    arrivals: list[tuple[float, int]] = []
    queue = list(range(requests))

    async def worker() -> None:
        while queue:
            queue.pop()
            credits = rng.choice(costs)
            ticket = await limiter.acquire(credits)
            took = rng.uniform(*latency)
            arrivals.append((ticket.sent_at + rng.random() * took, credits))
            await vt.sleep(took)
            limiter.complete(ticket)

    await asyncio.gather(*(worker() for _ in range(workers)))
    return arrivals


def worst_fixed_window(arrivals: list[tuple[float, int]], window: float, phases: int = 40) -> int:
    """The most credits any fixed server window saw, over many window phases."""
    worst = 0
    for k in range(phases):
        phase = window * k / phases
        buckets: Counter[int] = Counter()
        for at, credits in arrivals:
            buckets[math.floor((at - phase) / window)] += credits
        worst = max(worst, *buckets.values())
    return worst


def test_admits_a_full_window_at_once_then_waits_one_window_after_the_answers() -> None:
    async def main(vt: VirtualTime) -> list[float]:
        limiter = cl_limiter(vt, 8)
        tickets = [await limiter.acquire(1) for _ in range(8)]
        assert vt.now == 0.0
        await vt.sleep(0.5)
        for t in tickets:
            limiter.complete(t)
        ninth = await limiter.acquire(1)
        return [ninth.sent_at]

    assert run(main) == [pytest.approx(60.5)]


def test_waits_for_an_answer_when_all_credits_are_in_flight() -> None:
    async def main(vt: VirtualTime) -> float:
        limiter = cl_limiter(vt, 2, window=10.0)
        first = await limiter.acquire(2)

        async def answer_later() -> None:
            await vt.sleep(3.0)
            limiter.complete(first)

        answering = asyncio.ensure_future(answer_later())
        second = await limiter.acquire(1)
        await answering
        return second.sent_at

    assert run(main) == pytest.approx(13.0)  # answered at 3, held one window after that


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_no_fixed_window_of_any_phase_exceeds_the_limit(seed: int) -> None:
    async def main(vt: VirtualTime) -> list[tuple[float, int]]:
        limiter = cl_limiter(vt, 20, window=60.0)
        return await simulate(vt, limiter, requests=400, workers=8, seed=seed, costs=(1, 2, 3))

    arrivals = run(main)
    assert sum(c for _, c in arrivals) > 700
    assert worst_fixed_window(arrivals, 60.0) <= 20


def test_long_runs_use_at_least_95_percent_of_the_budget() -> None:
    async def main(vt: VirtualTime) -> tuple[float, int]:
        limiter = cl_limiter(vt, 8, window=60.0)
        arrivals = await simulate(vt, limiter, requests=800, workers=4, seed=7, latency=(0.1, 1))
        assert worst_fixed_window(arrivals, 60.0) <= 8
        return vt.now, limiter.used_total

    elapsed, used = run(main)
    windows = math.ceil(elapsed / 60.0)
    assert used == 800
    assert used / (8 * windows) >= 0.95


def test_a_large_request_is_not_starved_by_small_ones() -> None:
    async def main(vt: VirtualTime) -> list[int]:
        limiter = cl_limiter(vt, 4, window=10.0)
        order: list[int] = []

        async def send(credits: int) -> None:
            ticket = await limiter.acquire(credits)
            order.append(credits)
            await vt.sleep(0.1)
            limiter.complete(ticket)

        await send(3)
        await asyncio.gather(send(4), *(send(1) for _ in range(3)))
        return order

    assert run(main) == [3, 4, 1, 1, 1]  # first come, first served


def test_penalize_blocks_new_sends_for_a_whole_window() -> None:
    async def main(vt: VirtualTime) -> float:
        limiter = cl_limiter(vt, 100, window=60.0)
        limiter.complete(await limiter.acquire(1))
        await vt.sleep(5.0)
        limiter.penalize()
        ticket = await limiter.acquire(1)
        assert limiter.stats()["penalties"] == 1
        return ticket.sent_at

    assert run(main) == pytest.approx(65.0)


def test_unlimited_never_waits_but_still_counts() -> None:
    async def main(vt: VirtualTime) -> CreditLimiter:
        limiter = cl_limiter(vt, None)
        for _ in range(1000):
            limiter.complete(await limiter.acquire(5))
        return limiter

    limiter = run(main)
    assert limiter.used_total == 5000
    assert limiter.stats()["waits"] == 0


def test_a_request_larger_than_the_minute_budget_is_a_config_error() -> None:
    async def main(vt: VirtualTime) -> None:
        await cl_limiter(vt, 8).acquire(9)

    with pytest.raises(ConfigError, match="batch_size"):
        run(main)


def test_the_daily_budget_raises_at_once_instead_of_waiting() -> None:
    async def main(vt: VirtualTime) -> CreditLimiter:
        limiter = cl_limiter(vt, 8, per_day=20, day_used=15)
        limiter.complete(await limiter.acquire(5))
        with pytest.raises(DailyLimitError, match="daily budget of 20"):
            await limiter.acquire(1)
        assert vt.now == 0.0
        return limiter

    assert run(main).used_today == 20


def test_uncharged_attempts_give_daily_credits_back_and_a_new_day_resets() -> None:
    wall = [10.0]

    async def main(vt: VirtualTime) -> CreditLimiter:
        limiter = cl_limiter(vt, None, per_day=3, day_seconds=100.0, day_clock=lambda: wall[0])
        limiter.complete(await limiter.acquire(3), charged=False)  # e.g. a 500
        assert limiter.used_today == 0
        limiter.complete(await limiter.acquire(3))
        with pytest.raises(DailyLimitError):
            await limiter.acquire(1)
        wall[0] = 150.0  # the next day
        limiter.complete(await limiter.acquire(3))
        return limiter

    limiter = run(main)
    assert (limiter.used_today, limiter.used_total) == (3, 6)


def test_an_adopted_lower_limit_applies_to_the_next_request() -> None:
    async def main(vt: VirtualTime) -> float:
        limiter = cl_limiter(vt, 10, window=10.0)
        for _ in range(4):
            limiter.complete(await limiter.acquire(1))
        limiter.lower_limit(4)
        limiter.lower_limit(50)  # never raised by a server's message
        return (await limiter.acquire(1)).sent_at

    assert run(main) == pytest.approx(10.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"per_minute": 0, "per_day": None}, "per minute"),
        ({"per_minute": None, "per_day": 0}, "per day"),
        ({"per_minute": 8, "per_day": None, "window": 0}, "window"),
    ],
)
def test_invalid_budgets_are_config_errors(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        CreditLimiter(**kwargs)
