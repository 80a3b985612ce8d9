"""The values an application metric accepts: one home for the api's checker
(api/routes/app_metrics.py) and the predictions' clamp (pipeline/predictions.py).

Built-in metrics are bounded far beyond any real value (1e15 ms is 31,000 years; 1e15
requests per minute), and low enough that a bucket's sum and a mean of sums stay
finite for any number of points. Custom
metrics take any finite number; a stat that overflows the float range reads as null
(api/series.py) and the predictions scale their arithmetic (docs/predictions.md).
"""
import sys

MAX_BUILTIN = 1e15
MAX_FINITE = sys.float_info.max
BUILTIN = {"response_time": (0.0, MAX_BUILTIN), "error_rate": (0.0, 1.0), "throughput": (0.0, MAX_BUILTIN)}
CUSTOM = (-MAX_FINITE, MAX_FINITE)
