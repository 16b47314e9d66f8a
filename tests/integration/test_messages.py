"""What a new user reads: messages that say what went wrong and what to type instead,
``--json`` that matches its documentation, and extra tags that never move back."""

from __future__ import annotations

import json
import logging
import secrets
from pathlib import Path

import pytest
from support.registry_harness import RunningRegistry
from support.wheels import make_sdist, make_wheel

from setuptools_ghcr.cli import main
from setuptools_ghcr.core.targets import parse_target
from setuptools_ghcr.storage.factory import StoreFactory
from setuptools_ghcr.usecases.versions import read_index

pytestmark = pytest.mark.integration

#: The keys of ``push --json`` as the README documents them, and its statuses.
PUSH_KEYS = {"repository", "files"}
FILE_KEYS = {
    "filename",
    "project",
    "version",
    "status",
    "sha256",
    "size",
    "reference",
    "manifest",
    "public",
}


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "work"
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.delenv("SETUPTOOLS_GHCR_REPOSITORY", raising=False)
    return folder


def _error(capsys: pytest.CaptureFixture[str]) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1
    return lines[0]


def test_push_names_a_folder_and_a_pattern_that_matched_nothing(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["push", "-r", "oci:out", "."]) == 1
    assert _error(capsys) == (
        "error: '.' is a folder, not a distribution; give the built files in it, e.g. ./*"
    )
    (work / "dist").mkdir()
    # What the shell hands over when dist/* matches nothing.
    assert main(["push", "-r", "oci:out", "dist/*"]) == 1
    assert _error(capsys).startswith("error: dist/*: no such file (no file matches the pattern")
    assert main(["push", "-r", "oci:out", "dist/mypkg-1.0.tar.gz"]) == 1
    assert _error(capsys) == "error: dist/mypkg-1.0.tar.gz: no such file"


def test_pip_options_without_double_dash_get_a_hint(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["install", "-r", "oci:out", "mypkg", "--upgrade"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: --upgrade" in err
    assert "options for pip go after '--': setuptools-ghcr install mypkg -- --upgrade" in err


def test_a_version_as_extra_tag_is_explained(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wheel = make_wheel(work, "tagged-pkg", "1.0")
    assert main(["push", "-r", "oci:out", "--tag", "1.2.0", str(wheel)]) == 1
    line = _error(capsys)
    assert "'1.2.0' is the tag of version 1.2.0" in line
    assert "every version is tagged with its own version" in line
    assert "(latest, stable)" in line
    assert not (work / "out").exists()


def test_push_json_matches_its_documentation_and_failures_are_json_too(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wheel = make_wheel(work, "json-pkg", "1.0")
    sdist = make_sdist(work, "json-pkg", "1.0")
    assert main(["push", "-r", "oci:out", "--json", str(wheel)]) == 0
    first = json.loads(capsys.readouterr().out)
    assert set(first) == PUSH_KEYS and first["repository"] == f"oci:{work / 'out'}"
    (entry,) = first["files"]
    assert set(entry) == FILE_KEYS
    assert entry["status"] == "uploaded"
    assert entry["reference"] == f"oci:{work / 'out' / 'json_pkg'}:1.0"

    assert main(["push", "-r", "oci:out", "--json", str(wheel), str(sdist)]) == 0
    second = json.loads(capsys.readouterr().out)
    assert [f["status"] for f in second["files"]] == ["exists", "uploaded"]
    (work / "other").mkdir()
    other = make_wheel(work / "other", "json-pkg", "1.0", summary="Other bytes.")
    assert main(["push", "-r", "oci:out", "--json", "--skip-existing", str(other)]) == 0
    assert [f["status"] for f in json.loads(capsys.readouterr().out)["files"]] == ["skipped"]

    assert main(["push", "-r", "oci:out", "--json", str(other)]) == 1
    captured = capsys.readouterr()
    failure = json.loads(captured.out)
    assert failure["error"]["type"] == "ConflictError"
    assert "already published with other contents" in failure["error"]["message"]
    assert captured.err == f"error: {failure['error']['message']}\n"

    assert main(["inspect", "-r", "oci:out", "--json", "nothing-here"]) == 1
    assert json.loads(capsys.readouterr().out)["error"]["type"] == "NotFoundError"


def test_a_platform_no_wheel_fits_says_the_sdist_was_chosen(
    work: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    wheel = make_wheel(work, "native-pkg", "1.0", tag="cp312-cp312-manylinux_2_28_x86_64")
    sdist = make_sdist(work, "native-pkg", "1.0")
    assert main(["push", "-r", "oci:out", str(wheel), str(sdist)]) == 0
    capsys.readouterr()
    args = ["download", "-r", "oci:out", "-d", "got", "--python-version", "3.12"]
    with caplog.at_level(logging.WARNING):
        assert main([*args, "--platform", "macosx_14_0_arm64", "native-pkg"]) == 0
    assert capsys.readouterr().out == f"got/{sdist.name}\n"
    assert "no wheel of native-pkg 1.0 fits Python 3.12.0 on macosx_14_0_arm64" in caplog.text
    assert f"(there are 1: {wheel.name}); chose the sdist {sdist.name}" in caplog.text
    caplog.clear()
    assert main([*args, "--platform", "manylinux_2_28_x86_64", "native-pkg"]) == 0
    assert capsys.readouterr().out == f"got/{wheel.name}\n"
    assert "chose the sdist" not in caplog.text


@pytest.mark.parametrize("where", ["layout", "registry"])
def test_latest_never_moves_back_to_a_lower_version(
    where: str,
    work: Path,
    plain_registry: RunningRegistry,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    target = "oci:out" if where == "layout" else f"{plain_registry.host}/tags{secrets.token_hex(4)}"
    for version in ("1.0", "2.0", "1.5"):  # 1.5: a backport, published last
        wheel = make_wheel(work, "moving-pkg", version)
        with caplog.at_level(logging.WARNING):
            assert (
                main(["push", "-r", target, "--tag", "latest", "--tag", "stable", str(wheel)]) == 0
            )
    assert "latest stays on 2.0, which is newer than 1.5" in caplog.text
    stores = StoreFactory(parse_target(target), environ={})
    store = stores.open("moving-pkg")
    for extra in ("latest", "stable"):
        held = read_index(store, extra)
        assert held is not None
        assert held.annotations["org.opencontainers.image.version"] == "2.0"
    # A newer version moves it on, and re-pushing the backport still does not move it back.
    assert (
        main(["push", "-r", target, "--tag", "latest", str(make_wheel(work, "moving-pkg", "2.1"))])
        == 0
    )
    assert (
        main(
            ["push", "-r", target, "--tag", "latest", str(work / "moving_pkg-1.5-py3-none-any.whl")]
        )
        == 0
    )
    latest = read_index(store, "latest")
    assert latest is not None and latest.annotations["org.opencontainers.image.version"] == "2.1"
    stores.close()


def test_a_target_ending_in_the_project_name_warns_where_it_goes(
    work: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    wheel = make_wheel(work, "nested-pkg", "1.0")
    with caplog.at_level(logging.WARNING):
        assert main(["push", "-r", "oci:acme/nested_pkg", str(wheel)]) == 0
    assert f"so nested-pkg goes to oci:{work / 'acme' / 'nested_pkg' / 'nested_pkg'}" in (
        caplog.text
    )
    assert f"give oci:{work / 'acme'} as the target" in caplog.text
    assert (work / "acme" / "nested_pkg" / "nested_pkg" / "index.json").is_file()
