"""DKIM keys and the guarded selector rotation."""
