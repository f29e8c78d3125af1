"""Issue 21: networks start from saved weights (``model.init``; EMLC sec. 4.1, DMLP Table 6 "*").

One short CE run on the scikit-learn digits (an MLP with BatchNorm, so buffers travel too) gives the
weights; every source (encoder file, run directory, checkpoint file, state dicts) must put exactly them
into a new network's backbone while its head stays the freshly initialised one.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from noisy_labels._validation import InputFileError
from noisy_labels.cli import main
from noisy_labels.data.features import load_features
from noisy_labels.engine import build_experiment, load_config, run_experiment
from noisy_labels.engine.runs import load_run_model
from noisy_labels.models import create_model, init_backbone, save_encoder
from noisy_labels.ssl import extract_features
from shared_settings import one_torch_thread, tiny_image_set

pytestmark = pytest.mark.usefixtures("one_thread")

MLP = ["model.name=mlp", "model.params={hidden: [16], batchnorm: true}"]
DIGITS = ["dataset=digits", "noise.rate=0.4", "epochs=1", "batch_size=64", "quiet=true", *MLP]


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _state(module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in module.state_dict().items()}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished CE run: its directory and its trained network."""
    run_dir = tmp_path_factory.mktemp("init") / "ce"
    with one_torch_thread():
        run_experiment(load_config(None, [*DIGITS, f"out={run_dir}"]))
    return run_dir, load_run_model(run_dir)


def _built(*settings: str, method: str = "ce"):
    """A method built (set up, not trained) on digits with ``settings``."""
    meta = ["meta.size=100"] if method != "ce" else []
    return build_experiment(load_config(None, [*DIGITS, *meta, f"method={method}", *settings])).method


def _write_source(kind: str, trained, tmp_path) -> str:
    run_dir, net = trained
    if kind == "run_dir":
        return str(run_dir)
    if kind == "checkpoint_file":
        return str(run_dir / "checkpoint.pt")
    path = tmp_path / f"{kind}.pt"
    if kind == "encoder":
        save_encoder(path, "mlp", net.backbone)
    else:
        torch.save((net if kind == "state_dict" else net.backbone).state_dict(), path)
    return str(path)


@pytest.mark.parametrize("kind", ["encoder", "run_dir", "checkpoint_file", "state_dict", "backbone_dict"])
def test_every_source_sets_the_backbone_and_leaves_the_head_new(trained, tmp_path, kind):
    source = _write_source(kind, trained, tmp_path)
    fresh = _built().model  # the same seed: the head a network built without weights gets
    model = _built(f"model.init={source}").model
    assert _same(_state(model.backbone), _state(trained[1].backbone))
    assert _same(_state(model.head), _state(fresh.head))
    assert not torch.equal(model.head.weight.cpu(), trained[1].head.weight)


def test_a_shape_mismatch_names_the_first_differing_tensor(trained, tmp_path):
    source = _write_source("encoder", trained, tmp_path)
    other = create_model("mlp", num_classes=10, feature_dim=64, hidden=(12,), batchnorm=True)
    with pytest.raises(
        ValueError, match=r"tensor backbone\.1\.weight has shape \(16, 64\) there, \(12, 64\)"
    ):
        init_backbone(other, source)
    deeper = create_model("mlp", num_classes=10, feature_dim=64, hidden=(16, 8), batchnorm=True)
    with pytest.raises(ValueError, match=r"tensor backbone\.4\.weight is missing there"):
        init_backbone(deeper, source)


def test_a_network_of_the_checkpoint_is_chosen_after_a_hash(trained):
    run_dir, net = trained
    model = create_model("mlp", num_classes=10, feature_dim=64, hidden=(16,), batchnorm=True)
    assert _same(_state(init_backbone(model, f"{run_dir}#model").backbone), _state(net.backbone))
    with pytest.raises(ValueError, match=r"has no network 'net2'; its networks: model\."):
        init_backbone(model, f"{run_dir}#net2")


ARBITRARY_CODE_RAN: list[str] = []


def _run_code() -> None:
    ARBITRARY_CODE_RAN.append("ran")


class _Payload:
    """Unpickling this calls ``_run_code``: what a malicious weights file would do."""

    def __reduce__(self):
        return (_run_code, ())


def test_files_are_read_with_weights_only(trained, tmp_path):
    path = tmp_path / "payload.pt"
    torch.save({"backbone": trained[1].backbone.state_dict(), "extra": _Payload()}, path)
    model = create_model("mlp", num_classes=10, feature_dim=64, hidden=(16,), batchnorm=True)
    with pytest.raises(InputFileError, match=r"pickled object .*_run_code.*weights_only=True"):
        init_backbone(model, path)
    assert ARBITRARY_CODE_RAN == []


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("missing", "weights file not found"),
        ("mismatch", r"tensor backbone\.1\.weight has shape"),
        ("payload", "pickled object"),
        ("garbage", "cannot read weights file"),
    ],
)
def test_bad_weights_on_the_command_line_are_one_line_and_status_2(tmp_path, capsys, kind, message):
    source = tmp_path / f"{kind}.pt"
    if kind == "mismatch":
        save_encoder(source, "mlp", create_model("mlp", num_classes=3, feature_dim=64, hidden=(12,)).backbone)
    elif kind == "payload":
        torch.save({"extra": _Payload()}, source)
    elif kind == "garbage":
        source.write_bytes(b"not a weights file")
    args = ["run", *(a for s in DIGITS for a in ("--set", s)), "--set", f"model.init={source}"]
    assert main([*args, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("noisy-labels run: error:") and str(source) in err
    assert re.search(message, err), err
    assert not (tmp_path / "run").exists()  # refused before the run directory is written
    assert ARBITRARY_CODE_RAN == []


# ------------------------------------------------------------------------ the methods' extra networks
def test_emlc_teacher_starts_from_model_init_or_its_own(trained, tmp_path):
    source = _write_source("encoder", trained, tmp_path)
    saved = _state(trained[1].backbone)
    both = _built(f"model.init={source}", method="emlc")
    assert _same(_state(both.model.backbone), saved)
    assert _same(_state(both.teacher.classifier.backbone), saved)  # sec. 4.1: the same weights
    teacher_only = _built(f"emlc.teacher_init={source}", method="emlc")
    assert _same(_state(teacher_only.teacher.classifier.backbone), saved)
    assert not _same(_state(teacher_only.model.backbone), saved)
    scratch = _built(f"model.init={source}", "emlc.teacher_init=scratch", method="emlc")
    assert not _same(_state(scratch.teacher.classifier.backbone), saved)


@pytest.mark.parametrize(
    ("method", "key", "extra"), [("coteaching", "peer_init", "net2"), ("flywheel", "auxiliary_init", "f")]
)
def test_the_second_network_takes_its_own_init(trained, tmp_path, method, key, extra):
    source = _write_source("encoder", trained, tmp_path)
    saved = _state(trained[1].backbone)
    built = _built(f"{method}.{key}={source}", method=method)
    first = built.net1 if method == "coteaching" else built.g
    assert _same(_state(getattr(built, extra).backbone), saved)
    assert not _same(_state(first.backbone), saved)


# ------------------------------------------------------------------------ SimCLR encoders
SMALL_CNN = ["model.name=small_cnn", "model.params={}", "augment.crop_padding=0"]


def test_features_save_encoder_round_trip(tmp_path, capsys):
    """The saved encoder, loaded through model.init, gives back the features it computed."""
    data = tiny_image_set(tmp_path / "tiny.npz")
    feats, encoder = tmp_path / "feats.npz", tmp_path / "simclr" / "encoder.pt"
    args = ["features", "--dataset", str(data), "--out", str(feats), "--simclr", "--simclr-epochs", "1"]
    assert main([*args, "--save-encoder", str(encoder), "--quiet"]) == 0
    assert f"-> {encoder}" in capsys.readouterr().out and not (tmp_path / "feats.encoder.pt").exists()
    ce = build_experiment(
        load_config(None, [*DIGITS, *SMALL_CNN, f"dataset={data}", f"model.init={encoder}"])
    )
    backbone = ce.method.model.backbone
    with one_torch_thread():
        again = extract_features(backbone, load_features(data).train.x, batch_size=64)
    np.testing.assert_allclose(again, load_features(feats).train.x, rtol=1e-5, atol=1e-5)
    assert main([*args, "--checkpoint", str(tmp_path), "--save-encoder", str(encoder)]) == 2
    assert "--save-encoder" in capsys.readouterr().err


def test_dmlp_writes_its_encoder_and_retrains_from_it(tmp_path):
    """DMLP-Naive*: stage 1's SimCLR encoder is written to the run directory and starts stage 3."""
    data = tiny_image_set(tmp_path / "tiny.npz")
    out = tmp_path / "run"
    dmlp = ["method=dmlp", "meta.size=30", "dmlp.features=simclr", "dmlp.simclr_epochs=1", "dmlp.epochs=2"]
    settings = [*DIGITS, *SMALL_CNN, f"dataset={data}", *dmlp, f"out={out}"]
    built = build_experiment(load_config(None, [*settings, "dmlp.retrain_from_encoder=true"])).method
    assert (out / "dmlp_encoder.pt").is_file()
    encoder = torch.load(out / "dmlp_encoder.pt", weights_only=True)
    assert encoder["model"] == "small_cnn"
    assert _same(_state(built.inner.model.backbone), encoder["backbone"])
    plain = build_experiment(load_config(None, [*settings, f"out={tmp_path / 'plain'}"])).method
    assert not _same(_state(plain.inner.model.backbone), encoder["backbone"])
    with pytest.raises(ValueError, match="dmlp.simclr_model"):
        build_experiment(
            load_config(None, [*settings, "dmlp.retrain_from_encoder=true", "dmlp.simclr_model=mlp"])
        )
