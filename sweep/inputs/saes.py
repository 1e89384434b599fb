"""Load SAEs (SAE-Lens format) and check they fit the model they will read from."""

import difflib
import json
import re
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from omegaconf import DictConfig
from sae_lens import SAE
from safetensors import SafetensorError, safe_open

from sweep.base.errors import QfeatError, one_line
from sweep.base.hooks import hook_layer
from sweep.base.registry import Registry
from sweep.config.locations import LOCAL_SAES, RELEASE_SAES, local_sae_path, sae_layers
from sweep.inputs.hooked import HookedLM
from sweep.inputs.hub import load_error

# An SAE loader: (sae config, layer, device) -> SAE in eval mode.
SAES: Registry[Callable[[DictConfig, int, torch.device], SAE]] = Registry("sae")


def load_saes(cfg: DictConfig, device: torch.device) -> dict[str, SAE]:
    """Every SAE the job measures, keyed by hook name (one forward pass feeds them all)."""
    loader = SAES.get(cfg.name)
    saes = {}
    for layer in sae_layers(cfg):
        sae = loader(cfg, layer, device)
        saes[sae.cfg.metadata.hook_name] = sae
    return saes


@contextmanager
def _quiet_tl_kwargs_advice() -> Iterator[None]:
    """Silence SAE-Lens' advice to load the model with its kwargs: sweep.inputs.hooked applies
    them."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"(?s).*model_from_pretrained_kwargs")
        yield


# SAE-Lens' weight names and their shapes in terms of cfg.json's d_in and d_sae.
WEIGHT_SHAPES = {
    "W_enc": ("d_in", "d_sae"),
    "W_dec": ("d_sae", "d_in"),
    "b_enc": ("d_sae",),
    "b_dec": ("d_in",),
}


def shape_mismatch(path: Path) -> str | None:
    """Which cfg.json field disagrees with which weight's shape, read from the files' headers
    (no tensor is loaded); None when they agree or cannot be read."""
    try:
        cfg = json.loads((path / "cfg.json").read_text())
        with safe_open(str(path / "sae_weights.safetensors"), "pt") as weights:
            shapes = {k: tuple(weights.get_slice(k).get_shape()) for k in weights.keys()}  # noqa: SIM118
    except (OSError, ValueError, TypeError, SafetensorError):
        return None
    for name, dims in WEIGHT_SHAPES.items():
        if name not in shapes:
            continue
        expected = tuple(cfg.get(d) for d in dims)
        if shapes[name] != expected:
            field = next(
                d for d, e, got in zip(dims, expected, shapes[name], strict=True) if e != got
            )
            return (
                f"cfg.json has {field}={cfg.get(field)} but {name} is "
                f"{list(shapes[name])} ({' x '.join(dims)})"
            )
    return None


def load_local_sae(cfg: DictConfig, layer: int, device: torch.device) -> SAE:
    """An SAE in SAE-Lens' on-disk format at `sae.path` (default: the tiny build's SAE of that
    family at `layer`)."""
    path = local_sae_path(cfg, layer)
    if path is None:
        raise QfeatError("sae.name=local needs sae.path (an SAE-Lens directory)")
    if not path.is_dir():
        raise QfeatError(f"SAE directory {str(path)!r} does not exist")
    try:
        with _quiet_tl_kwargs_advice():
            sae = SAE.load_from_disk(str(path), device=str(device))
    except Exception as err:  # truncated weights, cfg.json disagreeing with them, bad JSON …
        why = shape_mismatch(path) or one_line(err)
        raise QfeatError(f"cannot load SAE from {str(path)!r}: {why}") from err
    found = hook_layer(sae.cfg.metadata.hook_name)
    if found != layer:
        raise QfeatError(f"SAE {cfg.name!r} exists for layer {found} only; layer {layer} asked for")
    return sae.eval()


def release_layers(release: str, sae_id_template: str) -> dict[int, str]:
    """Layer -> sae_id of every SAE in an SAE-Lens release that matches the id template.

    Read from SAE-Lens' packaged pretrained directory (offline); an unknown release fails with
    the closest valid names.
    """
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    directory = get_pretrained_saes_directory()
    if release not in directory:
        close = difflib.get_close_matches(release, list(directory), n=8, cutoff=0.5)
        hint = ", ".join(close) if close else ", ".join(sorted(directory)[:20]) + ", ..."
        raise QfeatError(
            f"unknown SAE-Lens release {release!r}; valid releases include: {hint} "
            f"({len(directory)} in sae_lens/pretrained_saes.yaml)"
        )
    if "{layer}" not in sae_id_template:
        raise QfeatError(f"sae.sae_id={sae_id_template!r} must contain '{{layer}}'")
    before, after = sae_id_template.split("{layer}", 1)
    pattern = re.compile(re.escape(before) + r"(\d+)" + re.escape(after.replace("{layer}", "")))
    layers = {}
    for sae_id in directory[release].saes_map:
        match = pattern.fullmatch(sae_id)
        if match and sae_id == sae_id_template.format(layer=int(match.group(1))):
            layers[int(match.group(1))] = sae_id
    if not layers:
        ids = list(directory[release].saes_map)[:6]
        raise QfeatError(
            f"no SAE of release {release!r} matches sae.sae_id={sae_id_template!r}; "
            f"its ids look like {ids}"
        )
    return dict(sorted(layers.items()))


def load_release_sae(cfg: DictConfig, layer: int, device: torch.device) -> SAE:
    """One SAE of an SAE-Lens release (`sae.release`, `sae.sae_id` template with {layer})."""
    if not cfg.release or not cfg.sae_id:
        raise QfeatError(f"SAE {cfg.name!r} needs sae.release and sae.sae_id (with {{layer}})")
    layers = release_layers(cfg.release, cfg.sae_id)
    if layer not in layers:
        raise QfeatError(
            f"SAE-Lens release {cfg.release!r} has no SAE for layer {layer} "
            f"(sae.sae_id={cfg.sae_id!r}); valid layers: {list(layers)}"
        )
    from sae_lens.loading.pretrained_saes_directory import get_repo_id_and_folder_name

    repo_id, _ = get_repo_id_and_folder_name(cfg.release, layers[layer])
    try:
        with _quiet_tl_kwargs_advice():
            sae = SAE.from_pretrained(cfg.release, layers[layer], device=str(device))
    except OSError as err:  # LocalEntryNotFoundError is an OSError
        raise load_error(
            f"SAE {layers[layer]!r} of release {cfg.release!r} from repo", repo_id, err
        ) from err
    return sae.eval()


def check_sae_fits(sae: SAE, model: HookedLM) -> str:
    """The SAE's hook name, after checking the model has that hook and its width is d_in."""
    hook = sae.cfg.metadata.hook_name
    model.check_hook(hook)
    _check_width(sae, model.d_model)
    return hook


def check_sae_fits_config(sae: SAE, hf_config) -> None:
    """Cheap check against the HF config, before any forward pass: layer index and width."""
    hook = sae.cfg.metadata.hook_name
    layer = hook_layer(hook)
    n_layers = hf_config.num_hidden_layers
    if layer is not None and not 0 <= layer < n_layers:
        raise QfeatError(f"SAE hook {hook!r} does not exist in a model with {n_layers} layers")
    _check_width(sae, hf_config.hidden_size)


def _check_width(sae: SAE, d_model: int) -> None:
    if sae.cfg.d_in != d_model:
        hook = sae.cfg.metadata.hook_name
        raise QfeatError(
            f"SAE at {hook!r} has d_in={sae.cfg.d_in} but the model's d_model={d_model}"
        )


def shared_model_kwargs(saes: dict[str, SAE]) -> dict:
    """The SAEs' common model_from_pretrained_kwargs; SAEs needing different models can't share."""
    kwargs = [dict(sae.cfg.metadata.model_from_pretrained_kwargs or {}) for sae in saes.values()]
    if any(k != kwargs[0] for k in kwargs):
        raise QfeatError(f"the SAEs {list(saes)} expect differently processed models: {kwargs}")
    return kwargs[0]


for _name in LOCAL_SAES:
    SAES.register(_name)(load_local_sae)
for _name in RELEASE_SAES:
    SAES.register(_name)(load_release_sae)
