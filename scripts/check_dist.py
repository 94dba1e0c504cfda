"""Check the built sdist and wheel: every package file is in the wheel (the demo model's weights
and every other data file the code reads, the ``py.typed`` marker), the version is the one in
``nbviz/__init__.py``, and the sdist holds the same package files.

Usage: python scripts/check_dist.py DIST_DIR   (scripts/check_release.sh runs it)
"""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Data files the code opens at run time (nbviz/demo/pretrained.py reads both); checked by name
# so that a packaging rule that drops them fails here even if the listing below changed.
REQUIRED = [
    "nbviz/py.typed",
    "nbviz/demo/data/demo_convnet.weights.h5",
    "nbviz/demo/data/demo_convnet.json",
]


def package_files() -> list[str]:
    """Every file git tracks under nbviz/ (no caches, no local leftovers)."""
    out = subprocess.run(
        ["git", "ls-files", "nbviz"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    return sorted(line for line in out.splitlines() if line)


def version() -> str:
    text = (ROOT / "nbviz" / "__init__.py").read_text()
    match = re.search(r'^__version__ = "([^"]+)"', text, re.M)
    if match is None:
        sys.exit("nbviz/__init__.py has no __version__ line")
    return match.group(1)


def main(dist: Path) -> None:
    ver = version()
    wheels = list(dist.glob(f"nbviz-{ver}-py3-none-any.whl"))
    sdists = list(dist.glob(f"nbviz-{ver}.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        sys.exit(
            f"expected one wheel and one sdist of version {ver} in {dist}, found "
            f"{sorted(p.name for p in dist.iterdir())}"
        )
    expected = sorted(set(package_files()) | set(REQUIRED))
    with zipfile.ZipFile(wheels[0]) as zf:
        in_wheel = set(zf.namelist())
        meta = zf.read(f"nbviz-{ver}.dist-info/METADATA").decode()
    with tarfile.open(sdists[0]) as tf:
        prefix = f"nbviz-{ver}/"
        in_sdist = {m.name[len(prefix) :] for m in tf.getmembers() if m.name.startswith(prefix)}
    problems = [f"wheel lacks {f}" for f in expected if f not in in_wheel]
    problems += [f"sdist lacks {f}" for f in expected if f not in in_sdist]
    problems += [
        f"wheel has an unexpected file {f}"
        for f in sorted(in_wheel)
        if f.startswith("nbviz/") and f not in expected
    ]
    if f"\nVersion: {ver}\n" not in meta:
        problems.append(f"wheel METADATA does not say Version: {ver}")
    weights = ROOT / REQUIRED[1]
    with zipfile.ZipFile(wheels[0]) as zf:
        if zf.read(REQUIRED[1]) != weights.read_bytes():
            problems.append("the wheel's demo weights differ from the repository's")
    if problems:
        sys.exit("dist check failed:\n  " + "\n  ".join(problems))
    print(
        f"[release] {wheels[0].name}: {len(expected)} package files, demo weights "
        f"({weights.stat().st_size // 1024} KiB) and py.typed present; sdist matches"
    )


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "dist"))
