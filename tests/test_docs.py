"""The repository stands on its own: every file or section its code and docs point to exists in
it, and nothing points to reference material kept outside it."""
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# What a user gets: everything but the tests (which may read ../shared and skip without it).
PRODUCT_ROOTS = ("d2ljax", "configs", "benchmarks", "tools", "docs", "README.md", "train.py", "evaluate.py",
                 "pyproject.toml")
TEXT_SUFFIXES = {".py", ".md", ".sh", ".toml", ".json", ".txt"}
# A repository path as docstrings, comments and docs name it: docs/architecture.md#numerical-care.
REPO_PATH = re.compile(r"(?<![\w./$-])((?:docs|benchmarks|tools|configs|d2ljax)/[\w./-]*[\w/])(#[\w-]+)?")
MARKDOWN_LINK = re.compile(r"\]\(([^)\s]+)\)")
OUTSIDE = re.compile(r"\.\./shared|shared/spec|(?<![\w.])spec/")


def product_files() -> list[Path]:
    files = []
    for root in map(REPO.joinpath, PRODUCT_ROOTS):
        candidates = [root] if root.is_file() else root.rglob("*")
        files += [p for p in candidates if p.is_file() and p.suffix in TEXT_SUFFIXES and "__pycache__" not in p.parts]
    return sorted(files)


def slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(markdown: Path) -> set[str]:
    return {slug(m.group(1)) for m in re.finditer(r"^#+\s+(.+)$", markdown.read_text(), re.M)}


def dangling(target: Path, anchor: str | None) -> str | None:
    """Why a reference to target(#anchor) does not resolve, or None."""
    if not target.exists():
        return "no such file or folder"
    if anchor and target.suffix == ".md" and anchor.lstrip("#") not in anchors(target):
        return f"no heading with anchor {anchor}"
    return None


def test_slug_is_githubs():
    assert slug("JPEG degradation (the network's input)") == "jpeg-degradation-the-networks-input"
    assert slug("Same-process A/B: the cache trap") == "same-process-ab-the-cache-trap"


def test_the_checks_catch_a_dangling_reference(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Numerical care\n")
    assert dangling(page, "#numerical-care") is None
    assert dangling(page, "#no-such-section") == "no heading with anchor #no-such-section"
    assert dangling(tmp_path / "absent.md", None) == "no such file or folder"
    assert OUTSIDE.search("see ../shared/spec/protocol.md") and OUTSIDE.search("(spec/architecture.md)")
    assert not OUTSIDE.search("a shared machine; spec.shape; inspect/")


def test_every_repository_path_named_in_the_product_exists():
    problems = []
    for path in product_files():
        for match in REPO_PATH.finditer(path.read_text(errors="replace")):
            target, anchor = match.group(1), match.group(2)
            if "*" not in target and (why := dangling(REPO / target.rstrip("/."), anchor)):
                problems.append(f"{path.relative_to(REPO)}: {target}{anchor or ''}: {why}")
    assert problems == []


def test_every_markdown_link_resolves():
    problems = []
    for path in product_files():
        if path.suffix != ".md":
            continue
        for link in MARKDOWN_LINK.findall(path.read_text()):
            if re.match(r"[a-z]+:", link):  # http:, mailto:
                continue
            target, _, anchor = link.partition("#")
            resolved = path if not target else (path.parent / target)
            if why := dangling(resolved, "#" + anchor if anchor else None):
                problems.append(f"{path.relative_to(REPO)}: {link}: {why}")
    assert problems == []


@pytest.mark.parametrize("path", product_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_nothing_points_outside_the_repository(path):
    text = path.read_text(errors="replace")
    assert [line for line in text.splitlines() if OUTSIDE.search(line)] == []
