"""The one thing pyproject.toml cannot say: the optional C scanner.

tablesessions._scan speeds up the encoder's check of a value before its one
orjson call (docs/performance.md). It is optional: where no C compiler is at
hand the build goes on without it, and serialization.py uses the same check in
Python.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("tablesessions._scan", ["tablesessions/_scan.c"], optional=True)])
