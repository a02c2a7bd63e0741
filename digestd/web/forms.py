"""The subscribe and preferences forms: their fields as typed, validated, with their errors."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from starlette.datastructures import FormData

from ..errors import RuleError
from ..models import FREQUENCIES, Subscriber
from ..rules import validate
from ..validators import EmailNotValidError, email_address, is_time_zone

MAX_RULES = 20
# the preferences form's choices for min_score: (value, label); None keeps every rule match.
# The values are cosines in the build's TF-IDF space (digestd/ranking.py), where a profile's
# rule matches score about 0.01 (a quarter of them below), 0.03 (the median) and 0.06 (the
# best tenth), and its best papers 0.08 to 0.3 (docs/relevance.md, "In the digest")
MIN_SCORES: tuple[tuple[float | None, str], ...] = (
    (None, "Keep every paper my rules match"),
    (0.01, "Leave out matches that share almost nothing with my seeds and liked papers"),
    (0.025, "Leave out matches clearly unlike my seeds and liked papers"),
    (0.05, "Keep only matches close to my seeds and liked papers"),
)


@dataclass
class SubscriptionForm:
    """The fields of the subscribe and preferences forms, as typed, and their errors."""

    email: str = ""
    rules: list[str] = field(default_factory=list)  # one per input box, blanks included
    send_at: str = "07:00"
    timezone: str = "UTC"
    frequency: str = "daily"
    weekday: int = 0
    send_empty: bool = False
    feed_only: bool = False  # the preferences form's "Feed only, no email"
    recommend: int = 0  # "also recommended" papers a digest, 0..10 (preferences only)
    min_score: float | None = None  # see MIN_SCORES (preferences only)
    errors: dict[str, str] = field(default_factory=dict)  # field (or "rule-N") -> message
    error_columns: dict[int, int] = field(default_factory=dict)  # input N -> 1-based column

    @classmethod
    def of(cls, sub: Subscriber) -> SubscriptionForm:
        return cls(email=sub.email, rules=list(sub.rules), send_at=sub.send_at,
                   timezone=sub.timezone, frequency=sub.frequency, weekday=sub.weekday,
                   send_empty=sub.send_empty, feed_only=sub.feed_only,
                   recommend=sub.recommend, min_score=sub.min_score)

    @classmethod
    def parse(cls, form: FormData, defaults: SubscriptionForm, *, with_email: bool
              ) -> SubscriptionForm:
        """Read and validate a submitted form; problems go into `errors`, never raise."""
        f = cls(email=str(form.get("email", "")).strip() if with_email else defaults.email,
                rules=[str(r) for r in form.getlist("rule")][:MAX_RULES + 5],
                send_at=str(form.get("send_at", defaults.send_at)).strip()[:5],
                timezone=str(form.get("timezone", defaults.timezone)).strip(),
                frequency=str(form.get("frequency", defaults.frequency)),
                send_empty=form.get("send_empty") == "on",
                feed_only=form.get("delivery") == "feed")
        try:
            f.weekday = int(str(form.get("weekday", defaults.weekday)))
        except ValueError:
            f.weekday = -1
        try:
            f.recommend = int(str(form.get("recommend", defaults.recommend)))
        except ValueError:
            f.recommend = -1
        if not 0 <= f.recommend <= 10:
            f.errors["recommend"] = "Pick from 0 to 10 recommendations."
        f.min_score = defaults.min_score
        if "min_score" in form:
            chosen = str(form.get("min_score", ""))
            known = {"" if v is None else f"{v:g}": v for v, _ in MIN_SCORES}
            if defaults.min_score is not None:  # a value set with the CLI stays choosable
                known.setdefault(f"{defaults.min_score:g}", defaults.min_score)
            if chosen in known:
                f.min_score = known[chosen]
            else:
                f.errors["min_score"] = "Pick one of the choices for leaving out matches."
        if with_email:
            if not f.email:
                f.errors["email"] = "Enter your email address."
            else:
                try:
                    f.email = email_address(f.email)  # the rule of the CLI and the config
                except EmailNotValidError as e:
                    f.errors["email"] = f"This is not a valid email address: {e}"
        for i, rule in enumerate(f.rules):
            if not rule.strip():
                continue
            try:
                validate(rule)
            except RuleError as e:
                f.errors[f"rule-{i}"] = str(e)
                if e.column:
                    f.error_columns[i] = e.column
        if not f.clean_rules:
            f.errors["rules"] = "Add at least one rule, e.g. diffusion or \"noisy labels\"."
        elif len(f.clean_rules) > MAX_RULES:
            f.errors["rules"] = f"At most {MAX_RULES} rules, please."
        if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", f.send_at):
            f.errors["send_at"] = "Give the time as HH:MM, e.g. 07:30."
        if not is_time_zone(f.timezone):
            f.errors["timezone"] = "Pick a time zone from the list, e.g. Europe/Berlin."
        if f.frequency not in FREQUENCIES:
            f.errors["frequency"] = "Pick daily, weekdays or weekly."
        if not 0 <= f.weekday <= 6:
            f.errors["weekday"] = "Pick a day of the week."
        return f

    @property
    def clean_rules(self) -> list[str]:
        """The non-blank rules, stripped, each once, in the order typed."""
        return list(dict.fromkeys(r.strip() for r in self.rules if r.strip()))

    def boxes(self, spare: int = 2) -> list[str]:
        """What the rule inputs show: the rules typed plus `spare` empty boxes (3 at least)."""
        shown = list(self.rules)
        while shown and not shown[-1].strip():
            shown.pop()
        return shown + [""] * max(spare, 3 - len(shown))
