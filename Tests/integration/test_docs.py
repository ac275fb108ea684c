# SPDX-License-Identifier: Apache-2.0
"""The repository's own docs stay true: every file, folder and Swift type that
docs/architecture.md names exists (issue 15 item 5)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ARCH = REPO / "docs" / "architecture.md"


def _swift_sources() -> str:
    files = list((REPO / "Sources").rglob("*.swift")) + list((REPO / "Tests").rglob("*.swift"))
    return "\n".join(p.read_text() for p in files)


def _modules() -> set[str]:
    return set(re.findall(r'(?:target|systemLibrary|executableTarget|testTarget)\(\s*name: "([A-Za-z]+)"',
                          (REPO / "Package.swift").read_text()))


def test_every_path_in_architecture_md_exists() -> None:
    text = ARCH.read_text()
    names = set(re.findall(r"`([A-Za-z0-9_./+-]+\.(?:swift|md|py|sh))`", text))
    names |= set(re.findall(r"`((?:Sources|Tests|docs|scripts|bench)/[A-Za-z0-9_./+-]*)`", text))
    assert names, "no paths found: the pattern no longer matches the document"
    all_files = [p.relative_to(REPO).as_posix() for p in REPO.rglob("*") if ".build" not in p.parts and ".git" not in p.parts]
    missing = []
    for name in sorted(names):
        if name.split("/")[0] in ("Sources", "Tests", "docs", "scripts", "bench"):
            if not (REPO / name.rstrip("/")).exists():
                missing.append(name)
        elif not any(f.endswith("/" + name) or f == name for f in all_files):
            missing.append(name)
    assert not missing, f"docs/architecture.md names files that do not exist: {missing}"


def test_every_type_in_architecture_md_exists() -> None:
    text = ARCH.read_text()
    sources = _swift_sources()
    types = set(re.findall(r"`([A-Z][A-Za-z]+)(?:\.[a-z][a-zA-Z]*(?<!swift))?(?:\([^`]*\))?`", text))
    types = {t for t in types if f"`{t}.swift`" not in text} - _modules()
    assert types, "no type names found"
    missing = [t for t in sorted(types)
               if not re.search(rf"\b(class|struct|enum|protocol|typealias|actor|extension)\s+{t}\b", sources)]
    assert not missing, f"docs/architecture.md names types that do not exist: {missing}"
