"""
ASGI config for jeeves_site project.

It exposes the ASGI callable as a module-level variable named ``application``.

For more information on this file, see
https://docs.djangoproject.com/en/5.2/howto/deployment/asgi/
"""

import os

from django.conf import settings
from django.core.asgi import get_asgi_application

from jeeves_site.private_files import adopt_private_umask, prepare_data_dir

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jeeves_site.settings")
# The web app writes only private files, and tightens an installation left loose.
adopt_private_umask()
application = get_asgi_application()
prepare_data_dir(settings)
