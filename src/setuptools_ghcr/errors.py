"""The error tree. Every error reads as one line a user can act on.

Only the command line turns these into exit statuses; the library never prints or exits.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "ConfigError",
    "ConflictError",
    "DigestMismatchError",
    "GhcrError",
    "InvalidDistributionError",
    "InvalidReferenceError",
    "MalformedDocumentError",
    "DamagedLayoutError",
    "NotFoundError",
    "RegistryError",
    "RegistryNotFoundError",
    "AuthenticationError",
    "TooLargeError",
    "UnsafeResponseError",
]


class GhcrError(Exception):
    """Base of every error this package raises on purpose.

    ``str(error)`` is a single line, free of secrets, that says what to do.
    """

    def __init__(self, message: str) -> None:
        text = " ".join(message.split())
        # Messages quote registries' answers and file names: no terminal escapes or NULs.
        super().__init__(
            "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)
        )


class InvalidReferenceError(GhcrError):
    """A target, repository, tag, digest or requirement string that cannot be parsed."""


class MalformedDocumentError(GhcrError):
    """A manifest, index, catalog or other document that does not follow its specification.

    Registries and layout folders both hand these over; the message says which one it came from.
    """


class DamagedLayoutError(GhcrError):
    """A local folder that is not (or is no longer) a usable OCI image layout."""


class InvalidDistributionError(GhcrError):
    """A file that is not a well-formed sdist or wheel, or disagrees with itself."""


class ConfigError(GhcrError):
    """A bad ``[tool.setuptools-ghcr]`` table or option."""


class ConflictError(GhcrError):
    """The target already holds another file under the same name."""


class NotFoundError(GhcrError):
    """A project, version, file, manifest or blob that the target does not have."""


class DigestMismatchError(GhcrError):
    """Bytes that do not hash to (or are not as long as) what their descriptor says."""


class TooLargeError(GhcrError):
    """A document beyond the size this tool accepts (or a registry would accept)."""


class UnsafeResponseError(GhcrError):
    """A registry answer this tool refuses to follow (foreign redirect, bad name, ...)."""


class RegistryError(GhcrError):
    """A registry answered with an error status.

    ``codes`` holds the OCI error codes of the body (``BLOB_UNKNOWN``, ``DENIED``...).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        codes: Sequence[str] = (),
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.codes = tuple(codes)
        self.retry_after = retry_after

    @property
    def temporary(self) -> bool:
        """Whether trying again later may succeed."""
        return self.status is None or self.status in (408, 429) or self.status >= 500


class RegistryNotFoundError(RegistryError, NotFoundError):
    """A registry's "not there" (404, or a code such as ``MANIFEST_BLOB_UNKNOWN``)."""


class AuthenticationError(RegistryError):
    """Credentials missing, refused, or not allowed to do this."""
