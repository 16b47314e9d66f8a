"""Use case: resolve requirements against a target and download verified files.

A resolve costs one tag listing per project, one index fetch per version tried, and the
blobs; a file's manifest is fetched only when its index entry lacks what is needed (a
PyOCI-published file, or core metadata not yet in the cache). Dependencies that live in the
same target are resolved the same way; the others are left for pip.

Every byte goes through the blob cache: a blob already there costs no transfer, and what is
copied out of it is verified while copying, then renamed into place.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable, Sequence
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from setuptools_ghcr.core.dists import (
    MAX_METADATA_SIZE,
    MetadataFields,
    parse_metadata,
    read_core_metadata,
)
from setuptools_ghcr.core.oci import Descriptor, Digest, Manifest
from setuptools_ghcr.core.selection import (
    applicable_requirements,
    is_pinned,
    matching_versions,
    parse_requirement,
    rank_files,
    reachable_projects,
    requirement_applies,
    sdist_notice,
)
from setuptools_ghcr.core.wire_format import METADATA_MEDIA_TYPE, FileEntry, layer_of
from setuptools_ghcr.errors import (
    AuthenticationError,
    DigestMismatchError,
    GhcrError,
    InvalidDistributionError,
    NotFoundError,
    UnsafeResponseError,
)
from setuptools_ghcr.storage.cache import BlobCache
from setuptools_ghcr.storage.store import ProgressCallback, ProgressFactory, Store
from setuptools_ghcr.usecases.choices import Downloaded, ResolveOptions, Selected, StoreOpener
from setuptools_ghcr.usecases.prefetch import Prefetcher
from setuptools_ghcr.usecases.versions import (
    ListedFiles,
    file_blob,
    list_versions,
    listed_blob,
    read_file_manifest,
    read_version,
)

__all__ = [
    "Downloaded",
    "ResolveOptions",
    "Resolver",
    "Selected",
    "StoreOpener",
    "download",
    "parse_requirement",
]

logger = logging.getLogger(__name__)

#: Versions named in a "no version matches" message.
SHOWN_VERSIONS = 5
#: Re-selections allowed per project before resolution is declared unsettled.
MAX_ROUNDS_PER_PROJECT = 20
#: Version indexes one resolve may read, all projects together.
MAX_VERSIONS_READ = 200


def _same_version(text: str, version: Version) -> bool:
    try:
        return Version(text) == version
    except InvalidVersion:
        return False


def _describe(specifier: SpecifierSet) -> str:
    return str(specifier) or "any version"


class Resolver:
    """Resolves requirements against one target and downloads the chosen files.

    An instance remembers every tag list, index, manifest and store it has read, so a project
    or version met twice (as a dependency of two projects, say) costs nothing the second time.
    With a ``prefetcher``, a chosen file starts downloading as soon as it is chosen, while
    its dependencies are read (see ``prefetch``); :meth:`place` then waits for it.
    """

    def __init__(
        self,
        stores: StoreOpener,
        cache: BlobCache,
        options: ResolveOptions | None = None,
        progress: ProgressFactory | None = None,
        prefetcher: Prefetcher | None = None,
    ) -> None:
        self._stores = stores
        self._cache = cache
        self.options = options or ResolveOptions()
        self._progress = progress
        self._prefetcher = prefetcher
        self._opened: dict[NormalizedName, Store] = {}
        self._versions: dict[NormalizedName, list[Version]] = {}
        # Only the file entries of each version read: never the raw index (up to 4 MiB each).
        self._indexes: dict[tuple[NormalizedName, Version], ListedFiles | None] = {}
        self._manifests: dict[Digest, Manifest] = {}
        self._metadata: dict[tuple[NormalizedName, str], MetadataFields] = {}
        #: Dependencies of the last resolve left to pip's indexes, and why.
        self.left_to_pip: dict[NormalizedName, str] = {}

    # -- reading the target --------------------------------------------------------------------

    @property
    def target(self) -> str:
        return str(self._stores.target)

    def store(self, project: NormalizedName) -> Store:
        if project not in self._opened:
            self._opened[project] = self._stores.open(project)
        return self._opened[project]

    def versions(self, project: NormalizedName) -> list[Version]:
        """The project's versions, newest first (empty when the target lacks the project)."""
        if project not in self._versions:
            self._versions[project] = list_versions(self.store(project))
        return self._versions[project]

    def _must_come_from_target(self, project: NormalizedName, origins: Sequence[Selected]) -> bool:
        """Whether a publisher recorded ``project`` as living in the target, or a pattern
        names it: then it never comes from another index, whoever runs the install."""
        return self.options.internal_projects.matches(project) or any(
            project in origin.entry.target_dependencies for origin in origins
        )

    def _from_target(self, project: NormalizedName, origins: Sequence[Selected]) -> bool:
        """Whether a dependency comes from the target (False leaves it to pip, and says so).

        A refusal is never read as "absent": ghcr.io answers anonymous callers alike for a
        private package and for a name it does not have. A dependency that must come from the
        target and cannot be read there is an error naming it.
        """
        must = self._must_come_from_target(project, origins)
        required_by = ", ".join(origin.project for origin in origins) or "the request"
        try:
            held = bool(self.versions(project))
        except AuthenticationError as error:
            if must:
                raise AuthenticationError(
                    f"{project} (required by {required_by}) must come from {self.target}, "
                    f"which refuses to let it be read: {error}",
                    status=error.status,
                    codes=error.codes,
                ) from error
            logger.info("%s: %s", project, error)
            self.left_to_pip[project] = "not readable there"
            return False
        if held:
            return True
        if must:
            raise NotFoundError(
                f"{project} (required by {required_by}) must come from {self.target}, "
                "which does not have it"
            )
        self.left_to_pip[project] = "not there"
        return False

    def files(self, project: NormalizedName, version: Version) -> ListedFiles | None:
        """The usable files of a version (None when it vanished), read once per resolver.

        At most :data:`MAX_VERSIONS_READ` versions are read in all: a target cannot make one
        resolve read (and hold) without end.
        """
        key = (project, version)
        if key not in self._indexes:
            if len(self._indexes) >= MAX_VERSIONS_READ:
                raise NotFoundError(
                    f"read {MAX_VERSIONS_READ} versions in {self.target} without settling "
                    f"(last: {project}); give narrower version specifiers"
                )
            found = read_version(self.store(project), project, version)
            self._indexes[key] = None if found is None else ListedFiles.of(found)
        return self._indexes[key]

    def _manifest(self, entry: FileEntry) -> Manifest:
        return read_file_manifest(self.store(entry.project), entry, self._manifests)

    def layer(self, entry: FileEntry) -> Descriptor:
        """The file's blob descriptor, from the index entry when it says enough."""
        return file_blob(self.store(entry.project), entry, self._manifests)

    # -- choosing ------------------------------------------------------------------------------

    def choose(
        self,
        project: NormalizedName,
        specifier: SpecifierSet,
        extras: frozenset[str] = frozenset(),
        required_by: str | None = None,
    ) -> Selected:
        """The best file of the newest matching version that has one for the target."""
        versions = self.versions(project)
        if not versions:
            raise NotFoundError(f"project {project} not found in {self.target}")
        candidates = matching_versions(versions, specifier, pre=self.options.pre)
        origin = f" (required by {required_by})" if required_by else ""
        if not candidates:
            shown = ", ".join(map(str, versions[:SHOWN_VERSIONS]))
            more = (
                f" and {len(versions) - SHOWN_VERSIONS} older"
                if len(versions) > SHOWN_VERSIONS
                else ""
            )
            raise NotFoundError(
                f"no version of {project} in {self.target} matches {_describe(specifier)}"
                f"{origin}; available: {shown}{more}"
            )
        env = self.options.environment
        pinned = is_pinned(specifier)
        seen: list[str] = []
        refused = 0
        yanked: list[Version] = []
        for version in candidates:
            published = self.files(project, version)
            if published is None:
                # The tag vanished between the listing and now (a deletion): try older ones.
                logger.info("%s %s disappeared from %s", project, version, self.target)
                continue
            if published.yanked is not None and not pinned:
                yanked.append(version)  # PEP 592: only an exact pin picks a yanked version
                continue
            ranked = rank_files(published.files, env, only_binary=self.options.only_binary)
            if ranked:
                if published.yanked is not None:
                    why = f": {published.yanked}" if published.yanked else ""
                    logger.warning("%s %s is yanked%s; using it as pinned", project, version, why)
                if version != candidates[0] and candidates[0] not in yanked:
                    logger.info(
                        "%s: no file of %s fits this target; using %s",
                        project,
                        candidates[0],
                        version,
                    )
                notice = sdist_notice(ranked[0], published.files, env)
                if notice:
                    logger.warning("%s", notice)
                self._prefetch(ranked[0])
                return self._selected(ranked[0], extras)
            seen.extend(entry.filename for entry in published.files)
            refused += published.skipped
        if yanked and not seen:
            shown = ", ".join(map(str, yanked[:SHOWN_VERSIONS]))
            raise NotFoundError(
                f"every version of {project} in {self.target} that matches "
                f"{_describe(specifier)}{origin} is yanked ({shown}); pin one with == to use it"
            )
        kinds = "wheel" if self.options.only_binary else "wheel or sdist"
        files = ", ".join(seen[:4]) + (", ..." if len(seen) > 4 else "") if seen else "no files"
        if refused:
            files += f" ({refused} unusable entries skipped: unsafe or mismatched file names)"
        raise NotFoundError(
            f"no {kinds} of {project} {_describe(specifier)}{origin} in {self.target} fits "
            f"Python {env.python_version} on {env.tags[0] if env.tags else 'this platform'}; "
            f"found: {files}"
        )

    def _prefetch(self, entry: FileEntry) -> None:
        """Start downloading a file just chosen, when its index entry names its blob."""
        blob = listed_blob(entry)
        if self._prefetcher is None or blob is None:
            return

        def progress() -> ProgressCallback | None:
            return self._progress(entry.filename, blob.size) if self._progress else None

        self._prefetcher.start(self.store(entry.project), blob, progress)

    def _selected(self, entry: FileEntry, extras: frozenset[str]) -> Selected:
        requires: tuple[Requirement, ...] = ()
        if self.options.deps:
            fields = self.metadata(entry)
            env = self.options.environment
            requires = tuple(applicable_requirements(fields.requires_dist, env.markers, extras))
        return Selected(entry, self.store(entry.project).location, extras, requires)

    def metadata(self, entry: FileEntry) -> MetadataFields:
        """The file's core metadata: from the cache, the config blob, or else the file itself."""
        key = (entry.project, entry.filename)
        if key not in self._metadata:
            raw = self._metadata_bytes(entry)
            fields = parse_metadata(raw, entry.filename)
            if canonicalize_name(fields.name) != entry.project or not _same_version(
                fields.version, entry.version
            ):
                raise InvalidDistributionError(
                    f"{entry.filename}: its metadata is for {fields.name} {fields.version}"
                )
            self._metadata[key] = fields
        return self._metadata[key]

    def _metadata_bytes(self, entry: FileEntry) -> bytes:
        if entry.metadata is not None:
            cached = self._cache.read_small(entry.metadata.digest, MAX_METADATA_SIZE)
            if cached is not None:
                return cached
        manifest = self._manifest(entry)
        config = manifest.config
        if entry.metadata is not None and config.digest != entry.metadata.digest:
            raise InvalidDistributionError(
                f"{entry.filename}: the manifest's config is not the metadata the index names"
            )
        if config.media_type == METADATA_MEDIA_TYPE:
            raw = self.store(entry.project).read_blob(config, MAX_METADATA_SIZE)
            self._cache.store_small(raw)
            return raw
        # Published without metadata (PyOCI): read it from the file, through the cache.
        layer = layer_of(manifest, entry)
        path = self._cache_blob(entry, layer)
        return read_core_metadata(path, entry.filename)

    # -- resolving -----------------------------------------------------------------------------

    def resolve(self, requirements: Iterable[Requirement]) -> list[Selected]:
        """Choose a file for each requirement and, unless disabled, for its dependencies in
        the target; projects asked for more than once get all their specifiers combined.
        """
        markers = self.options.environment.markers
        roots: list[NormalizedName] = []
        # wanted[project][origin]: what each requiring project (or "" for the user) asks for.
        wanted: dict[NormalizedName, dict[str, list[Requirement]]] = {}
        for requirement in requirements:
            if not requirement_applies(requirement, markers):
                logger.warning("ignoring %s: its marker does not hold here", requirement)
                continue
            name = canonicalize_name(requirement.name)
            wanted.setdefault(name, {}).setdefault("", []).append(requirement)
            if name not in roots:
                roots.append(name)

        self.left_to_pip = {}
        chosen: dict[NormalizedName, Selected] = {}
        rounds: dict[NormalizedName, int] = {}
        queue = deque(roots)
        while queue:
            name = queue.popleft()
            asks = [r for group in wanted.get(name, {}).values() for r in group]
            if not asks:
                continue
            specifier = SpecifierSet()
            for ask in asks:
                specifier &= ask.specifier
            extras = frozenset(e for ask in asks for e in ask.extras)
            current = chosen.get(name)
            if (
                current is not None
                and specifier.contains(current.version, prereleases=True)
                and extras <= current.extras
            ):
                continue
            origins = sorted(origin for origin in wanted[name] if origin)
            requirers = [chosen[n] for n in map(canonicalize_name, origins) if n in chosen]
            # Asked again by a file whose publisher recorded it: it must be readable now.
            if name in self.left_to_pip and not self._must_come_from_target(name, requirers):
                continue
            rounds[name] = rounds.get(name, 0) + 1
            if rounds[name] > MAX_ROUNDS_PER_PROJECT:
                raise GhcrError(
                    f"could not settle on a version of {name}: its requirements keep changing"
                )
            if name not in roots and not self._from_target(name, requirers):
                continue  # pip resolves it from its indexes
            selected = self.choose(
                name,
                specifier,
                extras | (current.extras if current else frozenset()),
                required_by=", ".join(origins) or None,
            )
            # What the previous choice asked for no longer holds.
            if current is not None:
                self._drop_download(current, selected)
                for old in current.requires:
                    wanted.get(canonicalize_name(old.name), {}).pop(name, None)
            chosen[name] = selected
            for dependency in selected.requires:
                if dependency.url:
                    continue  # a direct URL is pip's business, never this target's
                dep_name = canonicalize_name(dependency.name)
                wanted.setdefault(dep_name, {}).setdefault(name, []).append(dependency)
                queue.append(dep_name)

        reachable = reachable_projects(roots, {name: c.requires for name, c in chosen.items()})
        self._report_left_to_pip(reachable, chosen)
        final = [selected for name, selected in chosen.items() if name in reachable]
        if self._prefetcher is not None:
            self._prefetcher.keep_only({s.entry.sha256 for s in final if s.entry.sha256})
        return final

    def _drop_download(self, current: Selected, replacement: Selected) -> None:
        """Stop prefetching a file that a re-selection replaced."""
        digest = current.entry.sha256
        if self._prefetcher is not None and digest not in (None, replacement.entry.sha256):
            self._prefetcher.cancel(digest)

    def _report_left_to_pip(
        self, reachable: set[NormalizedName], chosen: dict[NormalizedName, Selected]
    ) -> None:
        """Name every dependency of the chosen files that pip will take from its indexes."""
        asked = {
            canonicalize_name(r.name)
            for name in reachable
            for r in chosen[name].requires
            if not r.url
        }
        left = {name: why for name, why in self.left_to_pip.items() if name in asked}
        self.left_to_pip = left
        for why in sorted(set(left.values())):
            names = ", ".join(sorted(name for name, reason in left.items() if reason == why))
            logger.warning("left to pip's indexes (%s in %s): %s", why, self.target, names)

    # -- downloading ---------------------------------------------------------------------------

    def _cache_blob(self, entry: FileEntry, layer: Descriptor) -> Path:
        """The file's verified cache entry, downloaded when absent or damaged."""
        for _attempt in range(2):
            if not self._cache.has(layer.digest):
                callback = self._progress(entry.filename, layer.size) if self._progress else None
                self._cache.fetch(self.store(entry.project), layer, callback)
            if self._cache.verify(layer.digest, layer.size):
                return self._cache.path(layer.digest)
        raise DigestMismatchError(f"{entry.filename}: the cache keeps losing it; try again")

    def place(self, selected: Selected, destination: Path) -> Downloaded:
        """Write the selected file into ``destination`` (a folder), verified and atomically."""
        entry = selected.entry
        folder = destination.resolve()
        path = destination / entry.filename
        if path.resolve().parent != folder:
            raise UnsafeResponseError(f"{entry.filename!r} would land outside {destination}")
        folder.mkdir(parents=True, exist_ok=True)
        digest = entry.sha256
        size = entry.size
        prefetcher = self._prefetcher
        started = digest is not None and prefetcher is not None and prefetcher.started(digest)
        from_cache = digest is not None and not started and self._cache.has(digest)
        # A prefetched blob was verified as it arrived, as one fetched below would be.
        fetched = digest is not None and prefetcher is not None and prefetcher.wait(digest)
        for _attempt in range(2):
            if digest is None or not self._cache.has(digest):
                layer = self.layer(entry)
                digest, size = layer.digest, layer.size
                callback = self._progress(entry.filename, size) if self._progress else None
                self._cache.fetch(self.store(entry.project), layer, callback)
                fetched = True
            # A blob fetched just now was verified as it arrived: it is not hashed again.
            if self._cache.place(digest, size, path, just_verified=fetched):
                return Downloaded(selected, path, from_cache)
            from_cache = fetched = False
        raise DigestMismatchError(
            f"{entry.filename}: the copy in the cache is damaged again after a fresh download"
        )

    def download(self, selections: Sequence[Selected], destination: Path) -> list[Downloaded]:
        return [self.place(selected, destination) for selected in selections]


def download(
    stores: StoreOpener,
    requirements: Sequence[str | Requirement],
    destination: Path,
    *,
    cache: BlobCache,
    options: ResolveOptions | None = None,
    progress: ProgressFactory | None = None,
) -> list[Downloaded]:
    """Resolve ``requirements`` on the target and write the chosen files to ``destination``."""
    parsed = [r if isinstance(r, Requirement) else parse_requirement(r) for r in requirements]
    # Leaving the block (a failure included) cancels and waits for unfinished downloads.
    with Prefetcher(cache) as prefetcher:
        resolver = Resolver(stores, cache, options, progress, prefetcher)
        return resolver.download(resolver.resolve(parsed), destination)
