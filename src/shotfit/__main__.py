"""``python -m shotfit``: the same as the ``shotfit`` command."""

from shotfit.cli import main

main()
