"""``python -m stream`` is the ``deepdenoise`` command."""

from ._cli import main

main()
