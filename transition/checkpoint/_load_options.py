"""RETURNN's config-level model loading: model / load / load_epoch / import_model_train_epoch1 /
allow_random_model_init / load_ignore_missing_vars / preload_from_files.

`decide_loading` is pure (it gets the epochs present under `model`) and returns a `LoadPlan` that can be printed;
`decide_and_load` decides and performs the loading into a network.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from transition.checkpoint._epochs import list_epoch_models
from transition.checkpoint._load_report import LoadReport
from transition.checkpoint._loading import load_checkpoint
from transition.checkpoint._naming import GLOBAL_STEP_TENSOR, epoch_from_filename
from transition.checkpoint._reader import open_checkpoint, resolve_checkpoint
from transition.errors import CheckpointError, ConfigError, did_you_mean

__all__ = [
    "PRELOAD_KEYS",
    "PreloadEntry",
    "LoadPlan",
    "LoadDecision",
    "parse_preload_from_files",
    "decide_loading",
    "decide_and_load",
    "check_load_files",
]

PRELOAD_KEYS = ("filename", "init_for_train", "ignore_missing", "ignore_params", "ignore_params_prefixes",
                "var_name_mapping", "prefix", "custom_missing_load_func")

ROLE_EXISTING = "existing model"
ROLE_LOAD = "load"
ROLE_IMPORT = "import_model_train_epoch1"


@attrs.frozen(hash=False)
class PreloadEntry:
    """One entry of preload_from_files."""

    name: str
    filename: str
    init_for_train: bool = False
    ignore_missing: bool = False
    ignore_params: tuple[str, ...] = ()
    ignore_params_prefixes: tuple[str, ...] = ()
    var_name_mapping: Mapping[str, str] = attrs.field(factory=dict)
    prefix: str = ""
    custom_missing_load_func: Callable[..., Any] | None = None

    def load_options(self) -> dict[str, Any]:
        """Keyword arguments for `load_checkpoint`."""
        return dict(prefix=self.prefix, ignore_missing=self.ignore_missing, ignore_params=self.ignore_params,
                    ignore_params_prefixes=self.ignore_params_prefixes, var_name_mapping=self.var_name_mapping,
                    custom_missing_load_func=self.custom_missing_load_func)


@attrs.frozen(hash=False)
class LoadPlan:
    """What to load and where the run starts, decided from the options without touching any file's content.

    `start_epoch` is the epoch to train next (training) or the epoch of the model used (other tasks; 1 with a
    random init, None if unknown). `new_training` is true when a training starts at epoch 1 with step 0 (then
    init_for_train preloads apply)."""

    task: str
    is_training: bool
    new_training: bool
    start_epoch: int | None
    model_file: str | None
    model_role: str | None  # "existing model", "load", "import_model_train_epoch1" or None
    model_epoch: int | None
    ignore_missing: bool
    preloads: tuple[PreloadEntry, ...]
    skipped_preloads: tuple[tuple[str, str], ...]  # (entry name, why)
    notes: tuple[str, ...]

    @property
    def files(self) -> tuple[tuple[str, str], ...]:
        """(role, path) of every file to load, in load order."""
        files = tuple((f"preload_from_files[{e.name!r}]", e.filename) for e in self.preloads)
        if self.model_file:
            files += ((self.model_role or "", self.model_file),)
        return files

    def log_line(self) -> str:
        """One line for people: what is loaded and where the run starts."""
        if self.model_file:
            what = f"params from {self.model_role} {self.model_file}"
            if self.model_epoch is not None:
                what += f" (epoch {self.model_epoch})"
        else:
            what = "random init"
        if self.is_training:
            head = (f"task {self.task!r}: new training from epoch {self.start_epoch}, step 0, with {what}"
                    if self.new_training else f"task {self.task!r}: continue training at epoch {self.start_epoch} "
                                              f"with {what}")
        else:
            head = f"task {self.task!r}: {what}"
        parts = [head]
        if self.preloads:
            parts.append("preload " + ", ".join(f"{e.name!r} ({e.filename})" for e in self.preloads)
                         + " first; the first to set a param wins")
        parts += [f"preload {name!r} skipped: {why}" for name, why in self.skipped_preloads]
        parts += list(self.notes)
        return "; ".join(parts)

    def __str__(self) -> str:
        return self.log_line()


@attrs.frozen(hash=False)
class LoadDecision:
    """What `decide_and_load` did: the plan, where training starts, the files used and the load reports."""

    plan: LoadPlan
    start_epoch: int | None
    loaded_epoch: int | None
    global_train_step: int | None  # 0 for a new training; from the checkpoint's global_step if it has one
    files: tuple[tuple[str, str], ...]
    reports: tuple[LoadReport, ...]
    log_line: str


def _opt(options: Mapping[str, Any], key: str, types: tuple[type, ...], default: Any = None) -> Any:
    value = options.get(key, default)
    if value is None:
        return default
    if not isinstance(value, types) or (bool not in types and isinstance(value, bool)):
        raise ConfigError(f"option {key!r} must be {' or '.join(t.__name__ for t in types)}, got {value!r}")
    return value


def _str_list(entry: str, key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (list, tuple, set, frozenset)) or not all(
            isinstance(v, str) for v in value):
        raise ConfigError(f"preload_from_files[{entry!r}][{key!r}] must be a list of names, got {value!r}")
    return tuple(value)


def parse_preload_from_files(value: Any) -> tuple[PreloadEntry, ...]:
    """Check preload_from_files and return its entries in sorted name order (the order RETURNN applies them)."""
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        raise ConfigError(f"option 'preload_from_files' must be a dict name -> options, got {type(value).__name__}")
    entries = []
    for name in sorted(value):
        opts = value[name]
        where = f"preload_from_files[{name!r}]"
        if not isinstance(opts, Mapping):
            raise ConfigError(f"{where} must be a dict of options, got {opts!r}")
        for key in opts:
            if key not in PRELOAD_KEYS:
                raise ConfigError(f"{where} has unknown key {key!r}{did_you_mean(key, PRELOAD_KEYS)}; "
                                  f"keys are {list(PRELOAD_KEYS)}")
        if not isinstance(opts.get("filename"), (str, os.PathLike)) or not os.fspath(opts["filename"]):
            raise ConfigError(f"{where} needs 'filename', the checkpoint to load")
        for key in ("init_for_train", "ignore_missing"):
            if not isinstance(opts.get(key, False), bool):
                raise ConfigError(f"{where}[{key!r}] must be True or False, got {opts[key]!r}")
        mapping = opts.get("var_name_mapping") or {}
        if not isinstance(mapping, Mapping):
            raise ConfigError(f"{where}['var_name_mapping'] must be a dict network name -> checkpoint name")
        prefix = opts.get("prefix") or ""
        if not isinstance(prefix, str):
            raise ConfigError(f"{where}['prefix'] must be a string, got {prefix!r}")
        func = opts.get("custom_missing_load_func")
        if func is not None and not callable(func):
            raise ConfigError(f"{where}['custom_missing_load_func'] must be callable, got {func!r}")
        entries.append(PreloadEntry(
            name=str(name), filename=os.fspath(opts["filename"]), init_for_train=opts.get("init_for_train", False),
            ignore_missing=opts.get("ignore_missing", False),
            ignore_params=_str_list(name, "ignore_params", opts.get("ignore_params", ())),
            ignore_params_prefixes=_str_list(name, "ignore_params_prefixes", opts.get("ignore_params_prefixes", ())),
            var_name_mapping=dict(mapping), prefix=prefix, custom_missing_load_func=func))
    return tuple(entries)


@attrs.frozen
class _Options:
    """The loading options of a config, checked."""

    model: str
    load: str
    imp: str  # import_model_train_epoch1
    load_epoch: int | None
    allow_random: bool
    ignore_missing: bool
    preloads: tuple[PreloadEntry, ...]

    @classmethod
    def parse(cls, options: Mapping[str, Any]) -> _Options:
        model = os.fspath(_opt(options, "model", (str, os.PathLike), ""))
        load = os.fspath(_opt(options, "load", (str, os.PathLike), ""))
        load_epoch = _opt(options, "load_epoch", (int,))
        if load_epoch is not None and load_epoch < 1:
            raise ConfigError(f"option 'load_epoch' must be an epoch >= 1, got {load_epoch!r}")
        if load_epoch is not None and not model and not load:
            raise ConfigError("option 'load_epoch' selects an epoch of 'model', but neither 'model' nor 'load' is set")
        return cls(model=model, load=load,
                   imp=os.fspath(_opt(options, "import_model_train_epoch1", (str, os.PathLike), "")),
                   load_epoch=load_epoch, allow_random=_opt(options, "allow_random_model_init", (bool,), False),
                   ignore_missing=_opt(options, "load_ignore_missing_vars", (bool,), False),
                   preloads=parse_preload_from_files(options.get("preload_from_files")))

    @property
    def load_file_epoch(self) -> int | None:
        """The epoch of `load`: `load_epoch`, else from its file name."""
        if self.load_epoch is not None:
            return self.load_epoch
        return epoch_from_filename(self.load) if self.load else None

    def check_load_epoch(self, existing: Mapping[int, str]) -> None:
        """RETURNN's rule: a `load_epoch` without `load` must name an epoch present under `model` (in any task,
        also where it is then not used)."""
        if self.load_epoch is not None and not self.load and self.load_epoch not in existing:
            raise ConfigError(f"load_epoch={self.load_epoch}: no model file for that epoch under model={self.model!r}; "
                              f"epochs present: {sorted(existing) or 'none'}")

    def pick_existing(self, existing: Mapping[int, str]) -> tuple[int, str]:
        """(epoch, file) of the existing model to use outside training: `load_epoch` (without `load`), else the
        newest."""
        self.check_load_epoch(existing)
        epoch = self.load_epoch if self.load_epoch is not None and not self.load else max(existing)
        return epoch, existing[epoch]


@attrs.frozen
class _Start:
    """Where a run starts and from which model file."""

    new_training: bool
    start: int | None
    role: str | None = None
    file: str | None = None
    epoch: int | None = None


def _training_start(o: _Options, existing: Mapping[int, str], notes: list[str]) -> _Start:
    """RETURNN's rules in training (EngineBase.get_epoch_model): the newest existing model under `model` wins (also
    over `load_epoch`, which must still name an existing epoch) and training continues at its epoch + 1;
    `import_model_train_epoch1` starts a new training; `load` continues at its epoch + 1."""
    o.check_load_epoch(existing)
    if existing:
        epoch = max(existing)
        if o.load_epoch is not None and not o.load and o.load_epoch != epoch:
            notes.append(f"load_epoch={o.load_epoch} ignored in training: the newest epoch {epoch} under "
                         f"model={o.model!r} is resumed (as in RETURNN)")
        for key, val in (("load", o.load), ("import_model_train_epoch1", o.imp)):
            if val:
                notes.append(f"{key}={val!r} ignored: the existing model under model={o.model!r} wins")
        return _Start(False, epoch + 1, ROLE_EXISTING, existing[epoch], epoch)
    if o.imp:
        if o.load:
            notes.append(f"load={o.load!r} ignored: import_model_train_epoch1 wins in training")
        return _Start(True, 1, ROLE_IMPORT, o.imp)
    if o.load:
        epoch = o.load_file_epoch
        if epoch is None:
            notes.append(f"epoch of load={o.load!r} unknown (no .NNN suffix, no load_epoch): new training from it")
            return _Start(True, 1, ROLE_LOAD, o.load)
        return _Start(False, epoch + 1, ROLE_LOAD, o.load, epoch)
    return _Start(True, 1)


def _other_task_start(o: _Options, task: str, existing: Mapping[int, str], notes: list[str]) -> _Start:
    """Other tasks need a model: `load`, else the existing one, unless `allow_random_model_init`."""
    if o.imp:
        notes.append(f"import_model_train_epoch1={o.imp!r} ignored: task {task!r} is not 'train'")
    if o.load:
        epoch = o.load_file_epoch
        return _Start(False, epoch, ROLE_LOAD, o.load, epoch)
    if existing or o.load_epoch is not None:
        epoch, file = o.pick_existing(existing)
        return _Start(False, epoch, ROLE_EXISTING, file, epoch)
    if o.allow_random:
        notes.append("no model loaded: allow_random_model_init")
        return _Start(False, 1)
    where = f"no epoch files under model={o.model!r}" if o.model else "neither 'load' nor 'model' is set"
    raise ConfigError(f"task {task!r} needs a model to load but {where}; set 'load', or 'model' with "
                      f"saved epochs, or allow_random_model_init=True to start from a random init")


def decide_loading(options: Mapping[str, Any], task: str, existing_epochs: Mapping[int, str]) -> LoadPlan:
    """Decide what to load (pure). `existing_epochs` are the epoch files present under option `model`
    {epoch: path}. Rules as in RETURNN's EngineBase: in training, the newest existing model under `model` wins over
    `load`, `load_epoch` and `import_model_train_epoch1` and training continues at its epoch + 1 (a `load_epoch`
    without `load` must name an existing epoch, in every task); `import_model_train_epoch1` starts a new
    training at epoch 1; `load` continues at its epoch + 1; other tasks need a model unless
    `allow_random_model_init`. preload_from_files entries apply in sorted name order, init_for_train ones only at
    the start of a new training, the others only outside training."""
    o = _Options.parse(options)
    is_training = task == "train"
    notes: list[str] = []
    if is_training:
        start = _training_start(o, existing_epochs, notes)
    else:
        start = _other_task_start(o, task, existing_epochs, notes)
    applied, skipped = [], []
    for entry in o.preloads:
        if entry.init_for_train and not start.new_training:
            skipped.append((entry.name, "init_for_train applies only at the start of a new training"))
        elif not entry.init_for_train and is_training:
            skipped.append((entry.name, "without init_for_train it applies only outside training"))
        else:
            applied.append(entry)
    return LoadPlan(task=task, is_training=is_training, new_training=start.new_training, start_epoch=start.start,
                    model_file=start.file, model_role=start.role, model_epoch=start.epoch,
                    ignore_missing=o.ignore_missing, preloads=tuple(applied), skipped_preloads=tuple(skipped),
                    notes=tuple(notes))


def check_load_files(plan: LoadPlan) -> None:
    """A CheckpointError naming the option unless every file the plan loads from the options (`load`,
    `import_model_train_epoch1`, the preload_from_files entries) is a checkpoint (found, committed); reads only
    names of files, so it can run before anything is created."""
    sources = [(f"preload_from_files[{entry.name!r}]['filename']", entry.filename) for entry in plan.preloads]
    if plan.model_file and plan.model_role in (ROLE_LOAD, ROLE_IMPORT):
        sources.append((plan.model_role, plan.model_file))
    for option, path in sources:
        try:
            resolve_checkpoint(path)
        except CheckpointError as exc:
            raise CheckpointError(f"option {option} = {os.fspath(path)!r}: {exc}") from None


def decide_and_load(
    options: Mapping[str, Any],
    *,
    task: str,
    network: Any,
    existing_epochs: Mapping[int, str] | None = None,
) -> LoadDecision:
    """Decide (see `decide_loading`) and load: the preloads in order, each leaving alone what an earlier one set,
    then the main model, which leaves the preloaded params alone. `existing_epochs` defaults to the epoch files
    found under option `model`."""
    if existing_epochs is None:
        model = options.get("model")
        existing_epochs = {}
        if model:
            existing_epochs = dict(list_epoch_models(os.fspath(model)))
    plan = decide_loading(options, task, existing_epochs)
    check_load_files(plan)
    done: set[str] = set()
    reports = []
    for entry in plan.preloads:
        report = load_checkpoint(network, entry.filename, skip_params=frozenset(done), **entry.load_options())
        reports.append(report)
        done |= set(report.loaded)
    step: int | None = 0 if plan.new_training else None
    if plan.model_file:
        reports.append(load_checkpoint(network, plan.model_file, ignore_missing=plan.ignore_missing,
                                       skip_params=frozenset(done)))
        if not plan.new_training:
            with open_checkpoint(plan.model_file) as reader:
                if reader.has(GLOBAL_STEP_TENSOR):
                    step = int(reader.read(GLOBAL_STEP_TENSOR))
    return LoadDecision(plan=plan, start_epoch=plan.start_epoch, loaded_epoch=plan.model_epoch,
                        global_train_step=step, files=plan.files, reports=tuple(reports), log_line=plan.log_line())
