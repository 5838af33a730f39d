"""The control file: channels, budgets, tier templates and alert rules in one YAML document (docs/budgets.md).

An operator keeps a team's budgets and alerts in version control and applies them with ``costline apply`` or
``COSTLINE_CONTROL_FILE``; ``POST /v1/control/apply`` takes the same document as JSON. This module turns that
document into validated ``Budget``/``AlertRule`` records and channel specs, reusing ``parse_budget``,
``parse_rule`` and ``parse_channel`` so that every object means exactly what it means over the API, and adds
what only a file has:

- ``${VAR}`` references in string values, filled from the environment of whoever reads the file (``$${`` is a
  literal ``${``); a variable that is not set is an error, never an empty string. A document sent to the API is
  not expanded: the server's environment is not the sender's, and expanding it would let an API key read the
  server's secrets through a webhook URL.
- per-environment values: any field of a budget or rule except ``scope``/``filters`` may be a mapping of
  environment name to value. With an environment chosen, its value (or ``default``) is taken; without one,
  the budget or rule becomes one per environment, scoped to it, with ``@<env>`` appended to its id and name.
- tiers: budget templates applied per user carrying the tier, ids ``tier-<tier>-<window>[-requests]``.
- references checked within the file: channels named by ``notify``/``channels``, budgets named by rules.

Errors are ``ControlFileError`` whose message starts with the path of the bad field (``budgets[1].limit: ...``);
``read_control_file`` adds the file's line and column.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Final, TypeVar

import yaml

from costline.control.notify import parse_channel
from costline.core.alerts import AlertRule, parse_rule
from costline.core.budgets import Budget, parse_budget, parse_window
from costline.errors import CostlineError
from costline.store.base import ControlObject

T = TypeVar("T")
VERSION: Final = 1
SECTIONS: Final = ("version", "channels", "tiers", "budgets", "alerts")
MAX_FILE_BYTES: Final = 1024 * 1024
MAX_VALUES: Final = 100_000  # after YAML aliases are expanded (a "billion laughs" file stops here)
DEFAULT_KEY: Final = "default"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$")
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_BUDGET_MAPPINGS: Final = ("scope",)
_RULE_MAPPINGS: Final = ("filters", "scope")


class ControlFileError(CostlineError, ValueError):
    """A control document that cannot be applied; the message starts with the path of the bad field."""


@dataclass(frozen=True, slots=True)
class ControlDocument:
    channels: dict[str, Mapping[str, Any]]
    budgets: list[Budget]
    alerts: list[AlertRule]
    #: where the objects come from (``file:<path>``, ``api:apply``); applying replaces what it defined before
    source: str = "api:apply"


def file_source(path: Path) -> str:
    """The source of the objects a file defines: the same file read again replaces them."""
    return f"file:{path.resolve()}"


# variables ----------------------------------------------------------------------------------------------------
def expand_variables(raw: object, variables: Mapping[str, str] | None, path: str = "") -> Any:
    """``raw`` with ``${VAR}`` in every string value replaced from ``variables`` and ``$${`` made ``${``.

    ``variables`` None refuses every reference (a document from the API). Mapping keys are not expanded.
    """
    count = [0]

    def walk(value: object, where: str) -> Any:
        count[0] += 1
        if count[0] > MAX_VALUES:
            raise ControlFileError(f"{where or 'document'}: more than {MAX_VALUES:,} values (after YAML aliases "
                                   "are expanded); split the file")
        if isinstance(value, str):
            return _expand(value, variables, where or "document")
        if isinstance(value, Mapping):
            return {k: walk(v, _join(where, k)) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [walk(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return value

    return walk(raw, path)


def _expand(text: str, variables: Mapping[str, str] | None, path: str) -> str:
    if "$" not in text:
        return text
    out: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith("$${", i):
            out.append("${")
            i += 3
        elif text.startswith("${", i):
            match = _VARIABLE.match(text, i)
            if match is None:
                raise ControlFileError(f"{path}: a variable is written ${{NAME}} (letters, digits, _); write $${{ "
                                       "for a literal ${")
            name = match.group(1)
            if variables is None:
                raise ControlFileError(f"{path}: ${{{name}}} is not expanded in a document sent to the API (the "
                                       "server's environment is not yours); put the value itself, or use "
                                       "`costline apply`, which fills variables from its own environment")
            if name not in variables:
                raise ControlFileError(f"{path}: the environment variable {name} is not set (the file refers to "
                                       f"${{{name}}}); set it, or write $${{ for a literal ${{")
            out.append(variables[name])
            i = match.end()
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def escape_variables(raw: object) -> Any:
    """``raw`` with every ``${`` in string values written ``$${``: expanding it gives ``raw`` back."""
    if isinstance(raw, str):
        return raw.replace("${", "$${")
    if isinstance(raw, Mapping):
        return {k: escape_variables(v) for k, v in raw.items()}
    if isinstance(raw, list | tuple):
        return [escape_variables(v) for v in raw]
    return raw


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


# per-environment values -------------------------------------------------------------------------------------------
def _per_environment(raw: Mapping[str, Any], path: str, mappings: Sequence[str], environment: str | None,
                     extra: Sequence[str] = ()) -> list[tuple[dict[str, Any], str | None]]:
    """The entry's versions: with ``environment``, one with that environment's values; without, one per
    environment its per-environment fields (and ``extra``) name, or the entry itself when there are none."""
    varying = {k: v for k, v in raw.items() if k not in mappings and isinstance(v, Mapping)}
    for key, values in varying.items():
        for env in values:
            if not isinstance(env, str) or not (env == DEFAULT_KEY or _NAME.match(env)):
                raise ControlFileError(f"{path}.{key}.{env}: an environment name uses letters, digits and _ . : - "
                                       "(at most 64)")
    if environment is not None:
        chosen = dict(raw)
        for key, values in varying.items():
            if environment in values:
                chosen[key] = values[environment]
            elif DEFAULT_KEY in values:
                chosen[key] = values[DEFAULT_KEY]
            else:
                raise ControlFileError(f"{path}.{key}: no value for environment {environment!r} and no default "
                                       f"(environments here: {', '.join(map(str, values))})")
        return [(chosen, None)]
    envs = list(dict.fromkeys([*(e for values in varying.values() for e in values), *extra]))
    if not envs:
        return [(dict(raw), None)]
    for key, values in varying.items():
        if DEFAULT_KEY in values:
            raise ControlFileError(f"{path}.{key}.{DEFAULT_KEY}: a default is a fallback for one chosen environment; "
                                   "pass --environment (or set COSTLINE_ENVIRONMENT) to pick one, or give every "
                                   "environment its value")
        missing = [e for e in envs if e not in values]
        if missing:
            raise ControlFileError(f"{path}.{key}: no value for environment {missing[0]!r} (environments here: "
                                   f"{', '.join(envs)})")
    versions = []
    for env in envs:
        entry = {**raw, **{key: values[env] for key, values in varying.items()}}
        scope_key = next((k for k in mappings if k in raw), mappings[0])
        scope = entry.get(scope_key)
        if scope is None:
            entry[scope_key] = {"environment": env}
        elif isinstance(scope, Mapping):
            if "environment" in scope:
                raise ControlFileError(f"{path}.{scope_key}.environment: this entry has per-environment values, so "
                                       "each version is scoped to its environment; remove this key")
            entry[scope_key] = {**scope, "environment": env}
        versions.append((entry, env))
    return versions


Record = TypeVar("Record", Budget, AlertRule)


def _version(parsed: Record, env: str | None, source: str, path: str) -> Record:
    """A parsed budget or rule with the file's source and, for one environment's version, ``@<env>`` appended
    to its id and name."""
    if env is None:
        return replace(parsed, source=source)
    object_id = f"{parsed.id}@{env}"
    if len(object_id) > 128:
        raise ControlFileError(f"{path}.id: {object_id!r} is longer than 128 characters; give a shorter id")
    return replace(parsed, id=object_id, name=f"{parsed.name}@{env}", source=source)


# the document -------------------------------------------------------------------------------------------------------
def load_control(raw: object, *, environment: str | None, source: str,
                 variables: Mapping[str, str] | None = None) -> ControlDocument:
    """Validate a control document (the YAML file's content, or the same as JSON) and build its objects.

    Args:
        raw: the parsed document.
        environment: whose per-environment values to take; None makes one budget/rule per environment.
        source: recorded on every object (``file:<path>``, ``api:apply``).
        variables: what ``${VAR}`` references are filled from; None (a document from the API) refuses them.
    """
    if not isinstance(raw, Mapping):
        raise ControlFileError("document: expected a mapping with version, channels, tiers, budgets and alerts")
    unknown = [str(k) for k in raw if k not in SECTIONS]
    if unknown:
        raise ControlFileError(f"{unknown[0]}: unknown section; a control file has {', '.join(SECTIONS)}")
    version = raw.get("version")
    if version != VERSION or isinstance(version, bool):
        raise ControlFileError(f"version: expected {VERSION} (the control file format's version), got {version!r}")
    if environment is not None and not _NAME.match(environment):
        raise ControlFileError(f"environment: {environment!r} is not an environment name (letters, digits, _ . : -)")
    doc = expand_variables(raw, variables)
    channels = _channels(doc.get("channels"))
    budgets, versions = _budgets(doc, environment, source)
    alerts = _alerts(doc.get("alerts"), environment, source, versions)
    _check_references(channels, budgets, alerts)
    return ControlDocument(channels, [b for b, _ in budgets], [r for r, _ in alerts], source)


def _section(raw: object, path: str, kind: type, what: str) -> Any:
    if raw is None:
        return kind()
    if not isinstance(raw, kind):
        raise ControlFileError(f"{path}: expected {what}")
    return raw


def _channels(raw: object) -> dict[str, Mapping[str, Any]]:
    found: dict[str, Mapping[str, Any]] = {}
    for name, spec in _section(raw, "channels", dict, "a mapping of channel name to {apprise: URL} or "
                                                      "{webhook: URL, secret: ...}").items():
        path = f"channels.{name}"
        if not isinstance(name, str) or not _NAME.match(name):
            raise ControlFileError(f"{path}: a channel name uses letters, digits and _ . : - (at most 64)")
        try:
            parse_channel(name, spec, path)
        except CostlineError as exc:
            raise ControlFileError(str(exc)) from None
        found[name] = dict(spec)
    return found


def _parsed(parse: Callable[..., T], *args: Any) -> T:
    try:
        return parse(*args)
    except ControlFileError:
        raise
    except CostlineError as exc:
        raise ControlFileError(str(exc)) from None


def _own_fields(entry: Mapping[str, Any], path: str, fields: Sequence[str]) -> None:
    for key in fields:
        if key in entry:
            why = "the file's source" if key == "source" else "the tier it is listed under"
            raise ControlFileError(f"{path}.{key}: set by costline from {why}; remove it")


Versions = dict[str, dict[str, str]]  # a per-environment budget's id in the file → {environment: its id}


def _budgets(doc: Mapping[str, Any], environment: str | None,
             source: str) -> tuple[list[tuple[Budget, str]], Versions]:
    """Tier templates, then budgets: each parsed with the path of its entry."""
    found: list[tuple[Budget, str]] = []
    versions: Versions = {}
    tiers = _section(doc.get("tiers"), "tiers", dict, "a mapping of tier name to a list of budget templates")
    for tier, entries in tiers.items():
        if not isinstance(tier, str) or not _NAME.match(tier):
            raise ControlFileError(f"tiers.{tier}: a tier name uses letters, digits and _ . : - (at most 64)")
        for i, raw in enumerate(_section(entries, f"tiers.{tier}", list, "a list of budget templates such as "
                                                                           "{window: day, limit: 0.50}")):
            path = f"tiers.{tier}[{i}]"
            if not isinstance(raw, Mapping):
                raise ControlFileError(f"{path}: expected a budget template such as {{window: day, limit: 0.50}}")
            _own_fields(raw, path, ("tier", "source"))
            for entry, env in _per_environment(raw, path, _BUDGET_MAPPINGS, environment):
                entry.setdefault("id", _tier_id(tier, entry, path))
                entry.setdefault("name", entry["id"])
                entry["tier"] = tier
                parsed = _parsed(parse_budget, entry, path)
                found.append((_version(parsed, env, source, path), path))
                if env is not None:
                    versions.setdefault(parsed.id, {})[env] = found[-1][0].id
    for i, raw in enumerate(_section(doc.get("budgets"), "budgets", list, "a list of budgets")):
        path = f"budgets[{i}]"
        if not isinstance(raw, Mapping):
            raise ControlFileError(f"{path}: expected a budget such as {{name: daily, window: day, limit: 10}}")
        _own_fields(raw, path, ("source",))
        for entry, env in _per_environment(raw, path, _BUDGET_MAPPINGS, environment):
            parsed = _parsed(parse_budget, entry, path)
            found.append((_version(parsed, env, source, path), path))
            if env is not None:
                versions.setdefault(parsed.id, {})[env] = found[-1][0].id
    _unique([(b.id, p) for b, p in found], "budget")
    return found, versions


def _tier_id(tier: str, entry: Mapping[str, Any], path: str) -> str:
    window = _parsed(parse_window, entry.get("window"), entry.get("timezone"), path)
    quota_only = entry.get("limit") is None and (entry.get("max_requests", entry.get("requests")) is not None)
    return f"tier-{tier}-{window.label}" + ("-requests" if quota_only else "")


def _alerts(raw: object, environment: str | None, source: str,
            versions: Versions) -> list[tuple[AlertRule, str]]:
    found: list[tuple[AlertRule, str]] = []
    for i, rule in enumerate(_section(raw, "alerts", list, "a list of alert rules")):
        path = f"alerts[{i}]"
        if not isinstance(rule, Mapping):
            raise ControlFileError(f"{path}: expected an alert rule such as {{name: daily, kind: window_cost, "
                                   "window: day, threshold: 50}")
        _own_fields(rule, path, ("source",))
        # a rule about a budget defined per environment is made per environment with it
        target = rule.get("budget")
        extra = list(versions[target]) if isinstance(target, str) and target in versions else []
        for entry, env in _per_environment(rule, path, _RULE_MAPPINGS, environment, extra):
            ref = entry.get("budget")
            if env is not None and isinstance(ref, str) and ref in versions:
                if env not in versions[ref]:
                    raise ControlFileError(f"{path}.budget: budget {ref!r} has no version for environment {env!r} "
                                           f"(it has {', '.join(versions[ref])})")
                entry["budget"] = versions[ref][env]
            found.append((_version(_parsed(parse_rule, entry, path), env, source, path), path))
    _unique([(r.id, p) for r, p in found], "alert rule")
    return found


def _unique(ids: Sequence[tuple[str, str]], what: str) -> None:
    seen: dict[str, str] = {}
    for object_id, path in ids:
        if object_id in seen:
            raise ControlFileError(f"{path}.id: duplicate {what} id {object_id!r} (also {seen[object_id]}); give "
                                   "one of them its own id")
        seen[object_id] = path


def _check_references(channels: Mapping[str, Any], budgets: Sequence[tuple[Budget, str]],
                      alerts: Sequence[tuple[AlertRule, str]]) -> None:
    defined = ", ".join(channels) or "none"
    for budget, path in budgets:
        _channel_refs(budget.notify, path, "notify", channels, defined)
    budget_ids = {b.id for b, _ in budgets}
    for rule, path in alerts:
        _channel_refs(rule.channels, path, "channels", channels, defined)
        if rule.budget is not None and rule.kind in ("forecast", "budget") and rule.budget not in budget_ids:
            known = ", ".join(sorted(budget_ids)) or "none"
            raise ControlFileError(f"{path}.budget: no budget {rule.budget!r} in this file (its budgets: {known}); a "
                                   "rule in the file names a budget of the same file")


def _channel_refs(names: Sequence[str], path: str, key: str, channels: Mapping[str, Any], defined: str) -> None:
    for i, name in enumerate(names):
        if name not in channels:
            raise ControlFileError(f"{path}.{key}[{i}]: no channel {name!r} in this file (its channels: {defined}); "
                                   "budgets and rules in the file name channels of the same file")


def control_objects(doc: ControlDocument, project_id: str, now: datetime) -> list[ControlObject]:
    """The store objects for ``doc`` in ``project_id``: channels, budgets, alert rules, all of ``doc.source``."""
    objects = [ControlObject(project_id, "channel", name, dict(spec), doc.source, now, now)
               for name, spec in doc.channels.items()]
    for budget in doc.budgets:
        objects.append(ControlObject(project_id, "budget", budget.id, {**budget.to_json(), "source": doc.source},
                                     doc.source, now, now))
    for rule in doc.alerts:
        objects.append(ControlObject(project_id, "alert", rule.id, {**rule.to_json(), "source": doc.source},
                                     doc.source, now, now))
    return objects


# the file -------------------------------------------------------------------------------------------------------------
class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (PyYAML keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                again = key in seen
            except TypeError:
                raise yaml.constructor.ConstructorError(None, None, "a key must be a plain value",
                                                        key_node.start_mark) from None
            if again:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_control_file(path: Path, *, environment: str | None,
                      variables: Mapping[str, str] | None = None) -> ControlDocument:
    """Read and validate a control file; ``${VAR}`` comes from ``variables`` (default: the process environment).

    Errors name the field and where it is in the file: ``budgets[1].limit: ... (costline.yaml:12:12)``; a
    YAML syntax error is ``costline.yaml:3:5: ...``.
    """
    return file_document(path, environment=environment, variables=variables)[0]


def file_document(path: Path, *, environment: str | None,
                  variables: Mapping[str, str] | None = None) -> tuple[ControlDocument, dict[str, Any]]:
    """``read_control_file``, plus the document to send to ``POST /v1/control/apply``: the file's content
    with its variables filled and every literal ``${`` escaped, so the server reads the same values."""
    raw, marks = parse_yaml(path)
    values = os.environ if variables is None else variables
    try:
        document = load_control(raw, environment=environment, source=file_source(path), variables=values)
    except ControlFileError as exc:
        raise ControlFileError(located(str(exc), marks, path)) from None
    return document, escape_variables(expand_variables(raw, values))


def parse_yaml(path: Path) -> tuple[Any, dict[str, yaml.Mark]]:
    """The file's content and where each field path starts in it."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ControlFileError(f"{path}: no such file") from None
    except OSError as exc:
        raise ControlFileError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if len(data) > MAX_FILE_BYTES:
        raise ControlFileError(f"{path}: larger than {MAX_FILE_BYTES // 1024} KiB; is this the control file?")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ControlFileError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        raw = None if node is None else loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        context = ""
        if exc.context and exc.context_mark is not None and exc.context_mark is not mark:
            context = f" ({exc.context} started at {exc.context_mark.line + 1}:{exc.context_mark.column + 1})"
        raise ControlFileError(f"{where}: {exc.problem or exc.context or 'not valid YAML'}{context}") from None
    except yaml.YAMLError as exc:
        raise ControlFileError(f"{path}: not valid YAML ({exc})") from None
    finally:
        loader.dispose()
    return raw, {} if node is None else _marks(node)


def _marks(root: yaml.Node) -> dict[str, yaml.Mark]:
    found: dict[str, yaml.Mark] = {}
    visited: set[int] = set()
    stack: list[tuple[yaml.Node, str]] = [(root, "")]
    while stack:
        node, path = stack.pop()
        found.setdefault(path, node.start_mark)
        if id(node) in visited:  # an alias: its target was walked already
            continue
        visited.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode):
                    found.setdefault(_join(path, key.value), key.start_mark)
                    stack.append((value, _join(path, key.value)))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((value, f"{path}[{i}]") for i, value in enumerate(node.value))
    return found


def located(message: str, marks: Mapping[str, yaml.Mark], path: Path) -> str:
    """``message`` (``<field path>: ...``) with the file position of the nearest field it names."""
    field, sep, _ = message.partition(": ")
    if not sep:
        return message
    while field and field not in marks:
        field = field[:max(field.rfind("."), field.rfind("["), 0)]
    mark = marks.get(field)
    return message if mark is None or not field else f"{message} ({path}:{mark.line + 1}:{mark.column + 1})"
