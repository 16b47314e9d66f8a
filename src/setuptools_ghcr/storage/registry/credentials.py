"""Where the credentials for a registry come from.

First match wins: the ``--username``/``--password`` options, or in their place
``SETUPTOOLS_GHCR_USERNAME``/``SETUPTOOLS_GHCR_PASSWORD`` (only for a registry the user
named; see ``config.TargetChoice``); then the files ``podman login``, ``skopeo login`` and
``docker login`` write, in the order podman documents (containers-auth.json(5)):
``$REGISTRY_AUTH_FILE``, else ``$XDG_RUNTIME_DIR/containers/auth.json``, else
``/run/containers/$UID/auth.json``; then ``$XDG_CONFIG_HOME/containers/auth.json``
(``~/.config/containers/auth.json``); then ``$DOCKER_CONFIG/config.json`` or
``~/.docker/config.json``, each with its credential helpers; then ``GITHUB_TOKEN`` for
ghcr.io; else anonymous. Only local files and helper programs are read.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from setuptools_ghcr.core.oci import load_json
from setuptools_ghcr.errors import ConfigError

__all__ = [
    "AUTH_FILE_ENV",
    "PASSWORD_ENV",
    "USERNAME_ENV",
    "Credentials",
    "auth_files",
    "find_credentials",
    "login_hint",
]

_log = logging.getLogger(__name__)

#: The environment's stand-ins for the ``--username``/``--password`` options.
USERNAME_ENV = "SETUPTOOLS_GHCR_USERNAME"
PASSWORD_ENV = "SETUPTOOLS_GHCR_PASSWORD"  # noqa: S105 - a variable name, not a secret
GHCR_HOST = "ghcr.io"
#: podman's, skopeo's and buildah's override of their primary credentials file.
AUTH_FILE_ENV = "REGISTRY_AUTH_FILE"
#: Where podman keeps the primary file of user UID when ``XDG_RUNTIME_DIR`` is not set.
RUN_CONTAINERS = Path("/run/containers")
#: A credential helper that has not answered in this long is stuck (a locked keychain that
#: waits for a GUI prompt, say); going on without it beats hanging a CI job.
HELPER_TIMEOUT = 20.0

_HELPER_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class Credentials:
    """A user name and password (or token); ``source`` says where they came from.

    ``bearer`` credentials are a token the registry takes as it is (``Authorization:
    Bearer``), with no exchange at its token service: an index service's caller may hold one.
    """

    username: str
    password: str = field(repr=False)
    source: str = field(default="", compare=False)
    bearer: bool = False

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password='***', source={self.source!r}" + (
            ", bearer=True)" if self.bearer else ")"
        )

    @classmethod
    def bearer_token(cls, token: str, source: str) -> Credentials:
        """A registry token to send as ``Authorization: Bearer``."""
        return cls("", token, source, bearer=True)

    @property
    def origin(self) -> str:
        """Where these credentials came from, for messages."""
        return self.source or "the command line"

    @property
    def secrets(self) -> tuple[str, ...]:
        """What must never be shown: the password and its Basic encoding."""
        return (self.password, self.basic_header().split(" ", 1)[1])

    def basic_header(self) -> str:
        """The value of an ``Authorization: Basic`` header for these credentials."""
        pair = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")

    def authorization(self) -> str:
        """The ``Authorization`` value these credentials answer a registry's challenge with."""
        return f"Bearer {self.password}" if self.bearer else self.basic_header()


def auth_files(
    environ: Mapping[str, str],
    home: Path,
    *,
    uid: int | None = None,
    run_containers: Path = RUN_CONTAINERS,
) -> list[Path]:
    """The credential files to read, in the order podman documents (first match wins)."""
    primary: Path | None
    if environ.get(AUTH_FILE_ENV):
        primary = Path(environ[AUTH_FILE_ENV])
    elif environ.get("XDG_RUNTIME_DIR"):
        primary = Path(environ["XDG_RUNTIME_DIR"]) / "containers" / "auth.json"
    else:
        user = uid if uid is not None else getattr(os, "getuid", lambda: None)()
        primary = run_containers / str(user) / "auth.json" if user is not None else None
    config_home = Path(environ.get("XDG_CONFIG_HOME") or home / ".config")
    docker_dir = Path(environ["DOCKER_CONFIG"]) if environ.get("DOCKER_CONFIG") else None
    files = [
        *([primary] if primary is not None else []),
        config_home / "containers" / "auth.json",
        (docker_dir or home / ".docker") / "config.json",
    ]
    return list(dict.fromkeys(files))


def find_credentials(
    host: str,
    *,
    username: str | None = None,
    password: str | None = None,
    environ: Mapping[str, str],
    home: Path | None = None,
    helper_timeout: float = HELPER_TIMEOUT,
    given_allowed: bool = True,
    run_containers: Path = RUN_CONTAINERS,
) -> Credentials | None:
    """The credentials to use for ``host`` (``name[:port]``), or None for anonymous access.

    ``username`` and ``password`` are the command line's options. This is the one place
    that reads ``SETUPTOOLS_GHCR_USERNAME``/``SETUPTOOLS_GHCR_PASSWORD``: each stands in for
    its option when that option was not given. Neither names a registry, so with
    ``given_allowed`` false (a registry the user did not name) both are left unused.
    """
    host = host.lower()
    if given_allowed:
        given = _given(username, password, environ)
        if given is not None:
            return given
    elif username or password or environ.get(USERNAME_ENV) or environ.get(PASSWORD_ENV):
        _log.warning(
            "credentials from the command line or %s/%s are not sent to %s, which only "
            "the project's configuration names; name it with --repository, %s or %s to "
            "use them",
            USERNAME_ENV,
            PASSWORD_ENV,
            host,
            "SETUPTOOLS_GHCR_REPOSITORY",
            "SETUPTOOLS_GHCR_REGISTRY",
        )
    if home is None:
        home = Path(environ["HOME"]) if environ.get("HOME") else Path.home()
    for path in auth_files(environ, home, run_containers=run_containers):
        found = _from_docker_config(path, host, environ, helper_timeout)
        if found is not None:
            return found
    if host == GHCR_HOST and environ.get("GITHUB_TOKEN"):
        # ghcr.io ignores the user name of a token login, but it must not be empty.
        return Credentials(
            environ.get("GITHUB_ACTOR") or "token", environ["GITHUB_TOKEN"], "GITHUB_TOKEN"
        )
    return None


def login_hint(host: str) -> str:
    """What to tell someone who gave no credentials to a registry that wants some."""
    return f"log in with 'docker login {host}' (or podman login) or give --username/--password"


def _given(
    username: str | None, password: str | None, environ: Mapping[str, str]
) -> Credentials | None:
    """The credentials given as options, each missing one taken from the environment.

    Their source names where each half came from, so that a refusal blames what the user
    actually set: a variable in a CI job's environment is not an option anyone passed.
    """
    user, user_from = _option_or_variable(username, "--username", environ, USERNAME_ENV)
    secret, secret_from = _option_or_variable(password, "--password", environ, PASSWORD_ENV)
    if user_from is None and secret_from is None:
        return None
    if user_from in (None, "--username") and secret_from in (None, "--password"):
        source = "--username/--password"
    elif user_from in (None, USERNAME_ENV) and secret_from in (None, PASSWORD_ENV):
        source = f"{USERNAME_ENV}/{PASSWORD_ENV}"
    else:
        source = f"{user_from}/{secret_from}"
    if secret is None:
        raise ConfigError(f"a user name was given without a password ({source})")
    # A token alone is enough for registries such as ghcr.io, which ignore the user name.
    return Credentials(user or "token", secret, source)


def _option_or_variable(
    value: str | None, option: str, environ: Mapping[str, str], variable: str
) -> tuple[str | None, str | None]:
    """An option's value, else its environment variable's; and which of the two that was."""
    if value:
        return value, option
    if environ.get(variable):
        return environ[variable], variable
    return None, None


def _read_config(path: Path) -> dict[str, Any] | None:
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as error:
        _log.warning("cannot read %s (%s); ignoring it", path, error.strerror)
        return None
    try:
        value = load_json(text)
    except ValueError:
        _log.warning("%s is not valid JSON; ignoring it", path)
        return None
    return value if isinstance(value, dict) else None


def _key_host(key: str) -> str:
    """The host of an ``auths`` key: ``https://ghcr.io/v1/`` and ``ghcr.io/acme`` -> ghcr.io."""
    for prefix in ("https://", "http://"):
        if key.lower().startswith(prefix):
            key = key[len(prefix) :]
            break
    return key.split("/", 1)[0].lower()


def _host_aliases(host: str) -> set[str]:
    if host in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        return {"docker.io", "index.docker.io", "registry-1.docker.io"}
    return {host}


def _from_docker_config(
    path: Path, host: str, environ: Mapping[str, str], timeout: float
) -> Credentials | None:
    config = _read_config(path)
    if config is None:
        return None
    aliases = _host_aliases(host)
    helpers = config.get("credHelpers")
    helper: Any = None
    if isinstance(helpers, dict):
        helper = next((name for key, name in helpers.items() if _key_host(key) in aliases), None)
    if helper is None:
        helper = config.get("credsStore")
    if isinstance(helper, str) and helper:
        found = _from_helper(helper, host, environ, timeout)
        if found is not None:
            return found
    auths = config.get("auths")
    if not isinstance(auths, dict):
        return None
    # An exact key beats a key that names a repository inside the host (containers' style).
    matches = sorted(
        (key for key in auths if isinstance(key, str) and _key_host(key) in aliases),
        key=lambda key: (key.lower().rstrip("/") not in aliases, len(key)),
    )
    for key in matches:
        found = _from_auth_entry(auths[key], f"{path} ({_key_host(key)})")
        if found is not None:
            return found
    return None


def _from_auth_entry(entry: Any, source: str) -> Credentials | None:
    if not isinstance(entry, dict):
        return None
    encoded = entry.get("auth")
    if isinstance(encoded, str) and encoded:
        try:
            decoded = base64.b64decode(encoded, validate=False).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            _log.warning("an auth entry in %s is not valid base64; ignoring it", source)
            return None
        username, sep, password = decoded.partition(":")
        if sep and username and password:
            return Credentials(username, password, source)
        return None
    name, secret = entry.get("username"), entry.get("password")
    if isinstance(name, str) and isinstance(secret, str) and name and secret:
        return Credentials(name, secret, source)
    return None


def _from_helper(
    name: str, host: str, environ: Mapping[str, str], timeout: float
) -> Credentials | None:
    """Ask ``docker-credential-<name> get``; any failure means "no credentials from it"."""
    program_name = f"docker-credential-{name}"
    if not _HELPER_NAME_RE.fullmatch(name):
        _log.warning("ignoring credential helper with an odd name %r", name[:40])
        return None
    program = shutil.which(program_name, path=environ.get("PATH"))
    if program is None:
        _log.debug("credential helper %s is not installed", program_name)
        return None
    try:
        completed = subprocess.run(
            [program, "get"],
            input=host.encode(),
            capture_output=True,
            timeout=timeout,
            env=dict(environ),
            check=False,
        )
    except subprocess.TimeoutExpired:
        _log.warning("credential helper %s did not answer in %.0f s", program_name, timeout)
        return None
    except OSError as error:
        _log.warning("cannot run credential helper %s (%s)", program_name, error.strerror)
        return None
    if completed.returncode != 0:
        # "credentials not found" is the helper's normal way to say it has nothing.
        _log.debug("credential helper %s has no credentials for %s", program_name, host)
        return None
    try:
        answer = load_json(completed.stdout)
    except ValueError:
        _log.warning("credential helper %s answered something other than JSON", program_name)
        return None
    if not isinstance(answer, dict):
        return None
    username, secret = answer.get("Username"), answer.get("Secret")
    if not isinstance(username, str) or not isinstance(secret, str) or not secret:
        return None
    if username == "<token>":
        # An identity (OAuth refresh) token needs a flow no OCI registry we target requires.
        _log.debug("credential helper %s holds an identity token; not used", program_name)
        return None
    return Credentials(username or "token", secret, f"credential helper {program_name}")
