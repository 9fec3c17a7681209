"""Sphinx configuration for the casvfs documentation."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

project = "casvfs"
author = "the casvfs developers"
copyright = "2026, the casvfs developers"
extensions = ["sphinx.ext.autodoc", "sphinx.ext.viewcode", "myst_parser"]
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
exclude_patterns = ["_build"]
# commands are copied from these pages: "--link" must stay two hyphens, not an en dash
smartquotes = False
html_theme = "alabaster"
