# Copyright: bulkmail.infra developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check dashboard files before Grafana sees them.

Grafana's file provisioner logs and skips a dashboard it cannot read, so a broken file shows up
as a dashboard that is simply missing. These checks catch that on the controller, with an error
that names the file and the field: the JSON itself, title, uid, schemaVersion, and each panel's
type, gridPos and targets (and the data sources the targets use).
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

UID_RE = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
GRID_COLUMNS = 24
# Panels that show no query results, so need no targets.
PANELS_WITHOUT_TARGETS = frozenset({"row", "text", "news", "dashlist", "alertlist", "welcome"})
# Data sources Grafana always has, and references through dashboard variables.
BUILTIN_DATASOURCES = frozenset({"grafana", "-- Grafana --", "-- Mixed --", "-- Dashboard --"})


class DashboardError(ValueError):
    """A dashboard Grafana would skip or show wrongly; the message names the file and field."""


@dataclass(frozen=True)
class DashboardSummary:
    source: str
    title: str
    uid: str
    schema_version: int
    panels: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.source,
            "title": self.title,
            "uid": self.uid,
            "schemaVersion": self.schema_version,
            "panels": self.panels,
        }


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_dashboard(text: str, source: str) -> dict[str, Any]:
    """The dashboard object in a JSON text."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DashboardError(
            f"{source}: not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    if not isinstance(document, dict):
        raise DashboardError(f"{source}: the top level must be a JSON object (the dashboard)")
    return document


class _Checker:
    def __init__(self, source: str, datasource_uids: Collection[str] | None) -> None:
        self.source = source
        self.datasource_uids = datasource_uids
        self.panel_ids: dict[int, str] = {}
        self.count = 0

    def fail(self, path: str, problem: str) -> DashboardError:
        return DashboardError(f"{self.source}: {path}: {problem}")

    def datasource(self, value: Any, path: str) -> None:
        if value is None or self.datasource_uids is None:
            return
        if isinstance(value, str):
            uid = value
        elif isinstance(value, Mapping):
            uid = value.get("uid")
            if uid is None:
                return
            path = f"{path}.uid"
        else:
            raise self.fail(path, "must be an object {type, uid} or null")
        if not isinstance(uid, str):
            raise self.fail(path, f"{uid!r} must be a string")
        if uid.startswith("$") or uid in BUILTIN_DATASOURCES or uid in self.datasource_uids:
            return
        known = ", ".join(sorted(self.datasource_uids)) or "none"
        raise self.fail(path, f"{uid!r} is not a provisioned data source (known: {known})")

    def grid_pos(self, panel: Mapping[str, Any], path: str) -> None:
        grid = panel.get("gridPos")
        if not isinstance(grid, Mapping):
            raise self.fail(f"{path}.gridPos", "missing; each panel needs {h, w, x, y}")
        for key in ("h", "w", "x", "y"):
            value = grid.get(key)
            if not _is_int(value) or value < 0:
                raise self.fail(f"{path}.gridPos.{key}", f"{value!r} must be an integer >= 0")
        if not 1 <= grid["w"] <= GRID_COLUMNS:
            raise self.fail(f"{path}.gridPos.w", f"{grid['w']} must be from 1 to {GRID_COLUMNS}")
        if grid["x"] + grid["w"] > GRID_COLUMNS:
            raise self.fail(
                f"{path}.gridPos",
                f"x {grid['x']} + w {grid['w']} runs past the {GRID_COLUMNS}-column grid",
            )
        if panel.get("type") != "row" and grid["h"] < 1:
            raise self.fail(f"{path}.gridPos.h", "must be at least 1")

    def targets(self, panel: Mapping[str, Any], path: str) -> None:
        targets = panel.get("targets")
        if panel["type"] in PANELS_WITHOUT_TARGETS and targets is None:
            return
        if not isinstance(targets, list) or not targets:
            raise self.fail(f"{path}.targets", "must be a non-empty list of queries")
        ref_ids: set[str] = set()
        for index, target in enumerate(targets):
            where = f"{path}.targets[{index}]"
            if not isinstance(target, Mapping):
                raise self.fail(where, "must be an object")
            ref_id = target.get("refId")
            if not isinstance(ref_id, str) or not ref_id:
                raise self.fail(f"{where}.refId", "must be a non-empty string (A, B, ...)")
            if ref_id in ref_ids:
                raise self.fail(f"{where}.refId", f"{ref_id!r} is used twice in this panel")
            ref_ids.add(ref_id)
            if "rawSql" in target and not (
                isinstance(target["rawSql"], str) and target["rawSql"].strip()
            ):
                raise self.fail(f"{where}.rawSql", "must be a non-empty SQL query")
            self.datasource(target.get("datasource"), f"{where}.datasource")

    def panel(self, panel: Any, path: str) -> None:
        if not isinstance(panel, Mapping):
            raise self.fail(path, "must be an object")
        kind = panel.get("type")
        if not isinstance(kind, str) or not kind:
            raise self.fail(f"{path}.type", "must name the panel type (timeseries, table, ...)")
        panel_id = panel.get("id")
        if panel_id is not None:
            if not _is_int(panel_id):
                raise self.fail(f"{path}.id", f"{panel_id!r} must be an integer")
            if panel_id in self.panel_ids:
                raise self.fail(f"{path}.id", f"{panel_id} is also {self.panel_ids[panel_id]}")
            self.panel_ids[panel_id] = path
        self.grid_pos(panel, path)
        self.datasource(panel.get("datasource"), f"{path}.datasource")
        self.targets(panel, path)
        self.count += 1
        # A collapsed row carries its panels inside it.
        nested = panel.get("panels")
        if kind == "row" and nested is not None:
            if not isinstance(nested, list):
                raise self.fail(f"{path}.panels", "must be a list")
            for index, child in enumerate(nested):
                self.panel(child, f"{path}.panels[{index}]")


def check_dashboard(
    document: Any, source: str, *, datasource_uids: Collection[str] | None = None
) -> DashboardSummary:
    """Check one parsed dashboard; ``datasource_uids`` (if given) are the only sources allowed."""
    if not isinstance(document, Mapping):
        raise DashboardError(f"{source}: the top level must be a JSON object (the dashboard)")
    if "dashboard" in document and "title" not in document:
        raise DashboardError(
            f'{source}: this is an API export ({{"dashboard": ...}}); '
            'provision the object under "dashboard" instead'
        )
    title = document.get("title")
    if not isinstance(title, str) or not title.strip():
        raise DashboardError(f"{source}: title: must be a non-empty string")
    uid = document.get("uid")
    if not isinstance(uid, str) or not UID_RE.match(uid):
        raise DashboardError(
            f"{source}: uid: {uid!r} must be 1 to 40 letters, digits, '-' or '_' "
            "(a fixed uid keeps links stable across provisioning runs)"
        )
    schema_version = document.get("schemaVersion")
    if not _is_int(schema_version) or schema_version < 1:
        raise DashboardError(f"{source}: schemaVersion: {schema_version!r} must be an integer >= 1")
    panels = document.get("panels")
    if not isinstance(panels, list) or not panels:
        raise DashboardError(f"{source}: panels: must be a non-empty list")
    checker = _Checker(source, datasource_uids)
    for index, panel in enumerate(panels):
        checker.panel(panel, f"panels[{index}]")
    return DashboardSummary(source, title, uid, schema_version, checker.count)


def check_dashboard_files(
    files: Iterable[tuple[str, str]] | Iterable[list[str]],
    *,
    datasource_uids: Collection[str] | None = None,
) -> list[DashboardSummary]:
    """Check ``(path, text)`` pairs as one provisioned folder: each file, and that no two files
    share a file name (they are copied into one directory) or a uid (Grafana keeps one)."""
    summaries: list[DashboardSummary] = []
    by_name: dict[str, str] = {}
    by_uid: dict[str, str] = {}
    for pair in files:
        path, text = pair
        name = posixpath.basename(path)
        if not name.endswith(".json"):
            raise DashboardError(f"{path}: dashboard files must end in .json")
        if name in by_name:
            raise DashboardError(f"{path}: same file name as {by_name[name]}; rename one")
        by_name[name] = path
        summary = check_dashboard(
            parse_dashboard(text, path), path, datasource_uids=datasource_uids
        )
        if summary.uid in by_uid:
            raise DashboardError(
                f"{path}: uid: {summary.uid!r} is also the uid of {by_uid[summary.uid]}"
            )
        by_uid[summary.uid] = path
        summaries.append(summary)
    return summaries
