"""KEFU_MALLOC: the Rasa server on jemalloc when asked and installed (bot/allocator.py)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from bot.allocator import JEMALLOC_CONF, allocator_env, find_jemalloc

JEMALLOC = find_jemalloc()


def test_default_changes_nothing():
    env = {"PATH": "/usr/bin", "LD_PRELOAD": "/x.so"}
    assert allocator_env(env) == env
    assert allocator_env({**env, "KEFU_MALLOC": "default"}) == {**env, "KEFU_MALLOC": "default"}


def test_an_unknown_choice_or_a_missing_library_falls_back_with_a_warning(caplog, tmp_path):
    env = {"KEFU_MALLOC": "tcmalloc"}
    assert allocator_env(env) == env
    env = {"KEFU_MALLOC": "jemalloc"}
    assert allocator_env(env, paths=(str(tmp_path / "missing.so"),)) == env
    assert "not installed" in caplog.text and "tcmalloc" in caplog.text


def test_jemalloc_is_preloaded_before_what_was_there(tmp_path):
    library = tmp_path / "libjemalloc.so.2"
    library.write_bytes(b"")
    env = allocator_env({"KEFU_MALLOC": "JeMalloc", "LD_PRELOAD": "/other.so"}, paths=(str(library),))
    assert env["LD_PRELOAD"] == f"{library} /other.so"
    assert env["PYTHONMALLOC"] == "malloc" and env["MALLOC_CONF"] == JEMALLOC_CONF
    again = allocator_env({**env, "MALLOC_CONF": "narenas:2"}, paths=(str(library),))
    assert again["LD_PRELOAD"] == env["LD_PRELOAD"]  # not preloaded twice
    assert again["MALLOC_CONF"] == "narenas:2"  # the operator's own tuning wins


@pytest.mark.skipif(JEMALLOC is None, reason="Debian's libjemalloc2 is not installed")
def test_a_python_started_with_that_environment_runs_on_jemalloc():
    env = allocator_env({"KEFU_MALLOC": "jemalloc", "PATH": "/usr/bin:/bin"})
    probe = "from bot.allocator import running_on_jemalloc; print(running_on_jemalloc())"
    out = subprocess.run([sys.executable, "-c", probe], env={**env, "PYTHONPATH": "."},
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "True"
