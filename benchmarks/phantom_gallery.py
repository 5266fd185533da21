"""Pictures of the randomised phantom beside the real sample: ``docs/img/phantom-vs-real.png``.

    python benchmarks/phantom_gallery.py [--real ../shared/data/ct-ich-v1-sample] [--out docs/img/phantom-vs-real.png]

Top row: real head-CT slices (8-bit brain-window JPEGs, 40/120 HU). Rows below: random draws of
the training stream (a new head, lesions and randomised acquisition each; seed 0), the same
window; hemorrhage masks outlined in red. Labels say the subtype and the acquisition knobs drawn.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

TILE = 176
_CODES = {"epidural": "EDH", "subdural": "SDH", "intraparenchymal": "IPH", "intraventricular": "IVH", "subarachnoid": "SAH"}


def _window(hu: np.ndarray) -> np.ndarray:
    return np.clip((hu + 20.0) * (255.0 / 120.0), 0, 255).astype(np.uint8)


def _tile(grey: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    from PIL import Image

    rgb = np.stack([grey] * 3, -1)
    if mask is not None and mask.any():
        from scipy import ndimage as ndi

        edge = mask & ~ndi.binary_erosion(mask, iterations=max(1, mask.shape[0] // 160))
        rgb[edge] = (255, 40, 40)
    return np.asarray(Image.fromarray(rgb).resize((TILE, TILE), Image.BILINEAR))


def real_tiles(folder: Path, n: int) -> list[tuple[np.ndarray, str]]:
    from PIL import Image

    names = sorted((folder / "images").glob("*.jpg"))
    picks = [names[int(i)] for i in np.linspace(0, len(names) - 1, n)]
    out = []
    for p in picks:
        grey = np.asarray(Image.open(p).convert("L"))
        m = np.asarray(Image.open(folder / "masks" / (p.stem + ".png")).convert("RGB"))
        out.append((_tile(grey.copy(), m[..., 0] > 100), f"real {p.stem}"))
    return out


def phantom_tiles(n: int, seed: int = 0) -> list[tuple[np.ndarray, str]]:
    from xaiseg.data.phantom import render, sample_acquisition, sample_head
    from xaiseg.data.phantom_lesions import draw_lesions

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        head = sample_head(rng)
        lesions = draw_lesions(rng, head) if i % 2 == 0 else []
        z = float(np.clip(lesions[0].zc, 0, 1)) if lesions else float(rng.uniform(0.05, 0.95))
        acq = sample_acquisition(rng)
        sl = render(head, lesions, z, rng, size=256, acquisition=acq)
        what = ",".join(_CODES[les.subtype] for les in lesions) if sl.labels[-1] else "no ICH"
        knobs = [k for k, on in (("8bit", acq.window8 is not None), ("streaks", acq.streak_rate > 0),
                                 ("coarse", acq.resolution > 1.05)) if on]
        out.append((_tile(_window(sl.hu), sl.mask > 0), f"{what} z={z:.2f} {' '.join(knobs)}"))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = Path(__file__).resolve().parent.parent
    ap.add_argument("--real", type=Path, default=here.parent / "shared" / "data" / "ct-ich-v1-sample")
    ap.add_argument("--out", type=Path, default=here / "docs" / "img" / "phantom-vs-real.png")
    ap.add_argument("--cols", type=int, default=6)
    args = ap.parse_args()
    from PIL import Image, ImageDraw

    rows = [real_tiles(args.real, args.cols)] if args.real.is_dir() else []
    draws = phantom_tiles(2 * args.cols)
    rows += [draws[: args.cols], draws[args.cols :]]
    canvas = Image.new("RGB", (args.cols * TILE, len(rows) * (TILE + 14)), "black")
    draw = ImageDraw.Draw(canvas)
    for r, row in enumerate(rows):
        for c, (img, label) in enumerate(row):
            canvas.paste(Image.fromarray(img), (c * TILE, r * (TILE + 14) + 14))
            draw.text((c * TILE + 3, r * (TILE + 14) + 1), label, fill=(230, 230, 230))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    canvas.convert("P", palette=Image.ADAPTIVE, colors=128).save(args.out, optimize=True)
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
