"""Read an audit agent's answer (untrusted text) into an :class:`AgentAudit`.

The answer is data, never instructions: nothing in it is evaluated, rendered as a template
or followed as a link, and the work is bounded (the first :data:`MAX_TEXT` characters are
read, at most :data:`MAX_FINDINGS` findings and :data:`MAX_RECOMMENDATIONS` recommendations
are kept, every string is cleaned of control characters and capped).

:func:`parse_audit` tries, in order:

1. JSON: the whole answer being a JSON object, else the last fenced ```` ```json ```` block
   (or untagged fence holding an object) that validates as :class:`AgentAudit` and has a
   score or a finding. Invalid JSON or a schema mismatch falls through to Markdown.
2. Markdown, the seeds' format, read from markdown-it-py's token stream:

   - the score: a line ``Score: 75/100`` (bold or plain, also ``Overall score``,
     ``Puntuación``; ``N``, ``N/100``, ``N/10``, ``N%``); the first one within 0-100 wins;
   - tagged lines, in paragraphs or list items: ``[P0] Title (path:line)``, ``(P1) ...``,
     ``P2: ...``, ``[Critical] ...``; the location in parentheses at the end (``path``,
     ``path:line``, ``path line N``, ``path#L45``) or a bare ``path:line`` at the end;
   - severity headings (``## Hallazgos Críticos (P0)``, ``## Critical``, ``### High``):
     top-level list items under them without a tag are findings of that severity;
   - a heading under a severity heading (or followed by ``Severity:``) whose body has
     ``File:``/``Recommendation:`` lines is one finding;
   - ``Recommendation:``/``Fix:``, ``File:``/``Location:`` and ``Line:`` lines (or nested
     list items) complete the finding before them;
   - tables with a severity (or priority/severidad) column and a title (issue, finding,
     description, hallazgo) column, optionally file/location, line and recommendation;
   - list items under a ``## Recommendations`` / ``## Recomendaciones`` heading.
"""

from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from markdown_it import MarkdownIt
from markdown_it.token import Token
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from pytest_orchestrator import jsonio
from pytest_orchestrator.models import Severity

#: Characters of an answer that are read; the rest is ignored.
MAX_TEXT = 256_000
#: Findings kept from one answer.
MAX_FINDINGS = 500
#: Recommendations kept from one answer.
MAX_RECOMMENDATIONS = 100
#: Characters of a finding title.
TITLE_MAX = 300
#: Characters of a recommendation.
RECOMMENDATION_MAX = 2_000
#: Characters of a summary.
SUMMARY_MAX = 10_000
#: Characters of a path; a longer one is dropped.
PATH_MAX = 1_024
#: Characters of the answer kept in a :class:`ParseError`.
EXCERPT_MAX = 300

ParseMethod = Literal["json", "markdown"]

# C0 (but tab and newline), DEL, C1, zero-width and bidirectional controls, BOM, surrogates.
_CONTROL = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff\ud800-\udfff]"
)


def _clean_text(value: str) -> str:
    """``value`` with newlines normalised to ``\\n`` and control characters removed."""
    return _CONTROL.sub("", value.replace("\r\n", "\n").replace("\r", "\n"))


def _one_line(value: str, limit: int) -> str:
    """``value`` cleaned, whitespace runs (newlines too) made one space, trimmed, capped."""
    return " ".join(_clean_text(value).split())[:limit].rstrip()


def _fold(value: str) -> str:
    """Lower case without accents, for matching keywords (``Críticos`` -> ``criticos``)."""
    decomposed = unicodedata.normalize("NFKD", value)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


_JSON_SEVERITY = {
    "critical": Severity.P0,
    "high": Severity.P1,
    "medium": Severity.P2,
    "low": Severity.P3,
    "info": Severity.P4,
}


def _reject_bool(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError("must be a number, not a boolean")
    return value


class AgentFinding(BaseModel):
    """One finding reported by an audit agent."""

    model_config = ConfigDict(extra="forbid")

    severity: Severity = Field(
        description="P0 (critical) .. P4 (info); 'critical', 'high', 'medium', 'low' and "
        "'info' are accepted too"
    )
    title: str = Field(min_length=1, description=f"One line, at most {TITLE_MAX} characters")
    path: str | None = Field(None, description="File, relative to the repository root")
    line: int | None = Field(None, ge=1, description="1-based line in the file")
    recommendation: str | None = Field(None, description="How to fix it, one line")

    @field_validator("severity", mode="before")
    @classmethod
    def _severity(cls, value: object) -> object:
        if isinstance(value, str):
            key = value.strip().lower()
            if key in _JSON_SEVERITY:
                return _JSON_SEVERITY[key]
            if re.fullmatch(r"p[0-4]", key):
                return Severity(key.upper())
        return value

    @field_validator("title")
    @classmethod
    def _title(cls, value: str) -> str:
        title = _one_line(value, TITLE_MAX)
        if not title:
            raise ValueError("the title is empty")
        return title

    @field_validator("path")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        if value is None:
            return None
        path = _clean_text(value).replace("\n", "").replace("\t", "").strip()
        return path if path and len(path) <= PATH_MAX else None

    @field_validator("line", mode="before")
    @classmethod
    def _line(cls, value: object) -> object:
        return _reject_bool(value)

    @field_validator("recommendation")
    @classmethod
    def _recommendation(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return _one_line(value, RECOMMENDATION_MAX) or None


class AgentAudit(BaseModel):
    """An audit of the repository: a 0-100 score, findings and recommendations."""

    model_config = ConfigDict(extra="forbid")

    score: float | None = Field(None, ge=0, le=100, description="0-100, higher is better")
    summary: str | None = Field(None, description="A few sentences")
    findings: list[AgentFinding] = Field(
        default_factory=list, description=f"At most {MAX_FINDINGS} are read"
    )
    recommendations: list[str] = Field(
        default_factory=list, description="One line each, most important first"
    )

    @field_validator("score", mode="before")
    @classmethod
    def _score(cls, value: object) -> object:
        return _reject_bool(value)

    @field_validator("summary")
    @classmethod
    def _summary(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return _clean_text(value).strip()[:SUMMARY_MAX].rstrip() or None

    @field_validator("findings", mode="before")
    @classmethod
    def _cap_findings(cls, value: object) -> object:
        if isinstance(value, list) and len(value) > MAX_FINDINGS:
            return value[:MAX_FINDINGS]
        return value

    @field_validator("recommendations")
    @classmethod
    def _recommendations(cls, value: list[str]) -> list[str]:
        cleaned = (_one_line(item, RECOMMENDATION_MAX) for item in value)
        return [item for item in cleaned if item][:MAX_RECOMMENDATIONS]

    #: Findings of a JSON answer that did not validate and were left out (see _lenient).
    _dropped: int = PrivateAttr(0)

    @property
    def dropped(self) -> int:
        """Findings of a JSON answer left out because they did not validate."""
        return self._dropped

    @property
    def usable(self) -> bool:
        """Whether it says anything a gate can use: a score or a finding."""
        return self.score is not None or bool(self.findings)


class ParseError(ValueError):
    """The answer holds no usable audit. ``str()`` is one line; ``excerpt`` its beginning."""

    def __init__(self, message: str, excerpt: str) -> None:
        super().__init__(message)
        self.message = message
        self.excerpt = excerpt


def audit_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of :class:`AgentAudit`, to show agents in prompts."""
    schema = AgentAudit.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def parse_audit(text: str) -> tuple[AgentAudit, ParseMethod]:
    """Read an agent's answer: ``(audit, "json")`` or ``(audit, "markdown")``.

    :raises ParseError: the answer is empty, or has neither a score nor any finding.
    """
    cleaned = _clean_text(text[:MAX_TEXT])
    excerpt = cleaned.strip()[:EXCERPT_MAX]
    if not cleaned.strip():
        raise ParseError("the agent's answer is empty", excerpt)
    tokens = _markdown().parse(cleaned)
    audit = _from_json(cleaned, tokens)
    if audit is not None:
        return audit, "json"
    audit = _Reader().read(tokens)
    if audit.usable:
        return audit, "markdown"
    raise ParseError(
        "the agent's answer has neither a score nor any finding: no JSON object validates "
        "as the audit schema, and no 'Score: N/100' line, [P0]-[P4] finding, severity "
        "heading or finding table was found",
        excerpt,
    )


def _markdown() -> MarkdownIt:
    # CommonMark (its maxNesting bounds the depth) plus GFM tables; no linkify, no plugins.
    return MarkdownIt("commonmark").enable("table")


# --- JSON -----------------------------------------------------------------------------


def _from_json(text: str, tokens: list[Token]) -> AgentAudit | None:
    candidates = []
    for token in tokens:
        if token.type != "fence":
            continue
        words = token.info.split()
        language = words[0].lower() if words else ""
        if language == "json" or (not language and token.content.lstrip().startswith("{")):
            candidates.append(token.content)
    stripped = text.strip()
    if stripped.startswith("{") and stripped.endswith("}"):
        candidates.append(stripped)
    for candidate in reversed(candidates):
        audit: AgentAudit | None
        try:
            audit = AgentAudit.model_validate(jsonio.loads(candidate))
        except ValueError:  # ValidationError included
            audit = _lenient(candidate)
        if audit is not None and audit.usable:
            return audit
    return None


def _lenient(candidate: str) -> AgentAudit | None:
    """The schema's fields of a JSON object that does not validate as a whole: unknown
    keys ignored, each finding validated on its own (the invalid ones dropped and counted
    in ``dropped``), an invalid score or summary left out. None when it is not an object."""
    try:
        data = jsonio.loads(candidate)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    kept: list[AgentFinding] = []
    raw = data.get("findings")
    items = raw[:MAX_FINDINGS] if isinstance(raw, list) else []
    dropped = 0
    for item in items:
        if not isinstance(item, dict):
            dropped += 1
            continue
        known = {k: v for k, v in item.items() if k in AgentFinding.model_fields}
        try:
            kept.append(AgentFinding.model_validate(known))
        except ValidationError:
            dropped += 1
    values: dict[str, Any] = {"findings": kept}
    for name in ("score", "summary", "recommendations"):
        if name in data:
            try:
                AgentAudit.model_validate({name: data[name]})
            except ValidationError:
                continue
            values[name] = data[name]
    audit = AgentAudit.model_validate(values)
    audit._dropped = dropped
    return audit


# --- Markdown -------------------------------------------------------------------------

_SEVERITY_WORDS: dict[str, Severity] = {
    **dict.fromkeys(
        ("critical", "critico", "critica", "criticos", "criticas", "blocker", "bloqueante"),
        Severity.P0,
    ),
    **dict.fromkeys(("high", "alto", "alta", "altos", "altas", "major"), Severity.P1),
    **dict.fromkeys(
        ("medium", "moderate", "medio", "media", "medios", "medias", "moderado", "moderada"),
        Severity.P2,
    ),
    **dict.fromkeys(("low", "minor", "bajo", "baja", "bajos", "bajas", "menor"), Severity.P3),
    **dict.fromkeys(
        ("info", "informational", "informativo", "informativa", "trivial"), Severity.P4
    ),
}
_P_CODE = re.compile(r"(?<![\w-])p([0-4])(?![\w-])")
_SEVERITY_WORD = re.compile(
    r"(?<![\w-])(" + "|".join(sorted(_SEVERITY_WORDS, key=len, reverse=True)) + r")(?![\w-])"
)
# Words that make a "title" a count or a label, not a finding: "P0: 2", "Critical: none".
_NOT_A_TITLE = frozenset(
    {
        *_SEVERITY_WORDS,
        *("finding", "findings", "issue", "issues", "problem", "problems", "item", "items"),
        *("hallazgo", "hallazgos", "problema", "problemas", "count", "total", "none"),
        *("ninguno", "ninguna", "severity", "severidad", "priority", "prioridad", "n", "a"),
    }
)
_RECOMMENDATION_HEADING = re.compile(
    r"\b(recommendations?|recomendaciones|recomendacion|next steps|suggestions|sugerencias"
    r"|action items|proximos pasos|acciones recomendadas)\b"
)
# A tag at the start of a line: [P0] / (P1) / [Critical] / P2: / High: ... then the title.
_TAG = re.compile(
    r"^[^\w\[(]*(?:\[\s*(?P<bracket>[^\[\]]{1,24}?)\s*\]|\(\s*(?P<paren>[^()]{1,24}?)\s*\)"
    r"|(?P<bare>[^\W\d_]{2,15}|[Pp][0-4])\s*(?::|\s[-\u2013\u2014|]\s))"
    r"\s*[:\-\u2013\u2014|]?\s*(?P<rest>.*)$"
)
_LABEL = re.compile(r"^[^\w]*(?P<label>[^\W\d_][^\W\d_ ]*(?: [^\W\d_]+)?)\s*:\s*(?P<value>.*)$")
_REC_LABELS = frozenset(
    {
        *("recommendation", "recommended fix", "fix", "remediation", "suggestion"),
        *("solution", "recomendacion", "solucion", "sugerencia", "correccion", "mitigation"),
    }
)
_LOCATION_LABELS = frozenset(
    {"file", "location", "path", "archivo", "ubicacion", "ruta", "fichero", "where"}
)
_LINE_LABELS = frozenset({"line", "lines", "linea", "lineas"})
_SEVERITY_LABELS = frozenset({"severity", "severidad", "priority", "prioridad"})
_SCORE = re.compile(
    r"^[^\w]*(?:(?:overall|total|final|global|quality|audit)\s+)?"
    r"(?:score|puntuacion|puntaje|calificacion|nota)"
    r"(?:\s+(?:general|global|total|final|overall))?"
    r"\s*(?:\([^()]{0,40}\))?\s*[:=]\s*"
    r"(?P<n>[0-9]+(?:[.,][0-9]+)?)\s*"
    r"(?:(?:/|out of|of|de|sobre)\s*(?P<d>[0-9]+(?:[.,][0-9]+)?)|(?P<pct>%))?",
    re.ASCII,
)
_PAREN_AT_END = re.compile(r"\s*\((?P<inner>[^()]{1,1000})\)\s*[.;,]?\s*$")
_SEPARATED_AT_END = re.compile(r"\s+[-\u2013\u2014|]\s+(?P<loc>\S{1,1000})\s*$")
_BARE_AT_END = re.compile(
    r"(?:^|[\s\[(])(?P<loc>[^\s()\[\]<>\"'`|,;]{1,1000}"
    r"(?::[0-9]{1,9}|,?\s+(?:line|l\u00ednea|linea)\s+[0-9]{1,9}))[)\].,;]*$",
    re.IGNORECASE,
)
_LOCATION = re.compile(
    r"(?P<path>[^\s()<>\"'`|,;]+?)"
    r"(?:(?::|#L|,\s*|\s+)(?:(?:line|lines|l\u00ednea|linea|ln|l)\.?\s*)?(?P<line>[0-9]{1,9})"
    r"(?:\s*[-\u2013:]\s*[0-9]{1,9})?)?",
    re.IGNORECASE,
)
_BARE_FILE_NAMES = frozenset({"Dockerfile", "Makefile", "Containerfile", "Procfile"})
_TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "severity": ("severity", "severidad", "priority", "prioridad", "sev", "criticidad"),
    "title": (
        *("title", "issue", "finding", "hallazgo", "problem", "problema", "titulo"),
        *("description", "descripcion", "detalle", "details"),
    ),
    "path": ("file", "location", "path", "archivo", "ubicacion", "ruta", "fichero"),
    "line": ("line", "linea", "ln"),
    "recommendation": (
        *("recommendation", "recomendacion", "fix", "remediation", "solution", "solucion"),
        *("action", "accion", "suggestion", "sugerencia"),
    ),
}


def _plain(token: Token) -> str:
    """Text of an inline token: emphasis and links dropped, code spans kept, breaks '\\n'."""
    parts: list[str] = []
    for child in token.children or []:
        if child.type in ("text", "code_inline", "image"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append("\n")
    return "".join(parts)


def _severity_in(text: str) -> Severity | None:
    """The severity a heading or table cell names: a P-code first, else a severity word."""
    folded = _fold(text)
    code = _P_CODE.search(folded)
    if code:
        return Severity(f"P{code.group(1)}")
    word = _SEVERITY_WORD.search(folded)
    return _SEVERITY_WORDS[word.group(1)] if word else None


def _tag_severity(tag: str, bare: bool) -> Severity | None:
    folded = _fold(tag).strip()
    if re.fullmatch(r"p[0-4]", folded):
        return Severity(folded.upper())
    if folded in _SEVERITY_WORDS:
        return _SEVERITY_WORDS[folded]
    if bare or not _P_CODE.search(folded):
        return None
    return _severity_in(folded)  # "[P0 - Critical]"


def _is_title(text: str) -> bool:
    words = re.findall(r"[^\W\d_]+", _fold(text))
    return any(word not in _NOT_A_TITLE for word in words)


def _looks_like_path(path: str) -> bool:
    if "://" in path or not re.search(r"[^\W\d_]", path):
        return False
    name = path.rstrip("/").rsplit("/", 1)[-1]
    has_suffix = re.search(r"\.[A-Za-z][A-Za-z0-9_]{0,9}$", name) is not None
    return "/" in path or has_suffix or name in _BARE_FILE_NAMES


def _location(text: str) -> tuple[str, int | None] | None:
    """``(path, line)`` from ``path``, ``path:line``, ``path line N``, ``path#L45``..."""
    text = text.strip().strip("`'\"")
    if len(text) > PATH_MAX:
        return None
    match = _LOCATION.fullmatch(text)
    if match is None or not _looks_like_path(match.group("path")):
        return None
    line = int(match.group("line")) if match.group("line") else None
    return match.group("path"), line if line else None


def _split_location(rest: str) -> tuple[str, str | None, int | None]:
    """``(title, path, line)`` from a finding's text with its location at the end."""
    paren = _PAREN_AT_END.search(rest)
    if paren:
        inner = paren.group("inner")
        for piece in (inner, *re.split(r"[,;]\s*|\s+and\s+", inner)[:1]):
            found = _location(piece)
            if found:
                return rest[: paren.start()], found[0], found[1]
    separated = _SEPARATED_AT_END.search(rest)
    if separated:
        found = _location(separated.group("loc"))
        if found:
            return rest[: separated.start()], found[0], found[1]
    bare = _BARE_AT_END.search(rest)
    if bare:
        found = _location(bare.group("loc"))
        if found:
            return rest, found[0], found[1]
    return rest, None, None


def _score(line: str) -> float | None:
    match = _SCORE.match(_fold(line))
    if match is None:
        return None
    value = float(match.group("n").replace(",", "."))
    if match.group("d"):
        scale = float(match.group("d").replace(",", "."))
        if scale <= 0 or value > scale:
            return None
        value = value * 100 / scale
    value = round(value, 2)
    return value if 0 <= value <= 100 else None


@dataclass
class _Draft:
    severity: Severity | None
    title: str
    path: str | None = None
    line: int | None = None
    recommendation: str | None = None
    labelled: bool = False


@dataclass
class _Section:
    level: int
    severity: Severity | None = None
    recommendations: bool = False


@dataclass
class _Reader:
    """Walks markdown-it's token stream once, keeping a little state."""

    score: float | None = None
    drafts: list[_Draft] = field(default_factory=list)
    recommendations: list[str] = field(default_factory=list)
    sections: list[_Section] = field(default_factory=list)
    items: list[bool] = field(default_factory=list)  # open list items: lead text seen?
    last: _Draft | None = None  # the finding that label lines complete
    pending: _Draft | None = None  # a heading that labels below may make a finding

    def read(self, tokens: list[Token]) -> AgentAudit:
        index = 0
        while index < len(tokens):
            token = tokens[index]
            if token.type == "heading_open" and index + 1 < len(tokens):
                self._heading(int(token.tag[1:] or 1), _plain(tokens[index + 1]))
                index += 3
                continue
            if token.type == "table_open":
                end = index
                while end < len(tokens) and tokens[end].type != "table_close":
                    end += 1
                self._table(tokens[index:end])
                index = end + 1
                continue
            if token.type == "list_item_open":
                self.items.append(False)
            elif token.type == "list_item_close" and self.items:
                self.items.pop()
            elif token.type == "inline":
                self._inline(_plain(token))
            index += 1
        self._settle_pending()
        return AgentAudit(
            score=self.score,
            findings=[f for f in map(self._finding, self.drafts) if f is not None],
            recommendations=self.recommendations[:MAX_RECOMMENDATIONS],
        )

    @staticmethod
    def _finding(draft: _Draft) -> AgentFinding | None:
        if draft.severity is None:
            return None
        try:
            return AgentFinding(
                severity=draft.severity,
                title=draft.title,
                path=draft.path,
                line=draft.line,
                recommendation=draft.recommendation,
            )
        except ValidationError:
            return None

    # context

    def _context(self) -> _Section | None:
        for section in reversed(self.sections):
            if section.severity is not None or section.recommendations:
                return section
        return None

    def _add(self, draft: _Draft) -> None:
        if len(self.drafts) < MAX_FINDINGS:
            self.drafts.append(draft)
        self.last = draft
        self.pending = None

    def _settle_pending(self) -> None:
        pending, self.pending = self.pending, None
        if pending is not None and pending.labelled and pending.severity is not None:
            self._add(pending)

    def _scores(self, lines: list[str]) -> None:
        if self.score is None:
            for line in lines:
                self.score = _score(line)
                if self.score is not None:
                    return

    # blocks

    def _heading(self, level: int, text: str) -> None:
        self._settle_pending()
        self.last = None
        lines = text.split("\n")
        self._scores(lines)
        while self.sections and self.sections[-1].level >= level:
            self.sections.pop()
        parent = self._context()
        tagged = self._tagged(lines[0])
        if tagged is not None:
            self._add(tagged)
            self.sections.append(_Section(level))
            return
        folded = _fold(text)
        if _RECOMMENDATION_HEADING.search(folded):
            self.sections.append(_Section(level, recommendations=True))
            return
        severity = _severity_in(text)
        if severity is not None:
            self.sections.append(_Section(level, severity=severity))
            return
        self.sections.append(_Section(level))
        if parent is None or not parent.recommendations:
            title, path, line = _split_location(_one_line(text, len(text)))
            draft = _Draft(parent.severity if parent else None, title, path, line)
            if path is not None and draft.severity is not None:
                self._add(draft)
            elif _is_title(title):
                self.pending = draft

    def _inline(self, text: str) -> None:
        lines = text.split("\n")
        self._scores(lines)
        lead = bool(self.items) and not self.items[-1]
        if lead:
            self.items[-1] = True
        context = self._context()
        if context is not None and context.recommendations:
            recommendation = _one_line(text, RECOMMENDATION_MAX)
            wanted = lead and recommendation and not recommendation.endswith(":")
            if wanted and len(self.recommendations) < MAX_RECOMMENDATIONS:
                self.recommendations.append(recommendation)
            return
        for number, line in enumerate(lines):
            tagged = self._tagged(line)
            if tagged is not None:
                self._add(tagged)
            elif self._label(line):
                continue
            elif number == 0 and lead and len(self.items) == 1 and context is not None:
                self._plain_item(line, context.severity)

    def _plain_item(self, line: str, severity: Severity | None) -> None:
        title, path, number = _split_location(line)
        if _is_title(title):
            self._add(_Draft(severity, title, path, number))

    def _tagged(self, line: str) -> _Draft | None:
        match = _TAG.match(line)
        if match is None:
            return None
        bare = match.group("bare")
        severity = _tag_severity(
            match.group("bracket") or match.group("paren") or bare or "", bare is not None
        )
        if severity is None:
            return None
        title, path, number = _split_location(match.group("rest").strip())
        if not _is_title(title):
            return None
        return _Draft(severity, title, path, number)

    def _label(self, line: str) -> bool:
        """Apply a ``Fix:``/``File:``/``Line:``/``Severity:`` line to the current finding."""
        match = _LABEL.match(line)
        target = self.last or self.pending
        if match is None or target is None:
            return False
        label = _fold(match.group("label"))
        value = match.group("value").strip()
        if label in _REC_LABELS and value:
            target.recommendation = value
        elif label in _LOCATION_LABELS:
            found = _location(value)
            if found is None:
                return False
            target.path, target.line = found[0], found[1] or target.line
        elif label in _LINE_LABELS and re.fullmatch(r"[0-9]{1,9}", value):
            target.line = int(value) or None
        elif label in _SEVERITY_LABELS:
            severity = _severity_in(value)
            if severity is None:
                return False
            target.severity = severity
        else:
            return False
        target.labelled = True
        return True

    def _table(self, tokens: list[Token]) -> None:
        rows: list[list[str]] = []
        for token in tokens:
            if token.type == "tr_open":
                rows.append([])
            elif token.type == "inline" and rows:
                rows[-1].append(_one_line(_plain(token), RECOMMENDATION_MAX))
        for row in rows:
            self._scores([": ".join(row)])
        context = self._context()
        if not rows or (context is not None and context.recommendations):
            return
        columns = self._columns(rows[0])
        if "title" not in columns:
            return
        for row in rows[1:]:
            self._table_row(row, columns, context.severity if context else None)

    @staticmethod
    def _columns(header: list[str]) -> dict[str, int]:
        columns: dict[str, int] = {}
        for role, names in _TABLE_COLUMNS.items():
            for name in names:
                pattern = re.compile(rf"(?<![\w-]){name}s?(?![\w-])")
                found = next(
                    (
                        i
                        for i, cell in enumerate(header)
                        if i not in columns.values() and pattern.search(_fold(cell))
                    ),
                    None,
                )
                if found is not None:
                    columns[role] = found
                    break
        return columns

    def _table_row(self, row: list[str], columns: dict[str, int], default: Severity | None) -> None:
        def cell(role: str) -> str:
            index = columns.get(role)
            return row[index] if index is not None and index < len(row) else ""

        tagged = self._tagged(cell("title"))
        if tagged is not None:
            draft = tagged
        else:
            title, path, line = _split_location(cell("title"))
            draft = _Draft(default, title, path, line)
        if "severity" in columns:
            draft.severity = _severity_in(cell("severity")) or draft.severity
        found = _location(cell("path")) if cell("path") else None
        if found is not None:
            draft.path, draft.line = found[0], found[1] or draft.line
        if re.fullmatch(r"[0-9]{1,9}", cell("line")):
            draft.line = int(cell("line")) or None
        draft.recommendation = cell("recommendation") or draft.recommendation
        if draft.severity is not None and _is_title(draft.title):
            self._add(draft)


# --- Keeping findings that point into the repository ----------------------------------


def _has_line(path: Path, line: int) -> bool:
    """Whether the file has a 1-based ``line`` (read in chunks, stops once it knows)."""
    newlines = 0
    last = b""
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 16):
            newlines += chunk.count(b"\n")
            if newlines >= line:
                return True
            last = chunk[-1:]
    lines = newlines + (1 if last and last != b"\n" else 0)
    return line <= lines


def _plural(count: int, one: str, many: str) -> str:
    return (
        f"dropped {count} {'finding' if count == 1 else 'findings'} {one if count == 1 else many}"
    )


def clean_findings(audit: AgentAudit, rootdir: Path) -> tuple[list[AgentFinding], list[str]]:
    """Keep the findings that point at a real line of a file in ``rootdir``.

    Relative paths are resolved against ``rootdir``; absolute ones must be under it; paths
    that escape it (``..``, a symlink out) are dropped, and so are paths that are not files
    and lines past the end of the file. Findings without a path are kept.

    :returns: the kept findings, their paths made POSIX and relative to ``rootdir``, and
        one note per kind of dropped finding, with counts.
    """
    root = Path(os.path.normpath(rootdir.absolute()))
    real_root = rootdir.resolve()
    kept: list[AgentFinding] = []
    outside = missing = past_end = 0
    for finding in audit.findings:
        if finding.path is None:
            kept.append(finding)
            continue
        written = Path(finding.path)
        lexical = Path(os.path.normpath(written if written.is_absolute() else root / written))
        relative = None
        for base in (root, real_root):
            if lexical.is_relative_to(base):
                relative = lexical.relative_to(base)
                break
        try:
            real = lexical.resolve()
            inside = relative is not None and real.is_relative_to(real_root)
            is_file = inside and real.is_file()
            has_line = is_file and (finding.line is None or _has_line(real, finding.line))
        except (OSError, RuntimeError, ValueError):
            inside = is_file = has_line = False
        if not inside or relative is None:
            outside += 1
        elif not is_file:
            missing += 1
        elif not has_line:
            past_end += 1
        else:
            kept.append(finding.model_copy(update={"path": relative.as_posix()}))
    notes = []
    if outside:
        notes.append(
            _plural(
                outside, "with a path outside the repository", "with paths outside the repository"
            )
        )
    if missing:
        notes.append(_plural(missing, "whose file does not exist", "whose files do not exist"))
    if past_end:
        notes.append(
            _plural(
                past_end,
                "whose line is past the end of its file",
                "whose lines are past the end of their files",
            )
        )
    return kept, notes
