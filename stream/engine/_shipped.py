"""The shipped models: which file a model argument names, the default per provider, the
retired names and why, and a model's short id."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from .._errors import ModelError
from ._model_id import model_id
from ._model_meta import ModelMetadata

#: The default shipped model per provider. ``na-lite`` on both: ``na-large``, trained for
#: GPUs, is behind it at 100-1000 photons on the held-out generator, and ONNX Runtime has
#: not yet run either on a GPU here (README, "Models"); ``--model na-large`` chooses it.
CPU_DEFAULT, GPU_DEFAULT = "na-lite", "na-lite"
#: Models shipped once and withdrawn, with the reason a user naming one is told.
_PHANTOM_ONLY = (
    "trained on the project's phantom only, its output was worse than its input at 1000 "
    "photons per pixel on data it was not generated for"
)
RETIRED = {
    "dncnn-lite": _PHANTOM_ONLY,
    "dncnn20": _PHANTOM_ONLY,
    "gaussian-smooth": "a fixed Gaussian is worse than its input at high photon counts; "
    "write it with `deepdenoise ship --reference --out DIR` to compare against it",
}


def shipped_model_path(name: str) -> Path:
    """The ONNX file of a model shipped in ``stream/engine/models`` (see its ``.md`` card)."""
    resource = _shipped_file(name)
    if resource is None:
        if name in RETIRED:
            raise ModelError(
                f"model {name!r} is no longer shipped ({RETIRED[name]}); use "
                f"{CPU_DEFAULT!r}, or train it again from its recipe in exporter/recipes"
            )
        folder = files("stream.engine").joinpath("models")
        raise ModelError(
            f"no shipped model named {name!r}; expected one of "
            f"{', '.join(shipped_model_names())} (looked for {folder.joinpath(f'{name}.onnx')})"
        )
    return resource


def shipped_model_names() -> list[str]:
    """The names of the models shipped in ``stream/engine/models``, sorted."""
    folder = files("stream.engine").joinpath("models")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".onnx"))


def model_file(path: str | Path) -> Path:
    """The file a model argument names: the path itself, or, where no file is there and
    it has no suffix (``na-temporal``), the shipped model of that name -- also when a
    folder of that name is in the way (a training run's, say: a folder is no model).
    Raises ModelError when there is no such shipped model."""
    path = Path(path).expanduser()
    if path.suffix or (path.exists() and not path.is_dir()):
        return path
    if path.is_dir() and (len(path.parts) > 1 or _shipped_file(path.name) is None):
        return path  # the engine says it is a folder, not an .onnx file
    return shipped_model_path(path.name)


def _shipped_file(name: str) -> Path | None:
    """The shipped model's file, or None when the package has no model of that name."""
    resource = files("stream.engine").joinpath("models", f"{name}.onnx")
    return resource if isinstance(resource, Path) and resource.is_file() else None


def default_model_path(provider: str = "cpu") -> Path:
    """The shipped model for an active provider (today ``na-lite`` for every provider:
    noise-adaptive, it keeps up with 30 fps at 256x256 on a 2-core CPU)."""
    return shipped_model_path(CPU_DEFAULT if provider == "cpu" else GPU_DEFAULT)


def model_id_for(path: Path, metadata: ModelMetadata) -> str:
    """Short model id: a hash of the file's graph and weights (:mod:`._model_id`); an
    exported model's is the start of its ``content_hash``."""
    return model_id(path, metadata.content_hash)
