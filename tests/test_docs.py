"""The user documentation holds together: README.md stays short, every relative link in README.md and
docs/**/*.md resolves to a file of the repository (and its #anchor to a heading of that file), every
GRAM_* server setting is documented in docs/configuration.md, and no internal words (work sessions,
helpers, machine paths, internal scripts, issue numbers) appear in README.md or anywhere under docs/."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
README_MAX_CHARS = 12_000

# what only a lab log says; each pattern is matched case-insensitively against README.md and every
# text file under docs/ (markdown, JSON, CSV)
INTERNAL = {
    "a work session": r"\bsessions?\b",
    "a helper": r"\bhelpers?\b",
    "an agent": r"\bagents?\b",
    "a tool call": r"\btool[ _]calls?\b",
    "a lab note": r"\blab[ _-]?notes?\b",
    "an issue number": r"\bissues? #?\d+",
    "a machine path": r"(?<![\w.])/(?:work|tmp|root|home/\w+)/",
    "an internal script": r"\bidle\.sh\b|/brief/",
    "a path outside the repository": r"\.\./shared/",
}
TEXT_SUFFIXES = {".md", ".json", ".csv", ".txt"}

FENCE = re.compile(r"^\s*(```|~~~)")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks, with inline code spans blanked."""
    out, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            out.append(re.sub(r"`[^`]*`", "``", line))
    return out


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: link text kept, lower case, punctuation dropped, spaces -> '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        m = None if fenced else HEADING.match(line)
        if m:
            base = slug(m.group(2))
            n = seen.get(base, 0)
            seen[base] = n + 1
            out.add(base if n == 0 else f"{base}-{n}")
    return out


def links(path: Path) -> list[str]:
    return [m.group(1) for line in prose_lines(path.read_text(encoding="utf-8")) for m in LINK.finditer(line)]


def test_readme_is_short() -> None:
    size = len(README.read_text(encoding="utf-8"))
    assert size <= README_MAX_CHARS, f"README.md has {size:,} characters (at most {README_MAX_CHARS:,})"


def test_the_docs_exist() -> None:
    for name in (
        "method",
        "http-api",
        "configuration",
        "models",
        "performance",
        "deployment",
        "training",
        "research-log",
    ):
        assert (DOCS / f"{name}.md").is_file(), f"docs/{name}.md is missing"


@pytest.mark.parametrize("doc", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(doc: Path) -> None:
    broken = []
    for target in links(doc):
        if SCHEME.match(target) or target.startswith("//"):
            continue  # http(s), mailto: not checked here
        where, _, anchor = target.partition("#")
        path = (doc.parent / where).resolve() if where else doc
        if not path.is_relative_to(ROOT) or not path.exists():
            broken.append(f"{target} (no such file in the repository)")
        elif anchor and path.suffix == ".md" and anchor.lower() not in anchors(path):
            broken.append(f"{target} (no heading #{anchor} in {path.relative_to(ROOT)})")
    assert not broken, f"{doc.relative_to(ROOT)}: " + "; ".join(broken)


def test_every_setting_is_documented() -> None:
    from server.settings import Settings

    prefix = str(Settings.model_config.get("env_prefix", "")).upper()
    assert prefix == "GRAM_"
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    missing = [
        f"{prefix}{name.upper()}"
        for name in Settings.model_fields
        if not re.search(rf"\b{prefix}{name.upper()}\b", text)
    ]
    assert not missing, f"docs/configuration.md does not document {missing}"


def text_files() -> list[Path]:
    return [README, *sorted(p for p in DOCS.rglob("*") if p.is_file() and p.suffix in TEXT_SUFFIXES)]


@pytest.mark.parametrize("path", text_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_internal_words(path: Path) -> None:
    found = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        for what, pattern in INTERNAL.items():
            for m in re.finditer(pattern, line, flags=re.IGNORECASE):
                found.append(f"line {number}: {what} ({m.group(0)!r})")
    assert not found, f"{path.relative_to(ROOT)}: " + "; ".join(found)
