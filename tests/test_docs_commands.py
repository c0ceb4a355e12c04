"""Every ``robolearn ...`` command shown in README.md and docs/*.md parses with the CLI's own parser,
so the docs cannot drift from the commands and options that exist."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from robolearn.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_LANGUAGES = {"", "bash", "sh", "shell", "console"}
ENV_ASSIGNMENT = re.compile(r"^[A-Z_][A-Z0-9_]*=\S*$")


def shell_blocks(text: str) -> list[str]:
    """The contents of the fenced code blocks of a Markdown text whose language is a shell (or none)."""
    blocks, language, lines = [], None, []
    for line in text.splitlines():
        fence = line.strip()
        if fence.startswith("```"):
            if language is None:
                language, lines = fence[3:].strip(), []
            else:
                if language in SHELL_LANGUAGES:
                    blocks.append("\n".join(lines))
                language = None
        elif language is not None:
            lines.append(line)
    return blocks


def shell_commands(text: str) -> list[str]:
    """The simple commands of the shell blocks of a Markdown text (continuations joined, comments,
    ``&&``, ``;`` and pipes split)."""
    commands = []
    for block in shell_blocks(text):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            commands += [part.strip() for part in re.split(r"&&|;|\||&", line) if part.strip()]
    return commands


def robolearn_invocations(path: Path) -> list[list[str]]:
    """The argument lists of every ``robolearn`` (or ``.venv/bin/robolearn``) command in ``path``."""
    found = []
    for command in shell_commands(path.read_text()):
        try:
            words = shlex.split(command, comments=True)
        except ValueError:
            continue
        while words and ENV_ASSIGNMENT.match(words[0]):
            words = words[1:]
        if words and Path(words[0]).name == "robolearn":
            found.append(words[1:])
    return found


CASES = [(path.name, args) for path in DOCS for args in robolearn_invocations(path)]


def test_the_docs_show_commands():
    assert len(CASES) > 40


@pytest.mark.parametrize(("doc", "args"), CASES, ids=[f"{doc}:{' '.join(args[:2])}" for doc, args in CASES])
def test_documented_command_parses(doc, args):
    parser = build_parser()
    errors = io.StringIO()
    with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(io.StringIO()):
        try:
            parsed = parser.parse_args(args)
        except SystemExit as exit_:
            assert exit_.code == 0, f"{doc}: robolearn {' '.join(args)}\n{errors.getvalue()}"
            return
    assert getattr(parsed, "func", None) is not None, f"{doc}: robolearn {' '.join(args)} names no command"
