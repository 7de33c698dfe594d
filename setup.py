"""The one compiled part: gateway/_sendmany.c, the writer thread's GIL-free send loop.

Everything else is in pyproject.toml. The extension is optional: where it
cannot be built (no compiler, Windows), the gateway writes from its event
loop as before (`chatctl up --writer loop`) and says so in its start-up line.
"""

import sys

from setuptools import Extension, setup

ext_modules = []
if sys.platform != "win32":
    ext_modules.append(Extension("chatcluster.gateway._sendmany", ["gateway/_sendmany.c"], optional=True))

setup(ext_modules=ext_modules)
