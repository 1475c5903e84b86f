"""Training configs: a YAML file -> validated dataclasses, or one clear ``ConfigError``.

Every message names the key path that is wrong (``optim.lr: expected a number, got
'fast'``), unknown keys get a spelling suggestion (``unknown key 'optim.lrr' (did you mean
'lr'?)``) and missing folders name both the path and the key. Relative paths resolve against
the folder of the config file. The layout follows BasicSR's conventions with shorter names;
see ``docs/training.md`` for the reference.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ARCH_CHOICES_D = ("unet", "vgg")
OPTIMIZERS = ("adam", "adamw")
SCHEDULES = ("multistep", "cosine", "constant")
AMP_MODES = ("none", "bf16", "fp16")
GAN_LOSS_TYPES = ("gan", "ganloss")


class ConfigError(ValueError):
    """A config problem; the message starts with the key path (or the file) at fault."""


# ------------------------------------------------------------------------------ dataclasses


@dataclass
class ModelConfig:
    arch: str | None = None  # ARCHS name; optional when ``pretrained`` is given (detected)
    options: dict[str, Any] = field(default_factory=dict)  # kwargs of the architecture
    pretrained: str | None = None  # zoo name or weight file: fine-tuning starts from it
    teacher: str | None = None  # zoo name or weight file: distillation target
    # weight file or zoo name whose tensors of equal name and shape seed a fresh network: the
    # FSRCNN paper's transfer (train x3, then reuse its layers for x2/x4; only the tail differs)
    init: str | None = None


@dataclass
class TrainDataConfig:
    hr: list[Path]
    lr: Path | None = None  # paired mode: LR images matching the (single) HR folder
    degradation: dict[str, Any] = field(default_factory=lambda: {"type": "bicubic"})
    patch_size: int = 96  # HR patch side; a multiple of the scale
    batch_size: int = 16  # GLOBAL batch: split over the processes of a DDP run
    workers: int = 2
    hflip: bool = True
    rot90: bool = True
    repeat: int = 1  # the image list is repeated this many times per epoch
    cache: bool = True  # decode every training image once, keep them in memory
    # each HR image is also used downscaled by these factors (MATLAB bicubic, antialiased): the
    # SRCNN/VDSR/FSRCNN data preparation, which adds finer detail per pixel to a small set
    scale_augment: list[float] = field(default_factory=lambda: [1.0])


@dataclass
class ValDataConfig:
    hr: Path
    lr: Path | None = None  # None: LR made with MATLAB-exact bicubic from the HR
    every: int = 1000


@dataclass
class DataConfig:
    train: TrainDataConfig
    val: ValDataConfig | None = None


@dataclass
class DiscriminatorConfig:
    arch: str = "unet"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimConfig:
    type: str = "adam"
    lr: float = 2e-4
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.0


@dataclass
class ScheduleConfig:
    type: str = "constant"
    milestones: list[int] = field(default_factory=list)
    gamma: float = 0.5
    min_lr: float = 0.0


@dataclass
class TrainLoopConfig:
    iterations: int
    ema: float | None = None
    amp: str = "none"
    grad_clip: float | None = None
    grad_checkpoint: bool = False
    channels_last: bool = False  # NHWC activations: ~1.4x faster for FSRCNN-like nets on CPU oneDNN
    checkpoint_every: int = 1000
    log_every: int = 100
    loss_border: int = 0  # HR pixels off each side of a patch that pixel losses ignore (zero padding's reach)


@dataclass
class Config:
    name: str
    seed: int
    scale: int
    model: ModelConfig
    data: DataConfig
    losses: list[dict[str, Any]]
    discriminator: DiscriminatorConfig | None
    optim: OptimConfig
    optim_d: OptimConfig
    schedule: ScheduleConfig
    train: TrainLoopConfig
    output: Path
    source: Path | None = None  # the YAML file, when read from one
    raw: dict[str, Any] = field(default_factory=dict)  # the YAML as read (saved with checkpoints)

    @property
    def gan(self) -> bool:
        return any(spec.get("type") in GAN_LOSS_TYPES for spec in self.losses)


# ------------------------------------------------------------------------------ helpers


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    return repr(value)


class _Section:
    """One mapping of the YAML: typed getters that name the key path in every error."""

    def __init__(self, raw: Any, path: str, allowed: tuple[str, ...]) -> None:
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            where = path or "config"
            raise ConfigError(f"{where}: expected a mapping of keys, got {_show(raw)}")
        for key in raw:
            if key not in allowed:
                full = f"{path}.{key}" if path else str(key)
                close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
                hint = f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(allowed)})"
                raise ConfigError(f"unknown key '{full}'{hint}")
        self.raw = raw
        self.path = path

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def has(self, name: str) -> bool:
        return self.raw.get(name) is not None

    def get(self, name: str, default: Any = None) -> Any:
        value = self.raw.get(name)
        return default if value is None else value

    def required(self, name: str) -> Any:
        if self.raw.get(name) is None:
            raise ConfigError(f"{self.key(name)}: required")
        return self.raw[name]

    def number(self, name: str, default: Any = None, *, required: bool = False, min: float | None = None,
               max: float | None = None, min_open: bool = False, max_open: bool = False) -> Any:
        value = self.required(name) if required else self.raw.get(name)
        if value is None:
            return default
        return check_number(value, self.key(name), min=min, max=max, min_open=min_open, max_open=max_open)

    def integer(self, name: str, default: Any = None, *, required: bool = False,
                min: int | None = None) -> Any:
        value = self.required(name) if required else self.raw.get(name)
        if value is None:
            return default
        return check_int(value, self.key(name), min=min)

    def boolean(self, name: str, default: bool) -> bool:
        value = self.raw.get(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise ConfigError(f"{self.key(name)}: expected true or false, got {_show(value)}")
        return value

    def string(self, name: str, default: Any = None, *, required: bool = False) -> Any:
        value = self.required(name) if required else self.raw.get(name)
        if value is None:
            return default
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{self.key(name)}: expected a string, got {_show(value)}")
        return value

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        value = self.raw.get(name, default)
        if value is None:
            value = default
        if not isinstance(value, str):
            raise ConfigError(f"{self.key(name)}: expected one of {', '.join(choices)}, got {_show(value)}")
        if value.lower() not in choices:
            raise ConfigError(f"{self.key(name)}: expected one of {', '.join(choices)}, got {value!r}")
        return value.lower()

    def mapping(self, name: str) -> dict[str, Any]:
        value = self.raw.get(name)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ConfigError(f"{self.key(name)}: expected a mapping, got {_show(value)}")
        return dict(value)

    def folder(self, name: str, base: Path, *, required: bool = False, check: bool = True) -> Path | None:
        value = self.required(name) if required else self.raw.get(name)
        if value is None:
            return None
        return check_folder(value, self.key(name), base, check)


def check_number(value: Any, key: str, *, min: float | None = None, max: float | None = None,
                 min_open: bool = False, max_open: bool = False) -> float:
    """A float; numeric strings such as ``'1e-4'`` are accepted (PyYAML reads them as strings)."""
    number: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
    if number is None or math.isnan(number):
        raise ConfigError(f"{key}: expected a number, got {_show(value)}")
    if min is not None and (number < min or (min_open and number == min)):
        raise ConfigError(f"{key}: must be {'>' if min_open else '>='} {min:g}, got {value!r}")
    if max is not None and (number > max or (max_open and number == max)):
        raise ConfigError(f"{key}: must be {'<' if max_open else '<='} {max:g}, got {value!r}")
    return number


def check_int(value: Any, key: str, *, min: int | None = None) -> int:
    whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not whole:
        raise ConfigError(f"{key}: expected an integer, got {_show(value)}")
    number = int(value)
    if min is not None and number < min:
        raise ConfigError(f"{key}: must be >= {min}, got {number}")
    return number


def check_folder(value: Any, key: str, base: Path, check: bool = True) -> Path:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{key}: expected a folder path, got {_show(value)}")
    path = resolve(value, base)
    if check and not path.is_dir():
        raise ConfigError(f"{key}: folder not found: {path}")
    return path


def resolve(value: str, base: Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base / path).resolve()


def _model_ref(value: Any, key: str, base: Path, check: bool) -> str:
    """A zoo model name (kept as is) or a weight file (resolved against the config folder)."""
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{key}: expected a zoo model name or a weight file path, got {_show(value)}")
    from superres.zoo import catalogue

    if value in catalogue.MODELS:
        return value
    path = resolve(value, base)
    if check and not path.is_file():
        close = difflib.get_close_matches(value, list(catalogue.MODELS), n=1)
        hint = f" (did you mean the zoo model '{close[0]}'?)" if close else ""
        raise ConfigError(f"{key}: {value!r} is neither a zoo model name nor an existing file "
                          f"({path}){hint}")
    return str(path)


# ------------------------------------------------------------------------------ sections

_TOP = ("name", "seed", "scale", "model", "data", "losses", "discriminator", "optim", "optim_d",
        "schedule", "train", "output")


def _scale_augment(raw: Any, paired: bool) -> list[float]:
    """``data.train.scale_augment``: distinct factors in (0, 1]; HR-only mode only."""
    key = "data.train.scale_augment"
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{key}: expected a non-empty list of downscale factors such as "
                          f"[1.0, 0.9, 0.8], got {'[]' if raw == [] else _show(raw)}")
    factors = [check_number(v, f"{key}[{i}]", min=0.0, max=1.0, min_open=True) for i, v in enumerate(raw)]
    if len(set(factors)) < len(factors):
        raise ConfigError(f"{key}: factors repeat ({factors})")
    if paired and factors != [1.0]:
        raise ConfigError(f"{key}: not possible in paired mode (data.train.lr is given): the LR "
                          "images cannot be downscaled to match")
    return factors


def _optim(raw: Any, path: str, defaults: OptimConfig | None = None) -> OptimConfig:
    d = defaults or OptimConfig()
    s = _Section(raw, path, ("type", "lr", "betas", "weight_decay"))
    betas = s.get("betas", list(d.betas))
    if not isinstance(betas, (list, tuple)) or len(betas) != 2:
        raise ConfigError(f"{s.key('betas')}: expected a list of two numbers, got {_show(betas)}")
    b = tuple(check_number(v, f"{s.key('betas')}[{i}]", min=0.0, max=1.0, max_open=True)
              for i, v in enumerate(betas))
    return OptimConfig(
        type=s.choice("type", OPTIMIZERS, d.type),
        lr=s.number("lr", d.lr, min=0.0, min_open=True),
        betas=(b[0], b[1]),
        weight_decay=s.number("weight_decay", d.weight_decay, min=0.0),
    )


def _losses(raw: Any, base: Path) -> list[dict[str, Any]]:
    if raw is None:
        raise ConfigError("losses: required (e.g. [{type: l1, weight: 1.0}])")
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"losses: expected a non-empty list of {{type: ..., weight: ...}}, "
                          f"got {_show(raw)}")
    out = []
    for i, spec in enumerate(raw):
        key = f"losses[{i}]"
        if not isinstance(spec, dict):
            raise ConfigError(f"{key}: expected a mapping like {{type: l1, weight: 1.0}}, got {_show(spec)}")
        if not isinstance(spec.get("type"), str) or not spec["type"]:
            raise ConfigError(f"{key}.type: required (l1, l2, charbonnier, perceptual, gan, ...)")
        spec = dict(spec)
        spec["type"] = spec["type"].lower()
        if "weight" in spec:
            spec["weight"] = check_number(spec["weight"], f"{key}.weight", min=0.0)
        if spec["type"] in ("perceptual", "perceptualloss") and isinstance(spec.get("vgg19"), str):
            spec["vgg19"] = str(resolve(spec["vgg19"], base))  # relative to the config file
        out.append(spec)
    return out


def parse_config(raw: Any, base_dir: str | Path, *, source: Path | None = None,
                 check_paths: bool = True) -> Config:
    """Validate a config mapping; relative paths resolve against ``base_dir``."""
    base = Path(base_dir).resolve()
    top = _Section(raw, "", _TOP)
    name = top.string("name", source.stem if source is not None else "run")
    seed = top.integer("seed", 0, min=0)
    scale = top.integer("scale", required=True, min=1)

    # model
    m = _Section(top.raw.get("model"), "model", ("arch", "options", "pretrained", "teacher", "init"))
    arch = m.string("arch")
    if arch is not None:
        from superres.archs import ARCHS

        if arch not in ARCHS:
            close = difflib.get_close_matches(arch, list(ARCHS), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(ARCHS)})"
            raise ConfigError(f"model.arch: unknown architecture {arch!r}{hint}")
    pretrained = m.raw.get("pretrained")
    pretrained = None if pretrained is None else _model_ref(pretrained, "model.pretrained", base, check_paths)
    teacher = m.raw.get("teacher")
    teacher = None if teacher is None else _model_ref(teacher, "model.teacher", base, check_paths)
    init = m.raw.get("init")
    init = None if init is None else _model_ref(init, "model.init", base, check_paths)
    if arch is None and pretrained is None:
        raise ConfigError("model.arch: required (or model.pretrained, whose architecture is detected)")
    if init is not None and pretrained is not None:
        raise ConfigError("model.init: give either model.pretrained (the whole network) or model.init "
                          "(matching layers only), not both")
    model = ModelConfig(arch=arch, options=m.mapping("options"), pretrained=pretrained, teacher=teacher,
                        init=init)

    # data
    d = _Section(top.raw.get("data"), "data", ("train", "val"))
    if not d.has("train"):
        raise ConfigError("data.train: required")
    t = _Section(d.raw["train"], "data.train",
                 ("hr", "lr", "degradation", "patch_size", "batch_size", "workers", "hflip", "rot90",
                  "repeat", "cache", "scale_augment"))
    hr_raw = t.required("hr")
    hr_list = [hr_raw] if isinstance(hr_raw, str) else hr_raw
    if not isinstance(hr_list, list) or not hr_list:
        raise ConfigError(f"data.train.hr: expected a folder or a list of folders, got {_show(hr_raw)}")
    hr_dirs = [check_folder(v, f"data.train.hr[{i}]" if isinstance(hr_raw, list) else "data.train.hr",
                            base, check_paths) for i, v in enumerate(hr_list)]
    lr_dir = t.folder("lr", base, check=check_paths)
    if lr_dir is not None and len(hr_dirs) != 1:
        raise ConfigError("data.train.lr: paired mode takes exactly one HR folder in data.train.hr")
    degradation = t.mapping("degradation")
    if lr_dir is not None and degradation:
        raise ConfigError("data.train.degradation: not used in paired mode (data.train.lr is given); "
                          "remove it")
    if lr_dir is None:
        degradation = degradation or {"type": "bicubic"}
        if not isinstance(degradation.get("type"), str):
            raise ConfigError("data.train.degradation.type: required (bicubic or realesrgan)")
    patch = t.integer("patch_size", 96, min=1)
    if patch % scale:
        raise ConfigError(f"data.train.patch_size: must be a multiple of the scale ({scale}), got {patch}")
    factors = _scale_augment(t.get("scale_augment", [1.0]), lr_dir is not None)
    train_data = TrainDataConfig(
        hr=hr_dirs, lr=lr_dir, degradation=degradation, patch_size=patch,
        batch_size=t.integer("batch_size", 16, min=1), workers=t.integer("workers", 2, min=0),
        hflip=t.boolean("hflip", True), rot90=t.boolean("rot90", True), repeat=t.integer("repeat", 1, min=1),
        cache=t.boolean("cache", True), scale_augment=factors,
    )
    val = None
    if d.has("val"):
        v = _Section(d.raw["val"], "data.val", ("hr", "lr", "every"))
        val_hr = v.folder("hr", base, required=True, check=check_paths)
        assert val_hr is not None
        val = ValDataConfig(hr=val_hr, lr=v.folder("lr", base, check=check_paths),
                            every=v.integer("every", 1000, min=1))
    data = DataConfig(train=train_data, val=val)

    # losses and discriminator
    losses = _losses(top.raw.get("losses"), base)
    gan_at = [i for i, spec in enumerate(losses) if spec["type"] in GAN_LOSS_TYPES]
    disc = None
    if top.has("discriminator"):
        ds = _Section(top.raw["discriminator"], "discriminator", ("arch", "options"))
        disc = DiscriminatorConfig(arch=ds.choice("arch", ARCH_CHOICES_D, "unet"),
                                   options=ds.mapping("options"))
        if not gan_at:
            raise ConfigError("discriminator: given but no loss has type 'gan'; add one or remove it")
    elif gan_at:
        raise ConfigError(f"discriminator: required because losses[{gan_at[0]}] is a gan loss "
                          f"(e.g. discriminator: {{arch: unet}})")
    if len(gan_at) > 1:
        raise ConfigError(f"losses[{gan_at[1]}]: only one gan loss is supported")
    if teacher is not None and gan_at:
        raise ConfigError("model.teacher: distillation with a gan loss is not supported")

    optim = _optim(top.raw.get("optim"), "optim")
    if top.has("optim_d") and not gan_at:
        raise ConfigError("optim_d: given but there is no gan loss (no discriminator to optimise)")
    optim_d = _optim(top.raw.get("optim_d"), "optim_d", optim)

    sc = _Section(top.raw.get("schedule"), "schedule", ("type", "milestones", "gamma", "min_lr"))
    stype = sc.choice("type", SCHEDULES, "constant")
    ms = sc.get("milestones", [])
    if not isinstance(ms, list):
        raise ConfigError(f"schedule.milestones: expected a list of iterations, got {_show(ms)}")
    milestones = [check_int(x, f"schedule.milestones[{i}]", min=1) for i, x in enumerate(ms)]
    if milestones != sorted(set(milestones)):
        raise ConfigError(f"schedule.milestones: must be strictly increasing, got {milestones}")
    if stype == "multistep" and not milestones:
        raise ConfigError("schedule.milestones: required for a multistep schedule")
    schedule = ScheduleConfig(type=stype, milestones=milestones,
                              gamma=sc.number("gamma", 0.5, min=0.0, min_open=True),
                              min_lr=sc.number("min_lr", 0.0, min=0.0))

    tr = _Section(top.raw.get("train"), "train",
                  ("iterations", "ema", "amp", "grad_clip", "grad_checkpoint", "channels_last",
                   "checkpoint_every", "log_every", "loss_border"))
    loop = TrainLoopConfig(
        iterations=tr.integer("iterations", required=True, min=1),
        ema=tr.number("ema", None, min=0.0, max=1.0, min_open=True, max_open=True),
        amp=tr.choice("amp", AMP_MODES, "none"),
        grad_clip=tr.number("grad_clip", None, min=0.0, min_open=True),
        grad_checkpoint=tr.boolean("grad_checkpoint", False),
        channels_last=tr.boolean("channels_last", False),
        checkpoint_every=tr.integer("checkpoint_every", 1000, min=1),
        log_every=tr.integer("log_every", 100, min=1),
        loss_border=tr.integer("loss_border", 0, min=0),
    )
    if 2 * loop.loss_border >= data.train.patch_size:
        raise ConfigError(f"train.loss_border: {loop.loss_border} px off each side leaves nothing of "
                          f"the {data.train.patch_size} px patch (data.train.patch_size)")

    out_raw = top.get("output", f"runs/{name}")
    if not isinstance(out_raw, str) or not out_raw:
        raise ConfigError(f"output: expected a folder path, got {_show(out_raw)}")
    return Config(name=name, seed=seed, scale=scale, model=model, data=data, losses=losses,
                  discriminator=disc, optim=optim, optim_d=optim_d, schedule=schedule, train=loop,
                  output=resolve(out_raw, base), source=source, raw=dict(raw))


def load_config(path: str | Path, *, check_paths: bool = True,
                overrides: dict[str, Any] | None = None) -> Config:
    """Read and validate a YAML config file; ``overrides`` maps dotted keys to values."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if raw is None:
        raise ConfigError(f"{path}: the file is empty")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    for dotted, value in (overrides or {}).items():
        set_dotted(raw, dotted, value)
    return parse_config(raw, path.resolve().parent, source=path.resolve(), check_paths=check_paths)


def set_dotted(raw: dict[str, Any], dotted: str, value: Any) -> None:
    """``set_dotted(raw, "train.iterations", 10)``: create the sections on the way."""
    node = raw
    parts = dotted.split(".")
    for part in parts[:-1]:
        nxt = node.get(part)
        if not isinstance(nxt, dict):
            nxt = node[part] = {}
        node = nxt
    node[parts[-1]] = value
