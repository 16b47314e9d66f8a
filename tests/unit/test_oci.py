"""Digests, streaming verification, and manifest/index parsing of ``setuptools_ghcr.core.oci``."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.documents import EMPTY_DESCRIPTOR, OCI_EMPTY, descriptor_of

from setuptools_ghcr.core.oci import (
    MAX_MANIFEST_SIZE,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    Digest,
    DigestWriter,
    Index,
    Manifest,
    Platform,
    canonical_json,
    hash_file,
    is_valid_repository,
    is_valid_tag,
    parse_json_document,
    verified_chunks,
)
from setuptools_ghcr.errors import (
    DigestMismatchError,
    InvalidReferenceError,
    MalformedDocumentError,
    TooLargeError,
)

HEX64 = "a" * 64
HEX128 = "b" * 128
HELLO = b"hello"
HELLO_DIGEST = Digest.of_bytes(HELLO)


# --- digests -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "algorithm", "hex_"),
    [
        (f"sha256:{HEX64}", "sha256", HEX64),
        (f"sha512:{HEX128}", "sha512", HEX128),
        (
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
            "sha256",
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
        ),
    ],
)
def test_digest_parse_accepts(text: str, algorithm: str, hex_: str) -> None:
    digest = Digest.parse(text)
    assert (digest.algorithm, digest.hex) == (algorithm, hex_)
    assert str(digest) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        HEX64,  # no algorithm
        f"md5:{'a' * 32}",
        f"sha1:{'a' * 40}",
        f"sha384:{'a' * 96}",
        f"SHA256:{HEX64}",
        f"sha256:{'A' * 64}",  # hex must be lowercase
        f"sha256:{'a' * 63}",
        f"sha256:{'a' * 65}",
        f"sha256:{'a' * 128}",  # a sha512 length under sha256
        f"sha512:{'a' * 64}",
        f"sha256:{'g' * 64}",
        f"sha256:{HEX64}\n",
        f" sha256:{HEX64}",
        f"sha256::{HEX64}",
        f"sha256:{HEX64[:32]} {HEX64[:31]}",
    ],
)
def test_digest_parse_refuses(text: str) -> None:
    with pytest.raises(InvalidReferenceError):
        Digest.parse(text)


@pytest.mark.parametrize(
    ("algorithm", "hex_"),
    [("md5", "a" * 32), ("sha256", "A" * 64), ("sha256", "a" * 10), ("sha512", HEX64)],
)
def test_digest_constructor_validates(algorithm: str, hex_: str) -> None:
    with pytest.raises(InvalidReferenceError):
        Digest(algorithm, hex_)


def test_digest_of_bytes_and_short() -> None:
    digest = Digest.of_bytes(HELLO)
    assert digest.hex == hashlib.sha256(HELLO).hexdigest()
    assert digest.short == digest.hex[:12]
    assert Digest.of_bytes(HELLO, "sha512").hex == hashlib.sha512(HELLO).hexdigest()


def test_empty_descriptor_is_the_spec_one() -> None:
    assert EMPTY_DESCRIPTOR.media_type == OCI_EMPTY
    assert EMPTY_DESCRIPTOR.size == 2
    assert str(EMPTY_DESCRIPTOR.digest) == (
        "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    )


@pytest.mark.parametrize(
    ("tag", "valid"),
    [
        ("latest", True),
        ("1.0", True),
        ("1.0-local", True),
        ("_x", True),
        ("a" * 128, True),
        ("a" * 129, False),
        (".hidden", False),
        ("-x", False),
        ("1.0+local", False),
        ("1!0", False),
        ("", False),
        ("a b", False),
    ],
)
def test_is_valid_tag(tag: str, valid: bool) -> None:
    assert is_valid_tag(tag) is valid


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("acme/tools/my_pkg", True),
        ("a__b", True),
        ("a---b", True),
        ("Acme", False),
        ("acme//x", False),
        ("acme/", False),
        ("_acme", False),
        ("a" * 256, False),
    ],
)
def test_is_valid_repository(name: str, valid: bool) -> None:
    assert is_valid_repository(name) is valid


# --- hashing while streaming -----------------------------------------------------------


def test_digest_writer_counts_and_verifies() -> None:
    writer = DigestWriter()
    for piece in (b"hel", bytearray(b"l"), memoryview(b"o")):
        writer.update(piece)
    assert writer.size == 5
    assert writer.digest() == HELLO_DIGEST
    writer.verify(HELLO_DIGEST, 5, "blob")
    writer.verify(HELLO_DIGEST, None, "blob")


@pytest.mark.parametrize(
    ("data", "size", "fragment"),
    [
        (b"hello!", 5, "got 6 bytes, expected 5"),
        (b"hell", 5, "got 4 bytes, expected 5"),
        (b"jello", 5, "hashes to"),
        (b"jello", None, "hashes to"),
    ],
)
def test_digest_writer_verify_refuses(data: bytes, size: int | None, fragment: str) -> None:
    writer = DigestWriter()
    writer.update(data)
    with pytest.raises(DigestMismatchError) as caught:
        writer.verify(HELLO_DIGEST, size, "demo.whl")
    message = str(caught.value)
    assert message.startswith("demo.whl: ")
    assert fragment in message
    assert "\n" not in message


def test_hash_file_streams_several_mib() -> None:
    data = bytes(range(256)) * (5 * 4096 + 7)  # about 5 MiB, not a chunk multiple
    assert hash_file(io.BytesIO(data)) == Digest.of_bytes(data)
    assert hash_file(io.BytesIO(data), chunk_size=4096) == Digest.of_bytes(data)
    assert hash_file(io.BytesIO(data), "sha512") == Digest.of_bytes(data, "sha512")
    assert hash_file(io.BytesIO(b"")) == Digest.of_bytes(b"")


def _chunks(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@given(data=st.binary(max_size=2000), size=st.integers(min_value=1, max_value=300))
def test_verified_chunks_passes_good_content_through(data: bytes, size: int) -> None:
    out = b"".join(verified_chunks(_chunks(data, size), Digest.of_bytes(data), len(data), "x"))
    assert out == data


def test_verified_chunks_skips_empty_chunks() -> None:
    out = list(verified_chunks(iter([b"", b"hel", b"", b"lo", b""]), HELLO_DIGEST, 5, "x"))
    assert out == [b"hel", b"lo"]


@pytest.mark.parametrize(
    ("chunks", "size"),
    [
        ([b"he", b"ll", b"x"], 5),  # wrong bytes, right length: caught at the end
        ([b"he", b"ll", b"x"], None),
        ([b"he", b"ll"], 5),  # too short
        ([b"he", b"ll", b"o!"], 5),  # too long, caught on the chunk that overflows
        ([b"he", b"ll", b"o", b"!"], 5),
    ],
)
def test_verified_chunks_never_yields_the_last_chunk_of_bad_content(
    chunks: list[bytes], size: int | None
) -> None:
    received: list[bytes] = []

    def consume() -> None:
        for chunk in verified_chunks(iter(chunks), HELLO_DIGEST, size, "x"):
            received.append(chunk)

    with pytest.raises(DigestMismatchError):
        consume()
    assert b"".join(received) != b"".join(chunks)
    assert len(received) < len(chunks)


def test_verified_chunks_stops_reading_once_too_long() -> None:
    pulled: list[int] = []

    def source() -> Iterator[bytes]:
        for number in range(1000):
            pulled.append(number)
            yield b"x" * 10

    with pytest.raises(DigestMismatchError, match="more than the expected 25 bytes"):
        list(verified_chunks(source(), HELLO_DIGEST, 25, "x"))
    assert len(pulled) == 3


# --- canonical JSON ------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@given(value=st.dictionaries(st.text(max_size=8), json_values, max_size=6))
def test_canonical_json_is_deterministic(value: dict[str, Any]) -> None:
    reordered = dict(reversed(list(value.items())))
    raw = canonical_json(value)
    assert raw == canonical_json(reordered)
    assert json.loads(raw) == value
    assert b"\n" not in raw


def test_canonical_json_shape() -> None:
    assert canonical_json({"b": 1, "a": {"d": [1, 2], "c": "\u00e9"}}) == (
        '{"a":{"c":"\u00e9","d":[1,2]},"b":1}'.encode()
    )


# --- descriptors, manifests, indexes ------------------------------------------------------


def _layer(data: bytes = HELLO, title: str = "demo-1.0-py3-none-any.whl") -> Descriptor:
    return Descriptor(
        "application/pyoci.package.v1",
        Digest.of_bytes(data),
        len(data),
        annotations={"org.opencontainers.image.title": title},
    )


descriptors = st.builds(
    Descriptor,
    media_type=st.sampled_from([OCI_MANIFEST, OCI_EMPTY, "application/pyoci.package.v1"]),
    digest=st.binary(max_size=16).map(Digest.of_bytes),
    size=st.integers(min_value=0, max_value=2**53),
    annotations=st.dictionaries(st.text(min_size=1, max_size=10), st.text(max_size=10), max_size=3),
    artifact_type=st.none() | st.just("application/pyoci.package.v1"),
    platform=st.none() | st.builds(Platform, st.text(min_size=1, max_size=20), st.just("any")),
)


@given(descriptor=descriptors)
def test_descriptor_json_round_trip(descriptor: Descriptor) -> None:
    assert Descriptor.from_json(json.loads(canonical_json(descriptor.to_json()))) == descriptor


@given(layers=st.lists(descriptors, min_size=1, max_size=3), config=descriptors)
def test_manifest_round_trip_keeps_raw_bytes_and_digest(
    layers: list[Descriptor], config: Descriptor
) -> None:
    built = Manifest.build(
        config, tuple(layers), {"k": "v"}, artifact_type="application/pyoci.package.v1"
    )
    parsed = Manifest.from_bytes(built.raw)
    assert parsed == built
    assert parsed.raw == built.raw
    assert parsed.digest == Digest.of_bytes(built.raw)


def test_manifest_from_bytes_keeps_foreign_bytes_exactly() -> None:
    # Pretty-printed by someone else: the digest is that of these bytes, not of a re-encoding.
    value = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": EMPTY_DESCRIPTOR.to_json(),
        "layers": [_layer().to_json()],
    }
    raw = json.dumps(value, indent=3).encode()
    manifest = Manifest.from_bytes(raw)
    assert manifest.raw == raw
    assert manifest.digest == Digest.of_bytes(raw)
    assert manifest.digest != Digest.of_bytes(canonical_json(value))
    assert manifest.config == EMPTY_DESCRIPTOR
    assert manifest.layers == (_layer(),)
    descriptor = descriptor_of(manifest, annotations={"a": "b"})
    assert (descriptor.digest, descriptor.size) == (manifest.digest, len(raw))


def test_index_round_trip_and_descriptor() -> None:
    manifest = Manifest.build(EMPTY_DESCRIPTOR, (_layer(),), artifact_type="t")
    entry = descriptor_of(manifest, platform=Platform("py3-none-any.whl", "any"))
    index = Index.build((entry,), {"org.opencontainers.image.version": "1.0"}, "t")
    parsed = Index.from_bytes(index.raw)
    assert parsed == index
    assert parsed.raw == index.raw
    assert parsed.manifests[0].artifact_type == "t"
    assert parsed.manifests[0].platform == Platform("py3-none-any.whl", "any")
    assert descriptor_of(index).media_type == OCI_INDEX
    assert descriptor_of(index).digest == Digest.of_bytes(index.raw)


def test_build_is_deterministic_whatever_the_annotation_order() -> None:
    one = Manifest.build(EMPTY_DESCRIPTOR, (_layer(),), {"a": "1", "b": "2"})
    two = Manifest.build(EMPTY_DESCRIPTOR, (_layer(),), {"b": "2", "a": "1"})
    assert one.raw == two.raw
    assert one.digest == two.digest


def _manifest_json(**changes: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": EMPTY_DESCRIPTOR.to_json(),
        "layers": [_layer().to_json()],
    }
    value.update(changes)
    return value


def _with_layer(**changes: Any) -> dict[str, Any]:
    layer = _layer().to_json()
    layer.update(changes)
    return _manifest_json(layers=[layer])


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(_manifest_json(schemaVersion=1), id="schema-1"),
        pytest.param(_manifest_json(mediaType=OCI_INDEX), id="an-index"),
        pytest.param(_manifest_json(mediaType=["x"]), id="media-type-list"),
        pytest.param(_manifest_json(layers=None), id="no-layers"),
        pytest.param(_manifest_json(layers={"a": 1}), id="layers-object"),
        pytest.param(_manifest_json(config=None), id="no-config"),
        pytest.param(_manifest_json(config="sha256:x"), id="config-string"),
        pytest.param(_manifest_json(annotations={"a": 1}), id="annotation-int"),
        pytest.param(_manifest_json(annotations=["a"]), id="annotations-list"),
        pytest.param(_manifest_json(artifactType=7), id="artifact-type-int"),
        pytest.param(_manifest_json(layers=[1]), id="layer-int"),
        pytest.param(_with_layer(size="5"), id="size-string"),
        pytest.param(_with_layer(size=True), id="size-bool"),
        pytest.param(_with_layer(size=-1), id="size-negative"),
        pytest.param(_with_layer(size=5.0), id="size-float"),
        pytest.param(_with_layer(digest=5), id="digest-int"),
        pytest.param(_with_layer(digest="sha256:abc"), id="digest-short"),
        pytest.param(_with_layer(digest=f"md5:{'a' * 32}"), id="digest-md5"),
        pytest.param(_with_layer(mediaType=None), id="media-type-missing"),
        pytest.param(_with_layer(platform="linux"), id="platform-string"),
        pytest.param(_with_layer(platform={"os": "any"}), id="platform-no-arch"),
        pytest.param(_with_layer(platform={"architecture": 1, "os": "any"}), id="platform-int"),
        pytest.param(_with_layer(annotations={"k": None}), id="annotation-null"),
        pytest.param(_with_layer(artifactType=["x"]), id="layer-artifact-type-list"),
    ],
)
def test_manifest_refuses_wrong_types(value: dict[str, Any]) -> None:
    with pytest.raises(MalformedDocumentError):
        Manifest.from_bytes(json.dumps(value).encode())


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"[]",
        b'"a string"',
        b"\xff\xfe\x00garbage",
        b'{"schemaVersion": 2, "mediaType": ',
    ],
)
def test_documents_that_are_not_json_objects_are_refused(raw: bytes) -> None:
    with pytest.raises(MalformedDocumentError):
        Manifest.from_bytes(raw)
    with pytest.raises(MalformedDocumentError):
        Index.from_bytes(raw)


@pytest.mark.parametrize(
    "value",
    [
        {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "manifests": []},
        {"schemaVersion": 2, "mediaType": OCI_INDEX},
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": {}},
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [{"digest": 1}]},
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [], "annotations": {"a": []}},
    ],
)
def test_index_refuses_wrong_shapes(value: dict[str, Any]) -> None:
    with pytest.raises(MalformedDocumentError):
        Index.from_bytes(json.dumps(value).encode())


def test_index_without_media_type_defaults_to_oci() -> None:
    raw = json.dumps({"schemaVersion": 2, "manifests": []}).encode()
    assert Index.from_bytes(raw).media_type == OCI_INDEX


def test_document_over_4_mib_is_too_large() -> None:
    padding = "x" * MAX_MANIFEST_SIZE
    raw = json.dumps({"schemaVersion": 2, "manifests": [], "annotations": {"p": padding}})
    with pytest.raises(TooLargeError, match="over the"):
        Index.from_bytes(raw.encode())
    with pytest.raises(TooLargeError):
        Manifest.from_bytes(raw.encode())


def test_document_of_exactly_4_mib_is_parsed() -> None:
    head = '{"schemaVersion":2,"manifests":[],"annotations":{"p":"'
    tail = '"}}'
    raw = (head + "x" * (MAX_MANIFEST_SIZE - len(head) - len(tail)) + tail).encode()
    assert len(raw) == MAX_MANIFEST_SIZE
    assert len(Index.from_bytes(raw).annotations["p"]) > 4_000_000


@pytest.mark.parametrize("depth", [33, 200, 10_000, 100_000])
def test_deep_nesting_is_refused_cleanly(depth: int) -> None:
    nested = "[" * depth + "]" * depth
    raw = f'{{"schemaVersion":2,"manifests":[],"annotations":{{"x":{nested}}}}}'.encode()
    with pytest.raises(MalformedDocumentError):
        Index.from_bytes(raw)
    with pytest.raises(MalformedDocumentError):
        parse_json_document(raw, "index")


def test_deep_objects_are_refused_cleanly() -> None:
    raw = ('{"a":' * 10_000 + "1" + "}" * 10_000).encode()
    with pytest.raises(MalformedDocumentError):
        Manifest.from_bytes(raw)


def test_errors_name_what_was_parsed() -> None:
    with pytest.raises(MalformedDocumentError, match=r"^index ghcr\.io/acme/demo:1\.0 is not"):
        Index.from_bytes(b"[]", "index ghcr.io/acme/demo:1.0")
