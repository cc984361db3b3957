"""The words of the shell a coding agent types: which programs take a subcommand, which take files, which only
change the shell's state, which ``python -m`` modules are programs of their own. Data only: :mod:`.programs`
reads it to turn a command's words into a step.
"""

from __future__ import annotations

_ALIASES = {"py.test": "pytest", "gmake": "make", "nodejs": "node", "pip-3": "pip", "pytest-3": "pytest",
            "python-3": "python", "podman": "docker", "mamba": "conda", "micromamba": "conda"}  # fmt: skip
_SHELLS = frozenset({"bash", "sh", "zsh", "dash", "ksh", "ash", "busybox-sh"})

#: steps that change the shell's state or print a word: dropped from a chain that runs anything else
TRIVIAL = frozenset(
    {"cd", "pushd", "popd", "source", ".", "export", "unset", "set", "shopt", "alias", "echo", "printf", "true",
     "false", ":", "deactivate", "exit", "return", "wait", "local", "declare", "typeset", "read", "trap", "ulimit",
     "umask", "hash", "[", "test", "clear", "sleep"}
)  # fmt: skip

#: programs whose first word after the options is a subcommand (``git log``, ``cargo test``)
_SUBCOMMANDS = frozenset(
    {"git", "pip", "cargo", "go", "npm", "yarn", "pnpm", "bun", "deno", "docker", "kubectl", "helm", "poetry", "uv",
     "conda", "apt", "apt-get", "yum", "dnf", "apk", "brew", "gh", "dotnet", "rustup", "bundle", "gem", "rake",
     "hatch", "pdm", "pipenv", "rye", "terraform", "systemctl", "mvn", "gradle", "./gradlew", "gradlew", "mix",
     "composer", "cmake", "bazel", "pre-commit", "django-admin", "manage.py", "alembic", "flask", "tox", "nox",
     "cabal", "stack", "swift", "zig", "meson", "ninja", "sbt", "lein", "flutter", "dart", "ansible-galaxy"}
)  # fmt: skip
#: programs that take no subcommand: their first positional word is a file, a pattern or a directory
_NO_SUBCOMMAND = frozenset(
    {"ls", "cat", "head", "tail", "grep", "egrep", "fgrep", "rg", "ag", "find", "fd", "wc", "sed", "awk", "gawk",
     "sort", "uniq", "cut", "tr", "diff", "tree", "du", "df", "stat", "file", "less", "more", "touch", "mkdir",
     "rm", "cp", "mv", "ln", "chmod", "chown", "curl", "wget", "tar", "unzip", "zip", "gzip", "jq", "xxd", "od",
     "realpath", "dirname", "basename", "readlink", "which", "whereis", "type", "env", "pwd", "date", "id",
     "uname", "whoami", "hostname", "ps", "kill", "top", "free", "nproc", "python", "node", "ruby", "perl",
     "php", "gcc", "g++", "clang", "clang++", "cc", "c++", "rustc", "javac", "java", "ld", "ar", "strip", "patch",
     "tee", "xargs", "yes", "seq", "base64", "md5sum", "sha256sum", "cmp", "column", "nl", "fold", "strings",
     "venv", "virtualenv", "mypy", "black", "flake8", "isort", "pylint", "pyflakes", "pycodestyle", "http.server",
     "json.tool", "compileall", "cProfile", "timeit", "py_compile", "doctest", "pdb", "ensurepip"}
)  # fmt: skip
#: small tools the shared categories (``traces.categories``) leave as "other"
_FILE_TOOLS = frozenset({"ls", "find", "fd", "tree", "du", "df", "stat", "file", "pwd", "realpath", "readlink",
                         "dirname", "basename", "which", "whereis", "type", "touch", "mkdir", "rm", "cp", "mv", "ln",
                         "chmod", "chown"})  # fmt: skip
_TEXT_TOOLS = frozenset({"cat", "head", "tail", "grep", "egrep", "fgrep", "rg", "ag", "sed", "awk", "gawk", "sort",
                         "uniq", "cut", "tr", "diff", "wc", "jq", "tee", "column", "nl", "fold", "less", "more",
                         "xxd", "od", "cmp", "strings", "base64", "md5sum", "sha256sum", "echo", "printf"})  # fmt: skip

#: modules that ``python -m`` runs as a program of their own
_PYTHON_PROGRAMS = frozenset(
    {"pytest", "pip", "venv", "virtualenv", "unittest", "mypy", "pylint", "black", "flake8", "coverage", "tox",
     "nox", "ruff", "isort", "build", "twine", "pyflakes", "pycodestyle", "doctest", "http.server", "json.tool",
     "compileall", "cProfile", "timeit", "nose", "nose2", "sphinx", "pdb", "django", "uvicorn", "gunicorn",
     "jupyter", "notebook", "ipykernel", "pre_commit", "setuptools", "ensurepip", "py_compile"}
)  # fmt: skip
_MODULE_ALIASES = {"pre_commit": "pre-commit", "nose2": "nose", "sphinx": "sphinx-build", "django": "django-admin"}
#: test runners: whether they are narrowed to some targets matters (the whole suite against one file)
_TEST_RUNNERS = frozenset({"pytest", "unittest", "nose", "jest", "mocha", "vitest", "rspec", "phpunit", "ctest"})
