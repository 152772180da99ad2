from __future__ import annotations

from pathlib import Path

import pytest

from kestrel.strategy.rules import RuleBook, RuleError, compile_condition, lint_rules, parse_rules

RULES = """
version: 3
rules:
  - name: wide_spread_smaller
    when: "spread_bps > 5 and abs(ofi) < 0.2"
    then: {size_mult: 0.5, sl_mult: 1.2}
  - name: strong_model
    when: "p_up >= 0.8"
    then: {size_mult: 1.5, tp_mult: 1.5}
  - name: extreme_funding
    when: "abs(funding_next) > 0.0015 or degraded == 1"
    then: {skip_entry: true}
  - name: huge_spread
    when: "spread_bps > 100"
    then: {size_mult: 0.3}
"""


def test_matching_rules_multiply_and_clamp() -> None:
    rules = parse_rules(RULES, size_bounds=(0.25, 2.0))
    outcome = rules.evaluate({"spread_bps": 6, "ofi": 0.1, "p_up": 0.9, "funding_next": 0.0, "degraded": 0})
    assert outcome.matched == ("wide_spread_smaller", "strong_model")
    assert outcome.size_mult == pytest.approx(0.5 * 1.5)
    assert not outcome.skip_entry
    assert outcome.tp_mult == 1.5 and outcome.sl_mult == 1.2
    assert outcome.revision == rules.revision and len(rules.revision) == 12
    clamped = rules.evaluate({"spread_bps": 150, "ofi": 0, "p_up": 0.1})
    assert clamped.matched == ("wide_spread_smaller", "huge_spread")
    assert clamped.size_mult == 0.25  # 0.5 × 0.3 = 0.15 clamped up to the floor


def test_skip_entry_short_circuits() -> None:
    outcome = parse_rules(RULES).evaluate({"spread_bps": 150, "ofi": 1, "funding_next": -0.002})
    assert outcome.skip_entry and outcome.matched == ("extreme_funding",)
    assert outcome.size_mult == 0.0  # huge_spread (after it) is never reached


def test_missing_fields_never_match() -> None:
    assert parse_rules(RULES).evaluate({}).matched == ()


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("spred_bps > 1", "unknown field 'spred_bps'"),
        ("__import__('os').system('x')", "Call is not allowed"),
        ("spread_bps.real > 1", "Attribute is not allowed"),
        ("spread_bps in (1, 2)", "comparisons are allowed"),
        ("spread_bps >", "syntax error"),
        ("'text' == 'text'", "Constant is not allowed"),
        ("[x for x in ()]", "ListComp is not allowed"),
    ],
)
def test_only_whitelisted_syntax(expression: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        compile_condition(expression)


def test_chained_comparison_and_arithmetic() -> None:
    condition = compile_condition("0.2 < qi - 0.1 <= max(0.5, rv) * 2 and not degraded")
    assert condition({"qi": 0.5, "rv": 0.1, "degraded": 0})
    assert not condition({"qi": 0.25, "rv": 0.1, "degraded": 0})


def test_lint_names_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(
        "version: 0\ncolour: red\nrules:\n"
        "  - {name: a, when: 'spread_bps > 1', then: {size_mult: 9}}\n"
        "  - {name: a, when: 'nope > 1', then: {jump: 1}}\n"
        "  - {when: 'p_up > 0.5', then: {skip_entry: 1}}\n"
    )
    problems = lint_rules(path)
    assert problems == [
        "colour: unknown key",
        "version: must be a positive integer",
        "rules[0].then.size_mult: must be a number within [0.25, 2.0]",
        "rules[1].name: duplicate rule name 'a'",
        "rules[1].when: unknown field 'nope'",
        "rules[1].then.jump: not an allowed action",
        "rules[2].name: required",
        "rules[2].then.skip_entry: must be true or false",
    ]
    assert lint_rules(tmp_path / "missing.yaml") == [f"{tmp_path / 'missing.yaml'}: no such file"]
    path.write_text("rules: [1,\n")
    assert lint_rules(path)[0].startswith("rules: invalid YAML")


def test_hot_reload_is_read_copy_update(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    book = RuleBook.from_file(path)
    in_flight = book.current  # a decision takes the revision once
    path.write_text(RULES.replace("size_mult: 0.5", "size_mult: 0.75"))
    assert book.reload()
    assert not book.reload()  # unchanged file: nothing to do
    features = {"spread_bps": 6, "ofi": 0.0}
    assert in_flight.evaluate(features).size_mult == 0.5  # finishes on the old revision
    assert book.current.evaluate(features).size_mult == 0.75
    assert book.current.revision != in_flight.revision
    installed = book.current
    path.write_text("version: 1\nrules:\n  - {name: x, when: 'bogus > 1', then: {size_mult: 1}}\n")
    with pytest.raises(RuleError, match="unknown field"):
        book.reload()
    assert book.current is installed  # a bad file never replaces a good revision
