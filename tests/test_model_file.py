"""Model files: the header survives a round trip, loading is weights_only, and bad files get errors naming them."""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

import sv_toolkit
from sv_toolkit.cli import embed
from sv_toolkit.errors import MissingFileError, ModelFileError, UserError
from sv_toolkit.features import FbankSettings
from sv_toolkit.model_file import HEADER_KEY, ModelHeader, load_model_file, save_model_file
from sv_toolkit.models import build_model
from sv_toolkit.scoring import load_extractor

CONFIG = {"_target_": "sv_toolkit.models.build_model", "name": "resnet10", "feat_dim": 64, "embed_dim": 16,
          "base_width": 4}
SETTINGS = FbankSettings(num_mel_bins=64, frame_length_ms=20.0, frame_shift_ms=12.0, sample_rate=8000)
MARKER = Path(os.environ.get("TMPDIR", "/tmp")) / f"sv_toolkit_model_file_test_{os.getpid()}.ran"


class RunsCodeWhenUnpickled:
    """Unpickling this object would create MARKER: what a malicious model file could do."""

    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(**{k: v for k, v in CONFIG.items() if k != "_target_"})


def test_header_round_trip(tmp_path):
    model = _model()
    header = ModelHeader.create(CONFIG, SETTINGS)
    state = {"model": model.state_dict(), "epoch": 3, "rng": {"numpy": {"key": torch.arange(4), "pos": 2}}}
    save_model_file(tmp_path / "m.pt", state, header)
    got, loaded = load_model_file(tmp_path / "m.pt")
    assert got == header and got.fbank_settings() == SETTINGS
    assert got.embed_dim == 16 and got.sv_toolkit_version == sv_toolkit.__version__ and got.format_version == 1
    assert got.features["dither"] == 0.0 and got.features["cmn"] == "utterance_mean"
    assert set(loaded) == {"model", "epoch", "rng"} and loaded["epoch"] == 3
    assert all(torch.equal(loaded["model"][k], v) for k, v in model.state_dict().items())
    # the file is plain torch data: weights_only=True reads it without sv_toolkit's loader
    raw = torch.load(tmp_path / "m.pt", weights_only=True)
    assert raw[HEADER_KEY]["features"]["frame_shift_ms"] == 12.0
    rebuilt, header_again = load_extractor(tmp_path / "m.pt")
    assert header_again == header and not rebuilt.training
    assert not list(tmp_path.glob(".*.tmp"))  # written through a temporary file


def test_a_file_needing_unsafe_unpickling_is_refused_without_running_it(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "payload": RunsCodeWhenUnpickled()}, path)
    MARKER.unlink(missing_ok=True)
    with pytest.raises(ModelFileError) as err:
        load_model_file(path)
    assert not MARKER.exists(), "the file's code ran while it was loaded"
    message = str(err.value)
    assert str(path) in message and "needs unsafe unpickling" in message and "weights_only=True" in message
    assert "posix.system" in message  # names the global the file wanted


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch, about the plain pickle
def test_plain_pickle_text_and_missing_files_get_errors_naming_them(tmp_path):
    with open(tmp_path / "pickled.pt", "wb") as f:
        pickle.dump({"model": {}}, f)
    (tmp_path / "notes.pt").write_text("not a model\n")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    unreadable = "not a readable torch model file"
    for name, text in (("pickled.pt", unreadable), ("notes.pt", unreadable),
                       ("other.pt", r"not a model file \(no 'model' state\)")):
        with pytest.raises(ModelFileError, match=text) as err:
            load_model_file(tmp_path / name)
        assert str(tmp_path / name) in str(err.value)
    with pytest.raises(MissingFileError, match="absent.pt does not exist"):
        load_model_file(tmp_path / "absent.pt")


def test_newer_format_and_unknown_feature_recipe_are_refused(tmp_path):
    header = ModelHeader.create(CONFIG, SETTINGS)
    newer = dict(header.as_dict(), format_version=99, sv_toolkit_version="9.0")
    torch.save({HEADER_KEY: newer, "model": {}}, tmp_path / "new.pt")
    with pytest.raises(ModelFileError, match=r"sv_toolkit 9.0 in model-file format 99; .* upgrade sv_toolkit"):
        load_model_file(tmp_path / "new.pt")
    other_cmn = dict(header.as_dict(), features=dict(header.features, cmn="sliding_300"))
    torch.save({HEADER_KEY: other_cmn, "model": {}}, tmp_path / "cmn.pt")
    with pytest.raises(UserError, match=r"cmn.pt: feature setting cmn='sliding_300'"):
        load_model_file(tmp_path / "cmn.pt")


def test_a_file_without_header_loads_with_a_warning_naming_the_assumed_features(tmp_path):
    model = _model()
    torch.save({"model": model.state_dict(), "model_config": CONFIG}, tmp_path / "old.pt")
    with pytest.warns(UserWarning, match=r"old.pt has no model-file header .* 'frame_shift_ms': 10.0"):
        header, state = load_model_file(tmp_path / "old.pt")
    assert header.fbank_settings() == FbankSettings(num_mel_bins=64) and header.model_config == CONFIG
    assert set(state) == {"model"}


def test_sv_embed_reports_an_unsafe_model_file_in_one_line(tmp_path, capsys):
    torch.save({"model": {}, "payload": RunsCodeWhenUnpickled()}, tmp_path / "evil.pt")
    (tmp_path / "list.txt").write_text("a.wav\n")
    MARKER.unlink(missing_ok=True)
    assert embed.main(["--model", str(tmp_path / "evil.pt"), "--list", str(tmp_path / "list.txt"),
                       "--out", str(tmp_path / "e.npz"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert f"error: {tmp_path / 'evil.pt'} needs unsafe unpickling" in err and "Traceback" not in err
    assert not MARKER.exists()


def test_cli_errors_that_are_bugs_keep_their_traceback(monkeypatch, tmp_path):
    """Only UserError becomes a one-line message: anything else propagates (a bug must be seen)."""
    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(embed, "load_extractor", broken)
    (tmp_path / "list.txt").write_text("a.wav\n")
    with pytest.raises(ZeroDivisionError):
        embed.main(["--model", "m.pt", "--list", str(tmp_path / "list.txt"), "--out", str(tmp_path / "e.npz"),
                    "--device", "cpu"])
