# Copyright: bulkmail.infra developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Grafana data source provisioning derived from the inventory model.

PostgreSQL (the bulkmail database, read through the reader role) is always there; Prometheus
only when a URL is given. Dashboards refer to the sources by these fixed uids.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

POSTGRESQL_UID = "bulkmail-postgresql"
PROMETHEUS_UID = "bulkmail-prometheus"
POSTGRESQL_TYPE = "grafana-postgresql-datasource"
SSL_MODES = ("disable", "require", "verify-ca", "verify-full")
HOSTNAME_RE = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?)+$")


class DatasourceError(ValueError):
    """A data source setting Grafana would reject or misuse; names the variable."""


def _host(value: Any, path: str) -> str:
    text = str(value or "")
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    if not HOSTNAME_RE.match(text):
        raise DatasourceError(f"{path}: {value!r} is neither an IP address nor a host name")
    return text


def _text(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise DatasourceError(f"{path}: must be a non-empty string")
    return value


def postgresql_datasource(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The PostgreSQL source: the first db host's internal address, the reader role."""
    host = _host(settings.get("host"), "grafana_postgresql_host")
    port = settings.get("port", 5432)
    if isinstance(port, str) and port.isdigit():
        port = int(port)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise DatasourceError(f"grafana_postgresql_port: {port!r} is not a TCP port")
    sslmode = settings.get("sslmode", "require")
    if sslmode not in SSL_MODES:
        raise DatasourceError(
            f"grafana_postgresql_sslmode: {sslmode!r} is not one of {', '.join(SSL_MODES)}"
        )
    version = settings.get("version", 15)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return {
        "name": "bulkmail PostgreSQL",
        "type": POSTGRESQL_TYPE,
        "uid": POSTGRESQL_UID,
        "access": "proxy",
        "url": address,
        "user": _text(settings.get("user"), "grafana_postgresql_user"),
        "isDefault": True,
        "editable": False,
        "jsonData": {
            "database": _text(settings.get("database"), "grafana_postgresql_database"),
            "sslmode": sslmode,
            "postgresVersion": int(version) * 100,
            "timescaledb": False,
        },
        "secureJsonData": {
            "password": _text(settings.get("password"), "grafana_postgresql_password"),
        },
    }


def prometheus_datasource(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise DatasourceError(
            f"grafana_prometheus_url: {url!r} must be an http:// or https:// URL with a host"
        )
    return {
        "name": "bulkmail Prometheus",
        "type": "prometheus",
        "uid": PROMETHEUS_UID,
        "access": "proxy",
        "url": url,
        "isDefault": False,
        "editable": False,
    }


def grafana_datasources(
    postgresql: Mapping[str, Any], prometheus_url: str | None = None
) -> dict[str, Any]:
    """The content of provisioning/datasources/bulkmail.yaml."""
    if not isinstance(postgresql, Mapping):
        raise DatasourceError("postgresql: must be a mapping (host, port, database, user, ...)")
    sources = [postgresql_datasource(postgresql)]
    if prometheus_url:
        sources.append(prometheus_datasource(prometheus_url))
    return {"apiVersion": 1, "datasources": sources}


def datasource_uids(document: Mapping[str, Any]) -> list[str]:
    """The uids a provisioning document defines, for checking dashboards against it."""
    return [str(source["uid"]) for source in document.get("datasources", [])]
