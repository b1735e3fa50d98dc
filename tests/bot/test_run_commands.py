"""The Rasa server command lines Kefu builds mean what they say to Rasa's own CLI.

A generated API token can begin with "-" (token_urlsafe's alphabet has it); passed as
a separate word, argparse took it for an option and `make run` failed at random,
about one start in 64.  Parsed here by the parser `rasa run` itself uses.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from rasa.__main__ import create_argument_parser

from bot import settings as settings_mod
from bot.run import Stack
from bot.scaleout import Topology

TOKENS = ["plain", "-starts-with-dash", "--looks-like-a-flag", "-t", "a=b-c_d"]


def _rasa_args(argv: list[str]):
    module_at = argv.index("-m") + 1
    assert argv[module_at] == "bot.rasa_server"
    return create_argument_parser().parse_args(argv[module_at + 1:])


@pytest.mark.parametrize("token", TOKENS)
def test_supervisor_passes_any_token_intact(tmp_path: Path, token: str) -> None:
    settings = settings_mod.load(tmp_path, {"KEFU_RASA_TOKEN": token})
    args = _rasa_args(Stack(settings)._commands()["rasa"])
    assert args.auth_token == token
    assert args.enable_api is True
    assert args.port == settings.rasa_port


@pytest.mark.parametrize("token", TOKENS)
def test_scaleout_passes_any_token_intact(tmp_path: Path, token: str) -> None:
    topology = Topology(tmp_path)
    topology.state.update(token=token, ports={"rasa": [5105, 5106]})
    args = _rasa_args(topology.rasa_command(2))
    assert args.auth_token == token
    assert args.port == 5106


def test_generated_local_tokens_survive_the_cli(tmp_path: Path) -> None:
    """The token written to var/ when none is configured, many times over."""
    for i in range(200):
        var = tmp_path / str(i)
        var.mkdir()
        settings = settings_mod.load(var, {"KEFU_RASA_TOKEN": ""})
        assert _rasa_args(Stack(settings)._commands()["rasa"]).auth_token == settings.rasa_token


@pytest.mark.parametrize("overrides, workers, lock_store", [
    ({}, "1", "bot.lock_store.RenewedInMemoryLockStore"),
    ({"KEFU_RASA_WORKERS": "2", "KEFU_REDIS_URL": "redis://127.0.0.1:6399/0"}, "2",
     "bot.lock_store.RenewedRedisLockStore"),
])
def test_only_rasa_forks_workers_and_every_process_knows_the_lock_store(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, overrides: dict, workers: str, lock_store: str) -> None:
    monkeypatch.delenv("SANIC_WORKERS", raising=False)
    monkeypatch.delenv("KEFU_REDIS_URL", raising=False)
    stack = Stack(settings_mod.load(tmp_path, {"KEFU_RASA_WORKERS": "", **overrides}))
    assert stack.env_for("rasa")["SANIC_WORKERS"] == workers
    assert stack.env_for("rasa")["KEFU_LOCK_STORE"] == lock_store
    for other in ("actions", "web", "desk", "scheduler"):
        assert "SANIC_WORKERS" not in stack.env_for(other)  # rasa_sdk and the rest run one process
    assert not stack._tmp_dirs  # only a started process gets a temporary folder (each test run left two)


def test_make_run_refuses_several_workers_without_redis_in_one_clear_line(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from bot.run import main

    monkeypatch.setenv("KEFU_RASA_WORKERS", "2")
    monkeypatch.delenv("KEFU_REDIS_URL", raising=False)
    assert main([]) == 2
    assert capsys.readouterr().err.strip() == ("kefu: KEFU_RASA_WORKERS=2 needs KEFU_REDIS_URL: the workers must "
                                               "share one conversation lock store (README, Configuration)")
