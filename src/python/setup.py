"""Builds the extension depass._depass with the repository's CMake build, for the Python that
runs pip, and puts it into the package (pyproject.toml holds the rest of the metadata)."""

import glob
import os
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))  # the repository: src/python/../..


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        build = os.path.join(ROOT, "build-python")
        subprocess.check_call([
            "cmake", "-S", ROOT, "-B", build, "-DCMAKE_BUILD_TYPE=Release", "-DDEPASS_TESTS=OFF",
            "-DDEPASS_BENCH=OFF", "-DDEPASS_PYTHON=ON", f"-DPython3_EXECUTABLE={sys.executable}",
        ])
        subprocess.check_call(["cmake", "--build", build, "--target", "_depass", "-j", str(os.cpu_count() or 2)])
        built = glob.glob(os.path.join(build, "python", "depass", "_depass*.so"))
        if len(built) != 1:
            raise RuntimeError(f"expected one built extension in {build}/python/depass, found {built}")
        target = self.get_ext_fullpath(ext.name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(built[0], target)


setup(ext_modules=[Extension("depass._depass", sources=[])], cmdclass={"build_ext": CMakeBuild})
