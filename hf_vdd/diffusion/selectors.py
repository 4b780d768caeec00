"""Selectors over a generation pool (`VideoPool`): TAC-DT, VST-UNet, MAE-Score and Random (the paper's CSTA and
DM-MMD baselines are in `baselines.py`).

Each is a distiller whose `__call__(pool)` picks `ipc` (= VPC) videos per class and returns a `DistillationOutput` of
uint8 frames with `source_index` = the pool row. Selection runs on the main process and is broadcast, so every
process returns the same output.

- `tacdt` (training-free): VideoMAE embeddings (`VideoMAEModel.from_pretrained(encoder)`, mean-pooled last hidden
  state) → PCA → BIRCH with VPC clusters (scikit-learn) → per cluster the member nearest its centre.
- `vstunet`: VST-UNet over the AutoencoderKL latents (the pool's Latte VAE) of each class, trained with
  `CE + l_d * L_div + l_r * L_rep` (Eq. 1-3; paper lambdas: VPC 1 → l_r 0.1, l_d 0; else l_r 1, l_d 0.1), then
  top-VPC by probability.
- `maescore`: top VideoMAE classifier confidence for the video's own class.
- `pool-random`: VPC videos per class uniformly (seeded).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..data.distilled import DistillationOutput
from ..distillers.base import Distiller, DistillerConfig, register_distiller
from ..utils import progress, runtime
from .pool import VideoPool


@dataclass
class SelectorConfig(DistillerConfig):
    encoder: str | None = field(default=None, metadata={
        "help": "VideoMAE folder or Hub id (TAC-DT embeddings; MAE-Score needs a classifier on these classes)."})
    batch_size: int = field(default=32, metadata={"help": "Batch size for embeddings and latents."})


class _PoolSelector(Distiller):
    config_class = SelectorConfig
    needs_pool = True  # distils a generation pool (`load_pool`), not the real train split
    needs_real = False  # True: `__call__(pool, real=<the real train split>)` (DM-MMD matches real clips)
    seeded = True  # False: the seed does not change the selection (repeating it would fake a variance)

    def select_class(self, pool: VideoPool, idx: np.ndarray, c: int, context) -> np.ndarray:
        """Local positions (into `idx`) of the `ipc` picks of class `c`."""
        raise NotImplementedError

    def prepare(self, pool: VideoPool, show: bool):
        """Whole-pool work before per-class selection (embeddings, trained models)."""
        return None

    def check_pool(self, pool: VideoPool) -> None:
        if not isinstance(pool, VideoPool):
            raise TypeError(f"{type(self).__name__} selects from a generation pool, got {type(pool).__name__}: pass "
                            f"hf_vdd.diffusion.load_pool(<pool_dir>) (to select real clips: Herding, KCenter).")
        counts = np.bincount(pool.labels, minlength=pool.num_classes)
        if counts.min() < self.config.ipc:
            raise ValueError(f"--vpc {self.config.ipc} is larger than the pool's {int(counts.min())} videos per class "
                             f"(pool {pool.path}); lower --vpc or generate a larger pool "
                             f"(--videos_per_class_pool >= {self.config.ipc}).")

    def __call__(self, pool: VideoPool, accelerator=None, real=None) -> DistillationOutput:
        """Select `ipc` videos per class of `pool` (at the pool's shape). Returns uint8 `(T, C, H, W)` videos with
        their pool rows. `real`: the real train split (a `VideoClassificationSet` over the pool's classes), for the
        selectors with `needs_real`."""
        # 1. check the request against the pool
        self.check_pool(pool)
        if self.needs_real and real is None:
            raise ValueError(f"{self.name} matches real clips: call it with real=<the real train split>.")
        if real is not None and list(real.class_names) != list(pool.class_names):
            raise ValueError(f"The real split's classes {list(real.class_names)[:6]}... are not the pool's "
                             f"{list(pool.class_names)[:6]}...")
        self.real = real
        self.source, self.class_names = pool.name, list(pool.class_names)
        self.video_shape = (int(pool.videos.shape[1]), int(pool.videos.shape[-1]))
        start = time.perf_counter()
        is_main = accelerator is None or accelerator.is_main_process
        self.device, self.autocast = runtime(accelerator)  # where prepare() runs its encoders and models
        chosen, extra = [], {}
        # 2. whole-pool work, then per-class picks (main process; the result is broadcast)
        if is_main:
            context = self.prepare(pool, show=is_main)
            for c, idx in pool.indices_per_class().items():
                local = np.asarray(self.select_class(pool, idx, c, context))
                if len(local) != self.config.ipc or len(set(local.tolist())) != self.config.ipc:
                    raise RuntimeError(f"{self.name} picked {local.tolist()} for class {c}, not {self.config.ipc}.")
                chosen.extend(idx[np.sort(local)].tolist())
            extra = getattr(self, "extra_stats", {})
        if accelerator is not None and accelerator.num_processes > 1:
            from accelerate.utils import broadcast_object_list

            chosen, extra = broadcast_object_list([chosen, extra])
        seconds = time.perf_counter() - start
        # 3. the selected generated videos
        chosen = np.asarray(chosen)
        return DistillationOutput(
            videos=pool.videos[torch.as_tensor(chosen)], labels=torch.as_tensor(pool.labels[chosen]),
            class_names=pool.class_names, method=self.name, ipc=self.config.ipc, source=pool.name,
            seed=self.config.seed, source_index=torch.as_tensor(chosen),
            config=self.config.to_dict() | {"pool": pool.path, "pool_manifest": pool.manifest},
            stats={"selection_seconds": seconds, "pool_videos_per_class": int(np.bincount(pool.labels).min()),
                   "seeded": self.seeded} | extra)


@register_distiller
class PoolRandomSelection(_PoolSelector):
    """VPC generated videos per class drawn uniformly at random (seeded)."""

    name = "pool-random"

    def prepare(self, pool, show):
        return np.random.default_rng(self.config.seed)

    def select_class(self, pool, idx, c, rng):
        return rng.choice(len(idx), size=self.config.ipc, replace=False)


# ---- VideoMAE-based: TAC-DT and MAE-Score ---------------------------------------------------------------------
def _require_encoder(config: SelectorConfig, method: str) -> str:
    if not config.encoder:
        raise ValueError(f"{method} needs --encoder <VideoMAE folder or Hub id>.")
    return config.encoder


def videomae_embeddings(encoder: str, videos: torch.Tensor, batch_size: int = 32, show: bool = False,
                        device: torch.device | str = "cpu", autocast=contextlib.nullcontext) -> np.ndarray:
    """`(N, D)` mean-pooled last hidden states of `VideoMAEModel.from_pretrained(encoder)` for uint8 videos,
    computed on `device` under `autocast()`, returned in fp32."""
    from transformers import VideoMAEModel
    from transformers.utils import logging as hf_logging

    from ..teacher import Teacher

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # a classifier checkpoint loads into the backbone with "unused weights" notes
    try:
        model = VideoMAEModel.from_pretrained(encoder)
    except Exception as err:  # noqa: BLE001
        reason = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise ValueError(f"Could not load the VideoMAE encoder '{encoder}': {reason}. Pass a local folder written by "
                         f"VideoMAEModel/VideoMAEForVideoClassification.save_pretrained, or a Hub id on a connected "
                         f"machine.") from err
    finally:
        hf_logging.set_verbosity(verbosity)
    fitter = Teacher(model, model.config.num_frames, model.config.image_size, source=encoder).to(device)
    feats = []
    for i in progress(range(0, len(videos), batch_size), desc="VideoMAE embeddings", disable=not show, leave=False):
        x = fitter._fit(videos[i:i + batch_size].to(device).float() / 255.0)
        with torch.inference_mode(), autocast():
            feats.append(model(pixel_values=x).last_hidden_state.float().mean(1).cpu().numpy())
    return np.concatenate(feats)


@dataclass
class TACDTConfig(SelectorConfig):
    pca_components: int = field(default=32, metadata={"help": "PCA dimensions (capped by the class size)."})
    birch_threshold: float = field(default=0.5, metadata={
        "help": "BIRCH subcluster radius on PCA features scaled to unit mean norm (halved until >= VPC subclusters)."})
    birch_branching_factor: int = field(default=50, metadata={"help": "BIRCH branching factor."})


@register_distiller
class TACDTSelector(_PoolSelector):
    """TAC-DT: VideoMAE embeddings → PCA → BIRCH (VPC clusters) → the member nearest each cluster centre.

    Deterministic: the full-SVD PCA, BIRCH over the pool order and the nearest member depend on no seed."""

    name = "tacdt"
    config_class = TACDTConfig
    seeded = False

    def prepare(self, pool, show):
        return videomae_embeddings(_require_encoder(self.config, "TAC-DT"), pool.videos, self.config.batch_size, show,
                                   self.device, self.autocast)

    def select_class(self, pool, idx, c, feats):
        from sklearn.cluster import Birch
        from sklearn.decomposition import PCA

        cfg, k = self.config, self.config.ipc
        x = feats[idx].astype(np.float64)
        n_comp = max(1, min(cfg.pca_components, len(idx) - 1, x.shape[1]))
        z = PCA(n_components=n_comp, svd_solver="full", random_state=cfg.seed).fit_transform(x)
        z = z / max(float(np.linalg.norm(z, axis=1).mean()), 1e-12)
        if k == 1:
            groups = np.zeros(len(idx), dtype=int)
        else:
            threshold = cfg.birch_threshold
            for _ in range(20):  # finer subclusters until the global step can form k clusters
                birch = Birch(threshold=threshold, branching_factor=cfg.birch_branching_factor, n_clusters=None)
                if len(birch.fit(z).subcluster_centers_) >= k:
                    break
                threshold /= 2
            birch = Birch(threshold=threshold, branching_factor=cfg.birch_branching_factor, n_clusters=k)
            groups = birch.fit_predict(z)
        picks = []
        for g in np.unique(groups):
            members = np.flatnonzero(groups == g)
            centre = z[members].mean(0)
            picks.append(int(members[np.linalg.norm(z[members] - centre, axis=1).argmin()]))
        if len(picks) < k:  # BIRCH merged subclusters: fill with the farthest remaining videos (k-center)
            dist = np.min(np.linalg.norm(z[:, None] - z[picks][None], axis=2), axis=1)
            while len(picks) < k:
                dist[picks] = -1
                j = int(dist.argmax())
                picks.append(j)
                dist = np.minimum(dist, np.linalg.norm(z - z[j], axis=1))
        return np.asarray(picks[:k])


@register_distiller
class MAEScoreSelector(_PoolSelector):
    """MAE-Score: the VPC videos a VideoMAE classifier (trained on these classes) is most confident about.

    Deterministic: the classifier's probabilities depend on no seed."""

    name = "maescore"
    seeded = False

    def prepare(self, pool, show):
        import json
        from pathlib import Path

        from ..hub import resolve_folder
        from ..teacher import load_teacher

        encoder = _require_encoder(self.config, "MAE-Score")
        folder = resolve_folder(encoder, "VideoMAE classifier")
        cfg = json.loads((folder / "config.json").read_text()) if (Path(folder) / "config.json").is_file() else {}
        labels = cfg.get("id2label") or {}
        if cfg.get("model_type") != "videomae" or len(labels) != pool.num_classes:
            raise ValueError(f"MAE-Score needs a VideoMAE video classifier over the pool's {pool.num_classes} "
                             f"classes; '{encoder}' has model_type={cfg.get('model_type')!r}, {len(labels)} labels.")
        teacher = load_teacher(str(folder), pool, teacher_head="error").to(self.device)
        teacher.autocast = self.autocast
        return teacher.probs(pool.videos.float() / 255.0, self.config.batch_size)

    def select_class(self, pool, idx, c, probs):
        conf = probs[torch.as_tensor(idx), c].numpy()
        return np.argsort(-conf, kind="stable")[:self.config.ipc]


# ---- VST-UNet ---------------------------------------------------------------------------------------------------
@dataclass
class VSTUNetConfig(SelectorConfig):
    vae: str | None = field(default=None, metadata={
        "help": "AutoencoderKL folder/Hub id (a Latte pipeline folder: its vae/); default: the pool's generator."})
    epochs: int = field(default=50, metadata={"help": "Training epochs (one step over every class each)."})
    lr: float = field(default=3e-3, metadata={"help": "Adam learning rate."})
    lambda_div: float | None = field(default=None, metadata={"help": "l_d (default: paper, 0 at VPC 1 else 0.1)."})
    lambda_rep: float | None = field(default=None, metadata={"help": "l_r (default: paper, 0.1 at VPC 1 else 1)."})
    base_channels: int = field(default=16, metadata={"help": "VST-UNet width."})
    embed_dim: int = field(default=64, metadata={"help": "Embedding size."})


def pool_latents(vae_id: str, videos: torch.Tensor, batch_size: int = 32, device: torch.device | str = "cpu",
                 autocast=contextlib.nullcontext) -> torch.Tensor:
    """`(N, T, 4, h, w)` scaled posterior means of uint8 `(N, T, C, H, W)` videos under an AutoencoderKL (encoded
    on `device` under `autocast()`; fp32 on `device`)."""
    from diffusers import AutoencoderKL

    from ..hub import resolve_folder

    folder = resolve_folder(vae_id, "AutoencoderKL")
    sub = "vae" if (folder / "vae" / "config.json").is_file() else None
    try:
        vae = AutoencoderKL.from_pretrained(str(folder), subfolder=sub).eval().to(device)
    except Exception as err:  # noqa: BLE001
        raise ValueError(f"Could not load an AutoencoderKL from '{vae_id}': {str(err).splitlines()[0][:200]}. Pass "
                         f"a Latte pipeline folder or a VAE folder written by save_pretrained.") from err
    out = []
    with torch.inference_mode():
        for i in range(0, len(videos), batch_size):
            v = videos[i:i + batch_size].to(device).float() / 255.0
            with autocast():
                z = vae.encode(v.flatten(0, 1) * 2 - 1).latent_dist.mean.float() * vae.config.scaling_factor
            out.append(z.reshape(*v.shape[:2], *z.shape[1:]).clone())
    return torch.cat(out)


@register_distiller
class VSTUNetSelector(_PoolSelector):
    """VST-UNet: train on each class's latents with CE + l_d L_div + l_r L_rep, pick the top-VPC probabilities."""

    name = "vstunet"
    config_class = VSTUNetConfig

    def __init__(self, config=None, **kwargs):
        super().__init__(config, **kwargs)
        self.model = None

    @property
    def lambdas(self) -> tuple[float, float]:
        cfg = self.config
        d = cfg.lambda_div if cfg.lambda_div is not None else (0.0 if cfg.ipc == 1 else 0.1)
        r = cfg.lambda_rep if cfg.lambda_rep is not None else (0.1 if cfg.ipc == 1 else 1.0)
        return d, r

    def fit(self, latents: dict[int, torch.Tensor], num_classes: int, show: bool = False) -> list[float]:
        """Train a fresh VST-UNet on `{class: (N_c, T, 4, h, w)}` on the latents' device (forwards under the
        selector's autocast); returns the mean loss per epoch."""
        from ..models.vst_unet import VSTUNet, selection_losses

        cfg = self.config
        torch.manual_seed(cfg.seed)
        first = next(iter(latents.values()))
        self.model = VSTUNet(in_channels=first.shape[2], num_classes=num_classes, base_channels=cfg.base_channels,
                             embed_dim=cfg.embed_dim).to(first.device)
        autocast = getattr(self, "autocast", contextlib.nullcontext)
        opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        lam_d, lam_r = self.lambdas
        rng, curve = np.random.default_rng(cfg.seed), []
        self.model.train()
        for _ in progress(range(cfg.epochs), desc="VST-UNet", disable=not show, leave=False):
            # Algorithm 1: every class's loss in an epoch; one step per epoch (every class in each step, so the CE
            # head is not pulled towards the last class seen)
            opt.zero_grad()
            total = torch.zeros((), dtype=torch.float64, device=first.device)  # as a Python float sum would
            for c in rng.permutation(sorted(latents)):
                with autocast():
                    probs, emb, logits = self.model(latents[int(c)])
                probs, emb, logits = probs.float(), emb.float(), logits.float()
                # rewards on the CE-shaped embeddings, as fixed features (Zhou et al. 2018): L_div / L_rep train
                # the selection probabilities; letting them move the embeddings too collapses/oscillates them
                _, div, rep = selection_losses(probs, emb.detach(), cfg.ipc)
                ce = F.cross_entropy(logits, torch.full((len(probs),), int(c), device=logits.device))
                loss = (ce + lam_d * div + lam_r * rep) / len(latents)
                loss.backward()
                total += loss.detach().double()
            opt.step()
            curve.append(float(total))
        self.model.eval()
        return curve

    def prepare(self, pool, show):
        vae = self.config.vae or pool.manifest.get("generator")
        if not vae or vae == "unknown":
            raise ValueError("VST-UNet needs the pool's VAE: pass --vae <Latte pipeline or VAE folder>.")
        t0 = time.perf_counter()
        z = pool_latents(vae, pool.videos, self.config.batch_size, self.device, self.autocast)
        latents = {c: z[torch.as_tensor(idx)] for c, idx in pool.indices_per_class().items()}
        if getattr(self, "pretrained", False):  # from_pretrained: select with the saved model, no training
            self.extra_stats = {"latent_seconds": time.perf_counter() - t0, "pretrained": True}
            return latents
        curve = self.fit(latents, pool.num_classes, show)
        self.extra_stats = {"loss_curve": curve, "latent_seconds": time.perf_counter() - t0,
                            "lambda_div": self.lambdas[0], "lambda_rep": self.lambdas[1]}
        return latents

    @torch.no_grad()
    def select_class(self, pool, idx, c, latents):
        self.model.to(latents[c].device)
        probs = self.model(latents[c])[0].float()
        return probs.topk(self.config.ipc).indices.cpu().numpy()

    parts = "`vst_unet/`: the trained VST-UNet (PyTorchModelHubMixin: config.json + safetensors)"

    def save_parts(self, folder) -> None:
        if self.model is None:
            raise ValueError("Nothing to save: run the selector first.")
        self.model.save_pretrained(folder / "vst_unet")

    def load_parts(self, folder) -> None:
        from ..models.vst_unet import VSTUNet

        self.model = VSTUNet.from_pretrained(folder / "vst_unet").eval()
        self.pretrained = True
