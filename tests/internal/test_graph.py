"""Tests of the deep-graph helpers: the iterative post-order walk, the recursion room, the paused collector."""

import gc
import sys

import pytest

from transition.internal._graph import Cycle, gc_paused, postorder, recursion_room


def recursive_postorder(roots, children):
    order, done = [], set()

    def visit(node):
        if node in done:
            return
        done.add(node)
        for child in children(node):
            visit(child)
        order.append(node)

    for root in roots:
        visit(root)
    return order


def test_postorder_is_the_order_of_a_recursive_walk():
    graph = {"out": ["b", "a"], "b": ["a", "x"], "a": ["x"], "x": [], "side": ["x", "b"]}
    for roots in (list(graph), ["side", "out"], ["x"]):
        assert postorder(roots, graph.__getitem__) == recursive_postorder(roots, graph.__getitem__)


def test_postorder_walks_a_chain_far_deeper_than_the_recursion_limit():
    n = 20 * sys.getrecursionlimit()
    order = postorder([n], lambda i: [i - 1] if i > 0 else [])
    assert order == list(range(n + 1))


def test_postorder_names_the_cycle():
    graph = {"a": ["b"], "b": ["c"], "c": ["b"]}
    with pytest.raises(Cycle) as info:
        postorder(["a"], graph.__getitem__)
    assert info.value.path == ["b", "c", "b"]
    with pytest.raises(Cycle) as info:
        postorder(["s"], {"s": ["s"]}.__getitem__)
    assert info.value.path == ["s", "s"]


def test_recursion_room_raises_the_limit_for_the_block_only():
    limit = sys.getrecursionlimit()

    def depth(n):
        return 0 if n == 0 else 1 + depth(n - 1)

    with recursion_room(3 * limit):
        assert depth(2 * limit) == 2 * limit  # a RecursionError without the room
        raised = sys.getrecursionlimit()
        assert raised > 2 * limit
        with recursion_room(10):  # never lowers
            assert sys.getrecursionlimit() == raised
        assert sys.getrecursionlimit() == raised
    assert sys.getrecursionlimit() == limit


def test_gc_paused_restores_the_collector_state():
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()  # it was off: left off
    finally:
        gc.enable()
    with pytest.raises(ValueError), gc_paused():
        raise ValueError("boom")
    assert gc.isenabled()
