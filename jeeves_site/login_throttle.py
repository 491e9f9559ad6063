"""Admin login throttling: django-axes, for logins that come in through a web request.

django-axes counts failed logins per (username, client address) and refuses further
attempts for a while after too many (settings ``AXES_*``). Its backend insists on the
request; a login with none (``authenticate()`` from a management command or a test's
``Client.login``) is not a web login, so there is nothing to throttle and it passes
through to the next backend.
"""

from __future__ import annotations

from axes.backends import AxesStandaloneBackend


class WebLoginThrottle(AxesStandaloneBackend):
    """Refuses a locked-out username and address; authenticates nobody itself."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)
