"""``deepdenoise keys``: CURVE key pairs for the service and its clients."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from ._common import console, fail


def keys(
    name: Annotated[str, typer.Argument(help="Whose keys: service, or a client's name.")],
    directory: Annotated[Path, typer.Option("--dir", help="Where the files go.")] = Path("keys"),
    force: Annotated[
        bool, typer.Option("--force", help="Replace a key pair of that name already there.")
    ] = False,
) -> None:
    """Make a CURVE key pair: NAME.key (public, to share) and NAME.key_secret (keep it)."""
    from zmq.auth import create_certificates

    if not name or any(c in name for c in "/\\\\") or name.startswith("."):
        raise fail(f"expected a plain name such as service or rig-1, got {name!r}")
    pair = (directory / f"{name}.key", directory / f"{name}.key_secret")
    existing = [p for p in pair if p.exists()]
    if existing and not force:  # a new pair locks out every peer that holds the old public key
        raise fail(
            f"{' and '.join(str(p) for p in existing)} already there: a new pair would lock "
            f"out every peer set up with {name}.key; keep them, or replace them with --force"
        )
    if directory.exists() and not directory.is_dir():
        raise fail(f"expected --dir to be a folder for the key pair, got the file {directory}")
    directory.mkdir(parents=True, exist_ok=True)
    previous = os.umask(0o077)  # the secret is never readable by others, not for a moment
    try:
        public, secret = (Path(p) for p in create_certificates(directory, name))
    finally:
        os.umask(previous)
    public.chmod(0o644)  # the public key is for sharing
    console.print(f"wrote {public} (public) and {secret} (secret, mode 600)", highlight=False)
    if name == "service":
        how = (
            "For the service, in its config:\n"
            "[security]\n"
            f'secret_key = "{secret.resolve()}"\n'
            f'clients = "{(directory / "clients").resolve()}"\n'
            "# copy each allowed client's .key into that folder\n"
            f"Give {public.name} (public) to the clients: they connect with it."
        )
    else:
        how = (
            f"For the client {name!r}: copy {public.name} (public) into the folder the "
            "service's [security] clients names, which allows it. The client sets this key "
            f"pair on its sockets ({public.name}, {secret.name}) and the service's public "
            "key (service.key) as the server key."
        )
    console.print(how, markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    app.command()(keys)
