"""Run a Dispatcher with apprise on a state file until killed: ``python -m ... STATE PORT``."""

from __future__ import annotations

import asyncio
import sys

from alerting.notify import AppriseSender, Dispatcher, NotifyConfig
from vigil.core.clock import SystemClock


async def main(state: str, port: int) -> None:
    config = NotifyConfig.model_validate({"receivers": {"kitchen": [f"json://127.0.0.1:{port}/kitchen"]},
                                          "grouping": {"group_wait": "0s"}})
    dispatcher = Dispatcher(state, config, AppriseSender(timeout=600), SystemClock(), poll_interval=0.05)
    print("ready", flush=True)
    await dispatcher.run()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
