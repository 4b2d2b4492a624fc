"""The documentation stays inside the repository and its links work.

Every relative link in every tracked Markdown file points at a tracked file or folder (and an
`#anchor` into a Markdown file at one of its headings); no tracked text file cites the old spec
location outside the repository; the README stays a front page.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Callable

import pytest

REPO = Path(__file__).resolve().parents[2]
README_MAX_LINES = 150
# Spelled in two parts so that this file does not match itself.
OUTSIDE_SPEC = ".." + "/shared"

INLINE_LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.M)
FENCE = re.compile(r"^\s{0,3}(```|~~~)")
CODE_SPAN = re.compile(r"(`+).*?\1")
HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


@lru_cache(maxsize=1)
def tracked() -> tuple[str, ...]:
    if shutil.which("git") is None:
        pytest.skip("git is not installed: the tracked files cannot be listed")
    proc = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"not a git checkout: {proc.stderr.decode(errors='replace').strip()[:200]}")
    return tuple(p for p in proc.stdout.decode().split("\0") if p)


def tracked_folders() -> set[str]:
    return {str(parent) for p in tracked() for parent in PurePosixPath(p).parents} - {"."}


def prose_lines(text: str) -> list[str]:
    """The Markdown outside fenced code blocks, with inline code spans removed."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(CODE_SPAN.sub("", line))
    return lines


def links(text: str) -> list[str]:
    prose = "\n".join(prose_lines(text))
    return INLINE_LINK.findall(prose) + REFERENCE_LINK.findall(prose)


def slug(heading: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading: its text
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    found, seen = set(), {}
    for line in prose_lines(text):
        m = HEADING.match(line)
        if m:
            base = slug(m.group(1))
            n = seen.get(base, 0)
            found.add(base if n == 0 else f"{base}-{n}")
            seen[base] = n + 1
    return found


def read(path: str) -> str:
    return (REPO / path).read_text(encoding="utf-8")


def markdown_files() -> list[str]:
    return [p for p in tracked() if p.endswith(".md")]


def broken_links(source: str, read: Callable[[str], str] = read) -> list[str]:
    """What is wrong with the links of tracked file `source` (repository-relative, '/'-separated)."""
    files, folders = set(tracked()), tracked_folders()
    problems = []
    for target in links(read(source)):
        if SCHEME.match(target):
            continue  # a web address, not a file of this repository
        path, _, anchor = target.partition("#")
        if path:
            resolved = PurePosixPath(source).parent / path
            parts: list[str] = []
            for part in resolved.parts:  # normalise without touching the file system
                if part == "..":
                    if not parts:
                        problems.append(f"{target} leaves the repository")
                        break
                    parts.pop()
                elif part != ".":
                    parts.append(part)
            else:
                rel = "/".join(parts)
                if rel not in files and rel.rstrip("/") not in folders:
                    problems.append(f"{target} is not a tracked file or folder")
                elif anchor and rel.endswith(".md") and anchor not in anchors(read(rel)):
                    problems.append(f"{target}: no heading #{anchor} in {rel}")
        elif anchor and anchor not in anchors(read(source)):
            problems.append(f"{target}: no heading #{anchor} here")
    return problems


def test_every_relative_link_in_the_docs_resolves():
    mds = markdown_files()
    assert {"README.md", "ARCHITECTURE.md", "docs/SPEC.md"} <= set(mds)
    problems = {md: p for md in mds if (p := broken_links(md))}
    assert not problems, problems


def test_the_link_check_catches_what_it_should():
    """A missing file, a missing anchor and a path out of the repository are all reported; code
    spans, fenced code and web addresses are not links to check."""
    doc = ("[ok](docs/SPEC.md) [gone](docs/none.md) [far](../elsewhere.md) `[x](nowhere.md)`\n"
           "[anchor](docs/SPEC.md#no-such-heading) [web](https://example.org/a.md)\n"
           "```\n[code](fenced.md)\n```\n## A heading: here\n[self](#a-heading-here)\n")
    problems = broken_links("X.md", lambda path: doc if path == "X.md" else read(path))
    assert len(problems) == 3, problems
    assert any("docs/none.md" in p for p in problems)
    assert any("leaves the repository" in p for p in problems)
    assert any("no-such-heading" in p for p in problems)


def test_no_tracked_file_points_outside_the_repository():
    """The spec lives in docs/SPEC.md; nothing cites the location it was copied from."""
    offenders = []
    for path in tracked():
        try:
            data = (REPO / path).read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            continue  # deleted in the working tree, or a submodule
        if b"\0" in data:
            continue  # binary
        if OUTSIDE_SPEC.encode() in data:
            offenders.append(path)
    assert not offenders, offenders


def test_readme_is_a_front_page():
    lines = read("README.md").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move reference text to docs/"


def test_every_run_option_is_in_docs_options():
    """docs/options.md names every option of common/options.py (a boolean that is on by default
    under both of its spellings), so a new option cannot go undocumented."""
    from common import options

    text = read("docs/options.md")
    missing = []
    for name in options.options():
        flag = options.flag(name)
        spellings = [flag, "--no-" + flag[2:]] if getattr(options.DEFAULTS, name) is True else [flag]
        missing += [s for s in spellings if not re.search(re.escape(s) + r"(?![\w-])", text)]
    assert not missing, f"docs/options.md does not name: {missing}"
