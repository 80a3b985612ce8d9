"""NAB scoring, reimplemented from NAB's published rules (numenta/NAB README and Lavin &
Ahmad, "Evaluating Real-time Anomaly Detection Algorithms: the Numenta Anomaly
Benchmark", 2015). No NAB code is copied.

- Probationary period: the first min(floor(0.15 n), 0.15 * 5000 = 750) rows of a file;
  detections there count for nothing.
- A detection inside a window scores tpWeight * sigma(p) / sigma(-1), with
  sigma(x) = 2 / (1 + e^(5x)) - 1 and p = -(right - i + 1) / width the relative position
  (-1 at the window's first row, near 0 at its last); only the best (= earliest) detection
  of a window counts. A window with no detection scores -fnWeight.
- A detection outside every window scores fpWeight * sigma(d), d = (i - right) /
  (width - 1) measured from the preceding window's last row (so an alarm just after a
  window costs little), or -fpWeight if no window precedes it.
- The detection threshold is the one that maximises the sum of raw scores over all files
  (swept over every distinct anomaly score); the result is normalised to 100 * (raw -
  null) / (perfect - null), null never detecting and perfect detecting every window at
  its first row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def scaled_sigmoid(x: float) -> float:
    # NAB clips the exponent; beyond ~100 the value is -1 anyway.
    if x > 100:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * x)) - 1.0


def probationary_length(n_rows: int, percent: float = 0.15) -> int:
    return int(min(math.floor(percent * n_rows), percent * 5000))


@dataclass
class FileScoring:
    """One file's rows as the scorer sees them: per row its anomaly score, its unweighted
    TP/FP value and the window it belongs to (-1 outside, -2 probationary)."""

    scores: np.ndarray
    sweep: np.ndarray  # unweighted: sigma(p)/sigma(-1) in windows, sigma(d) or -1 outside
    window: np.ndarray
    n_windows: int


def prepare(scores, windows_idx: list[tuple[int, int]]) -> FileScoring:
    """`windows_idx`: each window as (first row, last row), in order, non-overlapping."""
    scores = np.asarray(scores, dtype=float)
    n = len(scores)
    prob = probationary_length(n)
    sweep = np.empty(n)
    window = np.full(n, -1, dtype=int)
    max_tp = scaled_sigmoid(-1.0)
    prev_right = prev_width = None
    wi = 0
    i = 0
    while i < n:
        if wi < len(windows_idx) and i == windows_idx[wi][0]:
            left, right = windows_idx[wi]
            width = right - left + 1
            for j in range(left, right + 1):
                sweep[j] = scaled_sigmoid(-(right - j + 1) / width) / max_tp
                window[j] = wi
            prev_right, prev_width = right, width
            wi += 1
            i = right + 1
            continue
        if prev_right is None:
            sweep[i] = -1.0
        else:
            sweep[i] = scaled_sigmoid(abs(prev_right - i) / (prev_width - 1)) if prev_width > 1 else -1.0
        i += 1
    window[:prob] = -2
    return FileScoring(scores, sweep, window, len(windows_idx))


def raw_scores_at(f: FileScoring, thresholds: np.ndarray, tp_w: float, fp_w: float, fn_w: float) -> np.ndarray:
    """Raw NAB score of one file at each threshold (a row is a detection if score >= t)."""
    out = np.zeros(len(thresholds))
    fp_mask = f.window == -1
    fp_scores = f.scores[fp_mask]
    order = np.argsort(-fp_scores)
    s_sorted = fp_scores[order]
    cum = np.concatenate([[0.0], np.cumsum(f.sweep[fp_mask][order])])
    # number of FP rows with score >= t
    k = np.searchsorted(-s_sorted, -thresholds, side="right")
    out += fp_w * cum[k]
    for w in range(f.n_windows):
        m = f.window == w
        if not m.any():  # window entirely in the probationary period: NAB leaves it out
            continue
        s = f.scores[m]
        sw = f.sweep[m]
        prefmax = np.maximum.accumulate(s)
        # earliest row whose score >= t, i.e. first index with prefmax >= t
        j = np.searchsorted(prefmax, thresholds, side="left")
        hit = j < len(s)
        out += np.where(hit, tp_w * sw[np.minimum(j, len(s) - 1)], -fn_w)
    return out


def counted_windows(f: FileScoring) -> int:
    return len({int(w) for w in f.window if w >= 0})


def score_corpus(files: list[FileScoring], cost: dict) -> dict:
    """Best threshold over all files and the normalised score for one profile."""
    tp_w, fp_w, fn_w = cost["tpWeight"], cost["fpWeight"], cost["fnWeight"]
    thresholds = np.unique(np.concatenate([f.scores for f in files] + [np.array([1.1])]))[::-1]
    total = np.zeros(len(thresholds))
    for f in files:
        total += raw_scores_at(f, thresholds, tp_w, fp_w, fn_w)
    best = int(np.argmax(total))
    n_windows = sum(counted_windows(f) for f in files)
    null, perfect = -fn_w * n_windows, tp_w * n_windows
    raw = float(total[best])
    return {
        "threshold": float(thresholds[best]),
        "raw": raw,
        "score": 100.0 * (raw - null) / (perfect - null) if perfect != null else 0.0,
    }
