"""``python -m localpipe``: the same as the ``localpipe`` command."""

from localpipe.cli import main

main()
