"""What ``noisy-labels issues`` writes: the ranked CSV, and galleries of the top suspected images.

``label_issues.csv`` has one row per flagged sample (every sample with ``all_samples``), most likely
mislabelled first: ``rank,index,given_label,suggested_label,label_quality``. ``gallery.html`` shows the
top images with their given and suggested labels (it links the image files, it does not copy them);
``gallery.png`` is the same as one picture (matplotlib + Pillow).
"""

from __future__ import annotations

import csv
import html
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._files import save_figure
from ._validation import read_user_file

__all__ = ["Gallery", "read_image_paths", "write_gallery_html", "write_gallery_png", "write_issues_csv"]


def write_issues_csv(
    path: str | Path,
    order: np.ndarray,
    given: np.ndarray,
    suggested: np.ndarray,
    quality: np.ndarray,
) -> Path:
    """Write the rows of ``order`` (sample indices, most suspicious first) to ``path``.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = write_issues_csv(f"{d}/t.csv", np.array([2]), np.array([0, 1, 0]), np.array([0, 1, 1]),
    ...                          np.array([0.9, 0.8, 0.1]))
    ...     print(open(p).read().splitlines())
    ['rank,index,given_label,suggested_label,label_quality', '1,2,0,1,0.100000']
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["rank", "index", "given_label", "suggested_label", "label_quality"])
        for rank, i in enumerate(order.tolist(), 1):
            w.writerow(
                [rank, i, spreadsheet_safe(given[i]), spreadsheet_safe(suggested[i]), f"{quality[i]:.6f}"]
            )
    return path


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value):
    """A CSV cell from user data that a spreadsheet shows as text instead of running it as a formula.

    Text starting with ``= + - @``, a tab or a carriage return gets a leading apostrophe (OWASP's advice
    against CSV injection); numbers, also negative ones written as text, are left as they are.

    >>> print(spreadsheet_safe('=HYPERLINK("http://x", "cat")'))
    '=HYPERLINK("http://x", "cat")
    >>> spreadsheet_safe("-3"), spreadsheet_safe("dog")
    ('-3', 'dog')
    """
    if not isinstance(value, str) or not value.startswith(FORMULA_START):
        return value
    try:
        float(value)
    except ValueError:
        return "'" + value
    return value


def read_image_paths(path: str | Path, num_samples: int) -> list[Path]:
    """One image path per line (blank lines kept out); relative paths are taken from the file's folder.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        The number of paths differs from ``num_samples``.
    """
    path = Path(path)
    text = read_user_file(path, "image paths file", lambda p: p.read_text(encoding="utf-8"))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) != num_samples:
        raise ValueError(
            f"{path} lists {len(lines)} image paths but there are {num_samples} samples; it needs one path "
            "per sample, in the order of the features."
        )
    return [p if p.is_absolute() else path.parent / p for p in map(Path, lines)]


@dataclass(frozen=True, eq=False)  # arrays: compared by identity, not element-wise
class Gallery:
    """The images a gallery shows and the labels it writes under them.

    Parameters
    ----------
    order : ndarray of int
        Sample indices to show, most suspicious first.
    image_paths : list of Path
        One image per sample (indexed by sample, like the arrays below).
    given, suggested : ndarray of shape (N,)
        Each sample's given and suggested label.
    quality : ndarray of shape (N,)
        Each sample's label quality.
    """

    order: np.ndarray
    image_paths: list[Path]
    given: np.ndarray
    suggested: np.ndarray
    quality: np.ndarray


def write_gallery_html(path: str | Path, gallery: Gallery, *, title: str = "Suspected label issues") -> Path:
    """A self-contained HTML page of the gallery's images (linked relative to the page's folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    g = gallery
    cards = []
    for rank, i in enumerate(g.order.tolist(), 1):
        src = Path(os.path.relpath(Path(g.image_paths[i]).resolve(), path.parent.resolve())).as_posix()
        cards.append(
            f'<figure><img src="{html.escape(src)}" loading="lazy" alt="sample {i}">'
            f"<figcaption>#{rank} &middot; sample {i}<br>given <b>{html.escape(str(g.given[i]))}</b> &rarr; "
            f"suggested <b>{html.escape(str(g.suggested[i]))}</b><br>label quality {g.quality[i]:.3f}"
            "</figcaption></figure>"
        )
    style = (
        "body{font-family:sans-serif;margin:1em}main{display:flex;flex-wrap:wrap;gap:12px}"
        "figure{margin:0;width:160px;font-size:12px}img{width:160px;height:160px;object-fit:contain;"
        "background:#eee;image-rendering:pixelated}"
    )
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>"
        f"<p>{len(cards)} samples, most likely mislabelled first.</p><main>{''.join(cards)}</main>"
        "</body></html>\n"
    )
    path.write_text(page)
    return path


def write_gallery_png(path: str | Path, gallery: Gallery, *, columns: int = 8) -> Path:
    """A grid picture of the gallery's images with their labels (needs Pillow: ``pip install pillow``)."""
    try:
        from PIL import Image
    except ImportError as exc:
        raise ImportError(
            "the PNG gallery needs Pillow: pip install noisy-labels[images] (or ask for the HTML one)"
        ) from exc
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = gallery
    n = max(1, len(g.order))
    cols = min(columns, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.9 * cols, 2.2 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (rank, i) in zip(axes.ravel(), enumerate(g.order.tolist(), 1), strict=False):
        try:
            with Image.open(g.image_paths[i]) as im:
                ax.imshow(np.asarray(im.convert("RGB")))
        except OSError:
            ax.text(0.5, 0.5, "image\nnot found", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(f"#{rank} ({i})\n{g.given[i]} -> {g.suggested[i]}  q={g.quality[i]:.2f}", fontsize=7)
    return save_figure(fig, path, dpi=110)
