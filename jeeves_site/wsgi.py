"""
WSGI config for jeeves_site project.

It exposes the WSGI callable as a module-level variable named ``application``.

For more information on this file, see
https://docs.djangoproject.com/en/5.2/howto/deployment/wsgi/
"""

import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application

from jeeves_site.private_files import adopt_private_umask, prepare_data_dir

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jeeves_site.settings")
# The web app writes only private files, and tightens an installation left loose.
adopt_private_umask()
application = get_wsgi_application()
prepare_data_dir(settings)
