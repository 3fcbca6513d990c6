"""The web app's pages: a requester posts and follows jobs, a provider manages its funds, from a browser wallet.

The pages are the dashboard's layout with a form or a panel and one script, ``/static/app.js``: the bundle
``webapp/build.mjs`` builds from ``webapp/src`` with the npm packages pinned in ``package-lock.json``
(viem, esbuild). It is committed, so the node serves it with no build step and no CDN (the page works
offline); ``tests/marketplace/node/test_webapp_bundle.py`` fails when it is stale. The page holds no key:
the wallet signs the uploads' sign-in message, the permit and every transaction; reads of balances,
terms and result roots go to the wallet's chain, not to this node.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.templating import Jinja2Templates

from marketplace.chain.deployment import Deployment
from marketplace.job_limits import TaskType
from marketplace.jobspec import Parameters
from marketplace.node.settings import NodeSettings
from marketplace.units import webi

STATIC = Path(__file__).parent / "static"
DEVNET_CHAIN_ID = 31337


def chain_name(chain_id: int) -> str:
    """What a wallet shows for the chain it is asked to add."""
    return "WEBI devnet (anvil)" if chain_id == DEVNET_CHAIN_ID else f"WEBI chain {chain_id}"


def webapp_router(deployment: Deployment, settings: NodeSettings) -> APIRouter:
    from marketplace.node.dashboard import ipfs, moment, short, when

    templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
    templates.env.filters.update(webi=webi, short=short, when=when, moment=moment, ipfs=ipfs)  # the layout's
    router = APIRouter()

    def page(request: Request, view: str, heading: str, **extra: Any) -> HTMLResponse:
        config = {
            "view": view, "chainId": deployment.chain_id, "chainName": chain_name(deployment.chain_id),
            "rpcUrl": settings.public_rpc_url or settings.rpc_url, "market": deployment.market,
            "token": deployment.token, "deploymentBlock": deployment.token_block or deployment.block,
            "maxInputsBytes": settings.max_inputs_bytes,
            # What a spec the page asked for holds as its parameters (it asks for none): the page checks for it.
            "defaultParameters": Parameters().model_dump(mode="json"), **extra,
        }
        return templates.TemplateResponse(request, "app.html", {
            "deployment": deployment, "config": config, "view": view, "heading": heading,
            "tasks": [task.value for task in TaskType], **extra})

    @router.get("/app", response_class=HTMLResponse)
    async def post_job(request: Request) -> HTMLResponse:
        return page(request, "post", "Post a job")

    @router.get("/app/jobs/{job_id}", response_class=HTMLResponse)
    async def follow_job(request: Request, job_id: int) -> HTMLResponse:
        return page(request, "job", f"Job #{job_id}", jobId=job_id)

    @router.get("/app/provider", response_class=HTMLResponse)
    async def provider_funds(request: Request) -> HTMLResponse:
        return page(request, "provider", "Your provider funds")

    @router.get("/static/app.js")
    async def bundle() -> FileResponse:
        return FileResponse(STATIC / "app.js", media_type="text/javascript",
                            headers={"Cache-Control": "no-cache"})

    return router
