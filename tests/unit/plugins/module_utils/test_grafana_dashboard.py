"""Dashboard checks: what Grafana would skip is caught with the file and field named."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.bulkmail.infra.plugins.module_utils.grafana.dashboard import (
    DashboardError,
    check_dashboard,
    check_dashboard_files,
    parse_dashboard,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.grafana.datasources import (
    POSTGRESQL_UID,
)

SHIPPED = Path(__file__).parents[4] / "roles" / "grafana" / "files" / "dashboards"
DS = {"type": "grafana-postgresql-datasource", "uid": POSTGRESQL_UID}


def dashboard(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "title": "bulkmail delivery",
        "uid": "bulkmail-delivery",
        "schemaVersion": 39,
        "panels": [
            {
                "id": 1,
                "type": "timeseries",
                "title": "Messages per status",
                "datasource": DS,
                "gridPos": {"h": 8, "w": 12, "x": 0, "y": 0},
                "targets": [{"refId": "A", "datasource": DS, "rawSql": "SELECT 1"}],
            }
        ],
    }
    doc.update(changes)
    return doc


def check(doc: Any, uids: list[str] | None = None) -> Any:
    return check_dashboard(doc, "delivery.json", datasource_uids=uids)


def panel_with(**changes: Any) -> dict[str, Any]:
    doc = dashboard()
    doc["panels"][0].update(changes)
    return doc


def test_valid_dashboard_is_summarised() -> None:
    summary = check(dashboard(), [POSTGRESQL_UID])
    assert (summary.title, summary.uid, summary.schema_version, summary.panels) == (
        "bulkmail delivery",
        "bulkmail-delivery",
        39,
        1,
    )


def test_broken_json_names_file_and_position() -> None:
    with pytest.raises(DashboardError, match=r"^delivery.json: not JSON: .* at line 1 column"):
        parse_dashboard('{"title": "x",}', "delivery.json")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"title": ""}, "delivery.json: title: must be a non-empty string"),
        ({"uid": "has spaces"}, "delivery.json: uid: 'has spaces' must be 1 to 40"),
        ({"uid": "x" * 41}, "delivery.json: uid: "),
        ({"schemaVersion": "39"}, "delivery.json: schemaVersion: '39' must be an integer"),
        ({"panels": []}, "delivery.json: panels: must be a non-empty list"),
    ],
)
def test_dashboard_fields_are_named(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(DashboardError, match="^" + message.replace("(", r"\(")):
        check(dashboard(**changes))


def test_api_export_wrapper_is_explained() -> None:
    with pytest.raises(DashboardError, match="API export"):
        check({"dashboard": dashboard(), "overwrite": True})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"type": ""}, r"panels\[0\]\.type: must name the panel type"),
        ({"gridPos": None}, r"panels\[0\]\.gridPos: missing"),
        ({"gridPos": {"h": 8, "w": 12, "x": 0}}, r"panels\[0\]\.gridPos\.y: None must be"),
        (
            {"gridPos": {"h": 8, "w": 30, "x": 0, "y": 0}},
            r"panels\[0\]\.gridPos\.w: 30 must be from 1 to 24",
        ),
        (
            {"gridPos": {"h": 8, "w": 12, "x": 16, "y": 0}},
            r"panels\[0\]\.gridPos: x 16 \+ w 12 runs past",
        ),
        ({"targets": []}, r"panels\[0\]\.targets: must be a non-empty list"),
        ({"targets": [{"rawSql": "SELECT 1"}]}, r"panels\[0\]\.targets\[0\]\.refId: must be"),
        (
            {"targets": [{"refId": "A", "rawSql": " "}]},
            r"panels\[0\]\.targets\[0\]\.rawSql: must be",
        ),
        (
            {"targets": [{"refId": "A"}, {"refId": "A"}]},
            r"panels\[0\]\.targets\[1\]\.refId: 'A' is used twice",
        ),
    ],
)
def test_panel_fields_are_named(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(DashboardError, match="^delivery.json: " + message):
        check(panel_with(**changes))


def test_text_and_row_panels_need_no_targets() -> None:
    doc = dashboard()
    doc["panels"].insert(
        0, {"type": "row", "title": "Delivery", "gridPos": {"h": 1, "w": 24, "x": 0, "y": 0}}
    )
    doc["panels"].append({"type": "text", "gridPos": {"h": 3, "w": 24, "x": 0, "y": 9}})
    assert check(doc).panels == 3


def test_collapsed_row_panels_are_checked_too() -> None:
    doc = dashboard()
    inner = copy.deepcopy(doc["panels"][0])
    inner["id"] = 2
    inner["gridPos"]["w"] = 0
    doc["panels"].append(
        {
            "type": "row",
            "collapsed": True,
            "gridPos": {"h": 1, "w": 24, "x": 0, "y": 8},
            "panels": [inner],
        }
    )
    with pytest.raises(DashboardError, match=r"panels\[1\]\.panels\[0\]\.gridPos\.w: 0 must be"):
        check(doc)


def test_duplicate_panel_ids_are_refused() -> None:
    doc = dashboard()
    doc["panels"].append(copy.deepcopy(doc["panels"][0]))
    with pytest.raises(DashboardError, match=r"panels\[1\]\.id: 1 is also panels\[0\]"):
        check(doc)


def test_unknown_datasource_uid_is_refused_with_the_known_ones() -> None:
    doc = panel_with(targets=[{"refId": "A", "datasource": {"uid": "old-postgres"}}])
    with pytest.raises(
        DashboardError,
        match=r"targets\[0\]\.datasource\.uid: 'old-postgres' is not a provisioned "
        r".*known: bulkmail-postgresql",
    ):
        check(doc, [POSTGRESQL_UID])


def test_datasource_variables_and_builtins_are_accepted() -> None:
    doc = panel_with(
        datasource={"uid": "${DS}"}, targets=[{"refId": "A", "datasource": "-- Grafana --"}]
    )
    assert check(doc, [POSTGRESQL_UID]).panels == 1


def test_files_sharing_a_uid_or_a_name_are_refused() -> None:
    text = json.dumps(dashboard())
    with pytest.raises(
        DashboardError, match=re.escape("b/delivery.json: same file name as a/delivery.json")
    ):
        check_dashboard_files([("a/delivery.json", text), ("b/delivery.json", text)])
    with pytest.raises(
        DashboardError,
        match=re.escape("other.json: uid: 'bulkmail-delivery' is also the uid of delivery.json"),
    ):
        check_dashboard_files([("delivery.json", text), ("other.json", text)])


def test_shipped_dashboards_pass_against_the_provisioned_sources() -> None:
    paths = sorted(SHIPPED.glob("*.json"))
    assert paths, "the grafana role ships at least one dashboard"
    summaries = check_dashboard_files(
        [(str(p), p.read_text()) for p in paths], datasource_uids=[POSTGRESQL_UID]
    )
    assert "bulkmail delivery" in {s.title for s in summaries}
