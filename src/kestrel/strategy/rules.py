"""L1 rule DSL (R-SE-2): YAML rules over whitelisted fields, compiled to safe closures.

A rules file:

    version: 7
    rules:
      - name: wide_spread_smaller
        when: "spread_bps > 5 and abs(ofi) < 0.2"
        then: {size_mult: 0.5, sl_mult: 1.2}
      - name: extreme_funding
        when: "abs(funding_next) > 0.0015"
        then: {skip_entry: true}

`when` is an expression over the whitelisted fields (FIELDS), numbers, `and`/`or`/`not`, comparisons,
+ − × ÷ and the functions abs/min/max. It is parsed with Python's `ast` and only those node kinds are
accepted — there is no `eval`. Every matching rule multiplies its multipliers in; the products are
clamped to the configured bounds; a matching `skip_entry` short-circuits. `lint_rules` reports every
problem of a file at once; `RuleBook` holds the current revision for hot reload with RCU semantics:
a decision takes `book.current` once and finishes on it even if a reload swaps in a new revision.
"""

from __future__ import annotations

import ast
import hashlib
import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kestrel.core.errors import ConfigurationError

FIELDS: frozenset[str] = frozenset(
    {
        # top of book and microstructure (R-MD-8, R-FE-2)
        "mid", "spread_bps", "depth_top1_usdt", "liq_score", "qi", "queue_imbalance", "ofi", "delta_mid",
        "depth_slope", "near_touch_void", "kyle_lambda", "trade_sign", "vwap_distance", "cancel_new_ratio",
        "micro_trend", "rv_ratio", "squeeze_turn", "liquidation_density",
        # bars and funding (R-FE-1)
        "atr", "atr_pct", "log_return", "rv", "rv_percentile", "correlation", "funding_next", "funding_delta",
        "oi_delta",
        # model and decision context
        "p_up", "expected_return", "utility", "side", "hour_utc", "latency_ms", "degraded",
    }
)  # fmt: skip
MULTIPLIERS = ("size_mult", "tp_mult", "sl_mult")
_FUNCTIONS: dict[str, Callable[..., float]] = {"abs": abs, "min": min, "max": max}
_COMPARE = {
    ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
    ast.Eq: operator.eq, ast.NotEq: operator.ne,
}  # fmt: skip
_ARITHMETIC = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}

Features = Mapping[str, float]
Condition = Callable[[Features], bool]


class RuleError(ConfigurationError):
    """A rules file is invalid; `problems` lists every problem (`rules[2].when: unknown field 'spred'`)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


def _compile_expression(node: ast.AST) -> Callable[[Features], Any]:  # noqa: C901 - one branch per node kind
    if isinstance(node, ast.Expression):
        return _compile_expression(node.body)
    if isinstance(node, ast.BoolOp):
        parts = [_compile_expression(value) for value in node.values]
        if isinstance(node.op, ast.And):
            return lambda f: all(part(f) for part in parts)
        return lambda f: any(part(f) for part in parts)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        inner = _compile_expression(node.operand)
        return lambda f: not inner(f)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _compile_expression(node.operand)
        return lambda f: -inner(f)
    if isinstance(node, ast.Compare):
        left = _compile_expression(node.left)
        ops = [_COMPARE[type(op)] for op in node.ops if type(op) in _COMPARE]
        if len(ops) != len(node.ops):
            raise ValueError("only < <= > >= == != comparisons are allowed")
        rights = [_compile_expression(c) for c in node.comparators]

        def compare(f: Features) -> bool:
            value = left(f)
            for op, right in zip(ops, rights, strict=True):
                other = right(f)
                if not op(value, other):
                    return False
                value = other
            return True

        return compare
    if isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
        op = _ARITHMETIC[type(node.op)]
        left, right = _compile_expression(node.left), _compile_expression(node.right)
        return lambda f: op(left(f), right(f))
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and not node.keywords
    ):
        function = _FUNCTIONS[node.func.id]
        arguments = [_compile_expression(a) for a in node.args]
        return lambda f: function(*(a(f) for a in arguments))
    if isinstance(node, ast.Name):
        name = node.id
        if name not in FIELDS:
            raise ValueError(f"unknown field {name!r}")
        return lambda f: f.get(name, math.nan)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float | bool):
        constant = node.value
        return lambda f: constant
    raise ValueError(f"{type(node).__name__} is not allowed in rule expressions")


def compile_condition(text: str) -> Condition:
    """Compile one `when` expression; raises ValueError naming what is not allowed."""
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"syntax error: {exc.msg}") from None
    evaluate = _compile_expression(tree)
    # a missing or NaN field makes a comparison False (NaN compares False), so unknown data never matches
    return lambda features: bool(evaluate(features))


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    when: str
    condition: Condition = field(compare=False, repr=False)
    skip_entry: bool = False
    multipliers: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True, slots=True)
class RuleOutcome:
    """What the rules say for one decision. `revision` goes on the signal (R-SE-2)."""

    revision: str
    matched: tuple[str, ...]
    skip_entry: bool
    size_mult: float
    tp_mult: float
    sl_mult: float


@dataclass(frozen=True, slots=True)
class RuleSet:
    version: int
    revision: str  # content hash: two files with the same rules have the same revision
    rules: tuple[Rule, ...]
    size_bounds: tuple[float, float]
    tp_bounds: tuple[float, float]
    sl_bounds: tuple[float, float]

    def evaluate(self, features: Features) -> RuleOutcome:
        matched: list[str] = []
        products = dict.fromkeys(MULTIPLIERS, 1.0)
        for rule in self.rules:
            if not rule.condition(features):
                continue
            matched.append(rule.name)
            if rule.skip_entry:
                return RuleOutcome(self.revision, tuple(matched), True, 0.0, 1.0, 1.0)
            for name, value in rule.multipliers:
                products[name] *= value
        return RuleOutcome(
            self.revision, tuple(matched), False,
            _clamp(products["size_mult"], self.size_bounds), _clamp(products["tp_mult"], self.tp_bounds),
            _clamp(products["sl_mult"], self.sl_bounds),
        )  # fmt: skip


def _clamp(value: float, bounds: tuple[float, float]) -> float:
    return min(max(value, bounds[0]), bounds[1])


EMPTY_REVISION = "none"


def empty_rule_set(
    size_bounds: tuple[float, float] = (0.25, 2.0),
    tp_bounds: tuple[float, float] = (0.5, 2.0),
    sl_bounds: tuple[float, float] = (0.5, 2.0),
) -> RuleSet:
    return RuleSet(0, EMPTY_REVISION, (), size_bounds, tp_bounds, sl_bounds)


def parse_rules(
    text: str,
    size_bounds: tuple[float, float] = (0.25, 2.0),
    tp_bounds: tuple[float, float] = (0.5, 2.0),
    sl_bounds: tuple[float, float] = (0.5, 2.0),
) -> RuleSet:
    """Parse and compile a rules document; raises RuleError listing every problem."""
    problems: list[str] = []
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise RuleError([f"rules: invalid YAML{where}"]) from None
    if not isinstance(document, dict):
        raise RuleError(["rules: top level must be a mapping with 'version' and 'rules'"])
    unknown_top = set(document) - {"version", "rules"}
    problems.extend(f"{key}: unknown key" for key in sorted(unknown_top))
    version = document.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        problems.append("version: must be a positive integer")
    entries = document.get("rules")
    if not isinstance(entries, list):
        problems.append("rules: must be a list")
        entries = []
    bounds = {"size_mult": size_bounds, "tp_mult": tp_bounds, "sl_mult": sl_bounds}
    compiled: list[Rule] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        rule = _parse_rule(index, entry, bounds, seen, problems)
        if rule is not None:
            compiled.append(rule)
    if problems:
        raise RuleError(problems)
    revision = hashlib.sha256(text.encode()).hexdigest()[:12]
    return RuleSet(int(version), revision, tuple(compiled), size_bounds, tp_bounds, sl_bounds)  # type: ignore[arg-type]


def _parse_rule(
    index: int, entry: object, bounds: dict[str, tuple[float, float]], seen: set[str], problems: list[str]
) -> Rule | None:
    where = f"rules[{index}]"
    if not isinstance(entry, dict):
        problems.append(f"{where}: must be a mapping with name, when, then")
        return None
    before = len(problems)
    problems.extend(f"{where}.{key}: unknown key" for key in sorted(set(entry) - {"name", "when", "then"}))
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        problems.append(f"{where}.name: required")
        name = f"#{index}"
    elif name in seen:
        problems.append(f"{where}.name: duplicate rule name {name!r}")
    seen.add(name)
    when = entry.get("when")
    condition: Condition | None = None
    if not isinstance(when, str) or not when.strip():
        problems.append(f"{where}.when: required expression")
    else:
        try:
            condition = compile_condition(when)
        except ValueError as exc:
            problems.append(f"{where}.when: {exc}")
    skip, multipliers = _parse_then(where, entry.get("then"), bounds, problems)
    if len(problems) != before or condition is None or not isinstance(when, str):
        return None
    return Rule(name, when, condition, skip, tuple(multipliers))


def _parse_then(
    where: str, then: object, bounds: dict[str, tuple[float, float]], problems: list[str]
) -> tuple[bool, list[tuple[str, float]]]:
    skip = False
    multipliers: list[tuple[str, float]] = []
    if not isinstance(then, dict) or not then:
        problems.append(f"{where}.then: required mapping of skip_entry / size_mult / tp_mult / sl_mult")
        return skip, multipliers
    for key, value in then.items():
        if key == "skip_entry":
            if not isinstance(value, bool):
                problems.append(f"{where}.then.skip_entry: must be true or false")
            skip = bool(value)
        elif key in bounds:
            low, high = bounds[key]
            if not isinstance(value, int | float) or isinstance(value, bool) or not low <= value <= high:
                problems.append(f"{where}.then.{key}: must be a number within [{low}, {high}]")
            else:
                multipliers.append((key, float(value)))
        else:
            problems.append(f"{where}.then.{key}: not an allowed action")
    return skip, multipliers


def lint_rules(path: Path, **bounds: tuple[float, float]) -> list[str]:
    """Every problem of a rules file, as lines; empty when it is valid."""
    if not path.is_file():
        return [f"{path}: no such file"]
    try:
        parse_rules(path.read_text(encoding="utf-8"), **bounds)
    except RuleError as error:
        return error.problems
    return []


class RuleBook:
    """The live rule set with read-copy-update reloads.

    `current` is one attribute read (atomic in CPython), so an in-flight decision keeps the RuleSet it
    took even if `reload` swaps a new one in meanwhile; a failed reload keeps the old revision.
    """

    def __init__(self, rule_set: RuleSet, path: Path | None = None) -> None:
        self.current = rule_set
        self.path = path
        self._loaded_text: str | None = path.read_text(encoding="utf-8") if path is not None else None

    @classmethod
    def from_file(cls, path: Path, **bounds: tuple[float, float]) -> RuleBook:
        if not path.is_file():
            raise RuleError([f"{path}: no such file"])
        return cls(parse_rules(path.read_text(encoding="utf-8"), **bounds), path)

    def reload(self) -> bool:
        """Re-read the file; True when a new revision was installed. Raises RuleError (old kept)."""
        if self.path is None:
            return False
        text = self.path.read_text(encoding="utf-8")
        if text == self._loaded_text:
            return False
        current = self.current
        rule_set = parse_rules(text, current.size_bounds, current.tp_bounds, current.sl_bounds)
        self.current = rule_set
        self._loaded_text = text
        return True
