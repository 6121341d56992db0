"""PostgreSQL: schema migrations and pg_hba rules."""
