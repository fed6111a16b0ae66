"""Running inference: one request at a time on the event loop, or in adaptive batches on a worker thread.

Without batching, onnxruntime runs on the event loop itself: handing each run to a thread measured 2-3x slower
per request for small models (thread wake-ups cost more than the run), and requests are served one at a time
either way. With ``max_batch > 1``, concurrent requests are merged: the first request waits at most
``max_wait`` seconds for others, rows are concatenated into one onnxruntime run on a worker thread (so the
event loop keeps gathering the next batch), and each request gets its own rows back. A lone request under
light load pays at most ``max_wait``; under load, batches fill before the wait ends.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .metrics import Metrics
from .model import Model
from .protocol import InferRequest


class Runner:
    def __init__(self, model: Model, metrics: Metrics, max_batch: int = 1, max_wait: float = 0.002) -> None:
        self.model, self.metrics = model, metrics
        self.max_batch = max_batch if model.batchable else 1
        self.max_wait = max_wait
        # one worker: onnxruntime parallelises inside a run with its own intra-op threads
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="onnxruntime")
        self.queue: asyncio.Queue[tuple[InferRequest, asyncio.Future[dict[str, np.ndarray]], float]] | None = None
        self.task: asyncio.Task[None] | None = None

    @property
    def batching(self) -> bool:
        return self.max_batch > 1

    def run_now(self, request: InferRequest) -> dict[str, np.ndarray]:
        """One run on the calling thread (the event loop): no batching."""
        start = time.perf_counter()
        result = self.model.run(request.feeds, request.outputs)
        self.metrics.inference.observe(time.perf_counter() - start)
        self.metrics.batch.observe(request.rows)
        return result

    async def infer(self, request: InferRequest) -> dict[str, np.ndarray]:
        """Join the next batch (a request already as large as a batch runs alone, on the worker)."""
        if request.rows >= self.max_batch:
            return await self._run(request.feeds, request.outputs)
        if self.queue is None:
            self.queue = asyncio.Queue()
            self.task = asyncio.get_running_loop().create_task(self._batches())
        future: asyncio.Future[dict[str, np.ndarray]] = asyncio.get_running_loop().create_future()
        await self.queue.put((request, future, time.perf_counter()))
        return await future

    async def _run(self, feeds: dict[str, np.ndarray], outputs: list[str] | None) -> dict[str, np.ndarray]:
        start = time.perf_counter()
        result = await asyncio.get_running_loop().run_in_executor(self.executor, self.model.run, feeds, outputs)
        self.metrics.inference.observe(time.perf_counter() - start)
        self.metrics.batch.observe(next(iter(feeds.values())).shape[0])
        return result

    async def _batches(self) -> None:
        assert self.queue is not None
        while True:
            first = await self.queue.get()
            batch = [first]
            rows = first[0].rows
            deadline = first[2] + self.max_wait
            while rows < self.max_batch:
                timeout = deadline - time.perf_counter()
                try:  # past the wait (requests queued during the last run), take what is already there
                    item = self.queue.get_nowait() if timeout <= 0 else \
                        await asyncio.wait_for(self.queue.get(), timeout)
                except (TimeoutError, asyncio.QueueEmpty):
                    break
                batch.append(item)
                rows += item[0].rows
            await self._run_batch(batch)

    async def _run_batch(self, batch: list[tuple[InferRequest, asyncio.Future[dict[str, np.ndarray]], float]]) -> None:
        now = time.perf_counter()
        for _, _, queued in batch:
            self.metrics.queue.observe(now - queued)
        requests = [r for r, _, _ in batch]
        feeds = {name: np.concatenate([r.feeds[name] for r in requests]) for name in requests[0].feeds}
        try:
            merged = await self._run(feeds, None)
        except Exception as exc:
            for _, future, _ in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        start = 0
        for request, future, _ in batch:
            stop = start + request.rows
            names = request.outputs or list(merged)
            if not future.done():
                future.set_result({name: merged[name][start:stop] for name in names})
            start = stop

    def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
        self.executor.shutdown(wait=True)
