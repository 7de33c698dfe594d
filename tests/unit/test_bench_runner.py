"""chatctl bench: the parent's end of the worker pipes (no worker processes: pipes and stand-ins)."""

from __future__ import annotations

import multiprocessing

import pytest

from chatcluster.loadtest.runner import Hub, RunAborted


class GoneWorker:
    """What Hub asks of a worker process once its pipe is closed."""

    exitcode = 0

    def join(self, timeout: float | None = None) -> None:
        return None


def pipes(n: int) -> tuple[list, list]:
    pairs = [multiprocessing.Pipe() for _ in range(n)]
    return [parent for parent, _ in pairs], [child for _, child in pairs]


def test_a_worker_that_exits_after_its_final_figures_does_not_abort_the_run():
    parents, children = pipes(2)
    hub = Hub(parents, [GoneWorker(), GoneWorker()])
    children[1].send(("final", 1, {"counts": {}}))
    children[1].close()                      # worker 1 is done and gone
    assert hub.recv(1.0) == [("final", 1, {"counts": {}})]
    assert hub.recv(0.01) == []              # its end-of-file is not read as a death
    children[0].send(("final", 0, {"counts": {}}))
    assert hub.recv(1.0) == [("final", 0, {"counts": {}})]
    assert hub.finished == {0, 1}


def test_a_worker_that_exits_before_its_final_figures_aborts_the_run():
    parents, children = pipes(2)
    hub = Hub(parents, [GoneWorker(), GoneWorker()])
    children[0].send(("tick", 0, {}))
    children[0].close()
    assert hub.recv(1.0) == [("tick", 0, {})]
    with pytest.raises(RunAborted, match="worker 0 exited"):
        hub.recv(1.0)


def test_a_workers_error_aborts_the_run_with_its_text():
    parents, children = pipes(1)
    hub = Hub(parents, [GoneWorker()])
    children[0].send(("error", 0, "bench3-t: login refused"))
    with pytest.raises(RunAborted, match="login refused"):
        hub.recv(1.0)
