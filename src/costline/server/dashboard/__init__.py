"""The web dashboard (docs/dashboard.md): server-rendered pages over the API's own query path.

``install(app, settings)`` adds the sign-in routes, the pages and the vendored static files (uPlot, MIT, in
``static/vendor`` with its licence; nothing is loaded from another origin).
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from costline.server.dashboard.session import session_key
from costline.server.dashboard.web import HERE, STATIC, Dashboard, make_environment
from costline.server.seals import load_seal_key
from costline.settings import Settings


def install(app: FastAPI, settings: Settings) -> None:
    from costline.server.dashboard import login, pages

    app.state.dashboard = Dashboard(session_key(load_seal_key(settings.seal_key, settings.data_dir)),
                                    make_environment())
    app.include_router(login.router)
    app.include_router(pages.router)
    app.mount(STATIC, StaticFiles(directory=HERE / "static"), name="dashboard-static")
