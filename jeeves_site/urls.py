"""URL configuration: the admin at /admin/, the JSON API under /api/, and the
original runner's dialect at the root paths (/status, /jobs, /queues, /state).

A ``/t/<token>/`` prefix before any of them is handled by
``runner.api.prefix.TokenPrefixMiddleware``."""

from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

from runner.api import config as config_api
from runner.api.original.site import root_api
from runner.api.site import api
from runner.metrics_view import metrics_view

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    path("api/", api.urls),
    path("metrics", metrics_view, name="metrics"),
]

# The original jeeves-runner's HTTP API at the root, as its CLI and OpenClaw plugin call it.
# Config (issue 14): same implementation as /api/config.
urlpatterns += [
    path("config", config_api.root_config, name="original-config"),
    path("config/apply", config_api.root_config_apply, name="original-config-apply"),
]

# The original runner's dialect, last so it never shadows the paths above.
urlpatterns += [path("", root_api.urls)]

# Django's own 400/404/500 in the API's {"error"} shape on the API's paths.
handler400 = "runner.api.handlers.bad_request"
handler404 = "runner.api.handlers.page_not_found"
handler500 = "runner.api.handlers.server_error"
