"""The ``setuptools-ghcr`` command line: arguments, logging, and errors to exit statuses.

Each verb lives in ``commands/<verb>.py`` and only maps its flags to a library call.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from setuptools_ghcr import __version__
from setuptools_ghcr.errors import GhcrError

if TYPE_CHECKING:
    from setuptools_ghcr.storage.factory import StoreFactory

__all__ = ["Context", "main"]

VERBS = {
    "push": "Publish sdists and wheels to a registry or an oci: folder.",
    "download": "Resolve requirements and download verified files.",
    "install": "Resolve requirements, download them and install them with pip.",
    "serve": "Serve a PEP 503/691 simple index of a target for pip and uv.",
    "inspect": "Show a project's versions, files, digests and annotations.",
    "yank": "Mark a version yanked (PEP 592): kept, but skipped unless pinned with ==.",
    "delete": "Delete one version (ghcr.io: through GitHub's REST API).",
    "prune": "Delete all but the newest versions of a project (per-commit builds).",
}


class _Command(Protocol):
    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace, context: Context) -> int: ...


@dataclass
class Context:
    """What every verb needs besides its own arguments."""

    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    cwd: Path = field(default_factory=Path.cwd)
    verbose: bool = False

    def factory(self, args: argparse.Namespace) -> StoreFactory:
        """The store factory for ``--repository`` / config / environment / the default, with
        credentials; says on stderr which target it is unless ``--repository`` named it."""
        from setuptools_ghcr.config import choose_target, load_settings
        from setuptools_ghcr.storage.factory import StoreFactory

        settings = load_settings(self.cwd / "pyproject.toml")
        choice = choose_target(
            args.repository, settings, self.environ, insecure=args.insecure_registries
        )
        self.announce(choice.announcement())
        return StoreFactory(
            choice.target,
            username=args.username,
            password=args.password,
            environ=self.environ,
            given_credentials=choice.credentials_allowed,
        )

    def announce(self, line: str | None) -> None:
        """Tell the user something that is not the command's output (on stderr)."""
        if line:
            print(line, file=sys.stderr, flush=True)


def _common(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("target and credentials")
    group.add_argument(
        "-r",
        "--repository",
        metavar="TARGET",
        help="REGISTRY/NAMESPACE (e.g. ghcr.io/acme) or oci:PATH; default: "
        "[tool.setuptools-ghcr] repository, then $SETUPTOOLS_GHCR_REPOSITORY, then "
        "oci:$XDG_DATA_HOME/setuptools-ghcr/packages",
    )
    group.add_argument(
        "--insecure-registry",
        dest="insecure_registries",
        action="append",
        default=[],
        metavar="HOST",
        help="speak plain http to this registry (NAME or NAME:PORT; repeatable; also "
        "$SETUPTOOLS_GHCR_INSECURE_REGISTRIES, comma-separated); loopback needs none",
    )
    group.add_argument(
        "-u",
        "--username",
        help="registry user name (default: $SETUPTOOLS_GHCR_USERNAME, then the podman/docker "
        "credential stores, then GITHUB_TOKEN for ghcr.io); it and the password go only to "
        "a registry named by --repository, $SETUPTOOLS_GHCR_REPOSITORY or "
        "$SETUPTOOLS_GHCR_REGISTRY",
    )
    group.add_argument(
        "-p",
        "--password",
        help="registry password or token (default: $SETUPTOOLS_GHCR_PASSWORD); visible to "
        "other users in the process list: prefer --password-stdin",
    )
    group.add_argument(
        "--password-stdin", action="store_true", help="read the password or token from stdin"
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log HTTP requests and show tracebacks"
    )


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, _Command]]:
    parser = argparse.ArgumentParser(
        prog="setuptools-ghcr",
        description="Publish Python distributions to GitHub Container Registry or any OCI "
        "registry, and install them back with pip or uv.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    verbs = parser.add_subparsers(dest="verb", metavar="COMMAND", required=True)
    commands: dict[str, _Command] = {}
    for verb, summary in VERBS.items():
        module: _Command = importlib.import_module(f"setuptools_ghcr.commands.{verb}")
        sub = verbs.add_parser(verb, help=summary, description=summary)
        module.add_arguments(sub)
        _common(sub)
        commands[verb] = module
    return parser, commands


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s" if verbose else "%(levelname)s: %(message)s",
        stream=sys.stderr,
    )
    # urllib3's debug lines print whole URLs, signed CDN redirects and upload states
    # included; setuptools_ghcr.http logs every request already, with those hidden.
    logging.getLogger("urllib3").setLevel(logging.INFO if verbose else logging.ERROR)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 failure, 2 usage)."""
    parser, commands = build_parser()
    words = list(sys.argv[1:] if argv is None else argv)
    # What follows `--` belongs to pip; argparse would fold it into the requirements.
    pip_args: list[str] | None = None
    if "--" in words:
        cut = words.index("--")
        words, pip_args = words[:cut], words[cut + 1 :]
    args, unknown = parser.parse_known_args(words)
    if unknown:
        parser.error(_unrecognized(args, unknown))
    if pip_args is not None:
        if args.verb != "install":
            parser.error("'--' passes arguments on to pip; only 'install' takes them")
        args.pip_args = pip_args
    if args.password_stdin and args.password:
        parser.error("give --password or --password-stdin, not both")
    _configure_logging(args.verbose)
    context = Context(verbose=args.verbose)
    try:
        if args.password_stdin:
            args.password = _read_password()
        return commands[args.verb].run(args, context)
    except GhcrError as error:
        if args.verbose:
            logging.getLogger(__name__).debug("failure", exc_info=True)
        return _fail(args, context, str(error), type(error).__name__)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as Unix tools do.
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - flushed at exit, never read
        return 1
    except OSError as error:
        if args.verbose:
            logging.getLogger(__name__).debug("failure", exc_info=True)
        return _fail(args, context, _os_error(error), "OSError")


def _unrecognized(args: argparse.Namespace, unknown: Sequence[str]) -> str:
    message = f"unrecognized arguments: {' '.join(unknown)}"
    if args.verb == "install" and any(word.startswith("-") for word in unknown):
        requirements = " ".join(args.requirements)
        message += (
            "; options for pip go after '--': "
            f"setuptools-ghcr install {requirements} -- {' '.join(unknown)}"
        )
    return message


def _read_password() -> str:
    """The password of ``--password-stdin``: stdin's first line, as ``docker login`` reads it."""
    line = sys.stdin.readline().rstrip("\r\n")
    if not line:
        raise GhcrError("--password-stdin: stdin held no password")
    return line


def _fail(args: argparse.Namespace, context: Context, message: str, kind: str) -> int:
    """Report a failure: one line on stderr, and a JSON error object on stdout with --json.

    Whatever built the message, a password given to this run never reaches the screen.
    """
    from setuptools_ghcr.storage.registry.credentials import PASSWORD_ENV
    from setuptools_ghcr.storage.registry.redact import Redactor

    message = Redactor(
        secret for secret in (args.password, context.environ.get(PASSWORD_ENV)) if secret
    )(message)
    if getattr(args, "json", False):
        json.dump({"error": {"type": kind, "message": message}}, sys.stdout)
        sys.stdout.write("\n")
        sys.stdout.flush()
    print(f"error: {message}", file=sys.stderr)
    return 1


def _os_error(error: OSError) -> str:
    where = f": {error.filename}" if error.filename else ""
    return f"{error.strerror or error}{where}"


if __name__ == "__main__":
    sys.exit(main())
