"""The fixtures of the CI tests; what they build lives in ci_harness (imported by name, so
that no test imports a module called `conftest`, which every test directory has)."""

from ci_harness import github, repository

__all__ = ["github", "repository"]
