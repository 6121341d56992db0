"""Postfix as data: settings and services, the tuning model, lanes, and one plan per host."""
