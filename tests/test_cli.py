"""The ``adaaug`` command line: version, help on every option, one-line usage errors, progress bars."""
from __future__ import annotations

import argparse

import numpy as np
import pytest

import adaaug
from adaaug import cli


def _expanded_help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    return parser._get_formatter()._expand_help(action)


@pytest.mark.parametrize("command", list(cli._COMMANDS))
def test_every_option_has_help_and_shows_its_default(command):
    parser = cli.command_parser(command)
    actions = [a for a in parser._actions if not isinstance(a, argparse._HelpAction)]
    assert actions
    for action in actions:
        name = "/".join(action.option_strings) or action.dest
        assert action.help and action.help is not argparse.SUPPRESS and action.help.strip(), (command, name)
        if action.option_strings and action.default not in (None, False, argparse.SUPPRESS):
            text = _expanded_help(parser, action)
            assert "default" in text or "[" in text, (command, name, text)
    parser.format_help()  # every help string formats (no stray % placeholders)


def test_default_is_appended_once_and_lists_are_spelled_out():
    parser = cli.command_parser("demo")
    action = next(a for a in parser._actions if a.dest == "backbones")
    text = _expanded_help(parser, action)
    assert text.endswith("(default: edsr cae vqvae unet)") and text.count("default") == 1
    action = next(a for a in parser._actions if a.dest == "nu")
    assert _expanded_help(parser, action).endswith("(default: 0.015)")


def test_version(capsys):
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"adaaug {adaaug.__version__}"


def test_help_lists_every_command(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in cli._COMMANDS:
        assert command in out


def _one_line_error(capsys, argv: list[str], *expected: str, code: int = 2) -> str:
    rc = cli.main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == code, (argv, err)
    assert len(lines) == 1, (argv, err)
    assert lines[0].startswith(f"adaaug {argv[0]}: error: ") and "Traceback" not in err, err
    for text in expected:
        assert text in lines[0], (text, lines[0])
    return lines[0]


def test_make_c_missing_source(capsys, tmp_path):
    _one_line_error(capsys, ["make-c", str(tmp_path / "nonexistent"), str(tmp_path / "out")], "nonexistent")
    assert not (tmp_path / "out").exists()


def test_eval_missing_data(capsys, tmp_path):
    _one_line_error(capsys, ["eval", "--data", str(tmp_path / "nonexistent"), "--weights", "resnet20",
                             "--out", str(tmp_path / "r.json")], "--data", "does not exist")


def test_eval_unknown_packaged_classifier(capsys, tmp_path):
    line = _one_line_error(capsys, ["eval", "--data", str(tmp_path), "--weights", "nosuch",
                                    "--out", str(tmp_path / "r.json")], "nosuch", "packaged")
    assert "resnet20" in line and "architecture" not in line


def test_bench_unknown_backbone(capsys):
    line = _one_line_error(capsys, ["bench", "--backbones", "nosuch"], "nosuch")
    for known in ("edsr", "cae", "vqvae", "unet"):
        assert known in line


def test_demo_unknown_backbone_lists_known(capsys):
    line = _one_line_error(capsys, ["demo", "--backbones", "bogus"], "unknown backbone 'bogus'")
    for known in ("edsr", "cae", "vqvae", "unet"):
        assert known in line
    assert "reinstall" not in line


def test_other_mistakes(capsys, tmp_path):
    _one_line_error(capsys, ["eval", "--weights", "resnet20"], "required")           # argparse's own error
    _one_line_error(capsys, ["demo", "--images", "0"], "--images")
    _one_line_error(capsys, ["deepaugment-data", str(tmp_path / "missing"), str(tmp_path / "dst")], "missing")
    _one_line_error(capsys, ["train-backbone", "nosuch", "--data", str(tmp_path)], "nosuch", "edsr")
    _one_line_error(capsys, ["make-c", str(tmp_path), str(tmp_path / "o"), "--corruptions", "rain"], "rain")
    _one_line_error(capsys, ["publish-weights", "--weights", str(tmp_path / "nowhere")], "manifest.json")


def test_debug_variable_shows_the_traceback(monkeypatch, tmp_path):
    monkeypatch.setenv("ADAAUG_DEBUG", "1")
    with pytest.raises(FileNotFoundError):
        cli.main(["make-c", str(tmp_path / "nonexistent"), str(tmp_path / "out")])


def _tiny_folder(root):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(2):
        (root / f"c{c}").mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / f"c{c}" / "0.png")
    return root


def test_progress_bar_on_stderr_and_off_with_no_progress(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("ADAAUG_PROGRESS", raising=False)
    src = _tiny_folder(tmp_path / "src")
    assert cli.main(["make-c", str(src), str(tmp_path / "a"), "--corruptions", "contrast"]) == 0
    err = capsys.readouterr().err
    assert "make-c cifar" in err and "/5 " in err  # a tqdm bar over 5 severities
    assert cli.main(["make-c", str(src), str(tmp_path / "b"), "--corruptions", "contrast", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "/5 " not in err and "it/s" not in err and "s/it" not in err  # no bar (a one-line note may remain)
    import os

    assert "ADAAUG_PROGRESS" not in os.environ  # the command's setting does not leak


def test_missing_optional_package_is_one_line_with_the_install_hint(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "scipy.ndimage", None)  # as if the protocol extra were missing
    src = _tiny_folder(tmp_path / "src")
    _one_line_error(capsys, ["make-c", str(src), str(tmp_path / "c"), "--size", "imagenet", "--corruptions",
                             "gaussian_blur", "--no-progress"], 'pip install "adaaug[protocol]"',
                    code=1)  # a failure of the environment, not of the settings


def test_eval_progress_bar_over_corruption_sets(capsys, tmp_path):
    from adaaug.corruptions.dataset import make_c

    src = _tiny_folder(tmp_path / "src")
    make_c(str(src), tmp_path / "c", corruptions=["contrast", "fog"], verbose=False)
    (tmp_path / "classes.txt").write_text("".join(f"c{i}\n" for i in range(10)))  # the 10 outputs' names
    argv = ["eval", "--weights", "resnet20", "--data", str(src), "--cifar-c", str(tmp_path / "c"),
            "--classes", str(tmp_path / "classes.txt"), "--out", str(tmp_path / "r.json"), "--device", "cpu"]
    assert cli.main(argv) == 0
    assert "/10 " in capsys.readouterr().err          # 2 corruptions × 5 severities
    assert cli.main(argv + ["--no-progress", "--overwrite"]) == 0  # --overwrite: replaces the first r.json
    assert capsys.readouterr().err == ""
