"""Deep graphs without Python recursion: a depth-first post-order walk on an explicit stack, and head room on the
interpreter's recursion limit for third-party code that walks a graph recursively (Keras' functional model); and
Python's cyclic garbage collector paused while a big graph of objects is made (`gc_paused`).

A net of thousands of chained layers must build, check and grow without a RecursionError: every graph walk of
`transition` goes through `postorder`; Keras' `Functional` construction maps its graph with one Python frame per
node (`keras.src.ops.function._build_map_helper`), so building a model wraps it in `recursion_room(depth)`.
"""

from __future__ import annotations

import contextlib
import gc
import sys
import threading
from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import TypeVar

__all__ = ["Cycle", "gc_paused", "postorder", "recursion_room"]

N = TypeVar("N", bound=Hashable)

_FRAMES_PER_NODE = 4  # Keras' map_graph: _build_map_helper calls itself once per node; room for what it calls
_LOCK = threading.Lock()


class Cycle(Exception):
    """`postorder` met a cycle; `path` is the cycle, its first node repeated at the end (a -> b -> a)."""

    def __init__(self, path: list):
        super().__init__(" -> ".join(map(str, path)))
        self.path = path


def postorder(roots: Iterable[N], children: Callable[[N], Iterable[N]]) -> list[N]:
    """Every node reachable from `roots`, each after all its children (depth first, children in their order,
    roots in theirs: the order a recursive walk would give); `Cycle` on a cycle. No recursion, so any depth."""
    order: list[N] = []
    done: set[N] = set()
    on_path: dict[N, int] = {}  # node -> its index in `path`
    for root in roots:
        if root in done:
            continue
        path: list[N] = [root]
        stack: list[Iterator[N]] = [iter(children(root))]
        on_path[root] = 0
        while stack:
            child = next(stack[-1], _END)
            if child is _END:
                stack.pop()
                node = path.pop()
                del on_path[node]
                done.add(node)
                order.append(node)
            elif child in on_path:
                raise Cycle(path[on_path[child]:] + [child])
            elif child not in done:
                on_path[child] = len(path)
                path.append(child)
                stack.append(iter(children(child)))
    return order


_END = object()


@contextlib.contextmanager
def recursion_room(depth: int) -> Iterator[None]:
    """Room for a recursive walk `depth` nodes deep in third-party code: the recursion limit raised (never
    lowered) for the block, put back afterwards unless someone else changed it meanwhile."""
    with _LOCK:
        before = sys.getrecursionlimit()
        want = max(before, _FRAMES_PER_NODE * int(depth) + 1000)
        if want > before:
            sys.setrecursionlimit(want)
    try:
        yield
    finally:
        with _LOCK:
            if want > before and sys.getrecursionlimit() == want:
                sys.setrecursionlimit(before)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off for the block (back on afterwards if it was on). Making tens of thousands
    of Keras objects triggers full collections, each walking every object of the process (TensorFlow's too): a
    build of 1000 layers spent about a quarter of its time there. Nothing is freed later than it would be by the
    next collection after the block."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()
