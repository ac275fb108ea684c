# SPDX-License-Identifier: Apache-2.0
"""The repository's own docs stay true (issue 15 item 5): every file, folder and Swift type that
docs/architecture.md names exists; every file, test function, configuration field and environment
variable that docs/http.md names exists, and every field of HTTPServerConfiguration is in its
settings table; no test or script cites the checklist that lived outside the repository."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ARCH = REPO / "docs" / "architecture.md"
HTTP_DOC = REPO / "docs" / "http.md"


def _swift_sources() -> str:
    files = list((REPO / "Sources").rglob("*.swift")) + list((REPO / "Tests").rglob("*.swift"))
    return "\n".join(p.read_text() for p in files)


def _modules() -> set[str]:
    return set(re.findall(r'(?:target|systemLibrary|executableTarget|testTarget)\(\s*name: "([A-Za-z]+)"',
                          (REPO / "Package.swift").read_text()))


def _missing_paths(doc: Path) -> list[str]:
    text = doc.read_text()
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
    return missing


def test_every_path_in_architecture_md_exists() -> None:
    missing = _missing_paths(ARCH)
    assert not missing, f"docs/architecture.md names files that do not exist: {missing}"


def test_every_path_in_http_md_exists() -> None:
    missing = _missing_paths(HTTP_DOC)
    assert not missing, f"docs/http.md names files that do not exist: {missing}"


def test_every_swift_test_in_http_md_exists() -> None:
    """`Suite.function`: a `@Test` function in Tests/HTTPServerTests/Suite.swift."""
    named = set(re.findall(r"`([A-Z][A-Za-z]*Tests)\.([A-Za-z_][A-Za-z0-9_]*)`", HTTP_DOC.read_text()))
    assert len(named) > 50, "few Swift tests found: the pattern no longer matches the document"
    missing = []
    for suite, function in sorted(named):
        path = REPO / "Tests" / "HTTPServerTests" / f"{suite}.swift"
        source = path.read_text() if path.exists() else ""
        found = re.search(rf"\bfunc {function}\(", source)
        # The attribute sits between the previous function and this one (it may span lines).
        before = source[:found.start()] if found else ""
        if not found or "@Test" not in before[before.rfind("func ") + 1:]:
            missing.append(f"{suite}.{function}")
    assert not missing, f"docs/http.md names Swift tests that do not exist: {missing}"


def test_every_python_test_in_http_md_exists() -> None:
    named = set(re.findall(r"`(test_[a-z0-9_]+)`", HTTP_DOC.read_text()))
    assert len(named) > 50, "few Python tests found: the pattern no longer matches the document"
    sources = "\n".join(p.read_text() for p in (REPO / "Tests" / "integration").glob("test_*.py"))
    missing = [name for name in sorted(named) if not re.search(rf"^def {name}\(", sources, re.M)]
    assert not missing, f"docs/http.md names Python tests that do not exist: {missing}"


def _settings_table(text: str) -> str:
    start = text.index("## Settings at a glance")
    return text[start:text.index("\n## ", start + 1)]


def test_http_md_settings_match_http_server_configuration() -> None:
    """Every field in the settings table exists, and every field of the type is in the table."""
    source = (REPO / "Sources" / "HTTPServer" / "Server" / "HTTPServerConfiguration.swift").read_text()
    fields = set(re.findall(r"^    public var (\w+):", source, re.M))
    assert fields, "no fields found in HTTPServerConfiguration.swift"
    rows = [line.split("|")[1] for line in _settings_table(HTTP_DOC.read_text()).splitlines()
            if line.startswith("| `")]
    documented = {name for cell in rows for name in re.findall(r"`(\w+)`", cell)}
    unknown = sorted(documented - fields)
    assert not unknown, f"docs/http.md lists settings HTTPServerConfiguration does not have: {unknown}"
    undocumented = sorted(fields - documented - {"logger"})
    assert not undocumented, f"HTTPServerConfiguration fields missing from docs/http.md: {undocumented}"


def test_every_environment_variable_in_http_md_is_read() -> None:
    named = set(re.findall(r"\bSESSION_VAULT_[A-Z_]+\b", HTTP_DOC.read_text()))
    assert named, "no environment variables found"
    sources = "\n".join(p.read_text() for p in (REPO / "Sources").rglob("*.swift"))
    missing = sorted(name for name in named if f'"{name}"' not in sources)
    assert not missing, f"docs/http.md names environment variables the service does not read: {missing}"


def test_no_test_or_script_cites_the_outside_http_checklist() -> None:
    """The HTTP rules are in docs/http.md; the checklist they came from was a file outside the repository."""
    files = [p for folder in ("Tests", "scripts") for p in (REPO / folder).rglob("*")
             if p.is_file() and p.suffix in (".py", ".swift", ".sh", ".md") ]
    outside = "HTTP" + ".md"  # spelt in two parts so that this file does not cite it either
    citing = sorted(p.relative_to(REPO).as_posix() for p in files if outside in p.read_text(errors="replace"))
    assert not citing, f"files still cite the outside checklist (use docs/http.md and its section): {citing}"


def test_every_type_in_architecture_md_exists() -> None:
    text = ARCH.read_text()
    sources = _swift_sources()
    types = set(re.findall(r"`([A-Z][A-Za-z]+)(?:\.[a-z][a-zA-Z]*(?<!swift))?(?:\([^`]*\))?`", text))
    types = {t for t in types if f"`{t}.swift`" not in text} - _modules()
    assert types, "no type names found"
    missing = [t for t in sorted(types)
               if not re.search(rf"\b(class|struct|enum|protocol|typealias|actor|extension)\s+{t}\b", sources)]
    assert not missing, f"docs/architecture.md names types that do not exist: {missing}"
