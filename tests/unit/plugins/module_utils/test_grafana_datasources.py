"""Grafana data sources derived from the model: PostgreSQL always, Prometheus when asked."""

from __future__ import annotations

from typing import Any

import pytest
from ansible_collections.bulkmail.infra.plugins.module_utils.grafana.datasources import (
    DatasourceError,
    datasource_uids,
    grafana_datasources,
)

PG: dict[str, Any] = {
    "host": "192.0.2.5",
    "port": 5432,
    "database": "bulkmail",
    "user": "bulkmail_reader",
    "password": "s3cret",
}


def test_postgresql_source_reads_the_bulkmail_database_as_the_reader() -> None:
    doc = grafana_datasources(PG)
    (source,) = doc["datasources"]
    assert doc["apiVersion"] == 1
    assert source["url"] == "192.0.2.5:5432"
    assert source["user"] == "bulkmail_reader"
    assert source["jsonData"]["database"] == "bulkmail"
    assert source["jsonData"]["sslmode"] == "require"
    assert source["secureJsonData"] == {"password": "s3cret"}
    assert source["isDefault"] is True


def test_prometheus_only_when_a_url_is_given() -> None:
    assert datasource_uids(grafana_datasources(PG, "")) == ["bulkmail-postgresql"]
    doc = grafana_datasources(PG, "http://127.0.0.1:9090")
    assert datasource_uids(doc) == ["bulkmail-postgresql", "bulkmail-prometheus"]
    assert [s["isDefault"] for s in doc["datasources"]] == [True, False]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"host": "db 1"}, "grafana_postgresql_host: 'db 1' is neither"),
        ({"port": 70000}, "grafana_postgresql_port: 70000 is not a TCP port"),
        ({"password": ""}, "grafana_postgresql_password: must be a non-empty string"),
        ({"sslmode": "prefer"}, "grafana_postgresql_sslmode: 'prefer' is not one of"),
    ],
)
def test_bad_settings_name_the_variable(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(DatasourceError, match=message):
        grafana_datasources({**PG, **changes})


def test_bad_prometheus_url_is_named() -> None:
    with pytest.raises(DatasourceError, match="grafana_prometheus_url: 'prometheus:9090'"):
        grafana_datasources(PG, "prometheus:9090")
