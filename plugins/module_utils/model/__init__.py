"""The inventory model: one parse_model() validates the whole inventory, every door reads it."""
