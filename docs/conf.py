# Sphinx configuration for Pace for Twisted (distribution txpace).
# Build: make docs  (sphinx-build -W -b html docs docs/_build/html)

import os
import sys

# The project root, so that autodoc imports this checkout's pace package.
sys.path.insert(0, os.path.abspath(".."))

import pace  # noqa: E402

project = "Pace for Twisted"
author = "the Pace developers"
copyright = "the Pace developers"
release = pace.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
]

# Docstrings in pace/ write `name` for a reference to a Python object.
default_role = "py:obj"
nitpicky = False

autodoc_member_order = "bysource"
autodoc_typehints = "signature"

exclude_patterns = ["_build"]
templates_path = []
html_static_path = []

html_theme = "alabaster"
html_title = "Pace for Twisted"
html_theme_options = {
    "description": "Resque jobs on a Twisted reactor",
    "fixed_sidebar": True,
}
