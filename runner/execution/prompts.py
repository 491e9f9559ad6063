"""The prompt a session job gives: its script's text, or the .md/.txt file it names."""

from __future__ import annotations

from pathlib import Path

from jeeves_site.paths import expand_user, is_file
from jeeves_site.small_files import read_small_file
from runner.execution.gateway import MAX_REQUEST_BYTES

PROMPT_EXTENSIONS = frozenset({".md", ".txt"})
PROGRAM_EXTENSIONS = frozenset(
    {
        ".js",
        ".mjs",
        ".cjs",
        ".ts",
        ".py",
        ".sh",
        ".bash",
        ".zsh",
        ".fish",
        ".rb",
        ".pl",
        ".php",
        ".lua",
        ".ps1",
        ".bat",
        ".cmd",
        ".exe",
        ".go",
        ".jar",
    }
)


class PromptError(ValueError):
    """A session job's script does not give a usable prompt."""


def resolve_prompt(script: str, base_dir: str | Path) -> str:
    """Return the prompt a session job's ``script`` gives: its text or the file it names.

    A ``.md``/``.txt`` name is read relative to ``base_dir``; a program file name is
    refused, since a session job hands text to an agent and runs nothing itself.
    """
    text = script.strip()
    if not text:
        raise PromptError("the session job has no prompt: its script is empty")
    path = _named_file(text, Path(base_dir))
    if path is None:
        return script
    suffix = path.suffix.lower()
    if suffix in PROGRAM_EXTENSIONS:
        raise PromptError(
            f"a session job takes a prompt, not a program: {text!r} names a {suffix} file; "
            "give the prompt text or a .md/.txt file, or make this a script job"
        )
    return _read_prompt_file(path)


def _named_file(text: str, base_dir: Path) -> Path | None:
    """The file ``text`` names, or None when ``text`` is a prompt in its own right."""
    if "\n" in text or Path(text).suffix.lower() not in PROMPT_EXTENSIONS | PROGRAM_EXTENSIONS:
        return None
    path = base_dir / expand_user(text)
    # A one-word name is a file reference; a sentence that ends in "notes.md" is a
    # prompt unless a file by that whole name exists.
    if any(ch.isspace() for ch in text) and not is_file(path):
        return None
    return path


def _read_prompt_file(path: Path) -> str:
    # A regular file only (a FIFO would block the worker for ever), and no more than the
    # gateway would take; a larger one is refused by the size check before sending.
    try:
        content = read_small_file(path, MAX_REQUEST_BYTES).decode("utf-8")
    except FileNotFoundError:
        raise PromptError(f"the prompt file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PromptError(f"cannot read the prompt file {path}: {exc}") from None
    if not content.strip():
        raise PromptError(f"the prompt file {path} is empty")
    return content
