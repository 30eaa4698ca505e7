"""`transition inspect PATH`, `transition convert SRC DST`, `transition avg CKPT... -o OUT`.

Tables for people; `--json` prints one JSON object for scripts.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Iterator

from transition.errors import counted
from transition.internal import _fs

__all__ = ["register"]


def _entries_json(entries) -> list[dict]:
    return [{"name": e.name, "shape": list(e.shape), "dtype": str(e.dtype), "nbytes": e.nbytes} for e in entries]


def _quiet_tf() -> None:
    from transition.internal._quiet import quiet_tensorflow

    quiet_tensorflow()


@contextlib.contextmanager
def _force_advice() -> Iterator[None]:
    """An existing destination: the command line's advice is --force (the library's is overwrite=True)."""
    from transition.checkpoint._tools import DestinationExistsError

    try:
        yield
    except DestinationExistsError as exc:
        raise exc.with_advice("--force") from None


def _cmd_inspect(args: argparse.Namespace) -> int:
    # no TensorFlow: bundles are listed from their index (our own parser), .npz / .npy / .h5 by their readers
    from transition.checkpoint._reader import open_checkpoint
    from transition.checkpoint._tools import format_inspection, inspect_checkpoint

    with open_checkpoint(args.path) as reader:
        kind, resolved, entries = reader.kind, reader.path, inspect_checkpoint(reader)
    if args.json:
        total = sum(e.nbytes for e in entries)
        out = {"path": resolved, "kind": kind, "arrays": _entries_json(entries), "total_bytes": total}
        print(json.dumps(out, indent=1))
    else:
        print(format_inspection(entries, path=resolved))
    return 0


def _network_param_shapes(spec_path: str) -> dict[str, tuple[int, ...]]:
    """{`layer/param`: shape} of the network described by a JSON file {"network": {...}, "extern_data": {...}}."""
    from transition.errors import ConfigError

    try:
        spec = json.loads(_fs.read_text(spec_path))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--only-network {spec_path}: cannot read it as JSON: {exc}") from exc
    if not isinstance(spec, dict) or not {"network", "extern_data"} <= set(spec) <= {
            "network", "extern_data", "behavior_version"}:
        keys = sorted(spec) if isinstance(spec, dict) else type(spec).__name__
        raise ConfigError(
            f"--only-network {spec_path} must hold a JSON object with the keys 'network' (the net dict) and "
            f"'extern_data' (and optionally 'behavior_version'); it has {keys}"
        )
    from transition.network._network import Network

    network = Network.from_dict(spec["network"], spec["extern_data"], behavior_version=spec.get("behavior_version"))
    return {name: tuple(v.shape) for name, v in sorted(network.param_variables().items())}


def _cmd_convert(args: argparse.Namespace) -> int:
    _quiet_tf()
    from transition.checkpoint._tools import convert_checkpoint

    only = list(args.only) if args.only else None
    exact = _network_param_shapes(args.only_network) if args.only_network else None
    with _force_advice():
        names = convert_checkpoint(args.src, args.dst, only_names=only, exact_names=exact, overwrite=args.force)
    if args.json:
        print(json.dumps({"src": args.src, "dst": args.dst, "names": names}, indent=1))
    else:
        print(f"wrote {counted(len(names), 'array')} from {args.src} to {args.dst}")
    return 0


def _check_convert_extras(args: argparse.Namespace, extras: list[str], argv: list[str]) -> None:
    """More than SRC and DST: a usage error; after `--only A B` it says that --only takes one name (repeat it)."""
    if not extras:
        return
    hint = _only_spelling(argv[argv.index("convert") + 1:] if "convert" in argv else argv)
    if hint:
        args.parser.error(f"unexpected argument(s) {' '.join(extras)}: --only takes one NAME; repeat it for more: "
                          f"transition convert {hint}")
    args.parser.error(f"unrecognized arguments: {' '.join(extras)}")


def _only_spelling(tokens: list[str]) -> str | None:
    """Where one `--only` is followed by several words (`--only a b SRC DST`, `SRC DST --only a b`), the command
    line meant: SRC and DST are the two words before the first --only if there are two, else the last two."""
    runs: list[list[str]] = []  # the words after each --only, up to the next option
    before: list[str] = []  # words before the first --only
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token == "--only-network":
            i += 1  # its value
        elif token == "--only":
            runs.append([])
        elif token.startswith("--only="):
            runs.append([token.split("=", 1)[1]])
        elif token.startswith("-"):
            pass
        elif runs:
            runs[-1].append(token)
        else:
            before.append(token)
        i += 1
    if not runs or not (len(runs) == 1 and len(runs[0]) > 1 or any(len(run) > 1 for run in runs[:-1])):
        return None  # --only repeated as it should be: the extra words are just extra
    words = [w for run in runs for w in run]
    if len(before) >= 2:
        names, ends = before[2:] + words, before[:2]
    else:
        names, ends = (before + words)[:-2], (before + words)[-2:]
    return " ".join([*(f"--only {n}" for n in names), *ends])


def _cmd_avg(args: argparse.Namespace) -> int:
    _quiet_tf()
    from transition.checkpoint._tools import average_checkpoints

    with _force_advice():
        names = average_checkpoints(args.ckpts, args.output, overwrite=args.force)
    if args.json:
        print(json.dumps({"inputs": args.ckpts, "output": args.output, "names": names}, indent=1))
    else:
        print(f"wrote the average of {counted(len(args.ckpts), 'checkpoint')} ({counted(len(names), 'array')}) to "
              f"{args.output}")
    return 0


def _add_flags(p: argparse.ArgumentParser, *, force: str | None = None) -> None:
    if force:
        p.add_argument("--force", action="store_true", help=force)
    p.add_argument("--json", action="store_true", help="print JSON for scripts")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `inspect`, `convert` and `avg` to the `transition` command line."""
    p = subparsers.add_parser(
        "inspect",
        help="list a checkpoint's names, shapes, dtypes and sizes",
        description="List the arrays of a checkpoint (TF bundle prefix / directory, .npz, .npy, Keras .h5).",
    )
    p.add_argument("path", help="checkpoint: TF prefix (or .index/.meta/.data-*), directory, .npz, .npy, .h5")
    _add_flags(p)
    p.set_defaults(func=_cmd_inspect)

    p = subparsers.add_parser(
        "convert",
        help="convert a checkpoint to .npz or a TF bundle",
        description="Convert SRC (any readable checkpoint) to DST: .npz if DST ends in .npz, else a TF bundle prefix.",
    )
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help="keep only this name and the names under it ('layer' = 'layer/...'); repeat it for more: "
        "--only l1 --only l2",
    )
    p.add_argument(
        "--only-network",
        metavar="NET_JSON",
        help="keep only the params that a network needs (exactly its 'layer/param' names, no optimizer slots): "
        "a JSON file {\"network\": net dict, \"extern_data\": {...}}; with --only, the names of both",
    )
    _add_flags(p, force="overwrite DST")
    p.set_defaults(func=_cmd_convert, extras=_check_convert_extras)

    p = subparsers.add_parser(
        "avg",
        help="average checkpoints element-wise",
        description="Write the element-wise mean of checkpoints of one model (integer variables from the last).",
    )
    p.add_argument("ckpts", nargs="+", metavar="CKPT")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help=".npz, or a TF bundle prefix")
    _add_flags(p, force="overwrite OUT")
    p.set_defaults(func=_cmd_avg)
