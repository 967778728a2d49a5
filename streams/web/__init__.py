"""HTTP views of the worker: API, live page, health and metrics, admin."""

from __future__ import annotations

import faust

from streams.web import admin, api, health, live_page


def register_views(app: faust.App) -> None:
    """Serve every view of the worker on `app`, each at its path."""
    for routes in (api.ROUTES, live_page.ROUTES, health.ROUTES, admin.ROUTES):
        for path, view in routes.items():
            app.page(path)(view)
