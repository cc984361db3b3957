"""A shell command line cut into simple commands: words, without quotes, redirections or here-documents.

Pure, stdlib only, and total: any text gives an answer, never an exception (an unterminated quote takes the
rest of the line into its word, as a forgiving reader should with what an agent typed). It understands what
agents' commands contain (measured on the AgentCgroup paper's traces): ``&&``/``||``/``;``/newline chains,
pipes, ``\\``-newline continuations, ``2>&1`` and ``> file`` redirections, here-documents (``<< 'EOF'``: the
body is skipped), ``$(...)`` and backquotes kept inside their word, comments, ``( ... )`` subshells and
``{ ...; }`` groups, and ``for/if/while`` keywords. It is not a shell: no expansion, no aliases, no functions.

``shlex.shlex(punctuation_chars=True)`` was the first choice; it glues newlines into words, cannot tell the
``2`` of ``2>&1`` from an argument, treats the ``#`` of ``--grep=#408`` as a comment and raises on an open quote.
"""

from __future__ import annotations

from dataclasses import dataclass

#: operators, longest first (redirections included)
_OPERATORS = (
    "&>>", "<<-", "<<<", "&&", "||", ";;", "|&", "&>", ">>", "<<", ">&", "<&", ">|", "<>",
    "|", "&", ";", "(", ")", "<", ">",
)  # fmt: skip
_REDIRECTIONS = frozenset({"&>>", "<<-", "<<<", "&>", ">>", "<<", ">&", "<&", ">|", "<>", "<", ">"})
#: operators after which the next command runs at the same time as the one before (its memory adds up)
CONCURRENT = frozenset({"|", "|&", "&"})
#: words that open or close a compound command; dropped where a command starts
KEYWORDS = frozenset(
    {"if", "then", "else", "elif", "fi", "do", "done", "while", "until", "case", "esac", "{", "}", "!", "[[", "]]"}
)
#: compound commands whose own words are not a command to run (``for x in a b``)
_SKIP_WHOLE = frozenset({"for", "select", "function"})


@dataclass(frozen=True)
class Token:
    text: str
    op: bool = False


@dataclass(frozen=True)
class SimpleCommand:
    """One command of a command line: its words; ``concurrent`` when it runs beside the one before it
    (a pipe or ``&``), not after it."""

    words: tuple[str, ...]
    concurrent: bool = False


def _balanced(s: str, i: int, open_: str, close: str) -> int:
    """Index just past the ``close`` matching the ``open_`` at ``s[i]`` (quotes respected), or len(s)."""
    depth, j, n = 0, i, len(s)
    while j < n:
        c = s[j]
        if c == "\\":
            j += 2
            continue
        if c == "'" and open_ != "`":
            k = s.find("'", j + 1)
            j = n if k < 0 else k + 1
            continue
        if c == '"' and open_ != "`":
            j = _dquote_end(s, j + 1)
            continue
        if c == open_ and (open_ != close or depth == 0):
            depth += 1
        elif c == close:
            depth -= 1
            if depth == 0:
                return j + 1
        j += 1
    return n


def _dquote_end(s: str, j: int) -> int:
    """Index just past the closing ``"`` of a double-quoted string whose body starts at ``j``."""
    n = len(s)
    while j < n:
        c = s[j]
        if c == "\\":
            j += 2
        elif c == '"':
            return j + 1
        elif c == "$" and s.startswith("$(", j):
            j = _balanced(s, j + 1, "(", ")")
        elif c == "`":
            j = _balanced(s, j, "`", "`")
        else:
            j += 1
    return n


def tokenize(s: str) -> list[Token]:
    """Words and operators of ``s``; newlines become ``;``; here-document bodies are dropped."""
    out: list[Token] = []
    word: list[str] = []
    in_word = False  # a word has started (even an empty one: ``''``)
    heredocs: list[str] = []
    i, n = 0, len(s)

    def end_word() -> None:
        nonlocal in_word
        if in_word:
            out.append(Token("".join(word)))
            word.clear()
            in_word = False

    while i < n:
        c = s[i]
        if c == "\\":
            if i + 1 < n and s[i + 1] == "\n":  # a line continuation
                i += 2
                continue
            word.append(s[i + 1] if i + 1 < n else "")
            in_word = True
            i += 2
        elif c == "'":
            k = s.find("'", i + 1)
            k = n if k < 0 else k
            word.append(s[i + 1 : k])
            in_word = True
            i = k + 1
        elif c == '"':
            k = _dquote_end(s, i + 1)
            body = s[i + 1 : k - 1] if k <= n and s[k - 1 : k] == '"' else s[i + 1 : k]
            word.append(body.replace('\\"', '"').replace("\\\\", "\\").replace("\\$", "$").replace("\\`", "`"))
            in_word = True
            i = k
        elif c == "$" and s.startswith("$(", i):
            k = _balanced(s, i + 1, "(", ")")
            word.append(s[i:k])
            in_word = True
            i = k
        elif c == "`":
            k = _balanced(s, i, "`", "`")
            word.append(s[i:k])
            in_word = True
            i = k
        elif c == "\n":
            end_word()
            out.append(Token(";", op=True))
            i += 1
            while heredocs:  # the bodies follow the line that opened them
                i = _skip_heredoc(s, i, heredocs.pop(0))
        elif c in " \t\r":
            end_word()
            i += 1
        elif c == "#" and not in_word:
            k = s.find("\n", i)
            i = n if k < 0 else k
        elif c in "&|;()<>":
            op = next(o for o in _OPERATORS if s.startswith(o, i))
            if op in _REDIRECTIONS and in_word and word and "".join(word).isdigit():
                word.clear()  # the ``2`` of ``2>&1``: a file descriptor, not an argument
                in_word = False
            end_word()
            out.append(Token(op, op=True))
            i += len(op)
            if op in ("<<", "<<-"):
                delim, i = _heredoc_word(s, i)
                if delim is not None:
                    heredocs.append(delim)
        else:
            word.append(c)
            in_word = True
            i += 1
    end_word()
    return out


def _heredoc_word(s: str, i: int) -> tuple[str | None, int]:
    """The delimiter after ``<<`` (quotes removed) and the index after it; the delimiter is not a token."""
    n = len(s)
    while i < n and s[i] in " \t":
        i += 1
    start = i
    while i < n and s[i] not in " \t\n;&|<>()":
        if s[i] in "'\"":
            k = s.find(s[i], i + 1)
            i = n if k < 0 else k + 1
        else:
            i += 1
    raw = s[start:i]
    delim = raw.replace("'", "").replace('"', "").replace("\\", "")
    return (delim or None), i


def _skip_heredoc(s: str, i: int, delim: str) -> int:
    """Index just past the line that ends the here-document body starting at ``i`` (len(s) if none)."""
    n = len(s)
    while i < n:
        k = s.find("\n", i)
        line = s[i : n if k < 0 else k]
        i = n if k < 0 else k + 1
        if line.strip() == delim:
            return i
    return n


def split_commands(s: str) -> list[SimpleCommand]:
    """The simple commands of ``s`` in order, each with its words (redirections and keywords removed)."""
    commands: list[SimpleCommand] = []
    words: list[str] = []
    concurrent = False
    skip_target = False

    def flush(next_concurrent: bool) -> None:
        nonlocal words, concurrent
        while words and words[0] in KEYWORDS:
            words = words[1:]
        if words and words[0] not in _SKIP_WHOLE:
            commands.append(SimpleCommand(tuple(words), concurrent))
        words = []
        concurrent = next_concurrent

    for tok in tokenize(s):
        if tok.op:
            if tok.text in _REDIRECTIONS:
                skip_target = tok.text not in ("<<", "<<-")  # a here-document's word is gone already
                continue
            flush(tok.text in CONCURRENT)
            continue
        if skip_target:
            skip_target = False
            continue
        if not words and tok.text in KEYWORDS:
            continue
        words.append(tok.text)
    flush(False)
    return commands
