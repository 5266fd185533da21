"""Does a phantom-trained classifier transfer to real head CT? Figures on the real sample.

    python benchmarks/real_transfer.py --checkpoint DIR [--checkpoint DIR2 ...] [--real DIR] [--json OUT]

For each checkpoint, on the real slices of ``--real`` (8-bit brain-window JPEGs, positives only,
never trained on) and on a phantom of the benchmark's default size (16 heads x 12 slices, 128 px,
seed 7; the acquisition each checkpoint was trained with, and the other one):

- detection: real-slice sensitivity at the decision threshold (P >= 0.5), AUC of real positives
  ranked against the phantom's negatives, the phantom's specificity (negatives) and AUC;
- segmentation: Dice of each method's maps (made exactly as in ``xaiseg benchmark``: brain-masked,
  min-max per slice), binarised at the threshold that maximises mean Dice on the phantom's
  positive slices (calibrated on the phantom, never on the real slices).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

PHANTOM = {"subjects": 16, "slices_per_subject": 12, "size": 128, "prevalence": 0.75, "seed": 7}
METHODS = ("hgi-sam", "swin-sam", "gradcam", "rollout", "grad-rollout", "saliency", "centre-prior")
GRID = np.round(np.arange(0.01, 1.0, 0.01), 2)


def real_slices(folder: Path) -> list[dict]:
    """HU (grey * 120 / 255 - 20: the brain window 40/120 read back), mask, brain (inside the skull)."""
    from PIL import Image
    from scipy import ndimage as ndi

    out = []
    for img in sorted((folder / "images").glob("*.jpg")):
        g = np.asarray(Image.open(img).convert("L")).astype(np.float32)
        m = np.asarray(Image.open(folder / "masks" / (img.stem + ".png")).convert("RGB"))[..., 0] > 100
        # brain: the largest soft-tissue region once the thin scalp is eroded away (the skull
        # ring is open at the skull base, so "inside the skull" alone is not enough)
        soft = (g > 5) & (g < 250)
        core = ndi.binary_erosion(soft, iterations=8)
        lab, n = ndi.label(core)
        core = lab == (1 + int(np.argmax(np.bincount(lab.ravel())[1:]))) if n else core
        brain = ndi.binary_fill_holes(ndi.binary_dilation(core, iterations=8) & soft)
        out.append({"hu": g * (120.0 / 255.0) - 20.0, "mask": m, "brain": brain | m, "spacing": (0.45, 0.45),
                    "name": img.stem})
    return out


def phantom_slices(root: Path, acquisition: str) -> list[dict]:
    from xaiseg.data import open_dataset
    from xaiseg.data.phantom_writer import write_phantom

    from xaiseg.data.phantom import generator_fingerprint

    path = root / f"phantom-{acquisition}-{generator_fingerprint()[:12]}"  # a changed generator writes anew
    if not (path / "phantom.json").is_file():
        write_phantom(path, progress=False, acquisition=acquisition, **PHANTOM)
    ds = open_dataset(path, layout="physionet")
    out = []
    for i in range(len(ds)):
        it = ds[i]
        out.append({"hu": np.asarray(it["image"], np.float32), "mask": np.asarray(it["mask"]) > 0,
                    "brain": np.asarray(it["brain"]) > 0, "spacing": tuple(it["spacing"]),
                    "label": float(np.asarray(it["labels"])[-1])})
    return out


def probabilities(loaded, slices: list[dict]) -> np.ndarray:
    ps = []
    with torch.no_grad():
        for s in slices:
            x, _ = loaded.prepare(s["hu"])
            ps.append(float(loaded.detection_probability(loaded.model(x))[0]))
    return np.array(ps)


def method_maps(loaded, method: str, slices: list[dict], batch: int = 8) -> list[np.ndarray]:
    """Maps on each slice's grid, as the benchmark makes them (evaluation_map of quantised maps)."""
    from xaiseg.benchmark.evaluate import EvaluationGrid, SliceTruth, quantize
    from xaiseg.attribution.spec import build_method, method_class, parse_method_spec

    spec = parse_method_spec(method)
    explainer = build_method(method_class(spec), spec, loaded.model)
    out = []
    for i in range(0, len(slices), batch):
        chunk = slices[i : i + batch]
        xs, truths = [], []
        for s in chunk:
            image, _m, _b, geometry = loaded.preprocessor(s["hu"])
            xs.append(torch.as_tensor(np.asarray(image)).float())
            truths.append(SliceTruth(gt=s["mask"], spacing=s["spacing"], brain=s["brain"], geometry=geometry))
        x = loaded.normalize(torch.stack(xs).to(loaded.device))
        q = quantize(explainer.attribute(x, target=loaded.target_index))
        out += EvaluationGrid(truths).maps(q)  # the benchmark's own batch step: the same numbers
    return out


def dice_at(maps: list[np.ndarray], slices: list[dict], t: float) -> np.ndarray:
    from xaiseg.metrics.segmentation import binarize, dice

    return np.array([dice(binarize(m, t), s["mask"]) for m, s in zip(maps, slices)])


def evaluate(ckpt: Path, real: list[dict], root: Path, methods: tuple[str, ...]) -> dict:
    import xaiseg
    from xaiseg.metrics.detection import roc_auc

    loaded = xaiseg.load_model(ckpt, device="cpu")
    trained_on = (loaded.config.get("data") or {}).get("acquisition", "clean")
    p_real = probabilities(loaded, real)
    res = {"checkpoint": str(ckpt), "trained_on_acquisition": trained_on,
           "real_sensitivity": float((p_real >= 0.5).mean()), "real_median_p": float(np.median(p_real)), "phantom": {}}
    for acq in ("random", "clean"):
        ph = phantom_slices(root, acq)
        y = np.array([s["label"] for s in ph])
        p = probabilities(loaded, ph)
        res["phantom"][acq] = {
            "auc": roc_auc(y, p), "specificity": float((p[y == 0] < 0.5).mean()),
            "sensitivity": float((p[y == 1] >= 0.5).mean()),
            "auc_real_pos_vs_phantom_neg": roc_auc(np.r_[np.ones(len(p_real)), np.zeros(int((y == 0).sum()))],
                                                   np.r_[p_real, p[y == 0]]),
        }
    pos = [s for s in phantom_slices(root, trained_on) if s["label"] > 0]
    res["dice"] = {}
    for m in methods:
        ph_maps = method_maps(loaded, m, pos)
        curve = np.array([dice_at(ph_maps, pos, t).mean() for t in GRID])
        t = float(GRID[int(np.argmax(curve))])
        d = dice_at(method_maps(loaded, m, real), real, t)
        res["dice"][m] = {"threshold": t, "phantom_dice": float(curve.max()), "real_dice": float(d.mean()),
                          "real_dice_sd": float(d.std())}
        print(f"  {m:13s} t={t:.2f} phantom Dice {curve.max():.3f}  real Dice {d.mean():.3f} ± {d.std():.3f}", flush=True)
    return res


def main() -> None:
    here = Path(__file__).resolve().parent.parent
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", action="append", required=True, type=Path)
    ap.add_argument("--real", type=Path, default=here.parent / "shared" / "data" / "ct-ich-v1-sample")
    ap.add_argument("--work", type=Path, default=Path("/tmp/xaiseg-real-transfer"))
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    real = real_slices(args.real)
    results = []
    for ck in args.checkpoint:
        print(f"{ck}:", flush=True)
        r = evaluate(ck, real, args.work, tuple(args.methods.split(",")))
        results.append(r)
        ph = r["phantom"][r["trained_on_acquisition"]]
        print(f"  real sensitivity {r['real_sensitivity']:.3f} (median P {r['real_median_p']:.3f}); "
              + "; ".join(f"{a} phantom: AUC {v['auc']:.3f} spec {v['specificity']:.3f} "
                          f"real-pos-vs-phantom-neg AUC {v['auc_real_pos_vs_phantom_neg']:.3f}"
                          for a, v in r["phantom"].items()), flush=True)
        del ph
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
