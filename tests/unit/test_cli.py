"""The command line's contract: help, exit statuses, one-line errors, `--` for pip."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from setuptools_ghcr import cli
from setuptools_ghcr.cli import VERBS


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_every_verb_has_complete_help(verb: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        cli.main([verb, "--help"])
    assert stopped.value.code == 0
    out = capsys.readouterr().out
    for option in ("--repository", "--username", "--password", "--verbose"):
        assert option in out


def test_module_entry_point_runs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "setuptools_ghcr", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0
    for verb in VERBS:
        assert verb in done.stdout


def test_bad_usage_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        cli.main(["push"])
    assert stopped.value.code == 2
    with pytest.raises(SystemExit) as stopped:
        cli.main(["frobnicate"])
    assert stopped.value.code == 2


def test_double_dash_is_only_for_install(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        cli.main(["download", "-r", "oci:x", "pkg", "--", "--target", "d"])
    assert stopped.value.code == 2
    assert "only 'install'" in capsys.readouterr().err


def test_options_after_requirements_and_pip_args_after_double_dash(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: dict[str, object] = {}

    def fake_run(args: argparse.Namespace, context: cli.Context) -> int:
        seen["requirements"] = args.requirements
        seen["pip_args"] = args.pip_args
        seen["pre"] = args.pre
        return 0

    from setuptools_ghcr.commands import install

    monkeypatch.setattr(install, "run", fake_run)
    status = cli.main(["install", "-r", "oci:x", "mypkg>=1", "--pre", "--", "--target", "D", "-q"])
    assert status == 0
    assert seen == {"requirements": ["mypkg>=1"], "pip_args": ["--target", "D", "-q"], "pre": True}


def test_without_a_repository_the_default_target_is_used_and_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SETUPTOOLS_GHCR_REPOSITORY", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    status = cli.main(["inspect", "mypkg"])
    err = capsys.readouterr().err
    default = tmp_path / "data" / "setuptools-ghcr" / "packages"
    assert status == 1
    first, second = err.splitlines()
    assert first == f"using oci:{default} (the default target; choose another with --repository)"
    assert second == f"error: project mypkg not found in oci:{default / 'mypkg'}"
    assert "Traceback" not in err
    # Reading created nothing.
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("json_output", [False, True])
def test_a_failure_never_prints_the_password_it_was_given(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], json_output: bool
) -> None:
    from setuptools_ghcr.commands import inspect
    from setuptools_ghcr.errors import GhcrError

    def leaky(args: argparse.Namespace, context: cli.Context) -> int:
        raise GhcrError(f"something echoed {args.password} and the word --password")

    monkeypatch.setattr(inspect, "run", leaky)
    argv = ["inspect", "-r", "oci:x", "-p", "pass", "mypkg"]
    assert cli.main([*argv, "--json"] if json_output else argv) == 1
    captured = capsys.readouterr()
    assert captured.err == "error: something echoed *** and the word --password\n"
    assert "pass " not in captured.out
