"""The shell examples of README.md and docs/*.md, run as a user would type them.

Every fenced block marked ``console``, ``bash``, ``sh`` or ``shell`` runs, in the order of its
document, in a sandbox of that document: a fresh home and working folder, an active virtual
environment of its own, no credentials. The working folder holds ``dist/`` with
``mypkg-1.2.0-py3-none-any.whl`` and ``mypkg-1.2.0.tar.gz`` (what ``python -m build`` would
have made) and a ``requirements.in`` naming ``mypkg``.

- ``console`` blocks are sessions: each ``$ `` line is a command (continued on the next lines
  while it ends in ``\\`` or a quote is open), run by bash; the lines up to the next command are
  its expected output (stdout and stderr together). ``...`` in an expected line stands for any
  text, and a line that is only ``...`` for any number of lines. A command whose output the
  block does not show is not compared. A command must exit 0 unless its shown output has an
  ``error:`` line. A command ending in ``&`` runs in the background until the document is
  done; a background ``serve`` must name its ``--port``, and the next command waits for it.
- ``bash``/``sh``/``shell`` blocks run as one script (``set -e``); their output is not read.
- Addresses stand for local servers: ``127.0.0.1:5000`` is a ``docker-registry`` started for
  the document, and port ``8000`` a free port, in commands and expected output alike.
- A block that cannot run here (it needs ghcr.io, PyPI, GitHub Actions, a project of your
  own) is preceded by ``<!-- docs-test: skip: REASON -->``; a reason is required.
  ``<!-- docs-test: before: COMMAND -->`` runs COMMAND first without showing it (a server that
  a block assumes is running, say).

So the documents cannot drift from what the tool does: a changed message, option or default
fails here, and so does a new shell block that runs nowhere without being marked.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import venv
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from support.registry_harness import RunningRegistry, free_port, start_registry
from support.wheels import make_sdist, make_wheel

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL = {"console", "bash", "sh", "shell"}
_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[\w+-]*)")
_DIRECTIVE = re.compile(r"^\s*<!--\s*docs-test:\s*(?P<verb>\w+):?\s*(?P<text>.*?)\s*-->\s*$")
#: Seconds one command may take (a foreground server that never returns fails, it does not hang).
TIMEOUT = 120
#: Fewer runnable blocks than this means the test is silently skipping what it should run.
MIN_RUN = 6


@dataclass
class Block:
    document: Path
    line: int
    info: str
    text: str
    skip: str | None = None
    before: list[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"{self.document.relative_to(ROOT)}:{self.line}"


@dataclass
class Step:
    command: str
    expected: list[str] = field(default_factory=list)

    @property
    def background(self) -> bool:
        return re.search(r"&\s*(#.*)?$", self.command) is not None


def shell_blocks(document: Path) -> list[Block]:
    """The shell blocks of ``document``, with the directives of the comments before each."""
    lines = document.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        end = index + 1
        while end < len(lines) and not lines[end].strip().startswith(fence):
            end += 1
        body = [line.removeprefix(indent) for line in lines[index + 1 : end]]
        if opening["info"] in SHELL:
            block = Block(document, index + 1, opening["info"], "\n".join(body))
            _directives(lines, index, block)
            found.append(block)
        index = end + 1
    return found


def _directives(lines: list[str], fence_index: int, block: Block) -> None:
    """Read the ``docs-test`` comments in the lines right above a fence."""
    cursor = fence_index - 1
    while cursor >= 0 and (not lines[cursor].strip() or _DIRECTIVE.match(lines[cursor])):
        directive = _DIRECTIVE.match(lines[cursor])
        if directive is not None:
            if directive["verb"] == "skip":
                block.skip = directive["text"]
                assert block.skip, f"{block.where}: a docs-test skip needs a reason"
            elif directive["verb"] == "before":
                block.before.insert(0, directive["text"])
            else:
                raise AssertionError(f"{block.where}: unknown docs-test verb {directive['verb']}")
        cursor -= 1


def _complete(command: str) -> bool:
    if command.endswith("\\"):
        return False
    try:
        shlex.split(command, comments=True)
    except ValueError:  # a quote still open
        return False
    return True


def session(block: Block) -> list[Step]:
    """The commands of a ``console`` block and the output shown after each."""
    steps: list[Step] = []
    lines = iter(block.text.splitlines())
    for line in lines:
        if line.startswith("$ "):
            command = line[2:]
            while not _complete(command):
                command += "\n" + next(lines)
            steps.append(Step(command))
        elif steps:
            steps[-1].expected.append(line)
        elif line.strip():
            raise AssertionError(f"{block.where}: output before any command: {line!r}")
    return steps


def output_matches(expected: list[str], actual: str) -> bool:
    """``actual`` against the shown lines, ``...`` matching any text (or any lines)."""
    pattern = []
    for line in expected:
        if line.strip() == "...":
            pattern.append(r"(?:[^\n]*\n)*?")
        else:
            pattern.append(".*".join(map(re.escape, line.rstrip().split("..."))) + r"\n")
    text = "".join(line.rstrip() + "\n" for line in actual.splitlines())
    return re.fullmatch("".join(pattern), text, re.DOTALL) is not None


# -- the sandbox --------------------------------------------------------------------------------


class Sandbox:
    """A document's own home, working folder, virtual environment and local servers."""

    def __init__(self, root: Path, document: Path) -> None:
        self.root = root
        self.home = root / "home"
        self.work = root / "work"
        self.home.mkdir(parents=True)
        (self.work / "dist").mkdir(parents=True)
        make_wheel(self.work / "dist", "mypkg", "1.2.0", summary="An example package.")
        make_sdist(self.work / "dist", "mypkg", "1.2.0", summary="An example package.")
        (self.work / "requirements.in").write_text("mypkg\n")
        self.env_dir = _environment(root / "venv")
        self.port = free_port()
        self.registry: RunningRegistry | None = None
        if "127.0.0.1:5000" in document.read_text(encoding="utf-8"):
            self.registry = start_registry("plain", root / "registry")
        self.background: list[subprocess.Popen[bytes]] = []

    def substitute(self, text: str) -> str:
        if self.registry is not None:
            text = text.replace("127.0.0.1:5000", self.registry.host)
        text = text.replace("127.0.0.1:8000", f"127.0.0.1:{self.port}")
        return re.sub(r"--port(\s+|=)8000\b", rf"--port\g<1>{self.port}", text)

    def environment(self) -> dict[str, str]:
        scrubbed = ("SETUPTOOLS_GHCR_", "XDG_", "DOCKER_", "REGISTRY_AUTH", "GITHUB_", "PYTHON")
        env = {k: v for k, v in os.environ.items() if not k.startswith(scrubbed)}
        tools = Path(sys.executable).parent
        env.update(
            HOME=str(self.home),
            PATH=os.pathsep.join([str(self.env_dir / "bin"), str(tools), env.get("PATH", "")]),
            VIRTUAL_ENV=str(self.env_dir),
            PYTHONUNBUFFERED="1",
            NO_COLOR="1",
            PIP_DISABLE_PIP_VERSION_CHECK="1",
            PIP_NO_INPUT="1",
        )
        env.pop("VIRTUAL_ENV_PROMPT", None)
        return env

    def run(self, step: Step, block: Block) -> None:
        _assert_stays_local(step.command, block)
        command = self.substitute(step.command)
        if step.background:
            self._start(command, block)
            return
        assert not re.search(r"setuptools-ghcr\s+serve\b", command), (
            f"{block.where}: `{command}` serves until stopped: end it with `&` (and name "
            "its --port), or mark the block with a docs-test skip"
        )
        done = subprocess.run(
            ["bash", "-c", command],
            cwd=self.work,
            env=self.environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        expected = [self.substitute(line) for line in step.expected]
        shown_error = any(line.startswith("error:") for line in expected)
        assert done.returncode == 0 or shown_error, (
            f"{block.where}: `{command}` exited {done.returncode}:\n{done.stdout}"
        )
        if expected:
            assert output_matches(expected, done.stdout), (
                f"{block.where}: `{command}` printed\n{done.stdout}\nbut the document shows\n"
                + "\n".join(expected)
            )

    def run_script(self, block: Block) -> None:
        done = subprocess.run(
            ["bash", "-e", "-c", self.substitute(block.text)],
            cwd=self.work,
            env=self.environment(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        assert done.returncode == 0, f"{block.where}: exited {done.returncode}:\n{done.stderr}"

    def _start(self, command: str, block: Block) -> None:
        command = re.sub(r"&\s*(#.*)?$", "", command)
        port = re.search(r"--port[\s=]+(\d+)", command)
        assert port is not None or "serve" not in command, (
            f"{block.where}: a background serve must name its --port (8000 stands for a free one)"
        )
        log = (self.root / f"background-{len(self.background)}.log").open("wb")
        process = subprocess.Popen(
            ["bash", "-c", command],
            cwd=self.work,
            env=self.environment(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.background.append(process)
        if port is not None:
            _wait_for(int(port.group(1)), process, log.name, block)

    def close(self) -> None:
        for process in self.background:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
        if self.registry is not None:
            self.registry.close()


#: Hosts a runnable block may name: this machine's loopback ones, and example.invalid-style
#: names a test substitutes. Anything else would be traffic off this machine.
_REMOTE = re.compile(
    r"(?:https?://(?!127\.0\.0\.1\b|localhost\b|\[::1\])[^\s/'\"]+|\b(?:ghcr\.io|pypi\.org|github\.com)\b)"
)


def _assert_stays_local(command: str, block: Block) -> None:
    """A runnable block never reaches for the network: it says where it would go instead."""
    remote = _REMOTE.search(command)
    assert remote is None, (
        f"{block.where}: `{command}` reaches {remote.group(0)}; run it against a local "
        "registry or oci: folder, or mark the block with <!-- docs-test: skip: REASON -->"
    )


def _environment(folder: Path) -> Path:
    """A virtual environment that sees the tools this test runs with (pip, build) without
    holding them, so that what the documents install lands in it and nowhere else."""
    venv.EnvBuilder(with_pip=False).create(folder)
    site = next(folder.glob("lib/python3*/site-packages"))
    ours = sysconfig.get_paths()["purelib"]
    (site / "docs_tools.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
    pip = folder / "bin" / "pip"
    pip.write_text(
        f"#!{folder / 'bin' / 'python'}\nimport sys\nfrom pip._internal.cli.main import main\n"
        "sys.exit(main())\n"
    )
    pip.chmod(0o755)
    return folder


def _wait_for(port: int, process: subprocess.Popen[bytes], log: str, block: Block) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"{block.where}: the background command stopped:\n"
                + Path(log).read_text(errors="replace")
            )
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"{block.where}: nothing listened on port {port} after 30 s")


# -- the tests ----------------------------------------------------------------------------------


@pytest.mark.skipif(os.name == "nt", reason="the documents' shell examples are POSIX shell")
@pytest.mark.parametrize("document", DOCUMENTS, ids=[str(d.relative_to(ROOT)) for d in DOCUMENTS])
def test_document_examples_run(document: Path, tmp_path: Path) -> None:
    runnable = [block for block in shell_blocks(document) if block.skip is None]
    if not runnable:
        return
    ours = Path(sysconfig.get_paths()["purelib"])
    installed = sorted(ours.glob("*.dist-info"))
    sandbox = Sandbox(tmp_path, document)
    try:
        for block in runnable:
            for hidden in block.before:
                sandbox.run(Step(hidden), block)
            if block.info == "console":
                for step in session(block):
                    sandbox.run(step, block)
            else:
                sandbox.run_script(block)
    finally:
        sandbox.close()
    assert sorted(ours.glob("*.dist-info")) == installed, "a document installed into the tests'"


def test_the_documents_are_mostly_run_and_every_skip_says_why() -> None:
    blocks = [block for document in DOCUMENTS for block in shell_blocks(document)]
    run = [block for block in blocks if block.skip is None]
    assert len(run) >= MIN_RUN, f"only {len(run)} shell blocks run: {[b.where for b in run]}"
    # The README's own walk through the tool runs, commands and output alike.
    readme = [block for block in run if block.document.name == "README.md"]
    commands = " ".join(step.command for block in readme for step in session(block))
    for verb in ("push", "inspect", "download", "install", "serve"):
        assert f"setuptools-ghcr {verb}" in commands, f"README runs no `{verb}`"
    for block in blocks:
        if block.skip is not None:
            assert len(block.skip) > 10, f"{block.where}: say why the block cannot run"
        elif block.info == "console":
            assert session(block), f"{block.where}: a console block without a `$ ` command"
            for step in session(block):
                _assert_stays_local(step.command, block)


@pytest.mark.parametrize(
    ("expected", "actual", "matches"),
    [
        (["a", "b"], "a\nb\n", True),
        (["a ... c"], "a b c\n", True),
        (["a", "...", "d"], "a\nb\nc\nd\n", True),
        (["a", "...", "d"], "a\nd\n", True),
        (["a"], "a\nb\n", False),
        (["x ... y"], "x y z\n", False),
    ],
)
def test_output_matching(expected: list[str], actual: str, matches: bool) -> None:
    assert output_matches(expected, actual) is matches


def test_sessions_join_continued_commands(tmp_path: Path) -> None:
    text = (
        "$ curl -s \\\n      http://x/ \\\n  | python -c 'import sys\nprint(1)'\n1\n"
        "$ setuptools-ghcr serve --port 8000 &   # then:\n"
    )
    steps = session(Block(tmp_path / "x.md", 1, "console", text))
    assert [step.command.count("\n") for step in steps] == [3, 0]
    assert steps[0].expected == ["1"]
    assert steps[1].background and not steps[0].background


@pytest.mark.parametrize(
    ("command", "local"),
    [
        ("setuptools-ghcr push --repository oci:packages dist/*", True),
        ("pip install --index-url http://127.0.0.1:8000/simple/ mypkg", True),
        ("setuptools-ghcr push --repository 127.0.0.1:5000/team dist/*", True),
        ("setuptools-ghcr install -r ghcr.io/acme mypkg", False),
        ("uv publish --publish-url https://pkgs.example.com/ghcr/ dist/*", False),
        ("pip install --index-url https://pypi.org/simple/ x", False),
    ],
)
def test_runnable_commands_stay_on_this_machine(tmp_path: Path, command: str, local: bool) -> None:
    block = Block(ROOT / "README.md", 1, "console", "")
    if local:
        _assert_stays_local(command, block)
    else:
        with pytest.raises(AssertionError, match="mark the block"):
            _assert_stays_local(command, block)
