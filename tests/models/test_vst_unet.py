import torch

from hf_vdd.models.vst_unet import VSTUNet, selection_losses


def test_shapes_order_equivariance_and_hub_round_trip(tmp_path):
    torch.manual_seed(0)
    net = VSTUNet(in_channels=4, num_classes=3, base_channels=8, embed_dim=16).eval()
    z = torch.randn(6, 4, 4, 8, 8)  # 6 videos, T=4, 4 latent channels, 8x8
    probs, emb, logits = net(z)
    assert probs.shape == (6,) and emb.shape == (6, 16) and logits.shape == (6, 3)
    assert ((probs > 0) & (probs < 1)).all()
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    assert torch.allclose(net(z[perm])[0], probs[perm], atol=1e-5)  # the pool has no order
    net.save_pretrained(tmp_path / "vst")
    assert (tmp_path / "vst" / "config.json").is_file() and (tmp_path / "vst" / "model.safetensors").is_file()
    again = VSTUNet.from_pretrained(tmp_path / "vst").eval()
    assert torch.allclose(again(z)[0], probs)


def test_selection_losses_reward_diverse_representative_sets():
    # two tight clusters of 3 videos each
    emb = torch.tensor([[1.0, 0.0], [0.99, 0.05], [0.98, -0.05], [0.0, 1.0], [0.05, 0.99], [-0.05, 0.98]])
    one_each = torch.tensor([0.9, 0.1, 0.1, 0.8, 0.1, 0.1])
    same_cluster = torch.tensor([0.9, 0.8, 0.1, 0.1, 0.1, 0.1])
    mask, div_a, rep_a = selection_losses(one_each, emb, 2)
    assert mask.tolist() == [1, 0, 0, 1, 0, 0]
    _, div_b, rep_b = selection_losses(same_cluster, emb, 2)
    assert div_a < div_b and rep_a < rep_b
    _, div_1, _ = selection_losses(one_each, emb, 1)
    assert div_1 == 0
    # the gradient reaches unselected videos: raising video 3's probability improves the same-cluster set
    p = same_cluster.clone().requires_grad_(True)
    _, div, rep = selection_losses(p, emb, 2)
    (0.1 * div + rep).backward()
    assert p.grad[3] < 0 and p.grad[2] >= p.grad[3]


def test_selection_losses_train_probabilities_towards_one_pick_per_cluster():
    torch.manual_seed(0)
    centres = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]])
    emb = (centres[:, None] + 0.05 * torch.randn(3, 5, 3)).reshape(15, 3)
    scores = torch.zeros(15)
    scores[:3] = 1.0  # start: three picks from the first cluster
    scores = scores.requires_grad_(True)
    opt = torch.optim.Adam([scores], lr=0.05)
    first = None
    for _ in range(200):
        mask, div, rep = selection_losses(torch.sigmoid(scores), emb, 3)
        loss = 0.1 * div + rep
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    picks = torch.sigmoid(scores).topk(3).indices
    assert sorted((picks // 5).tolist()) == [0, 1, 2] and loss.item() < first
