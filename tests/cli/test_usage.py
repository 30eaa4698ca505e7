"""Usage errors exit 2 and say what to write; messages speak CLI in the CLI and API in the library."""

from __future__ import annotations

import numpy as np
import pytest

import transition
from tests.helpers import save_v2
from transition.checkpoint._reader import read_checkpoint
from transition.cli._main import main
from transition.errors import counted, listed


def _err(capsys) -> str:
    return capsys.readouterr().err


def test_train_usage_errors_exit_2_and_say_what_to_write(tmp_path, capsys):
    cfg = tmp_path / "a.config"
    cfg.write_text("num_epochs = 1\n")
    assert main(["train"]) == 2
    err = _err(capsys)
    assert "required: CONFIG" in err and "--key=value" not in err.splitlines()[-1]
    for args in (["train", "--num_epochs", "30", str(cfg)], ["train", str(cfg), "--num_epochs", "30"],
                 ["plan", str(cfg), "--num_epochs", "30"]):
        assert main(args) == 2, args
        assert "write --num_epochs=30" in _err(capsys)
    assert main(["train", str(cfg), "--num_epocs=3"]) == 2
    assert "did you mean 'num_epochs'" in _err(capsys)
    assert main(["train", str(cfg), "--num_epochs=many"]) == 2
    assert "num_epochs" in _err(capsys)
    assert main(["train", str(cfg), "other.config"]) == 2
    assert "'other.config'" in _err(capsys)
    assert main([]) == 2
    assert "give a COMMAND" in _err(capsys)
    assert main(["status", "x", "--bogus"]) == 2
    assert "--bogus" in _err(capsys)


def test_train_on_a_directory_says_it_is_one(tmp_path, capsys):
    for i in range(12):
        (tmp_path / f"c{i:02d}.config").write_text("num_epochs = 1\n")
    assert main(["train", str(tmp_path)]) == 1
    err = _err(capsys)
    assert "is a directory" in err and "does not exist" not in err
    assert "c00.config" in err and "... and 2 more" in err  # the list is cut, and says so
    (tmp_path / "script.py").write_text("print(1)\n")
    assert main(["train", str(tmp_path)]) == 1
    assert "script.py" not in _err(capsys)  # .config files are named first; .py only where there are none
    assert main(["plan", str(tmp_path / "missing.config")]) == 1
    assert "does not exist" in _err(capsys)


def test_convert_only_takes_one_name_and_is_repeatable(tmp_path, capsys):
    values = {"l1/W": np.ones((2, 3), np.float32), "l2/W": np.zeros((3, 1), np.float32),
              "out/b": np.ones((1,), np.float32)}
    src = save_v2(tmp_path / "m", values)
    dst = tmp_path / "o.npz"
    assert main(["convert", "--only", "l1", src, str(dst)]) == 0  # --only before SRC DST swallows neither
    assert sorted(read_checkpoint(dst)) == ["l1/W"]
    assert main(["convert", "--only", "l1", "--only", "l2", src, str(tmp_path / "o2.npz")]) == 0
    assert sorted(read_checkpoint(tmp_path / "o2.npz")) == ["l1/W", "l2/W"]
    assert main(["convert", src, str(tmp_path / "o3.npz"), "--only", "l1", "l2"]) == 2  # the old usage
    assert "--only l1 --only l2" in _err(capsys) and not (tmp_path / "o3.npz").exists()
    assert main(["convert", "--only", "l1", src]) == 2
    assert "dst" in _err(capsys)
    assert main(["convert", "--only", "l1", "l2", src, str(tmp_path / "o4.npz")]) == 2  # SRC DST swallowed
    assert f"transition convert --only l1 --only l2 {src} {tmp_path / 'o4.npz'}" in _err(capsys)
    assert main(["convert", "--only", "l1", "--only", "l2", src, str(tmp_path / "o5.npz"), "extra"]) == 2
    assert "unrecognized arguments: extra" in _err(capsys)  # --only repeated right: the word is just extra


def test_cli_says_force_and_the_library_says_overwrite(tmp_path, capsys):
    values = {"l1/W": np.ones((2, 3), np.float32)}
    src = save_v2(tmp_path / "m", values)
    dst = tmp_path / "o.npz"
    assert main(["convert", src, str(dst)]) == 0
    capsys.readouterr()
    for args in (["convert", src, str(dst)], ["avg", src, "-o", str(dst)]):
        assert main(args) == 1
        err = _err(capsys)
        assert "--force" in err and "overwrite=True" not in err and str(dst) in err
    with pytest.raises(transition.CheckpointError, match="overwrite=True") as info:
        transition.convert_checkpoint(src, dst)
    assert "--force" not in str(info.value)
    assert main(["avg", src, "-o", str(tmp_path / "avg.npz")]) == 0
    assert "average of 1 checkpoint (1 array)" in capsys.readouterr().out
    assert main(["inspect", src]) == 0
    assert "total: 1 array, 6 elements, 24 B (24 bytes)" in capsys.readouterr().out


def test_only_network_checks_shapes(tmp_path, capsys):
    import json

    net = {"l1": {"class": "linear", "activation": "tanh", "n_out": 3, "from": "data"},
           "output": {"class": "softmax", "n_out": 2, "from": "l1"}}
    spec = tmp_path / "net.json"
    spec.write_text(json.dumps({"network": net, "extern_data": {"data": {"dim": 4}}}))
    good = {"l1/W": np.ones((4, 3), np.float32), "l1/b": np.ones((3,), np.float32),
            "output/W": np.ones((3, 2), np.float32), "output/b": np.ones((2,), np.float32)}
    assert main(["convert", save_v2(tmp_path / "good", good), str(tmp_path / "g.npz"), "--only-network",
                 str(spec)]) == 0
    wider = dict(good, **{"l1/W": np.ones((4, 5), np.float32)})  # the names fit, a shape does not
    src = save_v2(tmp_path / "wider", wider)
    assert main(["convert", src, str(tmp_path / "w.npz"), "--only-network", str(spec)]) == 1
    err = _err(capsys)
    assert "'l1/W'" in err and "[4, 5]" in err and "[4, 3]" in err and src in err
    assert not (tmp_path / "w.npz").exists()


def test_message_helpers_never_cut_silently():
    assert listed(["a", "b"]) == "['a', 'b']"
    assert listed(range(13)) == "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9] ... and 3 more"
    assert listed(["a: x", "b: y", "c: z"], 2, sep="; ") == "a: x; b: y ... and 1 more"
    assert (counted(1, "checkpoint"), counted(0, "checkpoint"), counted(2, "array")) == (
        "1 checkpoint", "0 checkpoints", "2 arrays")


def test_inspect_directory_lists_every_bundle_or_says_how_many_more(tmp_path, capsys):
    for i in range(12):
        save_v2(tmp_path / f"b{i:02d}", {"x": np.zeros((1,), np.float32)})
    assert main(["inspect", str(tmp_path)]) == 1
    err = _err(capsys)
    assert "b00" in err and "b09" in err and "... and 2 more" in err


def test_dir_of_the_package_is_the_public_api():
    names = set(dir(transition))
    assert names == {*transition.__all__, "keras", "__version__"}
    assert not names & {"Any", "annotations", "importlib"}
