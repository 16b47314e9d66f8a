"""Choosing the environment ``install`` installs into."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from setuptools_ghcr.errors import ConfigError
from setuptools_ghcr.usecases import interpreter
from setuptools_ghcr.usecases.interpreter import choose_interpreter, tool_environment


def _env(folder: Path) -> Path:
    python = folder / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("#!/bin/sh\n")
    python.chmod(0o755)
    return folder


@pytest.mark.parametrize(
    ("marker", "installer"),
    [("pipx_metadata.json", "pipx"), ("uv-receipt.toml", "uv tool"), (None, None)],
)
def test_tool_environment(tmp_path: Path, marker: str | None, installer: str | None) -> None:
    if marker:
        (tmp_path / marker).write_text("")
    assert tool_environment(tmp_path) == installer


@pytest.mark.skipif(os.name == "nt", reason="POSIX virtual environment layout")
def test_the_order_option_then_active_environment_then_this_interpreter(tmp_path: Path) -> None:
    own = _env(tmp_path / "own")
    active = _env(tmp_path / "active")
    chosen = _env(tmp_path / "chosen")
    executable = str(own / "bin" / "python")
    kwargs = {"executable": executable, "prefix": str(own)}

    plain = choose_interpreter(None, {}, **kwargs)
    assert (plain.python, plain.reason, plain.pip) == (
        executable,
        "this interpreter",
        (
            executable,
            "-m",
            "pip",
        ),
    )
    # The tool's own environment, activated, is the same as none.
    assert choose_interpreter(None, {"VIRTUAL_ENV": str(own)}, **kwargs).python == executable

    by_env = choose_interpreter(None, {"VIRTUAL_ENV": str(active)}, **kwargs)
    assert by_env.python == str(active / "bin" / "python")
    assert by_env.describe() == (
        f"installing with {active / 'bin' / 'python'} (the active virtual environment)"
    )
    by_option = choose_interpreter(str(chosen), {"VIRTUAL_ENV": str(active)}, **kwargs)
    assert by_option.python == str(chosen / "bin" / "python") and by_option.reason == "--python"
    assert choose_interpreter(str(chosen / "bin" / "python"), {}, **kwargs).python == str(
        chosen / "bin" / "python"
    )


@pytest.mark.skipif(os.name == "nt", reason="POSIX virtual environment layout")
def test_pip_for_another_interpreter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = _env(tmp_path / "other")
    python = str(other / "bin" / "python")
    monkeypatch.setattr(interpreter, "_own_pip_takes_python", lambda: True)
    assert choose_interpreter(python, {}).pip == (sys.executable, "-m", "pip", "--python", python)
    monkeypatch.setattr(interpreter, "_own_pip_takes_python", lambda: False)
    assert choose_interpreter(python, {}).pip == (python, "-m", "pip")


@pytest.mark.skipif(os.name == "nt", reason="POSIX virtual environment layout")
def test_refusals(tmp_path: Path) -> None:
    tool = _env(tmp_path / "tool")
    (tool / "uv-receipt.toml").write_text("")
    kwargs = {"executable": str(tool / "bin" / "python"), "prefix": str(tool)}
    with pytest.raises(ConfigError, match="environment uv tool made for it") as caught:
        choose_interpreter(None, {}, **kwargs)
    assert "--python PATH" in str(caught.value)
    with pytest.raises(ConfigError, match="holds no python"):
        choose_interpreter(None, {"VIRTUAL_ENV": str(tmp_path / "gone")}, **kwargs)
    with pytest.raises(ConfigError, match="no Python interpreter there"):
        choose_interpreter(str(tmp_path / "gone"), {}, **kwargs)
    with pytest.raises(ConfigError, match="no Python interpreter there"):
        choose_interpreter("no-such-python-here", {"PATH": str(tmp_path)}, **kwargs)


@pytest.mark.skipif(os.name == "nt", reason="POSIX virtual environment layout")
def test_environments_linking_to_one_base_interpreter_are_not_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = _env(tmp_path / "base") / "bin" / "python"
    own, other = tmp_path / "own" / "bin", tmp_path / "other" / "bin"
    for folder in (own, other):
        folder.mkdir(parents=True)
        (folder / "python").symlink_to(base)
    monkeypatch.setattr(interpreter, "_own_pip_takes_python", lambda: True)
    chosen = choose_interpreter(
        str(other.parent), {}, executable=str(own / "python"), prefix=str(own.parent)
    )
    assert chosen.pip == (str(own / "python"), "-m", "pip", "--python", str(other / "python"))
