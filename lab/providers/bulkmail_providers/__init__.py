"""The lab's emulated mailbox providers ("the internet").

One SMTP server answers for every provider domain (gmail.test, acme.test, outlook.test,
yahoo.test, ...) the way the real providers do (PROVIDERS.md): it accepts, tarpits, defers or
rejects per recipient, verifies DKIM, SPF and DMARC of what it accepts against the lab's DNS,
and records each accepted message as one JSON line.
"""

__version__ = "0.1.0"
