"""`guanxi retrain --every` survives transient failures: each is logged with its reason and retried
after a wait that doubles per consecutive failure (capped at the period); success resets it."""
from __future__ import annotations

import psycopg
import pytest

from guanxi.app import ops
from guanxi.app import retrain as retraining
from guanxi.app.cli import main


def test_scheduled_retraining_backs_off_and_goes_on(monkeypatch, capsys):
    outcomes = [psycopg.OperationalError("server closed the connection unexpectedly"),
                OSError("artifact store timed out"), {"decision": "no-op"},
                ValueError("no @champion yet"), KeyboardInterrupt()]
    calls: list[int] = []
    sleeps: list[float] = []

    def fake_retrain(*args, **kwargs):
        calls.append(1)
        outcome = outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    monkeypatch.setattr(retraining, "retrain", fake_retrain)
    monkeypatch.setattr(ops.time, "sleep", sleeps.append)
    assert main(["retrain", "--every", "100s", "--events-db", "events.db"]) == 130      # stopped by Ctrl-C
    assert len(calls) == 5
    assert sleeps[:2] == [30.0, 60.0]                 # 30 s, then doubled
    assert 99.0 < sleeps[2] <= 100.0                  # the success: the next period
    assert sleeps[3] == 30.0                          # a success reset the wait
    out = capsys.readouterr().out
    assert "failed (OperationalError: server closed the connection unexpectedly); failure 1 in a row" in out
    assert "failed (OSError: artifact store timed out); failure 2 in a row, retrying in 60s" in out


def test_without_every_a_failure_ends_the_command(monkeypatch):
    def fail(*args, **kwargs):
        raise ValueError("no @champion in sqlite:///mlflow.db")

    monkeypatch.setattr(retraining, "retrain", fail)
    assert main(["retrain", "--events-db", "events.db"]) == 2
