"""composesecrets: swarm-grade secrets for plain Docker users, from an ordinary compose file."""

__version__ = "0.1.0"
