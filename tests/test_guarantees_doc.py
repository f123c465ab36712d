"""
docs/guarantees.rst names the test behind every promise: each test it names
must exist, so that the page cannot drift from the suite.
"""

from __future__ import annotations

import ast
import os
import re

from twisted.trial import unittest

from tests.support import ROOT


def _defined() -> dict[str, set[str]]:
    # "Class.test_method" -> the test files defining it.
    found: dict[str, set[str]] = {}
    folder = os.path.join(ROOT, "tests")
    for name in os.listdir(folder):
        if not name.endswith(".py"):
            continue
        with open(os.path.join(folder, name), encoding="utf-8") as f:
            tree = ast.parse(f.read())
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, ast.FunctionDef) and item.name.startswith("test"):
                        found.setdefault(f"{node.name}.{item.name}", set()).add(name)
    return found


class GuaranteesDocTests(unittest.TestCase):
    def test_every_test_named_exists(self):
        with open(os.path.join(ROOT, "docs", "guarantees.rst"), encoding="utf-8") as f:
            text = f.read()
        named = set(re.findall(r"\b([A-Z]\w*Tests?\.test\w*)", text))
        files = set(re.findall(r"tests/(test_\w+\.py)", text))
        self.assertGreater(len(named), 50)
        defined = _defined()
        self.assertEqual(sorted(n for n in named if n not in defined), [])
        missing_files = [f for f in files if not os.path.exists(os.path.join(ROOT, "tests", f))]
        self.assertEqual(missing_files, [])
