"""JSON API of mail filters for the web app's settings page: the account's Sieve scripts, the active
one, and the rule builder (``suite.mail.sieve.rules``) that writes the script "suite-rules".

Auth: the web session cookie (writes need X-CSRF-Token). Errors are JSON ``{"error", "message"}``;
a script that does not compile is 422 ``invalid_script`` with "line N: ..." as the message.

    GET    /api/sieve/scripts                 [{name, active, size, updated_at}]
    GET    /api/sieve/scripts/{name}          {name, active, content}
    PUT    /api/sieve/scripts/{name}          {content, active?}        → {name, active}
    DELETE /api/sieve/scripts/{name}
    GET    /api/sieve/active                  {name|null, content|null}
    PUT    /api/sieve/active                  {name}  ("" deactivates)
    POST   /api/sieve/check                   {content} → {ok: true} | 422
    GET    /api/sieve/rules                   {rules|null, out_of_office|null, active, editable}
    PUT    /api/sieve/rules                   {rules: [...], out_of_office?: {...}, active?: true} → {script}
"""

from __future__ import annotations

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from suite.gateway import auth
from suite.gateway.errors import ApiError
from suite.mail.sieve import rules as rulesmod
from suite.mail.sieve.parser import SieveError
from suite.mail.sieve.store import BadName, NoSuchScript, QuotaError, ScriptActive, SieveStore, SieveStoreError


def _store(request: Request) -> SieveStore:
    store = getattr(request.app.state, "sieve", None)
    if store is None:
        store = request.app.state.sieve = SieveStore(request.app.state.ctx)
    return store


async def _json(request: Request) -> dict:
    from suite.gateway.app import read_json

    return await read_json(request)


def _invalid(exc: SieveError) -> ApiError:
    return ApiError(422, str(exc), code="invalid_script")  # the message starts with "line N:"


def _store_error(exc: SieveStoreError) -> ApiError:
    if isinstance(exc, NoSuchScript):
        return ApiError(404, str(exc))
    if isinstance(exc, ScriptActive):
        return ApiError(409, str(exc), code="script_active")
    if isinstance(exc, QuotaError):
        return ApiError(413, str(exc))
    if isinstance(exc, BadName):
        return ApiError(400, str(exc))
    return ApiError(409, str(exc))


async def list_scripts(request: Request) -> JSONResponse:
    c = await auth.require(request)
    scripts = await _store(request).list_scripts(c.account.id)
    return JSONResponse(
        [{"name": s.name, "active": s.active, "size": s.size, "updated_at": s.updated_at} for s in scripts]
    )


async def script(request: Request) -> Response:
    c = await auth.require(request)
    store = _store(request)
    name = request.path_params["name"]
    try:
        if request.method == "GET":
            content = await store.get_script(c.account.id, name)
            return JSONResponse(
                {"name": name, "active": await store.active_name(c.account.id) == name, "content": content}
            )
        if request.method == "DELETE":
            await store.delete_script(c.account.id, name)
            return Response(status_code=204)
        data = await _json(request)
        body, active = data.get("content"), data.get("active", False)
        if not isinstance(body, str) or not isinstance(active, bool):
            raise ApiError(400, 'send {"content": "<sieve script>", "active": true|false}')
        await store.put_script(c.account.id, name, body, activate=active)
        return JSONResponse({"name": name, "active": await store.active_name(c.account.id) == name})
    except SieveError as exc:
        raise _invalid(exc) from None
    except SieveStoreError as exc:
        raise _store_error(exc) from None


async def active(request: Request) -> JSONResponse:
    c = await auth.require(request)
    store = _store(request)
    if request.method == "PUT":
        data = await _json(request)
        name = data.get("name")
        if not isinstance(name, str):
            raise ApiError(400, 'send {"name": "<script>"} ("" deactivates)')
        try:
            await store.set_active(c.account.id, name)
        except SieveStoreError as exc:
            raise _store_error(exc) from None
    current = await store.active_name(c.account.id)
    content = await store.get_script(c.account.id, current) if current else None
    return JSONResponse({"name": current, "content": content})


async def check(request: Request) -> JSONResponse:
    await auth.require(request)
    data = await _json(request)
    content = data.get("content")
    if not isinstance(content, str):
        raise ApiError(400, 'send {"content": "<sieve script>"}')
    try:
        _store(request).compile(content)
    except SieveError as exc:
        raise _invalid(exc) from None
    return JSONResponse({"ok": True})


async def rules(request: Request) -> JSONResponse:
    c = await auth.require(request)
    store = _store(request)
    name = rulesmod.SCRIPT_NAME
    if request.method == "PUT":
        data = await _json(request)
        activate = data.pop("active", True)
        if not isinstance(activate, bool):
            raise ApiError(400, '"active" is true or false')
        try:
            model = rulesmod.RuleSet.model_validate(data)
            text = rulesmod.to_sieve(model)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(x) for x in first["loc"])
            raise ApiError(422, f"{where}: {first['msg']}") from None
        except ValueError as exc:
            raise ApiError(422, str(exc)) from None
        try:
            await store.put_script(c.account.id, name, text, activate=activate)
        except SieveError as exc:
            raise _invalid(exc) from None
        except SieveStoreError as exc:
            raise _store_error(exc) from None
        return JSONResponse({"script": text, "active": await store.active_name(c.account.id) == name})
    try:
        text = await store.get_script(c.account.id, name)
    except NoSuchScript:
        empty = rulesmod.RuleSet().model_dump(mode="json")
        return JSONResponse({**empty, "active": False, "editable": True})
    stored = rulesmod.parse_rules(text)
    dump = stored.model_dump(mode="json") if stored is not None else {"rules": None, "out_of_office": None}
    return JSONResponse(
        {
            **dump,
            "active": await store.active_name(c.account.id) == name,
            # a script edited by hand (ManageSieve) is not shown as rules: the page offers to replace it
            "editable": stored is not None,
        }
    )


ROUTES = [
    Route("/api/sieve/scripts", list_scripts, methods=["GET"]),
    Route("/api/sieve/scripts/{name:str}", script, methods=["GET", "PUT", "DELETE"]),
    Route("/api/sieve/active", active, methods=["GET", "PUT"]),
    Route("/api/sieve/check", check, methods=["POST"]),
    Route("/api/sieve/rules", rules, methods=["GET", "PUT"]),
]
