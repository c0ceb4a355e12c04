"""Every command's ``--help`` explains every option, and renders cleanly."""

from __future__ import annotations

import argparse

import pytest

from robolearn.cli import build_parser


def all_parsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    found = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += all_parsers(sub, (*path, name))
    return found


PARSERS = all_parsers(build_parser())


@pytest.mark.parametrize(("path", "parser"), PARSERS, ids=[" ".join(p) or "robolearn" for p, _ in PARSERS])
def test_help_explains_every_option(path, parser):
    undocumented = [action.option_strings[0] if action.option_strings else action.dest for action in parser._actions
                    if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)) and not action.help]
    assert undocumented == [], f"robolearn {' '.join(path)}: options without help"
    text = parser.format_help()
    assert "%%" not in text and "%(" not in text
