"""The control file (control/config_file.py): the example loads, environments are chosen or expanded, variables are
filled, tiers become per-user budgets, references are checked, and every error names the field (and, read from a
file, its line and column)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from costline.control.config_file import (
    ControlFileError,
    control_objects,
    escape_variables,
    expand_variables,
    file_document,
    load_control,
    read_control_file,
)

EXAMPLE = Path(__file__).parents[2] / "examples" / "costline.yaml"
SECRET = "s3cret-for-the-hook-0123"
VARS = {"COSTLINE_WEBHOOK_SECRET": SECRET}
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def load(doc: dict[str, Any], environment: str | None = None, variables: dict[str, str] | None = None) -> Any:
    return load_control({"version": 1, **doc}, environment=environment, source="test",
                        variables=VARS if variables is None else variables)


def error_of(doc: dict[str, Any], environment: str | None = None, **kw: Any) -> str:
    with pytest.raises(ControlFileError) as caught:
        load(doc, environment, **kw)
    return str(caught.value)


HOOK = {"webhook": "https://hooks.example.com/costline", "secret": SECRET}


# the example ------------------------------------------------------------------------------------------------------
def test_the_example_file_for_every_environment() -> None:
    doc = read_control_file(EXAMPLE, environment=None, variables=VARS)
    assert doc.source == f"file:{EXAMPLE.resolve()}"
    assert doc.channels["ops-hook"] == {"webhook": "https://hooks.example.com/costline", "secret": SECRET}
    assert doc.channels["ops-email"] == {"apprise": "mailto://user:pass@smtp.example.com:587?to=ops@example.com"}
    budgets = {b.id: b for b in doc.budgets}
    assert list(budgets) == ["tier-free-day", "tier-free-month", "tier-free-day-requests", "tier-premium-day",
                             "tier-premium-month", "app-daily@dev", "app-daily@prod", "app-monthly@dev",
                             "app-monthly@prod"]
    free_day = budgets["tier-free-day"]
    assert (free_day.tier, free_day.per, free_day.limit, free_day.action) == ("free", "user", Decimal("0.5"), "block")
    assert free_day.name == "tier-free-day" and free_day.window.label == "day" and dict(free_day.scope) == {}
    quota = budgets["tier-free-day-requests"]
    assert (quota.limit, quota.max_requests, quota.tier) == (None, 200, "free")
    premium = budgets["tier-premium-day"]
    assert (premium.limit, premium.action, premium.downgrade_to) == (Decimal(5), "downgrade", "gpt-4o-mini")
    assert budgets["tier-premium-month"].notify == ("ops-email",)
    dev, prod = budgets["app-daily@dev"], budgets["app-daily@prod"]
    assert (dev.limit, dict(dev.scope), dev.name) == (Decimal(10), {"environment": "dev"}, "app-daily@dev")
    assert (prod.limit, dict(prod.scope)) == (Decimal(50), {"environment": "prod"})
    assert prod.window.timezone == "Europe/Berlin" and prod.thresholds == (50, 80, 100)
    assert prod.notify == ("ops-email", "ops-hook") and prod.action == "alert"
    assert budgets["app-monthly@prod"].limit == Decimal(1000)
    rules = {r.id: r for r in doc.alerts}
    assert list(rules) == ["prod-daily-cost", "expensive-call", "spike", "anomaly", "unpriced",
                           "month-forecast@dev", "month-forecast@prod"]
    assert dict(rules["prod-daily-cost"].filters) == {"environment": "prod"}
    assert rules["spike"].minutes == 15 and rules["spike"].group_by == "model"
    assert rules["anomaly"].window is not None and rules["anomaly"].window.hours == 24  # the default: last 24 h
    # the forecast rule watches a per-environment budget: it is made per environment with it
    assert rules["month-forecast@prod"].budget == "app-monthly@prod"
    assert dict(rules["month-forecast@prod"].filters) == {"environment": "prod"}
    assert rules["month-forecast@dev"].budget == "app-monthly@dev"


@pytest.mark.parametrize(("environment", "daily", "monthly"), [("prod", "50", "1000"), ("dev", "10", "100")])
def test_the_example_file_for_one_environment(environment: str, daily: str, monthly: str) -> None:
    doc = read_control_file(EXAMPLE, environment=environment, variables=VARS)
    budgets = {b.id: b for b in doc.budgets}
    assert budgets["app-daily"].limit == Decimal(daily) and dict(budgets["app-daily"].scope) == {}
    assert budgets["app-monthly"].limit == Decimal(monthly)
    assert {r.id: r.budget for r in doc.alerts}["month-forecast"] == "app-monthly"
    assert len(doc.budgets) == 7 and len(doc.alerts) == 6


def test_control_objects_carry_the_source() -> None:
    doc = read_control_file(EXAMPLE, environment="prod", variables=VARS)
    objects = control_objects(doc, "p1", NOW)
    assert {o.source for o in objects} == {doc.source}
    assert [o.kind for o in objects].count("channel") == 2
    assert [o.kind for o in objects].count("budget") == 7 and [o.kind for o in objects].count("alert") == 6
    by_id = {(o.kind, o.id): o for o in objects}
    budget = by_id[("budget", "app-daily")]
    assert budget.project_id == "p1" and budget.created_at == NOW and budget.spec["limit"] == "50"
    assert budget.spec["source"] == doc.source and budget.spec["timezone"] == "Europe/Berlin"
    assert by_id[("alert", "spike")].spec["source"] == doc.source
    assert by_id[("channel", "ops-hook")].spec == {"webhook": "https://hooks.example.com/costline", "secret": SECRET}


def test_an_empty_document_is_valid() -> None:
    doc = load({"channels": None, "budgets": None})
    assert (doc.channels, doc.budgets, doc.alerts) == ({}, [], [])


# variables --------------------------------------------------------------------------------------------------------
def test_variables_fill_any_string_value() -> None:
    doc = load({"channels": {"h": {"webhook": "https://${HOST}/hook", "secret": "${S}"}},
                "budgets": [{"name": "b-${ENVNAME}", "window": "day", "limit": "${LIMIT}"}]},
               variables={"HOST": "hooks.example.com", "S": SECRET, "ENVNAME": "x", "LIMIT": "2.50"})
    assert doc.channels["h"] == {"webhook": "https://hooks.example.com/hook", "secret": SECRET}
    assert doc.budgets[0].id == "b-x" and doc.budgets[0].limit == Decimal("2.50")


def test_a_missing_variable_is_an_error_never_empty() -> None:
    message = error_of({"channels": {"h": {"webhook": "https://x.example.com", "secret": "${NOT_SET_HERE}"}}},
                       variables={})
    assert message.startswith("channels.h.secret: ") and "NOT_SET_HERE" in message


def test_dollar_dollar_brace_is_a_literal_and_bad_references_are_refused() -> None:
    assert expand_variables({"a": ["x $${HOME} y", "$5 and $HOME"]}, {}) == {"a": ["x ${HOME} y", "$5 and $HOME"]}
    with pytest.raises(ControlFileError, match=r"^a\[0\]: a variable is written"):
        expand_variables({"a": ["${1abc}"]}, {})
    with pytest.raises(ControlFileError, match=r"^a: a variable is written"):
        expand_variables({"a": "${unclosed"}, {})


def test_a_document_from_the_api_expands_no_variables() -> None:
    """The server's environment is not the sender's: a webhook URL must not read the server's secrets."""
    with pytest.raises(ControlFileError) as caught:
        load_control({"version": 1, "channels": {"h": {"webhook": "https://evil.example/${HOME}",
                                                       "secret": SECRET}}}, environment=None, source="api:apply")
    assert str(caught.value).startswith("channels.h.webhook: ${HOME} is not expanded")
    escaped = load_control({"version": 1, "budgets": [{"name": "b", "window": "day", "limit": 1,
                                                       "notify": []}],
                            "channels": {"h": {**HOOK, "secret": "$${literal}-0123456789"}}},
                           environment=None, source="api:apply")
    assert escaped.channels["h"]["secret"] == "${literal}-0123456789"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("${}Ab_ 1"), max_size=30))
def test_escaping_then_expanding_gives_the_value_back(text: str) -> None:
    assert expand_variables(escape_variables({"k": [text]}), {}) == {"k": [text]}


def test_file_document_sends_filled_and_escaped_values() -> None:
    _, payload = file_document(EXAMPLE, environment="prod", variables={"COSTLINE_WEBHOOK_SECRET": "a${b}-0123456789"})
    assert payload["channels"]["ops-hook"]["secret"] == "a$${b}-0123456789"
    again = load_control(payload, environment="prod", source="api:apply")
    assert again.channels["ops-hook"]["secret"] == "a${b}-0123456789"


# environments -----------------------------------------------------------------------------------------------------
BUDGET = {"name": "app", "window": "day", "limit": {"dev": 10, "prod": 50}, "max_requests": {"dev": 100, "prod": 900}}


def test_an_environment_takes_its_values_or_the_default() -> None:
    assert load({"budgets": [BUDGET]}, "prod").budgets[0].max_requests == 900
    doc = load({"budgets": [{"name": "app", "window": "day", "limit": {"prod": 50, "default": 5}}]}, "staging")
    assert doc.budgets[0].limit == Decimal(5)
    message = error_of({"budgets": [{**BUDGET, "max_requests": {"dev": 1, "default": 2}}]}, "staging")
    assert message.startswith("budgets[0].limit: no value for environment 'staging' and no default")
    assert "dev, prod" in message


def test_without_an_environment_each_environment_gets_its_own_budget() -> None:
    doc = load({"budgets": [{**BUDGET, "id": "app-id", "scope": {"model": "gpt-4o"}}]})
    assert [(b.id, b.name, b.limit, b.max_requests, dict(b.scope)) for b in doc.budgets] == [
        ("app-id@dev", "app@dev", Decimal(10), 100, {"model": "gpt-4o", "environment": "dev"}),
        ("app-id@prod", "app@prod", Decimal(50), 900, {"model": "gpt-4o", "environment": "prod"}),
    ]
    rules = load({"alerts": [{"name": "cost", "kind": "window_cost", "window": "day",
                              "threshold": {"dev": 5, "prod": 50}, "scope": {"model": "gpt-4o"}}]}).alerts
    assert [(r.id, r.threshold, dict(r.filters)) for r in rules] == [
        ("cost@dev", Decimal(5), {"model": "gpt-4o", "environment": "dev"}),
        ("cost@prod", Decimal(50), {"model": "gpt-4o", "environment": "prod"}),
    ]


def test_expansion_errors_name_the_field() -> None:
    message = error_of({"budgets": [{**BUDGET, "limit": {"dev": 1, "default": 2}}]})
    assert message.startswith("budgets[0].limit.default: ") and "--environment" in message
    message = error_of({"budgets": [{**BUDGET, "max_requests": {"dev": 1}}]})
    assert message.startswith("budgets[0].max_requests: no value for environment 'prod'")
    message = error_of({"budgets": [{**BUDGET, "scope": {"environment": "prod"}}]})
    assert message.startswith("budgets[0].scope.environment: ")
    message = error_of({"budgets": [{**BUDGET, "limit": {"no spaces": 1}}]})
    assert message.startswith("budgets[0].limit.no spaces: an environment name")
    assert error_of({"budgets": [BUDGET]}, "bad env").startswith("environment: ")
    message = error_of({"budgets": [{**BUDGET, "id": "b" * 125}]})
    assert message.startswith("budgets[0].id: ") and "longer than 128 characters" in message


# tiers ------------------------------------------------------------------------------------------------------------
def test_tier_templates_become_per_user_budgets() -> None:
    doc = load({"channels": {"hook": HOOK}, "tiers": {"gold": [
        {"window": "week", "limit": 20, "thresholds": [90], "notify": ["hook"]},
        {"window": "7d", "max_requests": 1000},
        {"id": "gold-special", "name": "Gold monthly", "window": "month", "limit": 60},
    ]}})
    assert [(b.id, b.name, b.tier, b.per) for b in doc.budgets] == [
        ("tier-gold-week", "tier-gold-week", "gold", "user"),
        ("tier-gold-7d-requests", "tier-gold-7d-requests", "gold", "user"),
        ("gold-special", "Gold monthly", "gold", "user"),
    ]
    assert doc.budgets[0].thresholds == (90,) and doc.budgets[0].notify == ("hook",)
    expanded = load({"tiers": {"free": [{"window": "day", "limit": {"dev": 1, "prod": "0.50"}}]}})
    assert [(b.id, b.limit, dict(b.scope)) for b in expanded.budgets] == [
        ("tier-free-day@dev", Decimal(1), {"environment": "dev"}),
        ("tier-free-day@prod", Decimal("0.50"), {"environment": "prod"}),
    ]


def test_tier_errors_name_the_entry() -> None:
    assert error_of({"tiers": {"free": [{"window": "day", "limit": 1, "tier": "x"}]}}) \
        .startswith("tiers.free[0].tier: ")
    assert error_of({"tiers": {"free": [{"window": "day", "limit": 1}, {"window": "fortnight", "limit": 1}]}}) \
        .startswith("tiers.free[1].window: unknown window 'fortnight'")
    message = error_of({"tiers": {"free": [{"window": "day", "limit": 1}, {"window": "day", "limit": 2}]}})
    assert message.startswith("tiers.free[1].id: duplicate budget id 'tier-free-day' (also tiers.free[0])")
    assert error_of({"tiers": {"free": {"window": "day"}}}).startswith("tiers.free: expected a list")
    assert error_of({"tiers": {"free": ["day"]}}).startswith("tiers.free[0]: expected a budget template")
    assert error_of({"tiers": {"a b": []}}).startswith("tiers.a b: a tier name")
    assert error_of({"tiers": {"free": [{"window": "day", "limit": 1, "per": "session"}]}}) \
        .startswith("tiers.free[0].per: a tier budget is per user")


# references and duplicates ----------------------------------------------------------------------------------------
def test_references_must_name_objects_of_the_file() -> None:
    message = error_of({"channels": {"hook": HOOK},
                        "budgets": [{"name": "b", "window": "day", "limit": 1, "notify": ["hook", "pager"]}]})
    assert message.startswith("budgets[0].notify[1]: no channel 'pager' in this file (its channels: hook)")
    message = error_of({"alerts": [{"name": "a", "kind": "unpriced"}, {"name": "b", "kind": "unpriced",
                                                                      "channels": ["slack"]}]})
    assert message.startswith("alerts[1].channels[0]: no channel 'slack' in this file (its channels: none)")
    message = error_of({"budgets": [{"name": "b", "window": "month", "limit": 1}],
                        "alerts": [{"name": "f", "kind": "forecast", "budget": "monthly"}]})
    assert message.startswith("alerts[0].budget: no budget 'monthly' in this file (its budgets: b)")


def test_a_rule_about_a_per_environment_budget_follows_its_environments() -> None:
    budget = {"name": "m", "window": "month", "limit": {"dev": 1, "prod": 2}}
    message = error_of({"budgets": [budget], "alerts": [{"name": "f", "kind": "forecast", "budget": "m",
                                                         "severity": {"dev": "info"}}]})
    assert message.startswith("alerts[0].severity: no value for environment 'prod'")
    message = error_of({"budgets": [{**budget, "limit": {"dev": 1}}],
                        "alerts": [{"name": "f", "kind": "forecast", "budget": "m",
                                    "cooldown_minutes": {"dev": 5, "prod": 6}}]})
    assert message.startswith("alerts[0].budget: budget 'm' has no version for environment 'prod'")


def test_duplicate_ids_are_errors() -> None:
    message = error_of({"budgets": [{"name": "a", "window": "day", "limit": 1},
                                    {"id": "a", "name": "other", "window": "week", "limit": 1}]})
    assert message.startswith("budgets[1].id: duplicate budget id 'a' (also budgets[0])")
    message = error_of({"tiers": {"free": [{"window": "day", "limit": 1}]},
                        "budgets": [{"name": "tier-free-day", "window": "day", "limit": 1}]})
    assert message.startswith("budgets[0].id: duplicate budget id 'tier-free-day' (also tiers.free[0])")
    message = error_of({"alerts": [{"name": "a", "kind": "unpriced"}, {"name": "a", "kind": "unpriced"}]})
    assert message.startswith("alerts[1].id: duplicate alert rule id 'a'")


# shape errors -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("doc", "path"), [
    ({"budget": []}, "budget: unknown section"),
    ({"version": 2}, "version: expected 1"),
    ({"version": True}, "version: expected 1"),
    ({"version": None}, "version: expected 1"),
    ({"channels": []}, "channels: expected a mapping"),
    ({"channels": {"a b": HOOK}}, "channels.a b: a channel name"),
    ({"channels": {"h": "https://x"}}, "channels.h: must be a mapping"),
    ({"channels": {"h": {"webhook": "https://hooks.example.com"}}}, "channels.h.secret: a webhook needs a secret"),
    ({"channels": {"h": {"webhook": "ftp://x", "secret": SECRET}}}, "channels.h.webhook: "),
    ({"channels": {"h": {"apprise": "nope://"}}}, "channels.h.apprise: "),
    ({"budgets": {"name": "x"}}, "budgets: expected a list"),
    ({"budgets": ["x"]}, "budgets[0]: expected a budget"),
    ({"budgets": [{"window": "day", "limit": 1}]}, "budgets[0].name: "),
    ({"budgets": [{"name": "x", "window": "day", "limit": "-1"}]}, "budgets[0].limit: "),
    ({"budgets": [{"name": "x", "window": "day", "limit": "lots"}]}, "budgets[0].limit: "),
    ({"budgets": [{"name": "x", "window": "day"}]}, "budgets[0].limit: a budget needs"),
    ({"budgets": [{"name": "x", "window": "day", "limit": 1, "timezone": "Mars/Base"}]}, "budgets[0].timezone: "),
    ({"budgets": [{"name": "x", "window": "day", "limit": 1, "scope": {"colour": "red"}}]}, "budgets[0].scope.colour"),
    ({"budgets": [{"name": "x", "window": "day", "limit": 1, "source": "me"}]}, "budgets[0].source: set by costline"),
    ({"budgets": [{"name": "x", "window": "day", "limit": 1, "limt": 2}]}, "budgets[0].limt: unknown field"),
    ({"alerts": "x"}, "alerts: expected a list"),
    ({"alerts": [1]}, "alerts[0]: expected an alert rule"),
    ({"alerts": [{"name": "a", "kind": "window_cost", "window": "day"}]}, "alerts[0].threshold: "),
    ({"alerts": [{"name": "a", "kind": "sometimes"}]}, "alerts[0].kind: unknown kind"),
    ({"alerts": [{"name": "a", "kind": "spike", "threshold": 1}]}, "alerts[0].minutes: "),
])
def test_shape_errors_name_the_field(doc: dict[str, Any], path: str) -> None:
    assert error_of(doc).startswith(path)


def test_a_document_that_is_not_a_mapping() -> None:
    with pytest.raises(ControlFileError, match=r"^document: expected a mapping"):
        load_control(["version", 1], environment=None, source="x")


# the file ---------------------------------------------------------------------------------------------------------
def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "costline.yaml"
    path.write_text(text, "utf-8")
    return path


def test_a_field_error_says_where_it_is_in_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 1\nbudgets:\n  - name: a\n    window: day\n    limit: -3\n")
    with pytest.raises(ControlFileError) as caught:
        read_control_file(path, environment=None)
    message = str(caught.value)
    assert message.startswith("budgets[0].limit: ") and message.endswith(f"({path}:5:5)")


def test_yaml_syntax_errors_give_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 1\nbudgets:\n  - name: a\n    window: [day\n")
    with pytest.raises(ControlFileError) as caught:
        read_control_file(path, environment=None)
    assert str(caught.value).startswith(f"{path}:5:1: expected ',' or ']'")
    assert "flow sequence started at 4:13" in str(caught.value)
    path = write(tmp_path, "version: 1\nbudgets: x: y\n")
    with pytest.raises(ControlFileError, match=r":2:11: mapping values are not allowed here"):
        read_control_file(path, environment=None)


def test_a_key_given_twice_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 1\nbudgets:\n  - {name: a, window: day, limit: 1, limit: 2}\n")
    with pytest.raises(ControlFileError, match=r"costline.yaml:3:38: duplicate key 'limit'$"):
        read_control_file(path, environment=None)


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ControlFileError, match=r"nope.yaml: no such file"):
        read_control_file(tmp_path / "nope.yaml", environment=None)
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"version: 1\n# caf\xe9\n")
    with pytest.raises(ControlFileError, match="not UTF-8"):
        read_control_file(path, environment=None)
    big = write(tmp_path, "#" * (1024 * 1024 + 1))
    with pytest.raises(ControlFileError, match="larger than 1024 KiB"):
        read_control_file(big, environment=None)
    with pytest.raises(ControlFileError, match=r"^document: expected a mapping"):
        read_control_file(write(tmp_path, ""), environment=None)


def test_yaml_aliases_are_followed_but_bounded(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 1\nchannels: {hook: {webhook: 'https://h.example.com', secret: '" + SECRET +
                 "'}}\nx: &n [hook]\nbudgets:\n  - {name: a, window: day, limit: 1, notify: *n}\n")
    with pytest.raises(ControlFileError, match=r"^x: unknown section"):
        read_control_file(path, environment=None)
    path = write(tmp_path, "version: 1\nchannels: {hook: {webhook: 'https://h.example.com', secret: '" + SECRET +
                 "'}}\nbudgets:\n  - {name: a, window: day, limit: 1, notify: &n [hook]}\n"
                 "  - {name: b, window: day, limit: 1, notify: *n}\n")
    assert read_control_file(path, environment=None).budgets[1].notify == ("hook",)
    laughs = ["version: 1", "channels:", "  a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    laughs += [f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 8)]
    with pytest.raises(ControlFileError, match="more than 100,000 values"):
        read_control_file(write(tmp_path, "\n".join(laughs) + "\n"), environment=None)
