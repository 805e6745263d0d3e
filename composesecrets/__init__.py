"""composesecrets: swarm-grade secrets for plain Docker users, from an ordinary compose file."""

__version__ = "0.1.0"

#: True in a process that the command line runs (``cli.main`` sets it): a short-lived process
#: whose every part is ours, which may trade generality for start-up time where a library
#: caller's process must not (see ``backends.engine_reader.plain_http_client``).
_command_line = False
