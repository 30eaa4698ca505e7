"""`transition train CONFIG` and `transition plan CONFIG` (cli._train): the real command line."""

from __future__ import annotations

from tests.training.test_manager import CLI_CONFIG
from transition.cli._main import main


def test_cli_train_resume_and_errors(tmp_path, capsys):


    cfg = tmp_path / "c.config"
    cfg.write_text(CLI_CONFIG)
    model = tmp_path / "run" / "net"
    assert main(["train", str(cfg), f"--model={model}", "--num_epochs=2"]) == 0
    out = capsys.readouterr().out
    epoch_lines = [line for line in out.splitlines() if line.startswith("epoch ")]
    assert len(epoch_lines) == 2 and "dev_error" in epoch_lines[0] and "lr 0.01" in epoch_lines[0]
    assert "transition +l2" in epoch_lines[1] and "custom importer in output" in epoch_lines[1]
    assert main(["train", str(cfg), f"--model={model}", "--no-resume"]) == 1
    assert "net.002" in capsys.readouterr().err
    assert main(["train", str(cfg), f"--model={model}", "--num_epocs=3"]) == 2  # a usage error
    assert "num_epochs" in capsys.readouterr().err
    assert main(["train", str(cfg), f"--model={model}"]) == 0
    out = capsys.readouterr().out
    assert "resuming from" in out and [ln for ln in out.splitlines() if ln.startswith("epoch 3/3")]
    assert "done: epoch 3/3 finished (1 in this run)" in out
    assert main(["train", str(cfg), f"--model={model}", "--num_epochs=2"]) == 0
    out = capsys.readouterr().out
    assert "nothing to train: the model is at epoch 3 and num_epochs is 2" in out and "pass --num_epochs=4 or more" in out
    manager_line = next(ln for ln in out.splitlines() if ln.startswith("nothing to train"))
    assert "--num_epochs" not in manager_line  # the library's line speaks API; the CLI's translates
    assert "pass --num_epochs=4 or more" in out


def test_missing_load_file_names_the_option_and_creates_nothing(tmp_path, capsys):
    cfg = tmp_path / "c.config"
    cfg.write_text(CLI_CONFIG)
    model = tmp_path / "new" / "net"
    for option in ("load", "import_model_train_epoch1"):
        missing = tmp_path / "pretrained" / "net.003"
        assert main(["train", str(cfg), f"--model={model}", f"--{option}={missing}"]) == 1
        err = capsys.readouterr().err
        assert f"option {option} = {str(missing)!r}" in err and "no checkpoint at" in err
        assert not (tmp_path / "new").exists(), "no model directory, no lock file"


def test_plan_and_train_share_the_override_rules(tmp_path, capsys):
    cfg = tmp_path / "c.config"
    cfg.write_text(CLI_CONFIG)
    assert main(["plan", str(cfg), "--num_epochs=1", "--model=" + str(tmp_path / "m")]) == 0
    assert "epoch 1" in capsys.readouterr().out
