"""Which part of a Latte generator has not learnt the classes? A judge (ConvNet3D trained on the real train split)
labels (1) real test clips and their VAE reconstructions, and (2) the transformer's one-step x0 predictions from
noised real latents, prompted with each clip's own class and with the next class, and (3) students trained on real
train clips SDEdited by the generator at several strengths (`hf_vdd.diffusion.quality`).

    python recipes/diagnose_latte.py --dataset toy-actions --num_frames 16 --frame_size 32 \
        --generator outputs/latte-toy --output_json outputs/latte-toy-diagnosis.json

Reading it: "reconstructed" far below "real" means the VAE loses the classes; "next" near chance at high t means
the transformer ignores its prompt (the pool then cannot be class-recognisable whatever the guidance). The
students' rows (strength 0: the VAE; 1: pure generation, as the pool) say at which noise levels the generator loses
what a student needs: near "real" at low strength and far below at high strength means it renders details well
and decides the coarse content (form, motion) badly.
"""

from dataclasses import dataclass, field

import numpy as np
import torch

from hf_vdd import TrainConfig, evaluate_distilled
from hf_vdd.cli import DataArgs, dump_json, parse_args, run_main
from hf_vdd.data.distilled import TensorVideoSet
from hf_vdd.diffusion import load_latte
from hf_vdd.diffusion.pool import DEFAULT_PROMPT_TEMPLATE, encode_prompts, unconditional_states
from hf_vdd.diffusion.quality import partial_generation, prompt_steering, real_like_pool, vae_recognisability
from hf_vdd.diffusion.select import default_inference_steps, learned_class_embeddings
from hf_vdd.training import make_accelerator


@dataclass
class DiagnoseArgs:
    generator: str | None = field(default=None, metadata={"help": "LattePipeline folder or Hub id (required)."})
    clips_per_class: int = field(default=6, metadata={"help": "Real test clips per class to diagnose on."})
    timesteps: list[int] = field(default_factory=lambda: [500, 700, 900], metadata={
        "help": "Noise levels of the x0 predictions (of the scheduler's training timesteps)."})
    judge_steps: int = field(default=300, metadata={"help": "Training steps of the judge on the real train split."})
    prompt_template: str = field(default=DEFAULT_PROMPT_TEMPLATE, metadata={"help": "Prompt per class name."})
    sdedit_strengths: list[float] = field(default_factory=lambda: [0.25, 0.5, 0.75, 1.0], metadata={
        "help": "SDEdit strengths of the students' rows (0 = the VAE's reconstructions, 1 = generation from noise)."})
    sdedit_clips_per_class: int = field(default=10, metadata={"help": "Real train clips per class SDEdited."})
    num_inference_steps: int | None = field(default=None, metadata={"help": "DDIM steps (50; toy: 20), as the pool."})
    student_steps: int = field(default=300, metadata={"help": "Training steps of each student."})
    student_runs: int = field(default=2, metadata={"help": "Students per strength (and on the real clips)."})
    seed: int = field(default=0, metadata={"help": "Seed of the judge and of the noise."})
    output_json: str | None = field(default=None, metadata={"help": "Write the diagnosis here."})


def main():
    data, args = parse_args(DataArgs, DiagnoseArgs)
    if not args.generator:
        raise ValueError("--generator is required: a LattePipeline folder (recipes/finetune_latte.py) or Hub id.")
    if args.clips_per_class < 1 or not args.timesteps:
        raise ValueError("--clips_per_class must be >= 1 and --timesteps must name at least one timestep.")
    if any(not 0.0 <= s <= 1.0 for s in args.sdedit_strengths) or min(
            args.sdedit_clips_per_class, args.student_runs, 1 if args.num_inference_steps is None
            else args.num_inference_steps) < 1:
        raise ValueError(f"--sdedit_strengths must lie in [0, 1] (got {args.sdedit_strengths}); "
                         f"--sdedit_clips_per_class, --student_runs and --num_inference_steps must be >= 1.")
    pipe = load_latte(args.generator)  # before any decoding: the generator loads and has the data's shape
    frames, steps = pipe.transformer.config.video_length, pipe.scheduler.config.num_train_timesteps
    if any(not 0 <= t < steps for t in args.timesteps):
        raise ValueError(f"--timesteps must lie in [0, {steps}), got {args.timesteps}.")
    size = pipe.transformer.config.sample_size * pipe.vae_scale_factor
    if data.num_frames not in (None, frames) or data.frame_size not in (None, size):
        raise ValueError(f"The generator makes {frames}-frame videos of {size}x{size}; use --num_frames {frames} "
                         f"--frame_size {size}.")
    data.num_frames, data.frame_size = frames, size
    accelerator = make_accelerator()
    train, test = data.load("train"), data.load("test")
    states = learned_class_embeddings(args.generator, test.class_names)  # else: the prompts, as the pool does
    conditioning = "learned class embeddings" if states is not None else f"prompts '{args.prompt_template}'"
    if states is None:
        states = encode_prompts(pipe, [args.prompt_template.format(c) for c in test.class_names])
    empty = unconditional_states(pipe, 1, states.shape[1])  # guidance's unconditional side (steering, SDEdit)
    judges = []
    full = evaluate_distilled(train, test, TrainConfig(runs=1, steps=args.judge_steps, seed=args.seed,
                                                       show_progress=False), accelerator,
                              on_model=lambda run, model: judges.append(model))
    idx = np.concatenate([i[:args.clips_per_class] for i in test.indices_per_class().values()])
    videos, labels = test.stack(idx), torch.as_tensor(test.labels[idx])
    report = {"generator": args.generator, "conditioning": conditioning, "judge_test_top1": full.top1["mean"],
              "clips": len(idx), "vae": vae_recognisability(pipe.vae, videos, labels, judges[0],
                                                            accelerator=accelerator),
              "steering": prompt_steering(pipe, videos, labels, states, judges[0], args.timesteps, args.seed,
                                          accelerator=accelerator,
                                          empty_states=empty)}
    real = real_like_pool(train, args.sdedit_clips_per_class, args.seed)
    x, y = real.stack(range(len(real))), torch.as_tensor(real.labels)
    student = TrainConfig(runs=args.student_runs, steps=args.student_steps, seed=args.seed, show_progress=False)
    report["students"] = {"real": evaluate_distilled(TensorVideoSet(x, y), test, student, accelerator).top1}
    ddim_steps = args.num_inference_steps or default_inference_steps(data.dataset)
    for s in args.sdedit_strengths:
        videos = partial_generation(pipe, x, y, states, s, ddim_steps, seed=args.seed, accelerator=accelerator,
                                    empty_states=empty)
        report["students"][str(s)] = evaluate_distilled(TensorVideoSet(videos, y), test, student, accelerator).top1
    if accelerator.is_main_process:
        vae, chance = report["vae"], 100.0 / test.num_classes
        print(f"{data.dataset}, {len(idx)} test clips, judge {full.top1['mean']:.1f} % on the test split (chance "
              f"{chance:.1f}); {conditioning}\n\nVAE: real {vae['real']:.1f}, reconstructed {vae['reconstructed']:.1f}"
              f" (MSE {vae['mse']:.4f})\n\n| t | own class prompt | next class prompt (judged as it) | x0 MSE: own / "
              f"next / no class |\n|---|---|---|---|")
        for t, r in report["steering"].items():
            mse = r["x0_mse"]
            print(f"| {t} | {r['own']:.1f} | {r['next']:.1f} | {mse['own']:.4f} / {mse['next']:.4f} / "
                  f"{mse['empty']:.4f} |")
        print(f"\nStudents ({args.student_runs} x {args.student_steps} steps) on {len(real)} real train clips "
              f"SDEdited at each strength ({ddim_steps} DDIM steps):\n\n| strength | student top-1 |\n|---|---|")
        for name, r in report["students"].items():
            print(f"| {name} | {r['mean']:.1f} ± {r['std']:.1f} |")
        dump_json(report, args.output_json)


if __name__ == "__main__":
    run_main(main)
