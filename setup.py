"""Build hook: ship the repository's competition/*.toml inside the package (mtlkaggle/competitions/).

competition/ stays the one source of truth; the wheel gets copies at build time, so `pip install
mtlkaggle && mtlkaggle demo` works in an empty directory. Everything else is in pyproject.toml.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildWithSpecs(build_py):
    """build_py, plus the competition files as package data of ``mtlkaggle.competitions``."""

    def run(self):
        super().run()
        target = Path(self.build_lib) / "mtlkaggle" / "competitions"
        self.mkpath(str(target))
        for toml in sorted((ROOT / "competition").glob("*.toml")):
            self.copy_file(str(toml), str(target / toml.name))


setup(cmdclass={"build_py": BuildWithSpecs})
