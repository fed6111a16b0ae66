"""The REST API under ``/edgebench/``: thin handlers over the store, the state and the run manager. Every
handler is authenticated by Jupyter (token, XSRF); domain errors become HTTP statuses in one place."""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from typing import Any

import tornado
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join

from .. import __version__, config
from ..core.errors import EdgebenchError, EngineUnavailableError, InvalidInputError
from ..engine import engine_available
from ..profiles import list_profiles
from ..state import model_detail, model_state
from ..store import Store
from .runs import RunConflict, RunManager

NAMESPACE = "edgebench"


def status_for(exc: EdgebenchError) -> int:
    """The one mapping from domain errors to HTTP."""
    if isinstance(exc, RunConflict):
        return 409
    if isinstance(exc, LookupError):
        return 404
    if isinstance(exc, InvalidInputError):
        return 400
    if isinstance(exc, EngineUnavailableError):
        return 503
    return 500


def api(method: Callable[..., Any]) -> Callable[..., Awaitable[None]]:
    """Authenticate, run the method, answer its value as JSON or the domain error with its status."""

    @tornado.web.authenticated
    @functools.wraps(method)
    async def wrapper(self: BaseHandler, *args: Any, **kwargs: Any) -> None:
        try:
            status, payload = 200, method(self, *args, **kwargs)
            if isinstance(payload, tuple):
                status, payload = payload
        except EdgebenchError as exc:
            status, payload = status_for(exc), exc.to_dict()
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(payload, default=str))

    return wrapper


class BaseHandler(APIHandler):
    @property
    def store(self) -> Store:
        return self.manager.store  # one Store for the server: it opens SQLite per operation

    @property
    def manager(self) -> RunManager:
        manager: RunManager = self.settings["edgebench_runs"]
        return manager

    def body(self) -> dict[str, Any]:
        try:
            data = json.loads(self.request.body or b"{}")
        except ValueError as exc:
            raise InvalidInputError(f"request body is not valid JSON: {exc}") from None
        except RecursionError:
            raise InvalidInputError("request body nests too deeply to parse") from None
        if not isinstance(data, dict):
            raise InvalidInputError("request body must be a JSON object")
        return data


class StatusHandler(BaseHandler):
    @api
    def get(self) -> Any:
        ok, message = engine_available()
        return {"version": __version__, "store": str(self.store.home), "engine": {"available": ok, "message": message},
                "monitor_source": config.monitoring()[0]}


class ModelsHandler(BaseHandler):
    @api
    def get(self) -> Any:
        store = self.store
        return {"models": [model_state(store, card) for card in store.list()]}


class ModelHandler(BaseHandler):
    @api
    def get(self, name: str) -> Any:
        return model_detail(self.store, name)

    @api
    def delete(self, name: str) -> Any:
        removed = self.store.remove(name)
        cancelled = self.manager.cancel_model(name.partition(":")[0], "cancelled: the model was deleted")
        return {"name": name, "removed": removed, "cancelled_runs": cancelled}


class ProfilesHandler(BaseHandler):
    @api
    def get(self) -> Any:
        return {"profiles": [p.to_dict() for p in list_profiles()]}


class DeployHandler(BaseHandler):
    @api
    def get(self) -> Any:
        """Sites, waves and the digest each runs, when EDGEBENCH_SITES and EDGEBENCH_GITOPS name them."""
        from ..deploy import load_sites, status

        where = config.deployment()
        if where is None:
            return {"configured": False, "message": "set EDGEBENCH_SITES (sites.yaml) and EDGEBENCH_GITOPS (the "
                                                    "GitOps repository) before starting JupyterLab"}
        sites = load_sites(where[0])
        found = status(where[0], where[1], store=self.store)
        return {"configured": True, "hub": sites.hub, "waves": sites.waves,
                "sites": [{**s.__dict__, "profile": sites.site(s.site).profile.name} for s in found]}


class AlertsHandler(BaseHandler):
    @api
    def post(self) -> Any:
        """Alertmanager's webhook: each firing alert with a ``model`` label starts a drift check of that model
        (then the retrain notebook when drift persists), as the panel's monitor step does."""
        body = self.body()
        alerts = body.get("alerts")
        if not isinstance(alerts, list):
            raise InvalidInputError("not an Alertmanager webhook: the body has no 'alerts' list")
        started, ignored = [], []
        for alert in alerts:
            labels = alert.get("labels") if isinstance(alert, dict) else None
            if not isinstance(labels, dict) or alert.get("status") != "firing" or not labels.get("model"):
                ignored.append({"labels": labels, "why": "not firing, or no model label"})
                continue
            ref = f"{labels['model']}:{labels['version']}" if labels.get("version") else str(labels["model"])
            try:
                started.append(self.manager.start(ref, "monitor", {}).to_dict())
            except EdgebenchError as exc:  # a model not stored, a check already running: said per alert
                ignored.append({"labels": labels, "why": exc.message})
        return 202, {"started": started, "ignored": ignored}


class RunsHandler(BaseHandler):
    @api
    def get(self) -> Any:
        return {"runs": [r.to_dict() for r in self.manager.list()]}

    @api
    def post(self) -> Any:
        body = self.body()
        params = body.get("params", {})
        if not isinstance(params, dict):
            raise InvalidInputError("params must be a JSON object")
        run = self.manager.start(body.get("model"), body.get("step"), params)
        return 202, run.to_dict()


class RunHandler(BaseHandler):
    @api
    def get(self, run_id: str) -> Any:
        return self.manager.get(int(run_id)).to_dict()

    @api
    def delete(self, run_id: str) -> Any:
        return self.manager.cancel(int(run_id)).to_dict()


ROUTES = [
    ("status", StatusHandler),
    ("models", ModelsHandler),
    ("models/(?P<name>[^/]+)", ModelHandler),
    ("profiles", ProfilesHandler),
    ("deploy", DeployHandler),
    ("alerts", AlertsHandler),
    ("runs", RunsHandler),
    (r"runs/(?P<run_id>\d+)", RunHandler),
]


def setup_handlers(web_app: Any, home: str) -> RunManager:
    manager = RunManager(Store(home))
    web_app.settings["edgebench_runs"] = manager
    base = web_app.settings["base_url"]
    web_app.add_handlers(".*$", [(url_path_join(base, NAMESPACE, route), handler) for route, handler in ROUTES])
    return manager
