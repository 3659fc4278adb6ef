"""The local apprise ``json://`` receiver of the notification tests stands in for a phone here too."""

from tests.support.notify import receiver

__all__ = ["receiver"]  # a fixture of tests/support, offered to this folder
