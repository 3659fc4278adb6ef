"""Helpers shared by the test suites (and bench/): private servers, processes, clients and builders.

Test folders hold only tests and their fixtures (conftest.py); everything a test imports besides the
code under test comes from here, so no test imports another test module or another folder's conftest.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
"""The repository's top folder."""
