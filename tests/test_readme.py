"""The README's two quickstart commands are exactly what CI runs."""

from __future__ import annotations

import re

from tests.conftest import REPO


def _first_bash_block_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    head = text[: text.index("## ")]  # "near the top": before the first section
    block = re.search(r"```bash\n(.*?)```", head, re.S)
    assert block, "README must start with a bash block holding the two commands"
    return [ln for ln in block.group(1).splitlines() if ln.strip() and not ln.startswith("#")]


def test_readme_has_setup_and_test_commands_run_verbatim_by_ci() -> None:
    commands = _first_bash_block_commands()
    assert len(commands) == 2
    setup, tests = commands
    assert "torch==2.13.0" in setup and "examples/" in setup and "superres upscale" in setup
    assert "pytest" in tests
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert setup in ci and tests in ci


def test_docs_models_table_lists_every_registered_model() -> None:
    from superres.cli.models import markdown, rows

    doc = (REPO / "docs" / "models.md").read_text()
    assert markdown(rows()) in doc, "docs/models.md is stale: paste `superres models --markdown` into it"
