"""The outreach fleet's decisions as pure logic: warm-up limits, account and domain health,
provider throttling, the choice of a sending account, domain rotation and relay failover.

A dispatcher worker and a simulation call the same functions with plain data (frozen
dataclasses) and a time they got from one `Clock`: nothing here reads the clock, the
database or the network, so a 30-day simulation runs in minutes and decides exactly as the
service would.
"""
