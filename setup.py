"""Build the optional native parts: the C spawner extension and the pre-placed exec stub program.

Both are optional: without a compiler agentcgroup falls back to a pure-Python pre-exec hook (correct, ~1-2 ms
slower per tool call) and to moving each process at spawn time (an RCU grace period, several ms, after a quiet
spell). `agentcg doctor` says which is in use.
"""

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

STUB_SRC = "agentcgroup/_stub.c"
STUB_DEP = "agentcgroup/_child.h"
STUB_NAME = "agentcg-stub"


class BuildNative(build_ext):
    def run(self) -> None:
        super().run()
        try:
            self._build_stub()
        except Exception as exc:  # optional, like the extension
            sys.stderr.write(f"warning: agentcgroup: not building {STUB_NAME} ({exc}); tool calls will be slower\n")

    def _build_stub(self) -> None:
        if not sys.platform.startswith("linux"):
            return
        cc = self.compiler
        objects = cc.compile([STUB_SRC], output_dir=self.build_temp, extra_postargs=["-O2"], depends=[STUB_DEP])
        out_dir = "agentcgroup" if self.inplace else os.path.join(self.build_lib, "agentcgroup")
        os.makedirs(out_dir, exist_ok=True)
        cc.link_executable(objects, STUB_NAME, output_dir=out_dir)


setup(
    ext_modules=[
        Extension(
            "agentcgroup._spawn", sources=["agentcgroup/_spawn.c"], depends=["agentcgroup/_child.h"], optional=True
        )
    ],
    cmdclass={"build_ext": BuildNative},
)
