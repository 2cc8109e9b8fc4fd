"""Load a scenario file (a path, or the name of a bundled one) into a validated ``Scenario``.

Every way a file can be wrong ends in one :class:`ScenarioError` with one line per problem,
each naming the file, the YAML line where known, and the key path::

    scenarios/bad.yaml:7: fleet.devices.ecg_patch: must be >= 0 (got -3)

Line numbers come from a small SafeLoader subclass whose node tree is walked once to map
each key path to the line it starts on; a problem with a missing key points at its parent.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from twin.core.errors import MedtwinError
from twin.scenario.schema import Scenario, known_names_context

__all__ = [
    "ScenarioError",
    "bundled_scenarios",
    "describe_validation_error",
    "load_scenario",
]

_PACKAGE = "scenarios"
_SUFFIXES = (".yaml", ".yml")
_MAX_PROBLEMS = 25  # a pasted wrong file should not scroll the real first problem away

KeyPath = tuple[str, ...]


class ScenarioError(MedtwinError):
    """A scenario file or override is unusable; ``problems`` holds one line per problem."""

    def __init__(self, problems: Sequence[str] | str) -> None:
        lines = [problems] if isinstance(problems, str) else list(problems)
        if len(lines) > _MAX_PROBLEMS:
            more = len(lines) - _MAX_PROBLEMS
            lines = [*lines[:_MAX_PROBLEMS], f"... and {more} more problem(s)"]
        self.problems: tuple[str, ...] = tuple(lines)
        super().__init__("\n".join(self.problems))


def load_scenario(
    source: str | Path,
    *,
    known_defences: Collection[str],
    known_attacks: Collection[str],
) -> Scenario:
    """Read, parse and validate a scenario.

    Args:
        source: a path to a ``.yaml``/``.yml`` file, or the name of a bundled scenario
            (``"baseline"`` finds ``scenarios/baseline.yaml`` inside the installed package).
            An existing file always wins over a bundled name.
        known_defences: the defence names ``defences:`` may switch (unknown ones are errors,
            so a misspelt defence cannot silently stay on).
        known_attacks: the attack plug-in names ``attacks[].name`` may use.

    Returns:
        The validated, frozen Scenario.

    Raises:
        ScenarioError: one line per problem, naming the file and key path: file missing, a
            directory, unreadable or not UTF-8, invalid YAML (with line and column), a top
            level that is not a mapping, an unknown bundled name (listing the bundled ones),
            and every schema violation.
    """
    origin, shown = _resolve(source)
    text = _read(origin, shown)
    data, lines = _parse(text, shown)
    if not isinstance(data, dict):
        got = "an empty file" if data is None else f"a {type(data).__name__}"
        raise ScenarioError(f"{shown}: the top level must be a mapping of keys (got {got})")
    context = known_names_context(known_defences, known_attacks)
    try:
        return Scenario.model_validate(data, context=context)
    except ValidationError as exc:
        raise ScenarioError(describe_validation_error(exc, shown, lines)) from None


def bundled_scenarios() -> list[tuple[str, str]]:
    """List the scenarios shipped in the ``scenarios`` package.

    Returns:
        ``(name, first line of description)`` pairs sorted by name; the summary is empty
        when the file has no description or cannot be parsed (loading it reports why).
    """
    return sorted((name, _summary(entry)) for name, entry in _bundled())


def describe_validation_error(
    error: ValidationError, source: str, lines: Mapping[KeyPath, int] | None = None
) -> list[str]:
    """Turn pydantic's errors into one human line per problem.

    Args:
        error: raised by ``Scenario.model_validate``.
        source: what to name as the origin (the file as given, or ``"NAME (overrides)"``).
        lines: key path -> 1-based YAML line, from the parser; None when there is no file.

    Returns:
        Lines like ``"bad.yaml:3: fleet.devices.toaster: unknown key"``.
    """
    problems = []
    for detail in error.errors(include_url=False):
        path = _key_path(detail)
        line = _line_for(lines or {}, path)
        where = f"{source}:{line}" if line else source
        dotted = ".".join(path)
        message = _human(detail)
        problems.append(f"{where}: {dotted}: {message}" if dotted else f"{where}: {message}")
    return problems


# -- finding and reading the file ------------------------------------------------------------


def _resolve(source: str | Path) -> tuple[Path | Traversable, str]:
    """Decide whether ``source`` is a file path or a bundled name; return it and its label."""
    path = Path(source)
    text = str(source)
    if isinstance(source, Path) or path.suffix in _SUFFIXES or "/" in text or path.exists():
        return path, text
    bundled = dict(_bundled())
    if text in bundled:
        return bundled[text], f"{_PACKAGE}/{text}.yaml"
    names = ", ".join(sorted(bundled)) or "none"
    raise ScenarioError(
        f"{text}: no such scenario file, and no bundled scenario of that name (bundled: {names})"
    )


def _bundled() -> Iterator[tuple[str, Traversable]]:
    """Yield ``(name, resource)`` for each ``*.yaml`` shipped in the scenarios package."""
    for entry in resources.files(_PACKAGE).iterdir():
        if entry.name.endswith(".yaml") and entry.is_file():
            yield entry.name.removesuffix(".yaml"), entry


def _read(origin: Path | Traversable, shown: str) -> str:
    """Read the file as UTF-8, turning each OS failure into a one-line ScenarioError."""
    try:
        return origin.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError(f"{shown}: no such file") from None
    except IsADirectoryError:
        raise ScenarioError(f"{shown}: is a directory, not a scenario file") from None
    except PermissionError:
        raise ScenarioError(f"{shown}: cannot read the file (permission denied)") from None
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"{shown}: not UTF-8 text (bad byte at offset {exc.start})") from None
    except OSError as exc:
        raise ScenarioError(f"{shown}: cannot read the file ({exc.strerror or exc})") from None


def _summary(entry: Traversable) -> str:
    """First non-blank line of a bundled file's description, or "" if there is none."""
    try:
        data = yaml.safe_load(entry.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return ""
    description = data.get("description") if isinstance(data, dict) else None
    if not isinstance(description, str):
        return ""
    return next((line.strip() for line in description.splitlines() if line.strip()), "")


# -- YAML with line numbers ------------------------------------------------------------------


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (PyYAML silently keeps the last one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue
            if key_node.value in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key_node.value!r}", key_node.start_mark
                )
            seen.add(key_node.value)
        return super().construct_mapping(node, deep)


def _parse(text: str, shown: str) -> tuple[Any, dict[KeyPath, int]]:
    """Parse YAML safely; return the data and a key path -> line map.

    Raises:
        ScenarioError: on invalid YAML, with the line and column yaml reports.
    """
    loader = _LineLoader(text)
    try:
        node = loader.get_single_node()
        data = None if node is None else loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        raise ScenarioError(_yaml_problem(exc, shown)) from None
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{shown}: invalid YAML: {exc}") from None
    finally:
        loader.dispose()
    lines: dict[KeyPath, int] = {}
    if node is not None:
        _record_lines(node, (), lines, set())
    return data, lines


def _yaml_problem(exc: yaml.MarkedYAMLError, shown: str) -> str:
    """One line for a YAML syntax error: where yaml noticed it, what, and what it was in."""
    mark = exc.problem_mark or exc.context_mark
    where = f"{shown}:{mark.line + 1}:{mark.column + 1}" if mark else shown
    what = exc.problem or exc.context or "unreadable YAML"
    if exc.problem and exc.context:
        started = f" started on line {exc.context_mark.line + 1}" if exc.context_mark else ""
        what = f"{exc.problem} ({exc.context}{started})"
    return f"{where}: invalid YAML: {what}"


def _record_lines(
    node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int], seen: set[int]
) -> None:
    """Walk the node tree once, recording where each key/item starts (aliases walked once)."""
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            child = (*path, str(key_node.value))
            lines.setdefault(child, key_node.start_mark.line + 1)
            _record_lines(value_node, child, lines, seen)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = (*path, str(index))
            lines.setdefault(child, item.start_mark.line + 1)
            _record_lines(item, child, lines, seen)


# -- wording pydantic's errors -----------------------------------------------------------------

_EXPECTED = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "finite_number": "a finite number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "text",
    "dict_type": "a mapping of keys",
    "model_type": "a mapping of keys",
    "model_attributes_type": "a mapping of keys",
    "list_type": "a list",
}
_BOUNDS = {
    "greater_than": ("gt", ">"),
    "greater_than_equal": ("ge", ">="),
    "less_than": ("lt", "<"),
    "less_than_equal": ("le", "<="),
}


def _key_path(detail: ErrorDetails) -> KeyPath:
    """The key path of an error; cross-field errors carry theirs in ``ctx["path"]``."""
    path = tuple(str(part) for part in detail["loc"] if part != "[key]")
    ctx = detail.get("ctx") or {}
    if not path and isinstance(ctx.get("path"), str):
        path = tuple(ctx["path"].split("."))
    return path


def _line_for(lines: Mapping[KeyPath, int], path: KeyPath) -> int | None:
    """Line of ``path``, or of its nearest ancestor present in the file (for missing keys)."""
    for end in range(len(path), 0, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return None


def _human(detail: ErrorDetails) -> str:
    """Word one pydantic error for a person editing a YAML file."""
    kind = detail["type"]
    ctx = detail.get("ctx") or {}
    got = _show(detail["input"])
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "missing (this key is required)"
    if kind == "literal_error":
        if detail["loc"] and detail["loc"][-1] == "[key]":
            return f"unknown key (expected {ctx['expected']})"
        return f"must be {ctx['expected']} (got {got})"
    if kind in _BOUNDS:
        key, sign = _BOUNDS[kind]
        return f"must be {sign} {ctx[key]} (got {got})"
    if kind == "string_pattern_mismatch":
        return f"must match {ctx['pattern']} (got {got})"
    if kind == "value_error":
        return str(ctx.get("error", detail["msg"]))
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]} (got {got})"
    return detail["msg"]


def _show(value: object) -> str:
    """Quote a bad value for a message, cut short so a pasted blob stays one line."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    shown = repr(value)
    return shown if len(shown) <= 40 else shown[:37] + "..."
