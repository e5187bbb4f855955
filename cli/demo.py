"""``clm demo``, ``clm report`` and ``clm sandbox serve``: the tool working with no account, and its reports."""

from __future__ import annotations

import signal
import sys
import tempfile
import threading
import time
import tomllib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.table import Table

from cli import wiring
from cli.commands import config_option, progress_bars, show_summary
from cli.group import cli
from cli.main import starter_config
from cli.output import console, emit_json, handles_errors, json_option, literal, say, styled
from cli.report import comparison, print_comparison, print_terminal, render_html, stage_flow
from connectors.base import Connector
from core.config import ClmConfig, parse_config
from core.errors import UsageError
from sync import exports
from sync.runner import SyncOptions, SyncRunner, output_specs
from sync.state import RunRecord, SQLiteState

if TYPE_CHECKING:
    from connectors.sandbox.server import SandboxServer


def demo_config(base_url: str, state_path: Path) -> ClmConfig:
    """The starter HubSpot configuration pointed at a sandbox (Professional tier limits)."""
    raw: dict[str, Any] = tomllib.loads(starter_config("hubspot"))
    raw["hubspot"].update({"base_url": base_url, "requests_per_10s": 190, "daily_limit": 625_000})
    raw["sync"]["state_path"] = str(state_path)
    return parse_config(raw, "demo")


def engagebay_demo_config(base_url: str, state_path: Path, requests_per_minute: int = 2_900) -> ClmConfig:
    """The starter EngageBay configuration pointed at a sandbox (whose generated data it names as an account
    would: ``connectors.sandbox.engagebay.store.seed_name``)."""
    raw: dict[str, Any] = tomllib.loads(starter_config("engagebay"))
    raw["engagebay"].update({"base_url": base_url, "requests_per_minute": requests_per_minute,
                             "max_concurrency": 8})
    raw["sync"]["state_path"] = str(state_path)
    return parse_config(raw, "engagebay demo")


#: Where the starter configuration names contact and deal properties (scoring rules, predictive features,
#: next-best-action criteria, MEDDIC).
_PROPERTY_KEYS = ("field", "per", "decay_field")


def salesforce_demo_config(state_path: Path, contact_fields: Mapping[str, str], deal_fields: Mapping[str, str],
                           **salesforce: Any) -> ClmConfig:
    """The starter configuration with its properties renamed to where the Salesforce sandbox put them.

    ``contact_fields``/``deal_fields`` are the seed's mapping (``jobtitle`` -> ``Title``, ``industry`` ->
    ``Account.Industry``): the same data and rules as the HubSpot demo, in a Salesforce org's terms.
    """
    raw: dict[str, Any] = tomllib.loads(starter_config("hubspot"))

    def rename(node: Any, names: Mapping[str, str]) -> Any:
        if isinstance(node, dict):
            return {k: names.get(v, v) if k in _PROPERTY_KEYS and isinstance(v, str) else rename(v, names)
                    for k, v in node.items()}
        if isinstance(node, list):
            return [rename(item, names) for item in node]
        return node

    raw = rename(raw, contact_fields)
    raw["predictive"]["features"] = [contact_fields.get(f, f) for f in raw["predictive"]["features"]]
    raw["data"]["contact_properties"] = {contact_fields[k]: v for k, v in raw["data"]["contact_properties"].items()
                                         if k in contact_fields}
    raw["data"]["deal_properties"] = {deal_fields[k]: v for k, v in raw["data"]["deal_properties"].items()
                                      if k in deal_fields}
    meddic = {**ClmConfig().meddic.model_dump(), **raw.get("meddic", {})}
    raw["meddic"] = {k: deal_fields.get(v, v) if v else v for k, v in meddic.items()}
    raw["crm"] = {"kind": "salesforce"}
    raw["salesforce"] = {"auth": "token", **salesforce}
    raw.pop("hubspot", None)
    raw["sync"]["state_path"] = str(state_path)
    return parse_config(raw, "salesforce demo")


@cli.command()
@click.option("--crm", type=click.Choice(["hubspot", "salesforce", "engagebay"]), default="hubspot",
              show_default=True, help="Which sandbox CRM to sync with.")
@click.option("--contacts", "size", default=5000, show_default=True, help="How many contacts to generate.")
@click.option("--seed", default=7, show_default=True, help="Seed of the generated data: the same seed, the same data.")
@click.option("--report", "report_path", type=click.Path(path_type=Path), default=Path("clm-demo-report.html"),
              show_default=True, help="Where to write the HTML report.")
@click.option("--workdir", type=click.Path(path_type=Path, file_okay=False),
              help="Keep the demo's state here (default: temporary).")
@json_option
@handles_errors
def demo(crm: str, size: int, seed: int, report_path: Path, workdir: Path | None, as_json: bool) -> None:
    """Run a real sync against a built-in sandbox CRM: no account needed.

    Starts the sandbox (HubSpot, EngageBay, or Salesforce over TLS) in-process, seeds it with generated contacts
    and deals, creates our fields, syncs through the connector (the official client, real HTTP, the CRM's limits), shows
    what it wrote, syncs again to show that nothing changes, and writes the HTML report.
    """
    from connectors.sandbox.generator import generate

    started = time.monotonic()
    exports.check_writable(report_path)  # before the demo runs for nothing
    if workdir is not None:
        exports.check_writable(workdir / "state.db")  # creates the folder, or says why it cannot
    say = (lambda *a, **k: None) if as_json else console.print
    say(styled(("crm-lifecycle demo", "bold"), f": generating {size:,} contacts and their deals (seed {seed})…"))
    data = generate(size, seed=seed)
    temp = None if workdir else tempfile.TemporaryDirectory(prefix="clm-demo-")
    root = workdir or Path(temp.name if temp else ".")
    try:
        with _sandbox(crm, data, root, say) as (config, connector, setup, crm_value):
            created = setup.ensure_fields(output_specs(config))
            say(f"fields: {sum(s.action == 'created' for s in created)} created, "
                f"{sum(s.action in ('exists', 'updated') for s in created)} already there")
            state = SQLiteState(config.sync.state_path, wiring.connection_id(config))
            with progress_bars(not as_json) as progress:
                runner = SyncRunner(config, connector, state, progress=progress)
                first = runner.run(SyncOptions(as_of=data.as_of))
            if not as_json:
                show_summary(first, False)
                _show_results(runner, data.as_of, crm_value, first.samples)
            second = runner.run(SyncOptions(as_of=data.as_of))
            say(styled(f"\nsecond sync: pulled {second.pulled_contacts:,} changed contacts (our own writes), planned "
                       f"{second.planned_records:,} updates, made ", (str(second.write_calls), "bold"),
                       " write calls — nothing changed."))
            latest = state.run(first.run_id)
            exports.write_text(report_path, render_html(latest))
            say(f"report: {report_path.resolve()}  ({time.monotonic() - started:.1f}s in all)")
            if as_json:
                emit_json({"ok": True, "crm": crm, "first": first.to_dict(), "second": second.to_dict(),
                           "report": str(report_path), "seconds": round(time.monotonic() - started, 2)})
            state.close()
    finally:
        if temp:
            temp.cleanup()


#: The demo's EngageBay sandbox answers 429 above this many requests a minute (the connector paces just below).
DEMO_ENGAGEBAY_LIMIT = 3_000

CrmValue = Callable[[str, str], Any]
"""The value a sandbox CRM holds now for (record id, our logical field name)."""


@contextmanager
def _sandbox(crm: str, data: Any, root: Path, say: Callable[..., None]
             ) -> Iterator[tuple[ClmConfig, Connector, Connector, CrmValue]]:
    """Start the chosen sandbox seeded with ``data``; yield a configuration, the sync's connector, the one that
    sets our fields up (``clm fields ensure``: on Salesforce an admin's, granting them to the integration user the
    sync runs as) and a value reader."""
    if crm == "hubspot":
        from connectors.sandbox.hubspot import RateLimits, start_hubspot_sandbox

        server, emulator = start_hubspot_sandbox(data.contact_records(), data.deal_records(),
                                                 rate_limits=RateLimits.professional())
        try:
            say(f"HubSpot sandbox at {server.url}: {emulator.count('contacts'):,} contacts, "
                f"{emulator.count('deals'):,} deals (190 requests / 10 s, as HubSpot Professional)")
            config = demo_config(server.url, root / "state.db")
            connector = wiring.build_connector(config, token=emulator.token)

            def hubspot_value(record_id: str, name: str) -> Any:
                return ((emulator.record("contacts", record_id) or {}).get("properties") or {}).get(
                    connector.crm_field_name(name))

            yield config, connector, connector, hubspot_value
        finally:
            server.stop()
        return
    if crm == "engagebay":
        from connectors.sandbox.engagebay import EngageBayEmulator, start_engagebay_sandbox

        eb_server, account = start_engagebay_sandbox(data.contact_records(), data.deal_records(),
                                                     emulator=EngageBayEmulator(rate_limit=DEMO_ENGAGEBAY_LIMIT))
        try:
            say(f"EngageBay sandbox at {eb_server.url}: {account.count('contacts'):,} contacts, "
                f"{account.count('deals'):,} deals ({DEMO_ENGAGEBAY_LIMIT:,} requests / minute: EngageBay "
                "publishes no limit; one call per contact written, as its API has no batch update)")
            config = engagebay_demo_config(eb_server.url, root / "state.db")
            eb_connector = wiring.build_connector(config, token=account.api_key)

            def engagebay_value(record_id: str, name: str) -> Any:
                return account.value(record_id, eb_connector.crm_field_name(name))

            yield config, eb_connector, eb_connector, engagebay_value
        finally:
            eb_server.stop()
        return
    from connectors.sandbox.generator import DEAL_PROPERTY_TYPES
    from connectors.sandbox.salesforce import SalesforceEmulator, client_session, start_salesforce_sandbox

    org = SalesforceEmulator()
    seeded = org.seed(data.contact_records(), data.deal_records(), deal_properties=DEAL_PROPERTY_TYPES)
    sf_server, org = start_salesforce_sandbox(tls_dir=root / "tls", emulator=org)
    try:
        say(f"Salesforce sandbox at {sf_server.url} (TLS): {len(seeded.contact_ids):,} contacts, "
            f"{len(seeded.deal_ids):,} opportunities, {len(seeded.contact_role_ids):,} contact roles, "
            f"{len(seeded.account_ids):,} accounts")
        config = salesforce_demo_config(root / "state.db", seeded.contact_fields, seeded.deal_fields)
        sf_connector = wiring.build_connector(config, session=client_session(sf_server), instance_url=sf_server.url,
                                              session_id=org.session_id)

        admin = wiring.build_connector(config, session=client_session(sf_server), instance_url=sf_server.url,
                                       session_id=org.admin_session_id, assign_to=org.store.org.username)

        def salesforce_value(record_id: str, name: str) -> Any:
            return (org.record(record_id) or {}).get(sf_connector.crm_field_name(name))

        yield config, sf_connector, admin, salesforce_value
    finally:
        sf_server.stop()


def _show_results(runner: SyncRunner, as_of: Any, crm_value: CrmValue, samples: list[dict[str, Any]]) -> None:
    result, metrics, _ = runner.compute(as_of)
    records = list(result.records())
    print_terminal(RunRecord(0, "", None, "ok", "demo", as_of.isoformat(), {}, metrics), console)
    grades = metrics.get("scores", {}).get("grade_counts", {})
    console.print("lead grades: " + ", ".join(f"{g} {n:,}" for g, n in grades.items()))
    clv = metrics.get("clv", {})
    console.print(f"CLV per customer: median {clv.get('median', 0):,.0f}, p90 {clv.get('p90', 0):,.0f}, "
                  f"p99 {clv.get('p99', 0):,.0f}; top 10% hold {100 * (clv.get('top10_share') or 0):.0f}% of it")
    top = sorted(records, key=lambda r: r.clv, reverse=True)[:5]
    table = Table("contact", "stage", "CLV", "historical", "P(alive)", "next action", title="Top customers by CLV")
    for r in top:
        table.add_row(literal(r.contact_id), literal(r.stage), f"{r.clv:,.0f}", f"{r.historical_value:,.0f}",
                      f"{r.p_alive:.2f}" if r.p_alive is not None else "–", literal(r.next_best_action))
    console.print(table)
    if samples:
        sample = samples[0]
        table = Table("field", "before", "after (in the sandbox CRM now)",
                      title=f"Contact {literal(sample['record_id'])}")
        for name in sample["after"]:
            now = crm_value(sample["record_id"], name)
            table.add_row(name, literal(sample["before"].get(name) or "–"), "" if now is None else literal(now))
        console.print(table)


@cli.command()
@config_option
@click.option("--run", "run_id", type=int, help="Which run (default: the latest with metrics).")
@click.option("--compare", "compare_ids", type=int, nargs=2, help="Compare two runs: RUN_A RUN_B (before, after).")
@click.option("--html", "html_path", type=click.Path(path_type=Path), help="Write the HTML report here.")
@json_option
@handles_errors
def report(config_path: Path, run_id: int | None, compare_ids: tuple[int, int] | None, html_path: Path | None,
           as_json: bool) -> None:
    """The metrics of a run in the terminal, or as a self-contained HTML page with charts."""
    config = wiring.load(config_path)
    if html_path:
        exports.check_writable(html_path)  # before looking up runs, so a bad path is told first
    state = wiring.open_state(config)
    before: RunRecord | None = None
    moves = None
    if compare_ids:
        if compare_ids[0] >= compare_ids[1]:
            raise UsageError(f"--compare takes the earlier run first (before, after), got {compare_ids[0]} "
                             f"then {compare_ids[1]}", hint=f"clm report --compare {min(compare_ids)} "
                             f"{max(compare_ids)}")
        before, run = state.run(compare_ids[0]), state.run(compare_ids[1])
        moves = state.stage_moves(before.id, run.id)
    elif run_id is not None:
        run = state.run(run_id)
    else:
        runs = [r for r in state.runs(200) if r.metrics]
        if not runs:
            raise UsageError("no run with metrics yet", hint="run `clm sync` (or `clm sync --dry-run`) first")
        run = runs[0]
    if html_path:
        exports.write_text(html_path, render_html(run, before, moves))
    if as_json:
        payload: dict[str, Any] = {"run": run.id, "metrics": run.metrics, "html": str(html_path) if html_path else None}
        if before is not None:
            payload["compare"] = {"before": before.id, "after": run.id, "changes": comparison(before, run),
                                  "flow": stage_flow(run, moves or [])}
        emit_json(payload)
    else:
        print_terminal(run, console)
        if before is not None:
            print_comparison(before, run, console, moves)
        if html_path:
            say(f"wrote {html_path}")


def _last_port(port_file: Path) -> int:
    """The port a sandbox had last time (0, any free port, the first time): a project's base_url stays valid."""
    try:
        return int(port_file.read_text(encoding="utf-8").strip() or 0)
    except (OSError, ValueError):
        return 0


def _serve_saved(label: str, db: Path, port: int | None, echo: Callable[[str], None],
                 saved: list[tuple[Any, Path]], restore: Callable[[Path], Any],
                 start: Callable[[int, Any], tuple[SandboxServer, Any]]) -> tuple[SandboxServer, Any, bool]:
    """Start one sandbox of ``clm sandbox serve`` from the data it saved in ``db`` (``restore`` reads it) when
    there is some, on ``port`` or the one it had last time; register its data in ``saved`` (written again when the
    server stops) and save new data at once, so a sandbox killed without Ctrl-C still comes back with it."""
    port_file = db.with_suffix(".port")
    chosen = _last_port(port_file) if port is None else port
    previous = None
    if db.exists():
        try:
            previous = restore(db)
        except (OSError, ValueError, KeyError) as exc:
            raise UsageError(f"the {label} sandbox's saved data {db} cannot be read ({exc})",
                             hint=f"delete {db} to start afresh") from None
    try:
        server, served = start(chosen, previous)
    except OSError as exc:
        raise _cannot_listen(chosen, exc) from None
    saved.append((served, db))
    port_file.write_text(f"{server.port}\n", encoding="utf-8")
    if previous is None:
        served.save(db)
    else:
        echo(f"{label} sandbox: restored the data saved in {db}")
    return server, served, previous is not None


def _cannot_listen(port: int | None, exc: OSError) -> UsageError:
    return UsageError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}",
                      hint="another sandbox may be running there; stop it, or pass --port")


@cli.group()
def sandbox() -> None:
    """Local emulators of the CRMs' APIs, for trying crm-lifecycle without an account."""


@sandbox.command("serve")
@click.option("--crm", type=click.Choice(["hubspot", "salesforce", "engagebay", "both"]), default="hubspot",
              show_default=True, help="Which CRM to emulate (both: HubSpot and Salesforce side by side).")
@click.option("--contacts", "size", default=5000, show_default=True, help="How many contacts to generate.")
@click.option("--seed", default=7, show_default=True, help="Seed of the generated data: the same seed, the same data.")
@click.option("--cdnow", is_flag=True, help="Seed with the real CDNOW purchases instead of generated data.")
@click.option("--rate-limit/--no-rate-limit", default=True, show_default=True,
              help="Enforce HubSpot's limits (EngageBay: 429 above 300 requests a minute).")
@click.option("--state", "state_dir", type=click.Path(path_type=Path, file_okay=False), default=Path(".clm/sandbox"),
              show_default=True, help="Certificates and the sandboxes' saved data.")
@click.option("--port", type=click.IntRange(0, 65535), default=None,
              help="The sandbox's port (with --crm both, HubSpot's; default: the one it had last time in --state, "
                   "else any free port).")
@click.option("--as-of", "as_of", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="Date the generated data ends at (default: today), so a project's runs see it as current.")
@json_option
@handles_errors
def sandbox_serve(crm: str, size: int, seed: int, cdnow: bool, rate_limit: bool, state_dir: Path,
                  port: int | None, as_of: datetime | None, as_json: bool) -> None:
    """Run the sandbox CRM(s) on loopback until interrupted; prints the URLs and tokens to use (--json: one JSON
    document with them, printed once the servers listen, for a script that starts the sandbox in the background).

    Each sandbox keeps its data in --state (saved when it stops) and comes back on the same port with it, so a
    project pointed at it keeps working across restarts; delete the folder to start afresh.
    """
    from connectors.sandbox.generator import DEAL_PROPERTY_TYPES, generate
    from connectors.sandbox.hubspot import RateLimits, start_hubspot_sandbox
    from connectors.sandbox.hubspot import connection_info as hubspot_info
    from connectors.sandbox.salesforce import connection_info as salesforce_info
    from connectors.sandbox.salesforce import start_salesforce_sandbox

    try:  # before generating data: a folder that cannot be made is told at once
        state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise exports.cannot_write(state_dir, exc) from None
    if cdnow:
        from connectors.sandbox.cdnow import default_cdnow_path, load_cdnow

        path = default_cdnow_path()
        if path is None:
            raise UsageError("CDNOW_sample.txt was not found next to the repository (../shared/data)")
        contacts, deals = load_cdnow(path)
    else:
        # Dated today unless asked: data ending on a fixed past date looks all churned next to runs made today.
        end = (as_of or datetime.now(UTC)).replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=UTC)
        data = generate(size, seed=seed, as_of=end)
        contacts, deals = data.contact_records(), data.deal_records()
    servers = []
    saved: list[tuple[Any, Path]] = []
    # Text goes to a person as it happens; with --json it is collected into the one document printed at the end.
    echo: Callable[[str], None] = (lambda text: None) if as_json else click.echo
    document: dict[str, Any] = {"ok": True, "state": str(state_dir)}
    if crm in ("hubspot", "both"):
        server, emulator, restored = _serve_saved(
            "HubSpot", state_dir / "hubspot.sqlite", port, echo, saved, lambda db: db,
            lambda chosen, db: start_hubspot_sandbox(
                *(((), ()) if db else (contacts, deals)), db_path=db, port=chosen,
                rate_limits=RateLimits() if rate_limit else RateLimits.off()))
        servers.append(server)
        info = hubspot_info(server, emulator)
        document["hubspot"] = {**info, "restored": restored}
        # Plain echo: these lines are copied into a shell and a TOML file (no wrapping, no markup).
        echo(f"HubSpot sandbox: {info['base_url']}\n  export HUBSPOT_TOKEN={info['token']}\n"
                   f"  in clm.toml: [hubspot] base_url = \"{info['base_url']}\"")
    if crm in ("salesforce", "both"):
        from connectors.sandbox.salesforce import SalesforceEmulator

        # With --crm both, --port is HubSpot's: Salesforce keeps its own last port.
        sf_server, sf_emulator, sf_restored = _serve_saved(
            "Salesforce", state_dir / "salesforce.org", port if crm == "salesforce" else None, echo, saved,
            SalesforceEmulator.load,
            lambda chosen, org: start_salesforce_sandbox(
                *(((), ()) if org else (contacts, deals)), tls_dir=state_dir / "tls", emulator=org,
                deal_properties=None if cdnow or org else DEAL_PROPERTY_TYPES, port=chosen))
        servers.append(sf_server)
        info = salesforce_info(sf_server, sf_emulator)
        document["salesforce"] = {**info, "restored": sf_restored}
        # Token or client-credentials auth: simple-salesforce's own logins go to *.salesforce.com, which only the
        # in-process tests reroute, while our client-credentials request goes to SF_INSTANCE_URL (the sandbox).
        echo(f"Salesforce sandbox: {info['instance_url']}\n"
                   f"  export SF_INSTANCE_URL={info['instance_url']} SF_ACCESS_TOKEN='{info['session_id']}' "
                   f"REQUESTS_CA_BUNDLE={Path(info['ca_path']).resolve()}\n"
                   "  in clm.toml: [salesforce] auth = \"token\"\n"
                   f"  or, as an unattended job logs in (the sandbox URL stands for your My Domain): export "
                   f"SF_CONSUMER_KEY='{info['consumer_key']}' SF_CONSUMER_SECRET='{info['consumer_secret']}' and "
                   "[salesforce] auth = \"client_credentials\", consumer_key_env = \"SF_CONSUMER_KEY\", "
                   "consumer_secret_env = \"SF_CONSUMER_SECRET\"")
        # That user has no setup rights, as a real integration user: our fields are an admin's one-time step.
        echo(f"  first, as the org's admin: SF_ACCESS_TOKEN='{info['admin_session_id']}' clm fields ensure "
                   f"--assign-to {info['username']}")
    if crm == "engagebay":
        from connectors.sandbox.engagebay import Account, EngageBayEmulator, start_engagebay_sandbox
        from connectors.sandbox.engagebay import connection_info as engagebay_info

        eb_server, eb_emulator, eb_restored = _serve_saved(
            "EngageBay", state_dir / "engagebay.json", port, echo, saved, Account.load,
            lambda chosen, account: start_engagebay_sandbox(
                *(((), ()) if account else (contacts, deals)), port=chosen,
                emulator=EngageBayEmulator(account=account, rate_limit=300 if rate_limit else None)))
        servers.append(eb_server)
        info = engagebay_info(eb_server, eb_emulator)
        document["engagebay"] = {**info, "restored": eb_restored}
        echo(f"EngageBay sandbox: {info['base_url']}\n"
             f"  export ENGAGEBAY_API_KEY={info['api_key']}\n"
             f"  in clm.toml: [engagebay] base_url = \"{info['base_url']}\"")
    if as_json:
        emit_json(document)
        sys.stdout.flush()
    echo("serving; press Ctrl-C to stop")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        for server in servers:
            server.stop()
        for emulator, db in saved:
            emulator.save(db)
    sys.exit(0)
