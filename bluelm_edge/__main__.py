"""`python -m bluelm_edge`: the same entry as the `bluelm-edge` console script."""

from bluelm_edge.cli.main import run

run()
