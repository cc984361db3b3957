"""The signature normalizer, on command lines as agents type them (most copied from the AgentCgroup paper's
haiku traces), and the shell lexer under it."""

from __future__ import annotations

import random

import pytest

from agentcgroup.predict.shellwords import split_commands
from agentcgroup.predict.signature import LEVELS, signature


def sig(cmd, cwd=None):
    return signature(cmd, cwd)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("pytest -x tests/foo", "pytest tests/bar"),  # the example
        ("python -m pytest tests/a.py", "python3 -m pytest -v tests/b.py::test_x"),
        ("PYTHONPATH=. python3 -m pytest tests/x.py", "pytest tests/y.py 2>&1 | tail -5"),
        ("cd /testbed && python3 -m pytest tests/", "pytest tests/other"),
        ("source venv/bin/activate && python -m pytest tests/t.py", ". testenv/bin/activate && pytest t2.py"),
        ("bash -c 'pytest tests/a'", 'sh -lc "pytest tests/b"'),
        ("timeout 600 pytest tests/a", "env CI=1 nice -n 5 pytest tests/b"),
        ("uv run pytest tests/a", "poetry run python -m pytest tests/b"),
        ("pip install requests", "pip3 install --break-system-packages numpy scipy"),
        ("python3 -m pip install -e .", "pip install -e . -q"),
        ("make -j8", "make -j 8"),
        ("make -j5 all", "gmake -j7 all"),
        ("cargo build --release", "cargo b --release -q"),
        ("go test ./...", "go test -v ./..."),
        ("npx jest src/a", "npx -y jest@29 src/b"),
        ("git log --oneline -5", "git log --all --grep=#408 | head"),
    ],
)
def test_same_signature(a, b) -> None:
    assert sig(a).text == sig(b).text, (sig(a), sig(b))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("pytest", "pytest tests/foo"),  # the whole suite against some of it
        ("pytest tests/a", "pytest -n 4 tests/a"),  # pytest-xdist workers
        ("make -j2", "make -j16"),
        ("cargo build", "cargo build --release"),
        ("cargo build", "cargo test"),
        ("go test ./...", "go test -race ./..."),
        ("pip install x", "pip install -e ."),
        ("pip install x", "pip install -r requirements.txt"),
        ("git log", "git diff"),
        ("python a.py", "python b.py"),
    ],
)
def test_different_signature(a, b) -> None:
    assert sig(a).text != sig(b).text


@pytest.mark.parametrize(
    ("cmd", "command", "program"),
    [
        ("python3 -m pytest", "pytest", "pytest"),
        ("py.test -q", "pytest", "pytest"),
        ("/usr/bin/python3.11 -m pip install x", "pip install", "pip"),
        ("python -c 'import x'", "python -c", "python"),
        ("python3 << 'EOF'\nimport a && b\nEOF", "python -", "python"),
        ("python /testbed/test_margins.py", "python test_margins.py", "python"),
        ("pip install -e . && python3 -m pytest", "pytest", "pytest"),  # the heaviest step: the test run
        ("python3 -m venv venv && source venv/bin/activate && pip install -r r.txt", "pip install", "pip"),
        ("git add a.py && git commit -m 'x && y'", "git add", "git"),
        ("find . -name '*.py' | xargs grep -l foo | head", "find", "find"),
        ("cd /repo", "cd", "cd"),  # only trivial steps: kept
        ("xvfb-run -a npm test", "npm test", "npm"),
        ("npm run build", "npm run build", "npm"),
        ("sudo -u bob docker compose up -d", "docker compose up", "docker"),
        ("uv pip install torch", "pip install", "pip"),
        ("coverage run -m pytest tests", "pytest", "pytest"),
        ("ls -la /testbed 2>/dev/null", "ls", "ls"),
        ("gh pr create --title 'x'", "gh pr", "gh"),
    ],
)
def test_command_and_program(cmd, command, program) -> None:
    s = sig(cmd)
    assert (s.command, s.program) == (command, program), s


def test_pipes_and_chains_in_the_signature_text() -> None:
    s = sig('python3 -m pytest tests/ -v | grep -E "FAILED|ERROR"')
    assert s.text == "pytest <some>"  # the filter at the end of the pipe is dropped
    assert sig("find . -name '*.py' | sort").text == "find"
    assert sig("cat a.sql | sqlfluff format -").text == "cat | sqlfluff format"
    assert sig("pip install -e . && pip install pytest && python3 -m pytest").text == (
        "pip install -e && pip install && pytest"
    )


def test_argv_lists() -> None:
    assert sig(["bash", "-c", "cd /r && pytest -x tests/a"]).text == sig("pytest tests/b").text
    assert sig(["python3", "-m", "pytest", "tests/a"]).text == "pytest <some>"
    assert sig(["/bin/sh", "-c", "make -j4"]).text == "make -j4"
    assert sig(["pytest"]).literal == "pytest"


def test_literal_collapses_blanks_only() -> None:
    assert sig("pytest   tests/a\n").literal == "pytest tests/a"
    assert sig("pytest tests/a").history_keys()[0] != sig("pytest tests/b").history_keys()[0]
    assert [lvl for lvl, _ in sig("pytest", cwd="/r").history_keys()] == list(LEVELS)
    assert [lvl for lvl, _ in sig("pytest").history_keys()] == [x for x in LEVELS if x != "signature@cwd"]
    assert dict(sig("cd sub && pytest", cwd="/r").history_keys())["signature@cwd"] == "/r/sub pytest"


def test_cwd_follows_cd() -> None:
    assert sig("cd sub && make", cwd="/repo").cwd == "/repo/sub"
    assert sig("cd /abs && make", cwd="/repo").cwd == "/abs"
    assert sig("make", cwd="/repo").cwd == "/repo"


def test_nothing_to_run() -> None:
    for cmd in ("", "   ", "# only a comment", "A=1 B=2", ";;"):
        s = sig(cmd)
        assert s.main is None and s.history_keys() == [], cmd


def test_lexer_on_agents_quirks() -> None:
    cmds = split_commands("pytest -x tests/ 2>&1 | head -50")
    assert [c.words for c in cmds] == [("pytest", "-x", "tests/"), ("head", "-50")]
    assert [c.concurrent for c in cmds] == [False, True]
    assert split_commands("git log --grep=#408 --oneline")[0].words == ("git", "log", "--grep=#408", "--oneline")
    assert [c.words for c in split_commands("python3 -m venv v && \\\nsource v/bin/activate\npip install .")] == [
        ("python3", "-m", "venv", "v"),
        ("source", "v/bin/activate"),
        ("pip", "install", "."),
    ]
    heredoc = "python3 << 'EOF'\nimport x; y = a && b\nEOF\necho done"
    assert [c.words for c in split_commands(heredoc)] == [("python3",), ("echo", "done")]
    assert split_commands('git commit -m "$(cat <<EOF\nhi && there\nEOF\n)"')[0].words[:2] == ("git", "commit")
    assert split_commands('echo "unterminated')[0].words == ("echo", "unterminated")
    assert [c.words for c in split_commands("for f in a b; do pytest $f; done")] == [("pytest", "$f")]
    assert [c.words for c in split_commands("(cd x; make -j4) &> log")] == [("cd", "x"), ("make", "-j4")]


def test_never_raises_on_any_text() -> None:
    rng = random.Random(16)
    alphabet = "ab -|&;()<>'\"\\$`#\n\t=./*{}![]~0123456789"
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        s = signature(text)
        assert isinstance(s.text, str)
        signature(text.split())
