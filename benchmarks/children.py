"""Contenders that are Python APIs rather than commands, run as a child process each.

python benchmarks/children.py oras-push HOST REFERENCE FILE
python benchmarks/children.py oras-pull HOST REFERENCE OUTDIR
"""

from __future__ import annotations

import sys
from pathlib import Path


def oras_push(host: str, reference: str, file: str) -> None:
    import oras.client

    client = oras.client.OrasClient(hostname=host, insecure=True)
    # oras-py names the layer after the path it is given: push from the file's folder.
    path = Path(file)
    import os

    os.chdir(path.parent)
    client.push(target=reference, files=[path.name], disable_path_validation=True)


def oras_pull(host: str, reference: str, outdir: str) -> None:
    import oras.client

    client = oras.client.OrasClient(hostname=host, insecure=True)
    files = client.pull(target=reference, outdir=outdir)
    if not files:
        raise SystemExit("oras-py pulled nothing")


def main(argv: list[str]) -> None:
    verb, *rest = argv
    if verb == "oras-push":
        oras_push(*rest)
    elif verb == "oras-pull":
        oras_pull(*rest)
    else:
        raise SystemExit(f"unknown child {verb!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
