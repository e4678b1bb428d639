"""Every `python -m probe_utils ...` command the README, the book's pages and the chapters show parses: its
subcommand and options exist (nothing is run)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from probe_utils import cli

REPO = Path(__file__).resolve().parents[1]
SOURCES = [REPO / "README.md", *sorted((REPO / "book").glob("*.md")), *sorted((REPO / "notebooks").glob("*.py"))]
def documented_commands(text: str, notebook: bool = False) -> list[str]:
    """The argument strings of the commands in ``text``: in code blocks (one per line, comments left out) and in
    inline code, which may wrap over lines (in a chapter, ``notebook``: its ``# `` markdown lines)."""
    if notebook:
        text = re.sub(r"(?m)^# ?", "", text)
    out = []
    fence = re.compile(r"^```[^\n]*\n(.*?)^```", flags=re.S | re.M)
    for block in fence.findall(text):
        for line in block.splitlines():
            code = line.split(" #", 1)[0]
            if not code.lstrip().startswith("#"):
                out.extend(m.group(1).strip() for m in re.finditer(r"python -m probe_utils(?=\s|$)(.*)", code))
    for span in re.findall(r"`([^`]+)`", fence.sub("", text)):
        flat = " ".join(span.split())
        out.extend(m.group(1).strip() for m in re.finditer(r"python -m probe_utils(?=\s|$)(.*)", flat))
    return out


CASES = [(src.relative_to(REPO).as_posix(), cmd) for src in SOURCES
         for cmd in documented_commands(src.read_text(), notebook=src.suffix == ".py") if cmd]


def test_the_commands_are_found() -> None:
    assert len(CASES) >= 10
    assert ("README.md", "run numerosity --models wgan_gp,vae --values 1,3,5,8 --seeds 3 --preset colab") in CASES


@pytest.mark.parametrize("source,command", CASES, ids=[f"{s}: {c}"[:80] for s, c in CASES])
def test_a_documented_command_parses(source: str, command: str) -> None:
    try:
        cli.parser().parse_args(shlex.split(command))
    except SystemExit as e:
        raise AssertionError(f"{source}: `python -m probe_utils {command}` does not parse") from e


def test_an_unknown_option_is_caught() -> None:
    with pytest.raises(SystemExit):
        cli.parser().parse_args(shlex.split("sweep 01 --models my_model"))
