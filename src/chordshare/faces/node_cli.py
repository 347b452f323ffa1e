"""`chordshare node`: run one node in the foreground, from flags, CHORDSHARE_* variables and
a YAML settings file (`config.py`), until Ctrl-C or SIGTERM (`serve.py`). What a node runs
is loaded when the command runs: the client commands never load it."""

# No `from __future__ import annotations`: see cli_app.

import contextlib
import logging
from pathlib import Path
from typing import Annotated

import typer

from chordshare.chord.membership import DEFAULT_CAP
from chordshare.chord.state import DEFAULT_SUCCESSORS
from chordshare.faces.cli_app import fail
from chordshare.faces.loops import run
from chordshare.faces.render import err_console
from chordshare.files.placement import DEFAULT_REPLICAS
from chordshare.files.publisher import parse_key_text
from chordshare.ids import DEFAULT_BITS


def node(
    config: Annotated[
        Path | None,
        typer.Option(help="A YAML settings file (flags and CHORDSHARE_* variables win over it)."),
    ] = None,
    bind: Annotated[
        str | None, typer.Option(help="HOST:PORT to listen on (port 0: any free port).")
    ] = None,
    advertise: Annotated[
        str | None,
        typer.Option(help="HOST:PORT other nodes reach this one at (default: --bind)."),
    ] = None,
    join: Annotated[str | None, typer.Option(help="HOST:PORT of any node on the ring.")] = None,
    node_id: Annotated[
        int | None, typer.Option("--id", help="Fix the ring id (default: SHA-1 of the address).")
    ] = None,
    bits: Annotated[
        int | None, typer.Option(help=f"Width m of ring ids, 3..160 (default {DEFAULT_BITS}).")
    ] = None,
    successors: Annotated[
        int | None,
        typer.Option(help=f"Length r of the successor list (default {DEFAULT_SUCCESSORS})."),
    ] = None,
    hint_cap: Annotated[
        int | None,
        typer.Option(
            help="Largest ring whose whole membership each node keeps, to look keys up in "
            f"one round trip; 0 turns it off (default {DEFAULT_CAP})."
        ),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Where the node keeps its files (default: under ~/.local/share)."),
    ] = None,
    max_store: Annotated[
        str | None,
        typer.Option(help="Most bytes this node stores, e.g. 10GiB (default: no limit)."),
    ] = None,
    share: Annotated[
        Path | None,
        typer.Option(
            help="Share this directory's files in place, subfolders included, without copying."
        ),
    ] = None,
    share_replicate: Annotated[
        bool | None,
        typer.Option(
            "--share-replicate",
            help="Also put the shared files into the ring (k copies, put again when they "
            "change), so they outlive this node (default: served only from here).",
        ),
    ] = None,
    scrub_rate: Annotated[
        str | None,
        typer.Option(
            help="Bytes per second at which stored chunks are read again, checked and healed "
            "from other holders, e.g. 4M (the default); 0: never."
        ),
    ] = None,
    unfinished_put_ttl: Annotated[
        str | None,
        typer.Option(
            help="How long the chunks of a put cut off before its end are kept (counted in "
            "--max-store) for its rerun to send only the rest, e.g. 30m; default 1h; 0: not kept."
        ),
    ] = None,
    link_grace: Annotated[
        str | None,
        typer.Option(
            help="How long a version a replace or removal took its name from is kept (counted "
            "in --max-store) so that links to it keep working, e.g. 2h; default 24h; 0: not kept."
        ),
    ] = None,
    max_upload_rate: Annotated[
        str | None,
        typer.Option(
            help="Most bytes per second this node sends for users' transfers (chunks it "
            "serves to gets, uploads it sends on, a put's copies), e.g. 4M; 0: no limit "
            "(the default)."
        ),
    ] = None,
    max_download_rate: Annotated[
        str | None,
        typer.Option(
            help="Most bytes per second this node receives for users' transfers (puts, a "
            "put's copies, its API's gets), e.g. 4M; 0: no limit (the default)."
        ),
    ] = None,
    max_repair_rate: Annotated[
        str | None,
        typer.Option(
            help="Most bytes per second of repair and scrubbing, sent, received and read "
            "together, apart from users' transfers, e.g. 2M; 0: no limit (the default)."
        ),
    ] = None,
    replicas: Annotated[
        int | None,
        typer.Option(
            help=f"Copies k of every file: owner and k-1 successors ({DEFAULT_REPLICAS})."
        ),
    ] = None,
    api: Annotated[
        str | None,
        typer.Option(
            help="HOST:PORT of the REST API, or 'off' (default: loopback at the peer port + "
            "1000, e.g. 127.0.0.1:8000 for a node on port 7000)."
        ),
    ] = None,
    api_cache: Annotated[
        str | None,
        typer.Option(
            help="Most bytes of whole files the REST API keeps for downloads, served to other "
            "getters too, least recently used evicted first, e.g. 1GiB (the default); 0: none."
        ),
    ] = None,
    cluster_token: Annotated[
        str | None,
        typer.Option(help="Shared secret every peer call must carry (or a file, below)."),
    ] = None,
    cluster_token_file: Annotated[
        Path | None, typer.Option(help="A file whose first line is the cluster token.")
    ] = None,
    tls_cert: Annotated[
        Path | None, typer.Option(help="This node's certificate, for mutual TLS (PEM).")
    ] = None,
    tls_key: Annotated[Path | None, typer.Option(help="This node's private key (PEM).")] = None,
    tls_ca: Annotated[
        Path | None, typer.Option(help="The network's CA certificate (PEM): peers must hold one.")
    ] = None,
    api_token: Annotated[
        str | None,
        typer.Option(help="Token the REST API asks of uploads, deletes and leave (or a file)."),
    ] = None,
    api_token_file: Annotated[
        Path | None, typer.Option(help="A file whose first line is the API token.")
    ] = None,
    api_protect_reads: Annotated[
        bool | None,
        typer.Option(
            "--api-protect-reads/--api-open-reads",
            help="Ask for the API token on reading endpoints too (default: open).",
        ),
    ] = None,
    api_open: Annotated[
        bool | None,
        typer.Option(
            "--api-open",
            help="No API token: anyone who reaches the API may upload, delete and stop the "
            "node (default: a token made at first start, kept in the data directory).",
        ),
    ] = None,
    api_allowed_hosts: Annotated[
        list[str] | None,
        typer.Option(
            help="Another name the API answers to, e.g. a DNS name or a proxy in front of it "
            "(repeatable; others get 403)."
        ),
    ] = None,
    api_cors_origin: Annotated[
        list[str] | None,
        typer.Option(
            help="Origin (scheme://host:port) of another page that may call the API "
            "(repeatable; others get 403 on changes and no CORS headers)."
        ),
    ] = None,
    admin_key: Annotated[
        list[str] | None,
        typer.Option(
            help="A public key (ed25519:..., from `chordshare id show`) that may replace or "
            "remove any file, besides its publisher's (repeatable)."
        ),
    ] = None,
    log_level: Annotated[
        str | None, typer.Option(help="debug, info (default), warning or error.")
    ] = None,
    log_format: Annotated[
        str | None, typer.Option(help="text (default), or json: one JSON object per line.")
    ] = None,
    recover_data: Annotated[
        bool,
        typer.Option(
            "--recover-data",
            help="If the data directory's catalog is damaged, set it aside, keep the chunk "
            "files that still check, and start: the ring gives this node its files back. "
            "A sound catalog is used as it is.",
        ),
    ] = False,
) -> None:
    """Run one node in the foreground until Ctrl-C or SIGTERM (then it leaves gracefully)."""
    from chordshare.config import ConfigError, load_config
    from chordshare.faces.logs import setup_logging
    from chordshare.faces.serve import api_settings, default_data_dir, open_doors, serve
    from chordshare.node.runtime import JoinError
    from chordshare.node.server import NodeFailed, NodeSettings, StartError
    from chordshare.sharing.peer_setup import DataDirInUse, SharingSettings
    from chordshare.storage.catalog import CatalogDamaged, CatalogUnusable
    from chordshare.transport.security import PeerSecurity, SecurityError

    flags = {
        "bind": bind,
        "advertise": advertise,
        "join": join,
        "id": node_id,
        "bits": bits,
        "successors": successors,
        "hint_cap": hint_cap,
        "data_dir": data_dir,
        "max_store": max_store,
        "share": share,
        "share_replicate": share_replicate,
        "scrub_rate": scrub_rate,
        "unfinished_put_ttl": unfinished_put_ttl,
        "link_grace": link_grace,
        "max_upload_rate": max_upload_rate,
        "max_download_rate": max_download_rate,
        "max_repair_rate": max_repair_rate,
        "replicas": replicas,
        "api": api,
        "api_cache": api_cache,
        "cluster_token": cluster_token,
        "cluster_token_file": cluster_token_file,
        "tls_cert": tls_cert,
        "tls_key": tls_key,
        "tls_ca": tls_ca,
        "api_token": api_token,
        "api_token_file": api_token_file,
        "api_protect_reads": api_protect_reads,
        "api_open": api_open,
        "api_allowed_hosts": api_allowed_hosts or None,
        "api_cors_origin": api_cors_origin or None,
        "admin_keys": admin_key or None,
        "log_level": log_level,
        "log_format": log_format,
    }
    try:
        conf = load_config(config, flags)
    except ConfigError as err:
        fail(str(err))
    setup_logging(conf.log_level, conf.log_format)
    if conf.share is not None and not conf.share.is_dir():
        fail(f"share {conf.share}: not a directory")
    sharing = SharingSettings(
        data_dir=conf.data_dir or default_data_dir(conf.advertise or conf.bind),
        max_store=conf.max_store,
        share=conf.share,
        replicas=conf.replicas,
        scrub_rate=conf.scrub_rate,
        admin_keys=frozenset(parse_key_text(text) for text in conf.admin_keys),
        cache_bytes=conf.api_cache,
        share_replicate=conf.share_replicate,
        unfinished_put_ttl=conf.unfinished_put_ttl,
        link_grace=conf.link_grace,
        max_upload_rate=conf.max_upload_rate,
        max_download_rate=conf.max_download_rate,
        max_repair_rate=conf.max_repair_rate,
        # A flag only, not a setting of the file or the environment: a one-off step for
        # one start, not a way to run.
        recover_data=recover_data,
    )
    try:
        security = PeerSecurity.load(
            conf.cluster_token, conf.cluster_token_file, conf.tls_cert, conf.tls_key, conf.tls_ca
        )
        web = None if conf.api == "off" else api_settings(conf)
    except (SecurityError, ValueError) as err:
        fail(str(err))
    settings = NodeSettings(
        security=security,
        bind=conf.bind,
        advertise=conf.advertise,
        join=conf.join,
        node_id=conf.id,
        bits=conf.bits,
        successors=conf.successors,
        hint_cap=conf.hint_cap,
    )
    for warning in open_doors(conf):
        logging.getLogger("chordshare").warning("%s", warning)

    def say(line: str) -> None:
        err_console.print(line, highlight=False, markup=False)

    try:
        with contextlib.suppress(KeyboardInterrupt):
            run(serve(settings, sharing, web, say))
    except (StartError, JoinError, DataDirInUse, NodeFailed) as err:
        fail(str(err))
    except CatalogDamaged as err:
        fail(
            f"{err}: start with --recover-data to set it aside and get this node's files "
            "back from the ring"
        )
    except CatalogUnusable as err:
        fail(str(err))
    except OSError as err:
        fail(f"--data-dir {sharing.data_dir}: {err}")
