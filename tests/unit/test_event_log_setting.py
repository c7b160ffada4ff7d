"""What ``--events-db`` / ``GUANXI_EVENTS_DB`` accept: a SQLite path or URL, a PostgreSQL URL; anything
else is an error naming the value before a server starts, never a stray SQLite file."""
from __future__ import annotations

from pathlib import Path

import pytest

from guanxi.app.cli import main
from guanxi.serving.event_stores import open_event_store, parse_event_log
from guanxi.serving.event_stores import redact
from guanxi.serving.launch import server_env
from guanxi.serving.settings import ServeSettings


def test_paths_and_urls_parse(tmp_path):
    assert parse_event_log("events.db").path == Path("events.db")
    assert parse_event_log("sqlite:///rel/e.db").path == Path("rel/e.db")
    assert parse_event_log(f"sqlite:///{tmp_path}/e.db").path == tmp_path / "e.db"    # four slashes: absolute
    for url in ("postgresql://u@h:5432/db", "postgres://u:pw@h/db", "postgresql://u@h/db?sslmode=require"):
        target = parse_event_log(url)
        assert (target.kind, target.url) == ("postgresql", url) and target.resolved() == url


@pytest.mark.parametrize("value, words", [
    ("mysql://u@h/db", "unsupported scheme 'mysql'"),
    ("postgresql:/h/db", "postgresql://user@host:port/db"),
    ("sqlite://e.db", "sqlite:///relative.db"),
    ("  ", "empty"),
])
def test_unusable_values_are_refused_by_name(value, words):
    with pytest.raises(ValueError) as err:
        parse_event_log(value)
    assert words in str(err.value)


def test_a_folder_is_not_a_log(tmp_path):
    with pytest.raises(ValueError, match="is a folder"):
        parse_event_log(str(tmp_path))


def test_passwords_never_reach_messages():
    assert redact("postgresql://bob:s3cret@db:5432/guanxi") == "postgresql://bob:***@db:5432/guanxi"
    assert str(parse_event_log("postgresql://bob:s3cret@db/guanxi")) == "postgresql://bob:***@db/guanxi"
    with pytest.raises(ValueError) as err:
        open_event_store("postgresql://bob:s3cret@127.0.0.1:1/guanxi", busy_timeout_ms=1000)
    assert "cannot reach the event log at postgresql://bob:***@127.0.0.1:1/guanxi" in str(err.value)
    assert "s3cret" not in str(err.value)


def test_the_setting_is_checked_when_settings_load(monkeypatch):
    monkeypatch.setenv("GUANXI_EVENTS_DB", "mysql://u@h/db")
    with pytest.raises(ValueError) as err:
        ServeSettings.from_env()
    assert "GUANXI_EVENTS_DB" in str(err.value) and "mysql" in str(err.value)


def test_server_env_resolves_paths_and_keeps_urls(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert server_env(events_db="e.db", base={})["GUANXI_EVENTS_DB"] == str(tmp_path / "e.db")
    url = "postgresql://u@h:5432/db"
    assert server_env(events_db=url, base={})["GUANXI_EVENTS_DB"] == url


def test_serve_with_an_unreachable_postgres_fails_at_start_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["serve", "--events-db", "postgresql://nobody@127.0.0.1:1/guanxi"]) == 2
    err = capsys.readouterr().err
    assert "GUANXI_EVENTS_DB: cannot reach the event log at postgresql://nobody@127.0.0.1:1/guanxi" in err
    assert list(tmp_path.iterdir()) == []                   # no 'postgresql:' folder, no SQLite file


def test_ops_commands_refuse_an_unsupported_log(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for argv in (["status", "--events-db", "mysql://x/y"], ["forget", "u1", "--events-db", "mysql://x/y"]):
        assert main([*argv, "--tracking-uri", f"sqlite:///{tmp_path}/m.db"]) == 2
        assert "unsupported scheme 'mysql'" in capsys.readouterr().err


@pytest.mark.parametrize("value, words", [
    ('"postgresql://u:pw@db/g"', "remove the quotes"),             # an env file keeps its quotes
    ("'postgresql://u:pw@db/g'", "remove the quotes"),
    ('"events.db"', "remove the quotes"),
    ("postgresql://u:pw@db:five/g", "port 'five' is not a number"),
    ("postgresql://u@db/g?passwrd=x", "not a valid PostgreSQL URL"),
    ("postgresql://u:p w@db/g", "no spaces"),
    ("x-postgresql://u@db/g", "unsupported scheme"),
    ("my db://u@db/g", "looks like a URL"),
    ("host=db dbname=g user=u password=pw", "key=value"),
])
def test_a_mistyped_url_is_an_error_never_a_sqlite_file(tmp_path, monkeypatch, value, words):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError) as err:
        open_event_store(value)
    assert words in str(err.value)
    assert list(tmp_path.iterdir()) == []                     # no folder named '"postgresql:', no file


@pytest.mark.parametrize("value", [
    "postgresql://bob:s3cret@db/g?sslmode=bogus&passwrd=1",   # bad parameter: psycopg's message
    "postgresql://bob@db/g?password=s3cret&passwrd=1",        # the password as a URL parameter
    "postgresql://bob:s3 cret@db/g",                          # psycopg would quote 's3 cret'
    '"postgresql://bob:s3cret@db/g"',
    "mysql://bob:s3cret@db/g",
    "host=db user=bob password=s3cret",
    "postgresql://bob:s3%20cret@db:x/g",
])
def test_no_error_prints_a_password_in_any_form(value):
    with pytest.raises(ValueError) as err:
        parse_event_log(value)
    assert "s3cret" not in str(err.value) and "s3 cret" not in str(err.value) and "s3%20cret" not in str(err.value)


def test_a_password_given_as_a_url_parameter_is_not_printed_when_unreachable():
    url = "postgresql://bob@127.0.0.1:1/guanxi?password=s3cret"
    assert "s3cret" not in str(parse_event_log(url))
    with pytest.raises(ValueError) as err:
        open_event_store(url, busy_timeout_ms=1000)
    assert "cannot reach the event log" in str(err.value) and "s3cret" not in str(err.value)
