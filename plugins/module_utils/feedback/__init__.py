"""What comes back: Postfix's delivery log lines, bounces (DSN), complaints (ARF) and the
suppression decision, as pure logic (no I/O: the runtime's daemons read the journal, the
mail and the database and hand the data in)."""
