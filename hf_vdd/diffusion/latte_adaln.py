"""Latte whose prompt also conditions every block through adaLN (`--class_conditioning adaln`).

diffusers' `LatteTransformer3DModel` is Latte's text-to-video variant: the prompt reaches the model only through
the spatial blocks' cross-attention. The diffusion paper fine-tunes Latte as a *class-conditional* model, and
Latte's class-conditional models (its UCF101 model, like DiT's) add the class embedding to the timestep embedding
that drives every block's adaptive layer norm ("S-AdaLN"), the temporal blocks included. This subclass does that
with the states the pipeline already passes: the prompt states, mean-pooled over tokens, go through a 2-layer MLP
and are added to the timestep embedding. The MLP's last layer starts at zero, so a new model computes exactly
what a plain Latte with the same weights computes, and `LattePipeline` samples it unchanged (prompts, learned
class embeddings and classifier-free guidance's empty prompt all arrive as `encoder_hidden_states`).
"""

from __future__ import annotations

import inspect

import torch

# ModelMixin: LattePipeline.from_pretrained finds a custom component's loading method in the component's module
from diffusers import LatteTransformer3DModel, ModelMixin  # noqa: F401


class AdaLNLatteTransformer3DModel(LatteTransformer3DModel):
    """`LatteTransformer3DModel` + `prompt_adaln`: pooled prompt states added to the timestep embedding."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        inner = self.config.num_attention_heads * self.config.attention_head_dim
        self.prompt_adaln = torch.nn.Sequential(torch.nn.Linear(self.config.caption_channels, inner),
                                                torch.nn.SiLU(), torch.nn.Linear(inner, inner))
        torch.nn.init.zeros_(self.prompt_adaln[-1].weight)
        torch.nn.init.zeros_(self.prompt_adaln[-1].bias)

    # the config (and so from_config / from_pretrained) takes the parent's arguments
    __init__.__signature__ = inspect.signature(LatteTransformer3DModel.__init__)

    @classmethod
    def from_latte(cls, transformer: LatteTransformer3DModel) -> AdaLNLatteTransformer3DModel:
        """The same weights as `transformer`, plus a zero-started `prompt_adaln` (on its device and dtype)."""
        param = next(transformer.parameters())
        model = cls.from_config(transformer.config).to(param.device)
        model = model if param.dtype == torch.float32 else model.to(param.dtype)
        missing, unexpected = model.load_state_dict(transformer.state_dict(), strict=False)
        if unexpected or any(not k.startswith("prompt_adaln.") for k in missing):
            raise RuntimeError(f"Latte weights do not fit: missing {missing}, unexpected {unexpected}.")
        return model.train(transformer.training)

    def forward(self, hidden_states, timestep=None, encoder_hidden_states=None, *args, **kwargs):
        if encoder_hidden_states is None:
            raise ValueError("AdaLNLatteTransformer3DModel needs encoder_hidden_states (the prompt states).")
        pooled = self.prompt_adaln(encoder_hidden_states.mean(1))

        def add_prompt(module, inputs, embedded_timestep):  # (B, inner): one row per video, like the prompt states
            return embedded_timestep + pooled.to(embedded_timestep.dtype)

        handle = self.adaln_single.emb.register_forward_hook(add_prompt)
        try:
            return super().forward(hidden_states, timestep, encoder_hidden_states, *args, **kwargs)
        finally:
            handle.remove()
