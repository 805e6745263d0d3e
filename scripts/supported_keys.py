#!/usr/bin/env python3
"""Regenerate README.md's "supported keys" table from the backends' translations
(composesecrets.backends.keytable) and the key usage of tests/corpus/*.yml.

    .venv/bin/python scripts/supported_keys.py          # rewrite README.md
    .venv/bin/python scripts/supported_keys.py --check  # exit 1 when README.md is stale
"""

from __future__ import annotations

import sys
from pathlib import Path

from composesecrets.backends import keytable

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
CORPUS = ROOT / "tests" / "corpus"


def generated() -> str:
    return keytable.markdown(keytable.corpus_usage(sorted(CORPUS.glob("*.yml"))))


def current(text: str) -> str:
    start, end = text.index(keytable.START), text.index(keytable.END) + len(keytable.END)
    return text[start:end]


def main(argv: list[str]) -> int:
    text = README.read_text()
    table = generated()
    if "--check" in argv:
        if current(text) != table:
            print("README.md's supported keys table is stale: run scripts/supported_keys.py")
            return 1
        return 0
    README.write_text(text.replace(current(text), table))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
