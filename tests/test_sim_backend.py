"""SimulatorIO: the IOBackend contract, virtual time, reordering, determinism, faults, crashes."""

from __future__ import annotations

import errno

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core import Completion, CompletionError, ErrorKind, IOResultError, block
from core.io import File, IOBackend, OpenFlags
from core.ops import CopyFile, ReadRange, ReadWholeFile, WriteBuffers
from core.sim import FaultConfig, SimConfigError, SimulatorIO, TornWriteResult


def _io(seed: int = 0, faults: FaultConfig | None = None, **kw: object) -> SimulatorIO:
    return SimulatorIO(seed, faults, **kw)  # type: ignore[arg-type]


def test_implements_the_backend_protocols() -> None:
    io = SimulatorIO(1)
    assert isinstance(io, IOBackend)
    assert io.needs_stepping is True
    f = io.open_file("x", OpenFlags.CREATE)
    assert isinstance(f, File)
    assert f.path == "x"


def test_io_waits_for_step_and_the_clock_is_virtual() -> None:
    io = SimulatorIO(3, min_latency_us=10, max_latency_us=10)
    io.create_file("f", b"hello world")
    f = io.open_file("f")
    c = f.pread(6, Completion.new_read(bytearray(5)))
    assert not c.finished()
    assert io.pending() == 1
    assert io.now() == 0.0
    assert io.step() == 1
    assert c.result() == 5
    assert bytes(c.buffer or b"") == b"world"
    assert io.now_us() == 10
    assert io.step() == 0  # nothing pending: nothing happens, time stands still
    assert io.now_us() == 10
    io.advance(0.5)
    assert io.now() == pytest.approx(0.50001)
    with pytest.raises(SimConfigError, match="backwards"):
        io.advance(-1)


def test_block_runs_every_shipped_operation() -> None:
    io = SimulatorIO(7)
    io.create_file("src", bytes(range(256)) * 40)
    src = io.open_file("src")
    dst = io.open_file("dst", OpenFlags.CREATE)
    assert block(ReadRange(src, 100, 10), io) == bytes(range(100, 110))
    assert block(ReadWholeFile(src, chunk_size=1000), io) == bytes(range(256)) * 40
    assert block(CopyFile(src, dst, chunk_size=999, batch=2), io) == 10240
    assert io.file_contents("dst") == bytes(range(256)) * 40
    assert block(WriteBuffers(dst, 10, [b"ab", b"cd"]), io) == 4
    assert io.file_contents("dst")[10:14] == b"abcd"
    assert io.durable_contents("dst") == io.file_contents("dst")


def test_completions_finish_out_of_submission_order() -> None:
    io = SimulatorIO(11, max_latency_us=1_000)
    io.create_file("f", bytes(64 * 100))
    f = io.open_file("f")
    order: list[int] = []
    for i in range(64):
        f.pread(i * 100, Completion.new_read(bytearray(100))).add_done_callback(
            lambda _c, i=i: order.append(i)
        )
    io.run_until_idle()
    assert sorted(order) == list(range(64))
    assert order != list(range(64))


def test_a_sync_that_overtakes_a_write_does_not_make_it_durable() -> None:
    # Find a seed where the sync finishes before the write submitted just before it.
    for seed in range(100):
        io = SimulatorIO(seed)
        io.create_file("f", b"old!")
        f = io.open_file("f")
        w = f.pwrite(0, b"new!", Completion.new_write())
        s = f.sync(Completion.new_sync())
        while not s.finished():
            io.step()
        if not w.finished():
            break
    else:
        pytest.fail("no seed in 100 reordered a sync before a write")
    io.run_until_idle()
    assert w.result() == 4 and s.result() == 0
    assert io.file_contents("f") == b"new!"
    assert io.durable_contents("f") == b"old!"  # the sync was issued before the write landed
    io.crash()
    assert io.file_contents("f") == b"old!"


def test_inline_and_defer_at() -> None:
    io = SimulatorIO(0, inline=1.0)
    io.create_file("f", b"abc")
    f = io.open_file("f")
    assert f.pread(0, Completion.new_read(bytearray(3))).finished()
    io.configure(defer_at={1})
    assert f.pread(0, Completion.new_read(bytearray(3))).finished()  # submission 0
    deferred = f.pread(0, Completion.new_read(bytearray(3)))  # submission 1
    assert not deferred.finished()
    assert io.submissions == 2
    io.step()
    assert deferred.result() == 3
    with pytest.raises(SimConfigError, match="inline"):
        io.configure(inline=1.5)
    with pytest.raises(SimConfigError, match="defer_at"):
        io.configure(defer_at={-1})


def _scripted_run(seed: int, faults: FaultConfig | None = None) -> SimulatorIO:
    io = SimulatorIO(seed, faults, inline=0.2, trace_limit=None)
    io.create_file("a", bytes(range(200)) * 30)
    io.create_file("b", b"")
    for op in (
        lambda: ReadWholeFile(io.open_file("a"), chunk_size=512),
        lambda: CopyFile(io.open_file("a"), io.open_file("b"), chunk_size=700, batch=3),
        lambda: WriteBuffers(io.open_file("b"), 100, [b"x" * 300, b"y" * 50]),
        lambda: ReadRange(io.open_file("b"), 50, 500, exact=True),
    ):
        try:
            block(op(), io)
        except IOResultError:
            pass
    io.crash()
    return io


@pytest.mark.parametrize("faults", [None, FaultConfig.uniform(0.1)], ids=["clean", "faulty"])
def test_same_seed_same_trace_byte_for_byte(faults: FaultConfig | None) -> None:
    first = _scripted_run(42, faults)
    second = _scripted_run(42, faults)
    assert first.trace.format() == second.trace.format()
    assert first.trace == second.trace
    assert first.trace.digest() == second.trace.digest()
    assert first.trace.first_difference(second.trace) is None
    assert first.snapshot() == second.snapshot()
    assert first.stats == second.stats
    other = _scripted_run(43, faults)
    assert other.trace.digest() != first.trace.digest()
    assert first.trace.first_difference(other.trace) is not None


def test_trace_names_operation_file_offset_length_outcome_and_time() -> None:
    io = SimulatorIO(5, min_latency_us=250, max_latency_us=250)
    io.create_file("db", b"x" * 10)
    f = io.open_file("db")
    block(WriteBuffers(f, 4, [b"abc"]), io)
    lines = io.trace.lines()
    assert lines[0] == "0.000000 - create 'db' len=10 -> durable"
    assert lines[1] == "0.000000 #0 submit pwritev 'db' off=4 len=3 -> due 250us"
    assert lines[2] == "0.000250 #0 complete pwritev 'db' off=4 len=3 -> ok 3"
    assert lines[3] == "0.000250 #1 submit sync 'db' -> due 500us"
    assert lines[4] == "0.000500 #1 complete sync 'db' -> ok (1 durable)"


def test_submission_fault_raises_at_once() -> None:
    io = SimulatorIO(0, FaultConfig(submit_error=1.0))
    io.create_file("f", b"abc")
    f = io.open_file("f")
    with pytest.raises(CompletionError) as info:
        f.pread(0, Completion.new_read(bytearray(3)))
    assert info.value.kind is ErrorKind.IO and info.value.errno == errno.EIO
    assert info.value.path == "f"
    for submit in (
        lambda: f.pwrite(0, b"x", Completion.new_write()),
        lambda: f.pwritev(0, [b"x"], Completion.new_write()),
        lambda: f.sync(Completion.new_sync()),
        lambda: f.truncate(0, Completion.new_trunc()),
    ):
        with pytest.raises(CompletionError, match="refused at submission"):
            submit()
    assert io.pending() == 0
    assert io.stats.submit_errors == 5
    assert io.file_contents("f") == b"abc"


@pytest.mark.parametrize(
    ("knob", "submit", "counter"),
    [
        ("read_error", lambda f: f.pread(0, Completion.new_read(bytearray(3))), "read_errors"),
        ("write_error", lambda f: f.pwrite(0, b"zzz", Completion.new_write()), "write_errors"),
        ("sync_error", lambda f: f.sync(Completion.new_sync()), "sync_errors"),
        ("truncate_error", lambda f: f.truncate(1, Completion.new_trunc()), "truncate_errors"),
    ],
)
def test_asynchronous_eio(knob: str, submit: object, counter: str) -> None:
    io = SimulatorIO(0, FaultConfig(**{knob: 1.0}))  # type: ignore[arg-type]
    io.create_file("f", b"abc")
    c = submit(io.open_file("f"))  # type: ignore[operator]
    assert not c.finished()
    io.run_until_idle()
    err = c.get_error()
    assert err is not None and err.kind is ErrorKind.IO and err.errno == errno.EIO
    assert "simulated EIO" in str(err)
    assert io.file_contents("f") == b"abc"  # nothing landed, nothing changed
    assert getattr(io.stats, counter) == 1


def test_failed_sync_makes_nothing_durable() -> None:
    io = SimulatorIO(0, FaultConfig(sync_error=1.0))
    io.create_file("f", b"old")
    with pytest.raises(CompletionError, match="fsync failed"):
        block(WriteBuffers(io.open_file("f"), 0, [b"new"]), io)
    assert io.file_contents("f") == b"new"
    assert io.durable_contents("f") == b"old"


def test_short_read_succeeds_with_a_short_count() -> None:
    io = SimulatorIO(2, FaultConfig(short_read=1.0))
    io.create_file("f", bytes(range(100)))
    c = io.open_file("f").pread(0, Completion.new_read(bytearray(100)))
    io.run_until_idle()
    count = c.result()
    assert 0 <= count < 100
    assert bytes((c.buffer or b"")[:count]) == bytes(range(count))
    assert io.stats.short_reads == 1
    # An operation that needs the exact count reports it; one that takes a short count
    # for the end of the file returns a prefix.
    with pytest.raises(CompletionError) as info:
        block(ReadRange(io.open_file("f"), 0, 100, exact=True), io)
    assert info.value.kind is ErrorKind.SHORT_READ
    data = block(ReadRange(io.open_file("f"), 0, 100), io)
    assert bytes(range(100)).startswith(data) and len(data) < 100


def test_torn_write_is_an_error_by_default_and_lands_a_prefix() -> None:
    io = SimulatorIO(4, FaultConfig(torn_write=1.0))
    io.create_file("f", b"." * 10)
    c = io.open_file("f").pwrite(0, b"abcdefghij", Completion.new_write())
    io.run_until_idle()
    err = c.get_error()
    assert err is not None and err.kind is ErrorKind.SHORT_WRITE
    assert err.expected == 10 and err.actual is not None and 0 <= err.actual < 10
    assert io.file_contents("f") == b"abcdefghij"[: err.actual] + b"." * (10 - err.actual)
    assert io.stats.torn_writes == 1


def test_torn_write_as_short_count_is_caught_by_the_operations() -> None:
    faults = FaultConfig(torn_write=1.0, torn_write_result=TornWriteResult.SHORT_COUNT)
    io = SimulatorIO(4, faults)
    io.create_file("f", b"." * 10)
    c = io.open_file("f").pwrite(0, b"abcdefghij", Completion.new_write())
    io.run_until_idle()
    assert 0 <= c.result() < 10
    with pytest.raises(CompletionError) as info:
        block(WriteBuffers(io.open_file("f"), 0, [b"0123456789"]), io)
    assert info.value.kind is ErrorKind.SHORT_WRITE
    io.create_file("src", b"s" * 5000)
    with pytest.raises(CompletionError) as info:
        block(CopyFile(io.open_file("src"), io.open_file("f"), chunk_size=1000), io)
    assert info.value.kind is ErrorKind.SHORT_WRITE


def test_crash_keeps_exactly_the_synced_data() -> None:
    io = SimulatorIO(8)
    io.create_file("f", b"")
    f = io.open_file("f")
    block(WriteBuffers(f, 0, [b"synced."]), io)
    block(WriteBuffers(f, 7, [b"volatile"], sync=False), io)
    in_flight = f.pwrite(0, b"XXXXXXX", Completion.new_write())
    assert io.file_contents("f") == b"synced.volatile"
    io.crash()
    assert in_flight.get_error() is not None
    assert in_flight.get_error().kind is ErrorKind.ABORTED  # type: ignore[union-attr]
    assert io.file_contents("f") == b"synced."
    assert io.pending() == 0
    assert io.stats.crashes == 1 and io.stats.lost_unsynced == 2 and io.stats.aborted == 1
    with pytest.raises(CompletionError) as info:
        f.pread(0, Completion.new_read(bytearray(1)))
    assert info.value.kind is ErrorKind.CLOSED
    g = io.open_file("f")  # reopened after the power loss
    assert block(ReadWholeFile(g), io) == b"synced."


def test_crash_may_keep_unsynced_writes_in_a_random_order() -> None:
    images = set()
    for seed in range(40):
        io = SimulatorIO(seed, FaultConfig(crash_keep_unsynced=0.5))
        io.create_file("f", b"....")
        f = io.open_file("f")
        block(WriteBuffers(f, 0, [b"ab"], sync=False), io)
        block(WriteBuffers(f, 1, [b"XY"], sync=False), io)
        io.crash()
        images.add(io.file_contents("f"))
    # nothing kept, either one, or both in either order
    assert images == {b"....", b"ab..", b".XY.", b"aXY.", b"abY."}


def test_crash_keeps_in_flight_writes_when_told_to() -> None:
    io = SimulatorIO(0, FaultConfig(crash_keep_unsynced=1.0))
    io.create_file("f", b"")
    c = io.open_file("f").pwrite(0, b"landed", Completion.new_write())
    io.crash()
    assert c.get_error() is not None
    assert io.file_contents("f") == b"landed"
    assert io.stats.kept_unsynced == 1


def test_a_crash_with_a_sector_size_tears_writes_at_sector_boundaries() -> None:
    old = b"o" * 2048
    images = set()
    for seed in range(200):
        io = SimulatorIO(seed, FaultConfig(crash_keep_unsynced=0.5, crash_sector=512))
        io.create_file("f", old)
        block(WriteBuffers(io.open_file("f"), 300, [b"n" * 1500], sync=False), io)
        io.crash()
        image = io.file_contents("f")
        assert len(image) == 2048
        # The write covers 300..1800: its pieces 300..512, 512..1024, 1024..1536 and
        # 1536..1800 each land whole or not at all.
        pieces = [image[a:b] for a, b in ((300, 512), (512, 1024), (1024, 1536), (1536, 1800))]
        assert all(set(p) in ({ord("o")}, {ord("n")}) for p in pieces)
        assert image[:300] == old[:300] and image[1800:] == old[1800:]
        images.add(tuple(p[:1] for p in pieces))
        assert io.stats.kept_unsynced + io.stats.lost_unsynced == 4
    assert len(images) == 16  # every combination of the four pieces


def test_a_sector_size_changes_nothing_for_synced_data_and_truncates() -> None:
    io = SimulatorIO(0, FaultConfig(crash_keep_unsynced=1.0, crash_sector=512))
    io.create_file("f", b"")
    f = io.open_file("f")
    block(WriteBuffers(f, 0, [b"s" * 1000], sync=True), io)
    c = f.truncate(10, Completion.new_trunc())
    io.wait_for_completion(c)
    io.crash()
    assert io.file_contents("f") == b"s" * 10  # the truncate survived whole


def test_step_with_a_limit_finishes_one_io_at_a_time() -> None:
    io = SimulatorIO(0, min_latency_us=5, max_latency_us=5)
    io.create_file("f", b"abc")
    f = io.open_file("f")
    reads = [f.pread(0, Completion.new_read(bytearray(3))) for _ in range(3)]
    assert io.step(limit=1) == 1
    assert [r.finished() for r in reads] == [True, False, False]
    assert io.now_us() == 5
    assert io.step() == 2  # the rest were due at the same time
    assert all(r.result() == 3 for r in reads)


def test_namespace_is_durable_at_once_and_removed_files_stay_readable() -> None:
    io = SimulatorIO(0, inline=1.0)
    f = io.open_file("new", OpenFlags.CREATE)
    block(WriteBuffers(f, 0, [b"data"]), io)
    io.remove_file("new")
    assert io.files() == []
    assert block(ReadWholeFile(f), io) == b"data"
    with pytest.raises(CompletionError) as info:
        io.open_file("new")
    assert info.value.errno == errno.ENOENT
    with pytest.raises(CompletionError) as info:
        io.remove_file("new")
    assert info.value.errno == errno.ENOENT
    io.open_file("empty", OpenFlags.CREATE)
    io.crash()
    assert io.files() == ["empty"]


def test_submission_checks() -> None:
    io = SimulatorIO(0)
    io.create_file("f", b"abc")
    ro = io.open_file("f", OpenFlags.READ_ONLY)
    with pytest.raises(CompletionError) as info:
        ro.pwrite(0, b"x", Completion.new_write())
    assert info.value.errno == errno.EBADF
    with pytest.raises(CompletionError) as info:
        io.open_file("f").pread(-1, Completion.new_read(bytearray(1)))
    assert info.value.errno == errno.EINVAL
    with pytest.raises(IOResultError, match="buffer"):
        ro.pread(0, Completion.new_write())
    ro.close()
    with pytest.raises(CompletionError) as info:
        ro.size()
    assert info.value.kind is ErrorKind.CLOSED


def test_write_buffer_is_read_when_the_write_executes() -> None:
    io = SimulatorIO(0)
    io.create_file("f", b"")
    buf = bytearray(b"first")
    io.open_file("f").pwrite(0, buf, Completion.new_write())
    buf[:] = b"later"  # reused before the write finished: the disk sees the new bytes
    io.run_until_idle()
    assert io.file_contents("f") == b"later"


def test_io_submitted_by_a_callback_waits_for_the_next_step() -> None:
    io = SimulatorIO(0, min_latency_us=0, max_latency_us=0)
    io.create_file("f", b"abc")
    f = io.open_file("f")
    second: list[Completion] = []
    f.pread(0, Completion.new_read(bytearray(1))).add_done_callback(
        lambda _c: second.append(f.pread(1, Completion.new_read(bytearray(1))))
    )
    assert io.step() == 1
    assert len(second) == 1 and not second[0].finished()
    assert io.step() == 1
    assert second[0].result() == 1


def test_aborted_completion_is_dropped_and_wait_refuses_the_impossible() -> None:
    io = SimulatorIO(0)
    io.create_file("f", b"abc")
    f = io.open_file("f")
    c = f.pwrite(0, b"zzz", Completion.new_write())
    io.cancel([c])
    assert io.pending() == 0
    assert io.step() == 1
    assert io.stats.dropped == 1
    assert io.file_contents("f") == b"abc"
    orphan = Completion.new_read(bytearray(1))
    with pytest.raises(IOResultError, match="can never finish"):
        io.wait_for_completion(orphan)


def test_close_aborts_pending_and_refuses_further_use() -> None:
    io = SimulatorIO(0)
    io.create_file("f", b"abc")
    c = io.open_file("f").pread(0, Completion.new_read(bytearray(3)))
    with io:
        pass
    assert c.get_error() is not None
    io.close()  # idempotent
    with pytest.raises(CompletionError) as info:
        io.open_file("f")
    assert info.value.kind is ErrorKind.CLOSED
    with pytest.raises(CompletionError):
        io.crash()


def test_run_until_idle_bounds_callbacks_that_keep_submitting() -> None:
    io = SimulatorIO(0)
    io.create_file("f", b"abc")
    f = io.open_file("f")

    def again(_c: Completion) -> None:
        f.pread(0, Completion.new_read(bytearray(1))).add_done_callback(again)

    f.pread(0, Completion.new_read(bytearray(1))).add_done_callback(again)
    with pytest.raises(IOResultError, match="still pending after 50 steps"):
        io.run_until_idle(max_steps=50)


def test_bad_settings_are_refused_with_their_names() -> None:
    with pytest.raises(SimConfigError, match="min_latency_us"):
        SimulatorIO(0, min_latency_us=5, max_latency_us=1)
    with pytest.raises(SimConfigError, match="FaultConfig"):
        SimulatorIO(0, faults="lots")  # type: ignore[arg-type]
    assert issubclass(SimConfigError, IOResultError)


_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.integers(0, 40), st.binary(max_size=16)),
        st.tuples(st.just("truncate"), st.integers(0, 60), st.just(b"")),
        st.tuples(st.just("sync"), st.just(0), st.just(b"")),
        st.tuples(st.just("crash"), st.just(0), st.just(b"")),
    ),
    max_size=25,
)


@settings(max_examples=150, deadline=None)
@given(ops=_OPS, seed=st.integers(0, 2**32))
def test_durability_matches_a_plain_model(ops: list[tuple[str, int, bytes]], seed: int) -> None:
    """One operation at a time: a sync makes what reads see durable; a crash that keeps
    nothing unsynced goes back to the last synced image."""
    io = SimulatorIO(seed)
    io.create_file("f", b"")
    f = io.open_file("f")
    visible, durable = b"", b""
    for kind, number, data in ops:
        if kind == "write":
            c = f.pwrite(number, data, Completion.new_write())
            if data:
                visible = (
                    visible.ljust(number, b"\0")[:number] + data + visible[number + len(data) :]
                )
        elif kind == "truncate":
            c = f.truncate(number, Completion.new_trunc())
            visible = visible[:number].ljust(number, b"\0")
        elif kind == "sync":
            c = f.sync(Completion.new_sync())
            durable = visible
        else:
            io.crash()
            visible = durable
            f = io.open_file("f")
            continue
        io.wait_for_completion(c)
        assert io.file_contents("f") == visible
        assert io.durable_contents("f") == durable
    io.crash()
    assert io.file_contents("f") == durable
