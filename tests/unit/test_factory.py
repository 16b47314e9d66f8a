"""StoreFactory: a context manager over one target, and the platforms a layout needs."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from setuptools_ghcr.core.targets import LayoutTarget, parse_target
from setuptools_ghcr.errors import ConfigError
from setuptools_ghcr.storage import layout_folder
from setuptools_ghcr.storage.factory import StoreFactory
from setuptools_ghcr.storage.layout import LayoutStore


def test_leaving_the_block_closes_the_registry_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed: list[bool] = []
    with StoreFactory(parse_target("127.0.0.1:1/team"), environ={}, home=tmp_path) as stores:
        client = stores.client()
        assert stores.client() is client  # one client for every project of the target
        monkeypatch.setattr(client, "close", lambda: closed.append(True))
        assert stores.open("demo-pkg").location == "127.0.0.1:1/team/demo_pkg"
        assert closed == []
    assert closed == [True]


def test_a_layout_target_makes_layout_stores(tmp_path: Path) -> None:
    with StoreFactory(LayoutTarget(tmp_path), environ={}) as stores:
        store = stores.open("Demo.Pkg")
    assert isinstance(store, LayoutStore)
    assert store.path == tmp_path / "demo_pkg"


@pytest.mark.parametrize(
    ("attribute", "value", "named"),
    [
        ("fcntl", None, "file locks (fcntl)"),
        ("NOFOLLOW", 0, "no-follow opens (O_NOFOLLOW, O_DIRECTORY)"),
        ("_DIRECTORY", 0, "no-follow opens (O_NOFOLLOW, O_DIRECTORY)"),
    ],
)
def test_without_posix_pieces_a_layout_is_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, attribute: str, value: object, named: str
) -> None:
    monkeypatch.setattr(layout_folder, attribute, value)
    expected = f"oci: folders need POSIX {named}, which this platform ({sys.platform}) lacks"
    with pytest.raises(ConfigError, match=re.escape(expected)):
        StoreFactory(LayoutTarget(tmp_path / "root"), environ={})
    with pytest.raises(ConfigError, match="use a registry target") as refused:
        LayoutStore(tmp_path / "root" / "demo", "demo")
    assert "\n" not in str(refused.value)
    assert not (tmp_path / "root").exists()


def test_only_a_layout_lock_keeps_other_writers_out(tmp_path: Path) -> None:
    """publish re-reads a registry's index after merging; a locked layout needs no second look."""
    registry = StoreFactory(parse_target("127.0.0.1:1/team"), environ={}, home=tmp_path)
    with registry as stores, stores.open("demo-pkg").lock() as exclusive:
        assert exclusive is False
    layout = StoreFactory(LayoutTarget(tmp_path / "root"), environ={})
    with layout as stores, stores.open("demo-pkg").lock() as exclusive:
        assert exclusive is True
        assert (tmp_path / "root" / "demo_pkg").is_dir()
