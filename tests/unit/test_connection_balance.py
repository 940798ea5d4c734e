"""How a worker decides how many of its kept-alive connections to close (edge/balance.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from campuscard.edge import balance
from campuscard.edge.balance import ConnectionBalance, Share


@pytest.mark.parametrize(
    ("own", "total", "workers", "slack", "excess"),
    [
        (24, 32, 2, 0, 8),  # its share is 16: it sheds the rest
        (17, 32, 2, 0, 1),
        (16, 32, 2, 0, 0),
        (17, 33, 2, 0, 0),  # an odd total: the share is rounded up
        (24, 32, 2, 1, 7),  # allowed one over its share
        (17, 32, 2, 1, 0),
        (9, 9, 3, 0, 6),  # every connection on one of three workers: a share is 3
        (3, 9, 3, 0, 0),
        (0, 0, 2, 0, 0),
        (5, 5, 1, 0, 0),  # alone, nothing to balance
    ],
)
def test_a_worker_sheds_what_it_holds_over_its_share(
    own: int, total: int, workers: int, slack: int, excess: int
) -> None:
    assert Share(own, total, workers).excess(slack) == excess


def dead_pid() -> int:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(done.stdout)


def test_a_worker_counts_itself_from_its_start_and_reads_its_live_siblings(tmp_path: Path) -> None:
    # given a sibling worker (a live process) holding 4 connections, and one that died with 9
    sibling = os.getppid()
    (tmp_path / str(sibling)).write_text("4")
    gone = dead_pid()
    (tmp_path / str(gone)).write_text("9")
    (tmp_path / "notes.txt").write_text("not a worker")
    # when this worker starts, it is counted at once with no connection
    worker = ConnectionBalance(tmp_path, pid=os.getpid())
    assert (tmp_path / str(os.getpid())).read_text() == "0"
    # then its share counts the live sibling only, and the dead one's file is removed
    share = worker.share(own=12)
    assert (share.own, share.total, share.workers) == (12, 16, 2)
    assert not (tmp_path / str(gone)).exists()
    assert (tmp_path / str(os.getpid())).read_text() == "12"


def test_the_next_requests_close_as_many_connections_as_the_worker_holds_over_its_share(
    tmp_path: Path,
) -> None:
    (tmp_path / str(os.getppid())).write_text("2")
    worker = ConnectionBalance(tmp_path, interval=60)
    connections = set(range(10))  # 10 here and 2 there: a share is 6, so 4 go
    closes = [worker.should_close(connections) for _ in range(6)]
    assert closes == [True, True, True, True, False, False]
    assert worker.shed_total == 4
    # within the interval the counts are not read again, however the connections change
    (tmp_path / str(os.getppid())).write_text("0")
    assert worker.should_close(set(range(20))) is False


def test_a_balanced_worker_keeps_every_connection(tmp_path: Path) -> None:
    (tmp_path / str(os.getppid())).write_text("7")
    worker = ConnectionBalance(tmp_path, interval=0)
    assert not any(worker.should_close(set(range(8))) for _ in range(20))


def test_a_worker_whose_directory_went_away_serves_on_unbalanced(tmp_path: Path) -> None:
    directory = tmp_path / "connections"
    directory.mkdir()
    worker = ConnectionBalance(directory, interval=0)
    (directory / str(os.getpid())).unlink()
    directory.rmdir()
    assert worker.should_close(set(range(50))) is False


def test_only_a_server_with_a_balance_directory_balances(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(balance, "_worker", [])
    monkeypatch.delenv(balance.ENV, raising=False)
    assert balance.worker_balance() is None
    monkeypatch.setattr(balance, "_worker", [])
    monkeypatch.setenv(balance.ENV, str(tmp_path))
    made = balance.worker_balance()
    assert made is not None and made.path == tmp_path / str(os.getpid())
    assert balance.worker_balance() is made  # once per process
