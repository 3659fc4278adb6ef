"""The local apprise ``json://`` receiver of the notification tests stands in for a phone here too."""

from tests.integration.alerting_notify.conftest import Receiver, receiver

__all__ = ["Receiver", "receiver"]
