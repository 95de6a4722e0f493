"""Shared set-up for tests that drive the executor against scripted servers: the four-server inventory, the
download link, run options that never sleep, an event sink that keeps everything, and a ready executor."""

from __future__ import annotations

from tests import inventories as make
from tests.unit.scripted_servers import ScriptedFleet
from xsoar_mt.engine import Executor, RunOptions, RunSecrets
from xsoar_mt.events import Event
from xsoar_mt.inventory import Inventory, parse_inventory
from xsoar_mt.journal import RunDir
from xsoar_mt.observed import resolve
from xsoar_mt.planner import plan_upgrade

INVENTORY = make.as_yaml(
    make.inventory(
        make.main(
            make.dr(make.server("m1", "127.0.0.1", "6.10.0"), make.server("m2", "127.0.0.2", "6.10.0"))
        ),
        [
            make.host("g1", make.single(make.server("h1", "127.0.1.1", "6.10.0")), ["acme"]),
            make.host("g2", make.single(make.server("h2", "127.0.1.2", "6.10.0"))),
        ],
        name="t",
        installer={"link": {"env": "XSOAR_TEST_LINK"}},
        health={"timeout": 1, "interval": 0.01, "max_interval": 0.01},
    )
)

LINK = "https://download.demisto.works/download-params/?token=s3cr3t-token&email=a@b.c"
FAST = RunOptions(poll_min=0, poll_max=0)


class Collected:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def kinds(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.kind == kind]


def setup_run(
    target: str = "6.11", options: RunOptions = FAST, run_dir: RunDir | None = None
) -> tuple[Inventory, ScriptedFleet, Executor, Collected]:
    """An executor for INVENTORY (every server on 6.10.0) upgrading to target, with its scripted fleet and sink."""
    inventory = parse_inventory(INVENTORY, "inv.yaml")
    fleet = ScriptedFleet({s.name: "6.10.0" for s in inventory.servers})
    plan = plan_upgrade(inventory, inventory.versions(), target)
    observed = resolve(inventory, {}, {})
    sink = Collected()
    shells = {s.name: fleet.shell(s.name) for s in inventory.servers}
    executor = Executor(
        inventory, plan, shells.__getitem__, sink, observed, RunSecrets(link=LINK), options, run_dir
    )
    return inventory, fleet, executor, sink
