"""The web app's rule builder: a small typed model (when From / To / Subject / size matches → move,
flag, forward, discard, reply) and its translation into Sieve. Pure.

The generated script starts with one comment line holding the model as JSON, so the settings page
can read its rules back (``parse_rules``); everything else in it is ordinary Sieve that ManageSieve
clients see and may edit (then it is no longer a rules script: ``parse_rules`` returns None).
"""

from __future__ import annotations

import datetime
import json
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

MARKER = "# suite-rules v1 "
SCRIPT_NAME = "suite-rules"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Condition(_Model):
    field: Literal["from", "to", "subject", "size"]
    op: Literal["contains", "not_contains", "is", "not_is", "matches", "over", "under"] = "contains"
    value: str | int

    @field_validator("value")
    @classmethod
    def _short(cls, v):
        if isinstance(v, str) and (len(v) > 1000 or "\x00" in v):
            raise ValueError("values are at most 1000 characters")
        return v

    def check(self) -> None:
        if self.field == "size":
            if self.op not in ("over", "under") or not isinstance(self.value, int) or self.value < 0:
                raise ValueError("a size condition is over/under a number of bytes")
        elif self.op in ("over", "under"):
            raise ValueError(f"over/under only apply to size, not {self.field}")


class Move(_Model):
    type: Literal["move"]
    mailbox: str = Field(min_length=1, max_length=500)
    keep: bool = False  # also keep it where it would have gone (fileinto :copy)


class Flag(_Model):
    type: Literal["flag"]
    flag: str = Field(default="\\Flagged", min_length=1, max_length=100, pattern=r"^\\?[A-Za-z$][A-Za-z0-9_$-]*$")


class Forward(_Model):
    type: Literal["forward"]
    address: str = Field(min_length=3, max_length=320, pattern=r"^[^\s@<>,\"]+@[^\s@<>,\"]+$")
    keep: bool = True


class Discard(_Model):
    type: Literal["discard"]


class Reply(_Model):
    type: Literal["reply"]
    text: str = Field(min_length=1, max_length=10_000)
    subject: str | None = Field(default=None, max_length=300)
    days: int = Field(default=7, ge=1, le=90)


Action = Annotated[Move | Flag | Forward | Discard | Reply, Field(discriminator="type")]


class Rule(_Model):
    name: str = Field(default="", max_length=200)
    enabled: bool = True
    match: Literal["all", "any"] = "all"
    conditions: list[Condition] = Field(default_factory=list, max_length=20)  # none = every message
    actions: list[Action] = Field(min_length=1, max_length=10)
    stop: bool = True  # later rules do not run for a message this one matched


class OutOfOffice(_Model):
    """The settings page's "Out of office" (JMAP's VacationResponse: enabled, from/to dates, subject,
    text): one reply per sender per ``days`` to every message that reaches the mailbox between
    ``start`` (inclusive) and ``end`` (exclusive), before any rule runs."""

    enabled: bool = False
    subject: str | None = Field(default=None, max_length=300)
    text: str = Field(default="", max_length=10_000)
    days: int = Field(default=7, ge=1, le=90)
    start: AwareDatetime | None = None
    end: AwareDatetime | None = None


class RuleSet(_Model):
    rules: list[Rule] = Field(default_factory=list, max_length=200)
    out_of_office: OutOfOffice = Field(default_factory=OutOfOffice)

    def check(self) -> None:
        for r in self.rules:
            for c in r.conditions:
                c.check()
            if sum(1 for a in r.actions if isinstance(a, Reply)) > 1:
                raise ValueError("one reply per rule")


def quote(s: str) -> str:
    """A Sieve quoted string (RFC 5228 §2.4.2): backslash and double quote escaped."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _test(c: Condition) -> str:
    if c.field == "size":
        return f"size :{c.op} {int(c.value)}"
    value = str(c.value)
    negate = c.op.startswith("not_")
    op = c.op.removeprefix("not_")
    if c.field == "subject":
        t = f"header :{op} {quote('subject')} {quote(value)}"
    else:
        headers = '"from"' if c.field == "from" else '["to", "cc"]'
        t = f"address :all :{op} {headers} {quote(value)}"
    return f"not {t}" if negate else t


def to_sieve(ruleset: RuleSet) -> str:
    """Sieve for the rules, in order; raises ValueError on a model that makes no sense."""
    ruleset.check()
    need: set[str] = set()
    body: list[str] = []
    ooo = ruleset.out_of_office
    if ooo.enabled:
        if not ooo.text.strip():
            raise ValueError("out of office needs a text")
        need.add("vacation")
        subj = f":subject {quote(ooo.subject)} " if ooo.subject else ""
        body.append("# out of office")
        reply = f'vacation :days {ooo.days} {subj}:handle "out-of-office" {quote(ooo.text)};'
        window = []
        if ooo.start is not None and ooo.end is not None and ooo.start >= ooo.end:
            raise ValueError("out of office: the start must be before the end")
        # RFC 5260 currentdate in UTC; iso8601 strings of one zone compare in time order (i;octet)
        for when, rel in ((ooo.start, "ge"), (ooo.end, "lt")):
            if when is not None:
                iso = when.astimezone(datetime.UTC).replace(microsecond=0).isoformat()
                window.append(f'currentdate :zone "+0000" :comparator "i;octet" :value "{rel}" "iso8601" {quote(iso)}')
        if window:
            need.update(("date", "relational"))
            cond = window[0] if len(window) == 1 else "allof (" + ", ".join(window) + ")"
            body += [f"if {cond} {{", f"    {reply}", "}"]
        else:
            body.append(reply)
    for i, rule in enumerate(ruleset.rules):
        if not rule.enabled:
            continue
        label = rule.name.replace("\n", " ").replace("\r", " ") or f"rule {i + 1}"
        body.append(f"# {label}")
        tests = [_test(c) for c in rule.conditions]
        if not tests:
            cond = "true"
        elif len(tests) == 1:
            cond = tests[0]
        else:
            cond = ("allof" if rule.match == "all" else "anyof") + " (" + ", ".join(tests) + ")"
        lines: list[str] = []
        flags = [a.flag for a in rule.actions if isinstance(a, Flag)]
        if flags:
            need.add("imap4flags")
            lines.append("addflag [" + ", ".join(quote(f) for f in flags) + "];")
        disposed = False
        for a in rule.actions:
            if isinstance(a, Move):
                need.update(("fileinto", "mailbox"))
                if a.keep:
                    need.add("copy")
                lines.append(f"fileinto {':copy ' if a.keep else ''}:create {quote(a.mailbox)};")
                disposed = disposed or not a.keep
            elif isinstance(a, Forward):
                if a.keep:
                    need.add("copy")
                lines.append(f"redirect {':copy ' if a.keep else ''}{quote(a.address)};")
                disposed = disposed or not a.keep
            elif isinstance(a, Reply):
                need.add("vacation")
                subj = f":subject {quote(a.subject)} " if a.subject else ""
                lines.append(f"vacation :days {a.days} {subj}{quote(a.text)};")
        if any(isinstance(a, Discard) for a in rule.actions):
            lines.append("discard;")
            disposed = True
        if flags and not disposed:
            lines.append("keep;")  # the flags go with the message kept in INBOX
        if flags:
            lines.append("removeflag [" + ", ".join(quote(f) for f in flags) + "];")  # not on later rules
        if rule.stop:
            lines.append("stop;")
        body.append(f"if {cond} {{")
        body += [f"    {x}" for x in lines]
        body.append("}")
    head = [MARKER + json.dumps(ruleset.model_dump(mode="json"), separators=(",", ":"), ensure_ascii=True)]
    if need:
        head.append("require [" + ", ".join(quote(x) for x in sorted(need)) + "];")
    return "\n".join(head + body) + "\n"


def parse_rules(script: str) -> RuleSet | None:
    """The model of a script ``to_sieve`` wrote and nobody changed since; else None."""
    first, _, _ = script.partition("\n")
    if not first.startswith(MARKER):
        return None
    try:
        rs = RuleSet.model_validate(json.loads(first[len(MARKER) :]))
    except (ValueError, ValidationError):
        return None
    return rs if to_sieve(rs) == script else None
