"""CompletionGroup: wait-group semantics (finish once, after every child, first error)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core import Completion, CompletionError, CompletionGroup, ErrorKind, IOResultError
from tests.helpers import eio


def test_empty_group_finishes_at_once() -> None:
    seen: list[object] = []
    c = CompletionGroup(seen.append).build()  # type: ignore[arg-type]
    assert c.succeeded() and c.result() == 0 and seen == [0]


def test_group_waits_for_every_child_and_sums_results() -> None:
    a, b = Completion.new_write(), Completion.new_write()
    group = CompletionGroup()
    group.add(a)
    group.add(b)
    c = group.build()
    a.complete(3)
    assert not c.finished()
    b.complete(4)
    assert c.succeeded() and c.result() == 7


def test_group_waits_for_all_children_even_after_an_error() -> None:
    a, b = Completion.new_write(), Completion.new_write()
    group = CompletionGroup()
    group.add(a)
    group.add(b)
    c = group.build()
    err = eio()
    a.error(err)
    assert not c.finished()  # b is still in flight: the group must not finish early
    b.complete(1)
    assert c.get_error() is err


def test_already_finished_children_count_as_done() -> None:
    a, b = Completion.new_write(), Completion.new_write()
    a.complete(1)
    group = CompletionGroup()
    group.add(a)
    group.add(b)
    c = group.build()
    assert not c.finished()
    b.complete(2)
    assert c.result() == 3


def test_all_children_finished_before_build() -> None:
    a = Completion.new_write()
    err = eio()
    a.error(err)
    group = CompletionGroup()
    group.add(a)
    assert group.build().get_error() is err


def test_add_after_build_and_double_build_raise() -> None:
    group = CompletionGroup()
    group.build()
    with pytest.raises(IOResultError, match="already built"):
        group.add(Completion.new_write())
    with pytest.raises(IOResultError, match="called twice"):
        group.build()


def test_cancel_aborts_unfinished_children_only() -> None:
    a, b = Completion.new_write(), Completion.new_write()
    a.complete(1)
    group = CompletionGroup()
    group.add(a)
    group.add(b)
    c = group.build()
    group.cancel()
    assert a.succeeded()
    b_error = b.get_error()
    assert b_error is not None and b_error.kind is ErrorKind.ABORTED
    c_error = c.get_error()
    assert c_error is not None and c_error.kind is ErrorKind.ABORTED


def test_aborting_a_built_group_cancels_nested_children() -> None:
    leaf = Completion.new_read(bytearray(1))
    inner = CompletionGroup()
    inner.add(leaf)
    outer = CompletionGroup()
    outer.add(inner.build())
    top = outer.build()
    top.abort()
    assert leaf.failed() and top.failed()
    assert group_callback_count_after_abort(top) == 1


def group_callback_count_after_abort(top: Completion) -> int:
    calls: list[Completion] = []
    top.add_done_callback(calls.append)
    return len(calls)


def test_group_callback_can_replace_success() -> None:
    replacement = CompletionError(ErrorKind.CHECKSUM_MISMATCH, "page 3")
    group = CompletionGroup(lambda outcome: replacement)
    a = Completion.new_write()
    group.add(a)
    c = group.build()
    a.complete(1)
    assert c.get_error() is replacement


def test_children_finishing_on_threads_during_build_finish_the_group_once() -> None:
    for _ in range(50):
        children = [Completion.new_write() for _ in range(200)]
        group = CompletionGroup()
        for child in children:
            group.add(child)
        done: list[Completion] = []
        start = threading.Event()

        def finish_all(
            children: list[Completion] = children, start: threading.Event = start
        ) -> None:
            start.wait()
            for child in children:
                child.complete(1)

        worker = threading.Thread(target=finish_all)
        worker.start()
        start.set()
        c = group.build()
        c.add_done_callback(done.append)
        worker.join()
        assert c.result() == 200
        assert done == [c]


# -- properties ---------------------------------------------------------------------------

Outcome = str  # "ok" | "err" | "abort"


@dataclass
class Leaf:
    outcome: Outcome
    index: int = 0
    completion: Completion | None = None
    error: CompletionError | None = None


@dataclass
class Group:
    children: list[Leaf | Group]
    completion: Completion | None = None
    callbacks: int = 0
    done_calls: int = 0
    seq: int = 0
    leaves_left_at_finish: list[int] = field(default_factory=list)


trees = st.recursive(
    st.sampled_from(["ok", "err", "abort"]).map(Leaf),
    lambda inner: st.lists(inner, min_size=0, max_size=4).map(Group),
    max_leaves=12,
)


def _leaves(node: Leaf | Group) -> list[Leaf]:
    if isinstance(node, Leaf):
        return [node]
    return [leaf for child in node.children for leaf in _leaves(child)]


def _groups(node: Leaf | Group) -> list[Group]:
    if isinstance(node, Leaf):
        return []
    return [g for child in node.children for g in _groups(child)] + [node]  # bottom-up


def _finish(leaf: Leaf) -> None:
    assert leaf.completion is not None
    if leaf.outcome == "ok":
        leaf.completion.complete(1)
    elif leaf.outcome == "err":
        leaf.error = eio(offset=leaf.index)
        leaf.completion.error(leaf.error)
    else:
        leaf.completion.abort()


@given(tree=trees, data=st.data())
@settings(max_examples=300, deadline=None)
def test_group_tree_property(tree: Leaf | Group, data: st.DataObject) -> None:
    root = tree if isinstance(tree, Group) else Group([tree])
    leaves = _leaves(root)
    for i, leaf in enumerate(leaves):
        leaf.index = i
        leaf.completion = Completion.new_write()
    # Time is a tuple: (0, i) finished before any build, (1, k) the k-th build, (2, j) after.
    times: dict[int, tuple[int, int]] = {}
    early = data.draw(st.lists(st.sampled_from(leaves), unique_by=id) if leaves else st.just([]))
    for i, leaf in enumerate(early):
        _finish(leaf)
        times[id(leaf)] = (0, i)
    remaining = [leaf for leaf in leaves if id(leaf) not in times]
    unfinished_leaves = {id(leaf) for leaf in remaining}

    groups = _groups(root)
    for k, group in enumerate(groups):
        group.seq = k

        def callback(outcome: int | CompletionError, group: Group = group) -> None:
            group.callbacks += 1
            group.leaves_left_at_finish.append(len(unfinished_leaves))

        cg = CompletionGroup(callback)
        for child in group.children:
            assert child.completion is not None
            cg.add(child.completion)
        group.completion = cg.build()

        def on_done(_: Completion, group: Group = group) -> None:
            group.done_calls += 1

        group.completion.add_done_callback(on_done)

    order = data.draw(st.permutations(remaining))
    expected_finish: dict[int, int] = {}
    for j, leaf in enumerate(order):
        unfinished_leaves.discard(id(leaf))
        _finish(leaf)
        times[id(leaf)] = (2, j)
        expected_finish[id(leaf)] = j

    def model(node: Leaf | Group) -> tuple[tuple[int, int], CompletionError | str | None]:
        """(finish time, expected error: the error object, "aborted", or None)."""
        if isinstance(node, Leaf):
            if node.outcome == "ok":
                return times[id(node)], None
            return times[id(node)], node.error if node.outcome == "err" else "aborted"
        build_time = (1, node.seq)
        results = [model(child) for child in node.children]
        finish = max([build_time, *(t for t, _ in results)])
        # Observed order: children finished before build, in the order added; then by time.
        before = [r for r in results if r[0] < build_time]
        after = sorted((r for r in results if r[0] >= build_time), key=lambda r: r[0])
        errors = [e for _, e in before + after if e is not None]
        return finish, errors[0] if errors else None

    for group in groups:
        assert group.completion is not None
        assert group.callbacks == 1, "a group must finish exactly once"
        assert group.done_calls == 1
        _, expected = model(group)
        error = group.completion.get_error()
        if expected is None:
            assert group.completion.succeeded()
        elif expected == "aborted":
            assert error is not None and error.kind is ErrorKind.ABORTED
        else:
            assert error is expected
        # It finished only after the last of its own leaves.
        own = {id(leaf) for leaf in _leaves(group)}
        left_at_finish = group.leaves_left_at_finish[0]
        late_own = [leaf for leaf in order if id(leaf) in own]
        if late_own:
            last_own = late_own[-1]
            assert left_at_finish == len(order) - 1 - expected_finish[id(last_own)]


def test_children_finished_concurrently_by_many_threads() -> None:
    for _ in range(20):
        children = [Completion.new_write() for _ in range(400)]
        group = CompletionGroup()
        for child in children:
            group.add(child)
        top = group.build()
        done: list[Completion] = []
        top.add_done_callback(done.append)
        barrier = threading.Barrier(4)

        def finish(part: list[Completion], barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            for child in part:
                child.complete(2)

        threads = [threading.Thread(target=finish, args=(children[i::4],)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert top.result() == 800
        assert done == [top]
