"""``python -m l3locator``: the same as the ``l3locator`` command."""

from .cli import run_and_exit

run_and_exit()
