"""Grafana: datasources and dashboard checks."""
