"""``python -m stream`` is the ``deepdenoise`` command."""

from .cli import main

main()
