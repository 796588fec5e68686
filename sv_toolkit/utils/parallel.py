"""Map a function over work items in worker processes (or in-process for num_workers <= 1)."""
from __future__ import annotations

import multiprocessing
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def imap_processes(
    fn: Callable[[T], R],
    items: Iterable[T],
    num_workers: int,
    ordered: bool = True,
    initializer: Callable[[], None] | None = None,
) -> Iterator[R]:
    """``fn`` over ``items`` in ``num_workers`` forked processes, one item per task; results as they come
    (in item order when ``ordered``). With ``num_workers <= 1`` everything runs here, in order."""
    if num_workers <= 1:
        if initializer is not None:
            initializer()
        yield from map(fn, items)
        return
    with multiprocessing.get_context("fork").Pool(num_workers, initializer=initializer) as pool:
        run = pool.imap if ordered else pool.imap_unordered
        yield from run(fn, items, chunksize=1)
