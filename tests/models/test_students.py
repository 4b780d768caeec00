import pytest
import torch

from hf_vdd.models import ConvNet3D, VideoMAEStudent, build_student


@pytest.mark.parametrize("size,frames", [(32, 4), (48, 8), (64, 5), (112, 16)])
def test_convnet3d_any_size(size, frames):
    net = ConvNet3D(num_classes=7)
    x = torch.randn(2, frames, 3, size, size)
    assert net(x).shape == (2, 7) and net.embed(x).shape == (2, 128)


def test_convnet3d_hub_round_trip(tmp_path):
    torch.manual_seed(0)
    net = ConvNet3D(num_classes=3, widths=(8, 16, 16)).eval()
    net.save_pretrained(tmp_path / "net")
    back = ConvNet3D.from_pretrained(tmp_path / "net").eval()
    x = torch.randn(1, 4, 3, 32, 32)
    assert back.num_classes == 3 and torch.allclose(net(x), back(x))
    assert (tmp_path / "net" / "model.safetensors").is_file() and (tmp_path / "net" / "README.md").is_file()


def test_convnet3d_embeddings():
    net = ConvNet3D(num_classes=3, widths=(8, 16, 16)).eval()
    x = torch.randn(2, 8, 3, 64, 64)
    pooled = net.embed(x)
    feats = net.features(x.transpose(1, 2))  # (N, 16, T, 2, 2) at 64x64
    assert feats.shape == (2, 16, 8, 2, 2)
    assert torch.allclose(pooled, feats.amax(dim=(3, 4)).mean(dim=2))
    net.embedding = "flatten"
    flat = net.embed(x)
    assert flat.shape == (2, 16 * 8 * 2 * 2) and torch.equal(flat, feats.flatten(1))
    assert not torch.equal(net.embed(x.flip(1)), flat)  # keeps when: time reversed, another embedding
    net.embedding = "mean"
    with pytest.raises(ValueError, match="embedding must be one of"):
        net.embed(x)


def test_convnet3d_bf16_gradients_stay_near_fp32_on_the_cpu():
    """At 32x32 the 3rd block sees a 2x2 map with padding 3, where oneDNN's bf16 weight gradient was wrong (relative
    error 3-6, sometimes inf: a bf16 student went to NaN in 2 steps); that conv now runs in fp32."""
    torch.manual_seed(0)
    net = ConvNet3D(num_classes=4, widths=(8, 16, 16), dropout=0.0)
    x = torch.randn(8, 8, 3, 32, 32)

    def grads(bf16: bool) -> list[torch.Tensor]:
        net.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            net(x).float().logsumexp(1).sum().backward()
        return [p.grad.clone() for p in net.parameters()]

    fp32 = grads(False)
    for _ in range(3):  # the wrong values came from uninitialised memory: not the same twice
        bf16 = grads(True)
        assert all(torch.isfinite(g).all() for g in bf16)
        third = net.features[6].weight  # features: conv, relu, pool, conv, relu, pool, conv, relu
        i = [p is third for p in net.parameters()].index(True)
        assert (bf16[i] - fp32[i]).norm() < 0.3 * fp32[i].norm()  # bf16 rounding: 0.01-0.06 measured


def test_convnet3d_rejects_bad_shape():
    with pytest.raises(ValueError, match=r"\(N, T, C, H, W\)"):
        ConvNet3D()(torch.randn(2, 3, 32, 32))


def test_videomae_student_config_and_local_folder(tmp_path):
    student = build_student("videomae", 4, 8, 32)
    x = torch.randn(2, 8, 3, 32, 32)
    assert student(x).shape == (2, 4) and student.embed(x).shape[0] == 2
    student.model.save_pretrained(tmp_path / "vm")
    again = build_student("videomae", 4, 8, 32, pretrained=str(tmp_path / "vm"))
    assert isinstance(again, VideoMAEStudent) and again(x).shape == (2, 4) and again.head_loaded
    # a student over other classes: a new head of the right size, trained with the student (a teacher never is)
    wider = build_student("videomae", 6, 8, 32, pretrained=str(tmp_path / "vm"))
    assert wider(x).shape == (2, 6) and not wider.head_loaded
    assert VideoMAEStudent.from_pretrained(str(tmp_path / "vm")).num_classes == 4  # None: the checkpoint's head
    with pytest.raises(ValueError, match="num_frames"):
        student(torch.randn(1, 4, 3, 32, 32))
    with pytest.raises(ValueError, match="Could not load VideoMAE"):
        VideoMAEStudent.from_pretrained(str(tmp_path / "missing"), 4)


def test_unknown_student():
    with pytest.raises(ValueError, match="convnet3d"):
        build_student("resnet", 2, 4, 32)
