"""Folders of triplets with the true middle frame: ``<root>/<case>/{i0, gt, i1}.<ext>``, or one level
of sets above them, ``<root>/<set>/<case>/…``."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from ..errors import HFDError
from .images import header_size

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def find_image(case: Path, stem: str) -> Path | None:
    for suffix in IMAGE_SUFFIXES:
        if (case / f"{stem}{suffix}").is_file():
            return case / f"{stem}{suffix}"
    return None


def find_cases(root: Path) -> dict[str, list[Path]]:
    """{set name: [case folders]} for every folder holding i0, gt and i1."""
    cases: dict[str, list[Path]] = defaultdict(list)
    for i0 in sorted(root.rglob("i0.*")):
        case = i0.parent
        if find_image(case, "gt") and find_image(case, "i1"):
            relative = case.relative_to(root).parts
            cases[relative[0] if len(relative) > 1 else root.name].append(case)
    return dict(cases)


def check_triplets(root: Path) -> None:
    """Every case folder holds i0, gt and i1 of one size; read from the headers, before the model loads."""
    for i0 in sorted(root.rglob("i0.*")):
        case, sizes = i0.parent, {}
        for stem in ("i0", "gt", "i1"):
            found = find_image(case, stem)
            if found is None:
                raise HFDError(f"{case}: has no {stem} image (a case holds i0, gt and i1)")
            try:
                sizes[stem] = header_size(found)
            except OSError as error:
                raise HFDError(f"{found}: cannot read it ({error.strerror or error})") from None
            if sizes[stem] is None:
                raise HFDError(f"{found}: not a PNG, JPEG or WebP image")
        if len(set(sizes.values())) > 1:
            described = ", ".join(f"{stem} {w}×{h}" for stem, (w, h) in sizes.items())
            raise HFDError(f"{case}: the three images differ in size ({described})")
