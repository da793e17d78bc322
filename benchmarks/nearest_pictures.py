"""Does a generator copy pictures? Its samples beside their nearest pictures of a folder.

    python benchmarks/nearest_pictures.py RUN --folder /usr/share/openclipart/png \
        --evaluator runs/checks/openclipart-32-classifier.pt --out docs/img/prior-nearest.png

For 8 samples (seed 0) of RUN, finds the nearest of the folder's pictures (read at the run's size)
by pixels (Euclidean distance) and by the extractor's features, and draws three rows: the samples,
their nearest pictures in pixels, their nearest in features. A generator that copies shows the same
picture twice in a column. Also prints each sample's distances beside the median distance between
the folder's own pictures and their nearest other picture, for scale.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw


def nearest(queries: np.ndarray, pool: np.ndarray, exclude_self: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(index, distance) of each query row's nearest row of `pool`, in blocks to bound the memory."""
    pool_t = torch.from_numpy(pool).float()
    index, dist = [], []
    for start in range(0, len(queries), 256):
        q = torch.from_numpy(queries[start:start + 256]).float()
        d = torch.cdist(q, pool_t)
        if exclude_self:
            d[torch.arange(len(q)), torch.arange(start, start + len(q))] = float("inf")
        best = d.min(dim=1)
        index.append(best.indices.numpy())
        dist.append(best.values.numpy())
    return np.concatenate(index), np.concatenate(dist)


def sheet(rows: list[tuple[str, np.ndarray]], path: Path, scale: int = 3) -> None:
    """Rows of uint8 [N, C, S, S] pictures, each row captioned on its left."""
    side = rows[0][1].shape[-1] * scale
    label, gap = 150, 4
    n = len(rows[0][1])
    canvas = Image.new("RGB", (label + n * (side + gap), len(rows) * (side + gap)), "white")
    draw = ImageDraw.Draw(canvas)
    for r, (name, pictures) in enumerate(rows):
        y = r * (side + gap)
        draw.text((4, y + side // 2 - 6), name, fill="black")
        for i, picture in enumerate(pictures):
            tile = Image.fromarray(np.ascontiguousarray(picture.transpose(1, 2, 0)).squeeze()).convert("RGB")
            canvas.paste(tile.resize((side, side), Image.NEAREST), (label + i * (side + gap), y))
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--folder", required=True, help="the pictures a copy would come from")
    parser.add_argument("--evaluator", required=True, help="a classifier file whose features to compare")
    parser.add_argument("-n", type=int, default=8)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    import gankit
    from gankit.config import make_config
    from gankit.metrics.evaluate import make_extractor
    from gankit.training.loop import open_data

    generator = gankit.load(args.run)
    samples = generator.sample(args.n, seed=0)  # uint8 [N, C, S, S]
    side = samples.shape[-1]
    data = open_data(make_config({"dataset": args.folder, "image_size": side}), quiet=True)
    pool = torch.as_tensor(np.asarray(data.images))
    extractor = make_extractor("classifier", args.folder, evaluator=args.evaluator)
    feats_pool = np.concatenate([extractor(pool[i:i + 500])[0] for i in range(0, len(pool), 500)])
    feats_samples = extractor(samples)[0]
    flat = lambda x: x.reshape(len(x), -1).numpy().astype(np.float32)  # noqa: E731
    by_pixels, pixel_dist = nearest(flat(samples), flat(pool))
    by_features, feature_dist = nearest(feats_samples, feats_pool)
    # the folder's own spacing, on a seeded 1,000 of its pictures
    pick = np.random.default_rng(0).choice(len(pool), min(1000, len(pool)), replace=False)
    own_pixels = np.median(nearest(flat(pool[pick]), flat(pool[pick]), exclude_self=True)[1])
    own_features = np.median(nearest(feats_pool[pick], feats_pool[pick], exclude_self=True)[1])
    sheet([("samples", samples.numpy()), ("nearest in pixels", pool[by_pixels].numpy()),
           ("nearest in features", pool[by_features].numpy())], args.out)
    print(json.dumps({"run": str(args.run), "folder": args.folder, "samples": args.n,
                      "pixel_distance": [round(float(x), 1) for x in pixel_dist],
                      "folder_median_pixel_distance": round(float(own_pixels), 1),
                      "feature_distance": [round(float(x), 2) for x in feature_dist],
                      "folder_median_feature_distance": round(float(own_features), 2)}, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
