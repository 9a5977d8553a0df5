"""Prompt templates for the agents: loading, overriding, sandboxed rendering.

Templates are Jinja2 files (``NAME.j2``) shipped as package data in
``pytest_orchestrator.templates`` (the repository's top-level ``templates/`` directory) and
read with :mod:`importlib.resources`, so they work from a wheel, an editable install or a
zip. A directory named by the ini setting ``orchestrate_templates_dir`` may hold templates
of the same names, which win over the shipped ones, and new ones. Files whose name starts
with ``_`` are partials: included by other templates, overridable, not listed by
:meth:`PromptTemplates.names`.

Rendering happens in a :class:`~jinja2.sandbox.SandboxedEnvironment` with
:class:`~jinja2.StrictUndefined`: a template that uses a variable it was not given fails
with a one-line :class:`TemplateError` instead of printing an empty string into a prompt.
Autoescaping is off: prompts are not HTML. Text from tools and from the repository
(finding messages, file excerpts) is inserted as data: Jinja2 never evaluates a string it
prints, and the shipped templates include other templates only by literal name.

The variables are documented by :class:`PromptVariables`. ``exec_prefix``,
``budget_left_usd`` and ``score`` are always defined (None when not applicable); every
other variable is undefined when it is not given (or None), so a template that needs it
fails clearly and a template that can do without it tests ``is defined``.
"""

from __future__ import annotations

import json
import os
import re
import traceback
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from jinja2.exceptions import SecurityError
from jinja2.loaders import split_template_path
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pytest_orchestrator.errors import OrchestratorError
from pytest_orchestrator.models import Discovery, Finding, Severity

#: The ini setting naming a directory of templates that override the shipped ones.
INI = "orchestrate_templates_dir"
#: The package holding the shipped templates (``templates/`` in the repository).
PACKAGE = "pytest_orchestrator.templates"
SUFFIX = ".j2"
#: Variables always present in a template's context, None when not applicable.
ALWAYS_DEFINED = ("exec_prefix", "budget_left_usd", "score")
#: Most lines of context either side of an excerpt's line.
EXCERPT_MAX_CONTEXT = 10
#: Characters kept of each excerpt line.
EXCERPT_LINE_CHARS = 200
#: Characters kept of a finding's message.
MESSAGE_MAX_CHARS = 4000
#: Largest template file read from ``orchestrate_templates_dir`` (bytes).
MAX_TEMPLATE_BYTES = 1_000_000
#: Longest prompt rendered (characters): about 250,000 tokens, more than any agent's
#: context window; a template that writes more (a runaway loop) is an error.
MAX_PROMPT_CHARS = 1_000_000

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\Z")
# C0 controls but tab and newline, DEL, C1 controls: terminal escapes and NULs from tool output.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


class TemplateError(OrchestratorError):
    """A template could not be loaded or rendered; the one-line message says which and why."""


def _clean(text: str) -> str:
    """Text without control characters (tab and newline kept), CRLF as LF."""
    return _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def oneline(value: object, width: int = 300) -> str:
    """Jinja2 filter: the text on one line (whitespace collapsed), cut to ``width`` chars."""
    text = " ".join(_clean(str(value)).split())
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def code_block(value: object, lang: str = "") -> str:
    """Jinja2 filter: the text in a Markdown fence longer than any backtick run inside it.

    Untrusted text (a tool message, a file excerpt) cannot close the fence early and pass
    itself off as part of the prompt.
    """
    text = _clean(str(value)).strip("\n")
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{oneline(lang, 40)}\n{text}\n{fence}"


def file_excerpt(
    rootdir: str | os.PathLike[str],
    path: str | os.PathLike[str] | None,
    line: int | None,
    context: int = 3,
) -> str:
    """Numbered lines of ``path`` around ``line``, the line itself marked with ``>``.

    Example (``line=12, context=1``)::

          11 | def total(cart):
        > 12 |     return sum(cart) * 2
          13 |

    The size is bounded: at most :data:`EXCERPT_MAX_CONTEXT` lines either side, each cut to
    :data:`EXCERPT_LINE_CHARS` characters (a huge line is skipped, not loaded).

    :param path: relative to ``rootdir`` (or absolute inside it).
    :returns: the excerpt, or ``''`` when there is no path or line, the file is missing, not
        a regular file or outside ``rootdir`` (symbolic links resolved), or ``line`` is past
        its end.
    """
    if path is None or line is None or line < 1:
        return ""
    context = max(0, min(context, EXCERPT_MAX_CONTEXT))
    first, last = max(1, line - context), line + context
    try:
        root = Path(rootdir).resolve(strict=True)
        target = (root / path).resolve(strict=True)
        if not target.is_relative_to(root) or not target.is_file():
            return ""
        selected = _read_lines(target, first, last)
    except (OSError, ValueError, RuntimeError):
        return ""
    if len(selected) < line - first + 1:
        return ""
    width = len(str(first + len(selected) - 1))
    out = []
    for number, text in enumerate(selected, start=first):
        marker = ">" if number == line else " "
        out.append(f"{marker} {number:>{width}} | {text}".rstrip())
    return "\n".join(out)


def _read_lines(path: Path, first: int, last: int) -> list[str]:
    """Lines ``first``..``last`` (1-based), each cut to EXCERPT_LINE_CHARS, memory bounded."""
    selected: list[str] = []
    with path.open(encoding="utf-8", errors="replace") as handle:
        number = 0
        while number < last:
            chunk = handle.readline(EXCERPT_LINE_CHARS + 1)
            if not chunk:
                break
            text = chunk.rstrip("\n")
            if not chunk.endswith("\n"):
                # longer than the limit (or the last line): skip the rest in bounded reads
                rest = chunk
                while rest and not rest.endswith("\n"):
                    rest = handle.readline(64 * 1024)
                if len(text) > EXCERPT_LINE_CHARS:
                    text = text[:EXCERPT_LINE_CHARS] + " …"
            number += 1
            if number >= first:
                selected.append(_CONTROL.sub("", text.expandtabs(4)))
    return selected


class FindingVars(BaseModel):
    """One finding as the templates show it (an element of ``findings``).

    Messages and excerpts are untrusted (tool output, repository text): control characters
    are removed, the message is cut to :data:`MESSAGE_MAX_CHARS`, and templates print them
    as data inside fences.
    """

    model_config = ConfigDict(extra="forbid")

    severity: Severity
    """``P0`` (critical) .. ``P4`` (info)."""
    rule_id: str
    """The tool's rule, e.g. ``F821``, ``B602``, ``test-failed``, ``uncovered-lines``."""
    message: str
    """What the tool said (may span lines, e.g. a test failure)."""
    path: str | None = None
    """POSIX path relative to the repository root, None for a project-wide finding."""
    line: int | None = Field(None, ge=1)
    """1-based line in ``path``, None when the finding is about the whole file."""
    excerpt: str = ""
    """Numbered lines around ``line`` (see :func:`file_excerpt`), ``''`` if none."""
    recommendation: str | None = None
    """The tool's suggested fix, if it gave one."""

    @field_validator("rule_id", "message", "path", "excerpt", "recommendation")
    @classmethod
    def _untrusted(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = _clean(value)
        if len(value) > MESSAGE_MAX_CHARS:
            value = value[:MESSAGE_MAX_CHARS] + "\n[… cut]"
        return value

    @classmethod
    def from_finding(
        cls, finding: Finding, rootdir: str | os.PathLike[str], context: int = 3
    ) -> FindingVars:
        """From a report :class:`~pytest_orchestrator.models.Finding`, with its excerpt."""
        return cls(
            severity=finding.severity,
            rule_id=finding.rule_id,
            message=finding.message,
            path=finding.path,
            line=finding.line,
            excerpt=file_excerpt(rootdir, finding.path, finding.line, context),
            recommendation=finding.recommendation,
        )


class PromptVariables(BaseModel):
    """The variables a prompt template may use. A dict given to ``render`` is checked here.

    ``exec_prefix``, ``budget_left_usd`` and ``score`` are always defined in a template
    (None when not applicable: test them with ``{% if exec_prefix %}``). The others are
    undefined when not given or None: a template that needs one fails with a
    :class:`TemplateError` naming it; one that can do without tests ``is defined``.
    """

    model_config = ConfigDict(extra="forbid")

    project: Discovery | None = None
    """The project (discovery): ``name``, ``rootdir``, ``sources`` (paths relative to the
    rootdir), ``files`` (Python files), ``lines_of_code``, ``frameworks``."""
    dimension: str | None = None
    """The audit dimension concerned, e.g. ``security``, ``tests``, ``coverage``."""
    findings: list[FindingVars] | None = None
    """Findings to close (action templates) or already known (audit templates)."""
    exec_prefix: str | None = None
    """The command prefix that runs project commands, e.g. ``docker compose exec -T odoo``;
    None when commands run directly."""
    test_command: str | None = None
    """The command that runs the project's tests, through the exec prefix if any, e.g.
    ``docker compose exec -T odoo python -m pytest -q``."""
    budget_left_usd: float | None = None
    """USD the agent may still spend on this task; None when there is no budget."""
    answer_schema: str | None = None
    """JSON Schema (a JSON string) of an audit answer, e.g. ``json.dumps(audit_schema())``
    with :func:`pytest_orchestrator.agents.parse.audit_schema`."""
    target_score: float | None = Field(None, ge=0, le=100)
    """The score the gate requires, 0-100."""
    score: float | None = Field(None, ge=0, le=100)
    """The current score, 0-100, or None when not measured yet."""

    @field_validator("answer_schema")
    @classmethod
    def _json(cls, value: str | None) -> str | None:
        if value is not None:
            json.loads(value)
        return value

    def context(self) -> dict[str, Any]:
        """The template context: JSON-like values, None variables left out (but see above)."""
        data = self.model_dump(mode="json")
        return {k: v for k, v in data.items() if v is not None or k in ALWAYS_DEFINED}


class _PackageLoader(jinja2.BaseLoader):
    """Templates of a package, read with :mod:`importlib.resources` (works from a zip)."""

    def __init__(self, package: str) -> None:
        self.package = package

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str | None, Callable[[], bool] | None]:
        node = resources.files(self.package)
        for piece in split_template_path(template):  # refuses '..'
            node = node.joinpath(piece)
        if not node.is_file():
            raise jinja2.TemplateNotFound(template)
        return node.read_text(encoding="utf-8"), str(node), lambda: True

    def list_templates(self) -> list[str]:
        root = resources.files(self.package)
        return sorted(p.name for p in root.iterdir() if p.is_file())


class _FrozenLoader(jinja2.BaseLoader):
    """The templates of a user directory, read once (when the session starts) into memory:
    a change to the files later (by an agent, say) does not change the prompts. A link
    that leads out of the directory, a file larger than :data:`MAX_TEMPLATE_BYTES` or one
    that is not UTF-8 is refused.

    :raises TemplateError: such a file (the message names it).
    """

    def __init__(self, directory: Path) -> None:
        self.sources: dict[str, tuple[str, str]] = {}
        root = directory.resolve()
        for folder, dirs, files in os.walk(directory):  # links to folders are not followed
            dirs.sort()
            for name in sorted(files):
                if not name.endswith(SUFFIX):
                    continue
                path = Path(folder) / name
                relative = path.relative_to(directory).as_posix()
                real = path.resolve()
                if not real.is_relative_to(root):
                    raise TemplateError(
                        f"{INI}: {relative} is a link to {real}, outside {directory}; copy "
                        "the file into the directory instead"
                    )
                try:
                    if real.stat().st_size > MAX_TEMPLATE_BYTES:
                        raise TemplateError(
                            f"{INI}: {relative} is larger than {MAX_TEMPLATE_BYTES} bytes"
                        )
                    self.sources[relative] = (real.read_text(encoding="utf-8"), str(path))
                except (OSError, UnicodeDecodeError) as exc:
                    raise TemplateError(f"{INI}: cannot read {relative}: {oneline(exc)}") from None

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str | None, Callable[[], bool] | None]:
        name = "/".join(split_template_path(template))  # refuses '..'
        if name not in self.sources:
            raise jinja2.TemplateNotFound(template)
        source, filename = self.sources[name]
        return source, filename, lambda: True

    def list_templates(self) -> list[str]:
        return sorted(self.sources)


class _BoundedEnvironment(SandboxedEnvironment):
    """Jinja2's sandbox, with the arithmetic that builds huge values refused: repeating
    or joining sequences past :data:`MAX_PROMPT_CHARS` items, and powers past 1024 (the
    sandbox already bounds ``range`` to 100,000 items)."""

    intercepted_binops = frozenset({"*", "**", "+"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        sized = (str, list, tuple)
        size = 0
        if operator == "*":
            for seq, count in ((left, right), (right, left)):
                if isinstance(seq, sized) and isinstance(count, int):
                    size = len(seq) * count
        elif operator == "+" and isinstance(left, sized) and isinstance(right, sized):
            size = len(left) + len(right)
        elif operator == "**" and isinstance(right, (int, float)) and abs(right) > 1024:
            raise SecurityError("a power above 1024")
        if size > MAX_PROMPT_CHARS:
            raise SecurityError(f"a value larger than {MAX_PROMPT_CHARS} items")
        return super().call_binop(context, operator, left, right)


def _file_name(name: str) -> str:
    return name if name.endswith(SUFFIX) else name + SUFFIX


def _where(file: str, filename: str | None, line: int | None) -> str:
    """`` line N`` in ``file`` itself, `` line N of PARTIAL.j2`` in an included template."""
    if line is None:
        return ""
    name = Path(filename).name if filename else file
    return f" line {line}" if name == file else f" line {line} of {name}"


def _template_line(file: str, exc: BaseException) -> str:
    """:func:`_where` from the template frames of a rendering traceback, or ``''``."""
    tb = traceback.extract_tb(exc.__traceback__)
    frames = [f for f in tb if f.filename.endswith(SUFFIX)]
    if not frames:
        return ""
    return _where(file, frames[-1].filename, frames[-1].lineno)


def _validation_message(exc: ValidationError) -> str:
    problems = [
        f"{'.'.join(str(p) for p in error['loc']) or 'variables'}: {error['msg']}"
        for error in exc.errors()[:3]
    ]
    more = f" (+{exc.error_count() - 3} more)" if exc.error_count() > 3 else ""
    return "invalid variables: " + "; ".join(problems) + more


class PromptTemplates:
    """The shipped templates, overridden by those of ``user_dir`` of the same name.

    The user directory is read when this object is made (see :class:`_FrozenLoader`):
    make one when the session starts and keep it.

    :param user_dir: the directory of ``orchestrate_templates_dir``, or None.
    :raises TemplateError: ``user_dir`` is not a directory, or holds a link out of it, a
        file too large or not UTF-8.
    """

    def __init__(self, user_dir: str | os.PathLike[str] | None = None) -> None:
        self.user_dir = Path(user_dir) if user_dir is not None else None
        loaders: list[jinja2.BaseLoader] = []
        self._user: _FrozenLoader | None = None
        if self.user_dir is not None:
            if not self.user_dir.is_dir():
                raise TemplateError(f"{INI}: {self.user_dir} is not a directory")
            self._user = _FrozenLoader(self.user_dir)
            loaders.append(self._user)
        loaders.append(_PackageLoader(PACKAGE))
        self.env = _BoundedEnvironment(
            loader=jinja2.ChoiceLoader(loaders),
            undefined=jinja2.StrictUndefined,
            autoescape=False,  # prompts are not HTML
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["oneline"] = oneline
        self.env.filters["code_block"] = code_block

    @classmethod
    def from_ini(cls, value: str | None, rootdir: str | os.PathLike[str]) -> PromptTemplates:
        """From the value of ``orchestrate_templates_dir`` (relative to ``rootdir``).

        An empty value means the shipped templates only.
        """
        if value is None or not value.strip():
            return cls()
        return cls(Path(rootdir) / Path(value.strip()).expanduser())

    def names(self) -> list[str]:
        """Names of the templates (without ``.j2``, partials left out), sorted."""
        found = {
            name.removesuffix(SUFFIX)
            for name in self.env.list_templates(extensions=[SUFFIX[1:]])
            if "/" not in name and not name.startswith("_")
        }
        return sorted(found)

    def audit_names(self) -> list[str]:
        """The dimension ``NAME`` of each ``audit_NAME.j2`` template, sorted."""
        return [n.removeprefix("audit_") for n in self.names() if n.startswith("audit_")]

    def origin(self, name: str) -> str:
        """Where template ``name`` comes from: its file in the user directory, or ``package``."""
        if self._user is not None and _file_name(name) in self._user.sources:
            return self._user.sources[_file_name(name)][1]
        return "package"

    def render(self, name: str, variables: PromptVariables | Mapping[str, Any]) -> str:
        """The prompt of template ``name`` (``close_gap`` or ``close_gap.j2``).

        :raises TemplateError: unknown template (the message lists the known ones), syntax
            error (with its line), undefined variable, invalid variables, an operation the
            sandbox forbids, or any other error while rendering.
        """
        file = _file_name(name)
        if not _NAME.match(file) or ".." in file:
            raise TemplateError(f"unknown template {file!r}; known: {', '.join(self.names())}")
        origin = self.origin(file)
        label = f"template {file!r}" + (f" ({origin})" if origin != "package" else "")
        try:
            template = self.env.get_template(file)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(self._syntax_message(label, file, exc)) from None
        except jinja2.TemplateNotFound as exc:
            if exc.name == file:
                known = ", ".join(self.names())
                raise TemplateError(f"unknown template {file!r}; known: {known}") from None
            raise TemplateError(f"{label}: {oneline(exc)}") from None
        try:
            if isinstance(variables, PromptVariables):
                context = variables.context()
            else:
                context = PromptVariables.model_validate(dict(variables)).context()
        except ValidationError as exc:
            raise TemplateError(f"{label}: {_validation_message(exc)}") from None
        try:
            return self._bounded(template, context, label)
        except TemplateError:
            raise
        except jinja2.TemplateSyntaxError as exc:  # in an included template
            raise TemplateError(self._syntax_message(label, file, exc)) from None
        except jinja2.TemplateNotFound as exc:
            raise TemplateError(f"{label} includes unknown template {exc.name!r}") from None
        except SecurityError as exc:
            where = _template_line(file, exc)
            raise TemplateError(
                f"{label}{where}: forbidden by the sandbox: {oneline(exc)}"
            ) from None
        except jinja2.UndefinedError as exc:
            raise TemplateError(f"{label}{_template_line(file, exc)}: {oneline(exc)}") from None
        except Exception as exc:  # a template may raise anything (1/0, a bad filter argument)
            where = _template_line(file, exc)
            raise TemplateError(f"{label}{where}: {type(exc).__name__}: {oneline(exc)}") from None

    @staticmethod
    def _bounded(template: jinja2.Template, context: dict[str, Any], label: str) -> str:
        """The rendered text, stopped once it passes :data:`MAX_PROMPT_CHARS`."""
        parts: list[str] = []
        size = 0
        for part in template.generate(context):
            size += len(part)
            if size > MAX_PROMPT_CHARS:
                raise TemplateError(
                    f"{label}: the prompt grows past {MAX_PROMPT_CHARS} characters (a "
                    "runaway loop?); no agent takes that much"
                )
            parts.append(part)
        return "".join(parts)

    @staticmethod
    def _syntax_message(label: str, file: str, exc: jinja2.TemplateSyntaxError) -> str:
        where = _where(file, exc.filename or exc.name, exc.lineno)
        return f"{label}{where}: syntax error: {oneline(exc.message or exc)}"
