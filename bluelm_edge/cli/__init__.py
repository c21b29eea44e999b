"""The `bluelm-edge` command line: thin modules, one per command group (parse, call, print)."""
