"""DNS: the records the model publishes, their parsers, zones, and the checker by record kind."""
