"""Job settings come from flags or from COLORIZE_<FLAG> environment variables, the same way everywhere."""
import os
import pytest

from jobs import colorize, evaluate, train


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in [n for n in os.environ if n.startswith("COLORIZE_")]:
        monkeypatch.delenv(name)


def test_every_flag_from_the_environment(monkeypatch):
    monkeypatch.setenv("COLORIZE_INPUT", "s3://archive/scans/")
    monkeypatch.setenv("COLORIZE_OUTPUT", "s3://archive/colour/")
    monkeypatch.setenv("COLORIZE_BATCH_SIZE", "4")
    monkeypatch.setenv("COLORIZE_OVERWRITE", "true")
    monkeypatch.setenv("COLORIZE_MAX_ERROR_FRACTION", "0.5")
    monkeypatch.setenv("COLORIZE_PRECISION", "bfloat16")
    monkeypatch.setenv("COLORIZE_TEMPERATURE", "0.3")
    monkeypatch.setenv("COLORIZE_CHROMA_GAIN", "1.2")
    args = colorize.parse_args([])
    assert (args.input, args.output, args.batch_size, args.overwrite, args.max_error_fraction, args.precision) == (
        "s3://archive/scans/", "s3://archive/colour/", 4, True, 0.5, "bfloat16")
    assert (args.temperature, args.chroma_gain) == (0.3, 1.2), "the colour knobs too"
    monkeypatch.setenv("COLORIZE_INPUT", "photos")
    args = evaluate.parse_args(["--out", "o"])
    assert (args.temperature, args.chroma_gain) == (0.3, 1.2), "the evaluation takes them the same way"


def test_a_flag_wins_over_the_environment(monkeypatch):
    monkeypatch.setenv("COLORIZE_BATCH_SIZE", "4")
    args = colorize.parse_args(["--input", "a", "--output", "b", "--batch-size", "8"])
    assert args.batch_size == 8 and args.overwrite is False


def test_lists_and_switches_for_training(monkeypatch):
    monkeypatch.setenv("COLORIZE_UNFREEZE", "block4 block5")
    monkeypatch.setenv("COLORIZE_RESUME", "1")
    args = train.parse_args(["--input", "a", "--output", "b", "--name", "n"])
    assert args.unfreeze == ["block4", "block5"] and args.resume is True


@pytest.mark.parametrize("name, value, says", [
    ("COLORIZE_PRECISION", "fp8", "choose from"),
    ("COLORIZE_BATCH_SIZE", "many", "invalid literal"),
    ("COLORIZE_OVERWRITE", "maybe", "1/true/yes"),
    ("COLORIZE_BATCH_SIZE", "0", "at least 1"),
])
def test_a_wrong_value_stops_at_once_naming_it(monkeypatch, capsys, name, value, says):
    monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as stopped:
        colorize.parse_args(["--input", "a", "--output", "b"])
    assert stopped.value.code == 2
    message = capsys.readouterr().err
    assert says in message and (name in message or "--batch-size" in message)


def test_required_flags_still_required_without_the_environment(capsys):
    with pytest.raises(SystemExit):
        colorize.parse_args([])
    assert "--input" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        evaluate.parse_args(["--split", "val"])
    assert "give --input" in capsys.readouterr().err
