"""``xaiseg train``: train the weakly supervised (slice-label) classifier that the methods explain."""
from __future__ import annotations

import math
import shlex
import sys

import click


def _parse_windows(text: str | None) -> tuple[tuple[float, float], ...] | None:
    from ..errors import ConfigError

    if not text:
        return None
    try:
        wins = tuple(tuple(float(v) for v in part.split(",")) for part in text.split(";") if part.strip())
    except ValueError:
        wins = ()
    if not wins or any(len(w) != 2 or not all(math.isfinite(v) for v in w) or w[1] <= 0 for w in wins):
        raise ConfigError(f"--windows takes 'centre,width;centre,width;...' in HU with widths > 0, got {text!r}")
    return wins  # type: ignore[return-value]


@click.command(context_settings={"show_default": True})
@click.option("--data", default="phantom",
              help="Data set folder, or 'phantom': fresh phantom slices rendered every step (use ./phantom for a folder of that name).")
@click.option("--layout", type=click.Choice(["auto", "physionet", "rsna", "folder", "phantom"]), default="auto",
              help="Layout of the --data folder ('phantom' = a data set written by `xaiseg phantom`, PhysioNet layout).")
@click.option("--model", default=None, help="Preset (tiny, tiny-224, small, paper, vit-tiny, hf-vit-tiny, hf-swin-tiny), hf-vit / hf-swin (the [hf] extra) or a timm swin_*, swinv2_*, vit_*, deit_*, deit3_* or eva02_* name; "
              "with --task segmentation: unet, "
              "swin-unetr, unet-paper, swin-unetr-paper. [default: paper / unet-paper on CUDA; on CPU tiny-224 on the phantom stream, tiny on data on disk, unet for --task segmentation]")
@click.option("--model-kwargs", default=None, help="JSON object of timm constructor overrides, e.g. '{\"embed_dim\": 48}'.")
@click.option("--task", type=click.Choice(["binary", "subtypes", "segmentation"]), default="binary",
              help="binary: ICH yes/no, 2 logits + cross-entropy; subtypes: 5 subtypes + any, 6 logits + BCE; "
                   "segmentation: a fully supervised MONAI segmenter trained on the masks (Dice + CE).")
@click.option("--folds", type=int, default=0,
              help="--task segmentation: train one model per subject-wise fold (K >= 2), so every subject's map "
                   "comes from a model that never saw it (0: one model).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Checkpoint directory to write.")
@click.option("--epochs", type=int, default=None, help="Passes over the data; on the phantom stream --steps-per-epoch steps each. [default: 30 on the phantom stream (3000 steps), 10 on data on disk; --task segmentation: 40]")
@click.option("--batch-size", type=int, default=None, help="Slices per optimiser step; under torchrun the global batch, "
              "shared by the processes. [default: 32; --task segmentation: 16]")
@click.option("--lr", type=float, default=None, help="Peak AdamW learning rate (after warm-up, then cosine). [default: 5e-4; --task segmentation: 1e-3]")
@click.option("--weight-decay", type=float, default=0.05)
@click.option("--warmup-steps", type=int, default=None, help="Linear warm-up steps. [default: 5% of the run]")
@click.option("--image-size", type=int, default=None, help="Input size (overrides the model's img_size).")
@click.option("--resize", type=int, default=None,
              help="Resize each slice so its shorter side is N px, then centre-crop to the input size (HGI-SAM: 422 "
                   "for 384). [default: the paper preset's 422/384 ratio; otherwise the whole slice fits the input]")
@click.option("--windows", default=None, help="CT windows 'centre,width;...' in HU. [default: 40,120;80,200;600,2800]")
@click.option("--seed", type=int, default=0)
@click.option("--device", default="auto", help="auto (CUDA if available; under torchrun each process's cuda:LOCAL_RANK), "
              "cpu, cuda, cuda:1 ...")
@click.option("--workers", type=int, default=None, help="Data-loader worker processes that decode, window and render "
              "slices ahead of the model (0: in the main process). [default: 1 on two or more cores]")
@click.option("--threads", type=int, default=None, help="torch CPU threads (1 is fastest on a busy machine).")
@click.option("--pretrained/--no-pretrained", default=False, help="Start from timm hub weights (needs network).")
@click.option("--init", "init", default=None, type=click.Path(exists=True), help="Fine-tune from a checkpoint dir or a timm/PyTorch state dict.")
@click.option("--val-fraction", type=float, default=0.2, help="Share of subjects held out for validation.")
@click.option("--patience", type=int, default=None, help="Early stopping: epochs without a better --select score (0: off; a segmenter: lower val loss). [default: 5; --task segmentation: 0]")
@click.option("--select", type=click.Choice(["val-auc", "val-loss", "last"]), default="val-auc", show_default=True,
              help="Classifier: which epoch's weights model.safetensors keeps: the highest validation AUC, the lowest "
                   "validation loss, or the last epoch.")
@click.option("--balanced/--no-balanced", default=False, help="Class-balanced sampling (positive/negative slices).")
@click.option("--focal-gamma", type=float, default=0.0, help="Focal loss gamma for --task subtypes (0: plain BCE).")
@click.option("--augment/--no-augment", default=True, help="Random left-right flips (data sets on disk).")
@click.option("--ema", type=float, default=0.0, show_default=True,
              help="Decay of an exponential moving average of the weights (e.g. 0.99; 0: off). The average is "
                   "what is validated and saved.")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), default="auto",
              help="Arithmetic of the training steps (autocast; weights and checkpoint stay fp32). auto: bf16 on "
                   "CUDA with bf16 (else fp16 with loss scaling) and on CPUs with bf16 instructions (AVX512-BF16, "
                   "AMX, Arm BF16; about 2.3x faster there), fp32 elsewhere. The log and config.json say which ran.")
@click.option("--grad-clip", type=float, default=1.0, show_default=True, help="Gradient norm clipping (0: off).")
@click.option("--limit", type=int, default=None, help="Use only the first N slices of the data set.")
@click.option("--skip-bad", is_flag=True, help="Skip unreadable or inconsistent files of the data set (counted "
              "and reported in the log) instead of stopping at the first with an error.")
@click.option("--steps-per-epoch", type=int, default=100, help="Phantom stream: optimiser steps per epoch.")
@click.option("--val-size", type=int, default=512, help="Phantom stream: fixed realistic validation slices.")
@click.option("--prevalence", type=float, default=0.5, help="Phantom stream: share of slices drawn with hemorrhage.")
@click.option("--curriculum", default=None, metavar="START,HOLD,SHRINK",
              help="Phantom lesion-size curriculum: scale START for HOLD of the run, shrinking to 1 over SHRINK; "
                   "1,0,0 = off. [default: 3,0.15,0.35 on the phantom stream]")
@click.option("--train-on", type=click.Choice(["auto", "stream", "disk"]), default="auto",
              help="auto: fresh phantom slices for --data phantom and for folders written by `xaiseg phantom` "
                   "(validated on the folder's slices); disk: the folder's own slices.")
@click.option("--acquisition", type=click.Choice(["random", "clean"]), default=None,
              help="Phantom stream: randomised scans (domain randomisation) or clean ones. [default: the folder's, else random]")
@click.option("--resume", is_flag=True, help="Continue the interrupted run in --out from its last epoch.")
@click.option("--progress/--no-progress", default=True, help="Show progress bars.")
def train(**o) -> None:
    """Train a transformer classifier (Swin V1/V2, ViT/DeiT) on slice labels only (no masks: weak
    supervision), or with --task segmentation a MONAI segmenter on the masks.

    Writes OUT/model.safetensors + OUT/config.json (load with xaiseg.load_model(OUT) or pass to
    `xaiseg benchmark --checkpoint OUT`), a per-epoch log OUT/train_log.jsonl and OUT/resume.pt.

    \b
    Examples:
      xaiseg train --out runs/phantom            # the phantom stream, its recipe
      xaiseg train --data phantom --model tiny --epochs 10 --out runs/quick
      xaiseg train --data /data/ct-ich --layout physionet --task subtypes --out runs/sub
      torchrun --standalone --nproc-per-node 4 -m xaiseg train --data /data/rsna --layout rsna --out runs/ddp
    """
    from ..errors import ConfigError
    from ..segmenters.config import TASK_DEPENDENT
    from ..training import TrainConfig, parse_model_kwargs, train as run

    start = hold = shrink = None
    if o["curriculum"]:
        try:
            start, hold, shrink = (float(v) for v in o["curriculum"].split(","))
        except ValueError:
            raise ConfigError(f"--curriculum takes START,HOLD,SHRINK (e.g. 3,0.25,0.45), got {o['curriculum']!r}") from None
    # options whose default depends on the task: only what the user gave is passed on
    given = {k: o[k] for k in TASK_DEPENDENT if o[k] is not None}
    cfg = TrainConfig(
        out=o["out"], data=o["data"], layout=o["layout"], model=o["model"],
        model_kwargs=parse_model_kwargs(o["model_kwargs"]), task=o["task"], **given,
        weight_decay=o["weight_decay"], warmup_steps=o["warmup_steps"],
        image_size=o["image_size"], resize=o["resize"], windows=_parse_windows(o["windows"]), seed=o["seed"], device=o["device"],
        workers=o["workers"], threads=o["threads"], pretrained=o["pretrained"], init=o["init"],
        val_fraction=o["val_fraction"], select=o["select"], balanced=o["balanced"], focal_gamma=o["focal_gamma"],
        augment=o["augment"], ema=o["ema"], precision=o["precision"], grad_clip=o["grad_clip"], limit=o["limit"], skip_bad=o["skip_bad"], steps_per_epoch=o["steps_per_epoch"], val_size=o["val_size"],
        prevalence=o["prevalence"], curriculum_start=start, curriculum_hold=hold, curriculum_shrink=shrink,
        train_on=o["train_on"], acquisition=o["acquisition"],
        resume=o["resume"], progress=o["progress"],
        command="xaiseg train " + " ".join(shlex.quote(a) for a in sys.argv[2:]) if sys.argv[1:2] == ["train"] else None,
    )
    from pathlib import Path

    from ..output.atomic import disk_errors
    from ..data.base import quiet_skip_warnings
    from ..output.folder import output_folder
    from ..training.checkpoint import TRAIN_OUTPUT

    def hint() -> str:  # asked only when the disk fails: can the run continue?
        if (Path(cfg.out) / "resume.pt").is_file():
            return "free some space, then continue the run with the same command and --resume"
        return "free some space and run the command again"

    from ..distributed import current_world

    world = current_world()  # torchrun --nproc-per-node N: N processes, rank 0 writes --out
    if cfg.task == "segmentation":
        from ..segmenters import SegmentationConfig, train_segmenter

        if world.distributed:
            raise ConfigError("--task segmentation trains in one process; start it without torchrun "
                              "(several processes train the classifier only)")

        cfg, run = SegmentationConfig.from_train_config(cfg, explicit=set(given), folds=o["folds"]), train_segmenter
    elif o["folds"]:
        raise ConfigError("--folds applies to --task segmentation (a classifier trains on one subject split)")
    cfg.validate()  # before --out is taken: a bad option leaves no folder behind
    if world.distributed:  # also before --out: one process failing here would stop rank 0 half-way
        from ..training.ddp import check_world

        check_world(cfg.batch_size, cfg.device, world)
    if not world.is_main:  # the other ranks never touch --out (their machine need not see it)
        with quiet_skip_warnings():
            run(cfg)
        return
    # --out: new, empty or a training run's own folder, locked while the run lasts
    with quiet_skip_warnings(), output_folder(cfg.out, TRAIN_OUTPUT), disk_errors(cfg.out, hint):
        run(cfg)  # quiet_skip_warnings: the training log says what --skip-bad skipped
