"""Settings for P1's django-q2 peer: the project's own, with django-q2's scheduler on."""

from jeeves_site.settings import *  # noqa: F403
from jeeves_site.settings import Q_CLUSTER

Q_CLUSTER = {**Q_CLUSTER, "scheduler": True}
