"""ARI's numbers: every threshold of the drift engine, in one place (docs/ari.md explains them)."""

MIN_SNAPSHOTS = 5            # protocols and checkups run from an agent's 5th snapshot on
BASELINE_WINDOW = 20         # clean snapshots the baseline is computed over
MAD_TO_SIGMA = 1.4826        # scales the median absolute deviation to a standard deviation
SPIKE_SIGMAS = 3.0           # a value is a spike above center + (3 + 8/n) spreads, n = window size:
SMALL_WINDOW_SIGMAS = 8.0    # a young baseline (n=4 at the 5th snapshot) is an uncertain one
SPREAD_FLOOR = {"token_consumption": 50.0, "hallucination_rate": 0.01, "loop_frequency": 2.0,
                "directive_conflicts": 1.0}
SPREAD_FLOOR_RATIO = 0.05    # ... and never below 5 % of the center
CLOSE_AFTER = 2              # consecutive calm snapshots that close an episode

# 1 Nerf Vague (burnout)
BURNOUT_SUSTAIN = 3          # consecutive spiking snapshots that make a spike "sustained"
BURNOUT_MIN_LOOPS = 20       # a loop spike also needs at least this many loops
BURNOUT_MIN_HALLUCINATION = 0.05  # ... and a hallucination spike at least this rate

# 2 Désamorçage (directive conflicts)
CONFLICT_THRESHOLD = 2       # conflicts above this open an episode
CONFLICT_EVENTS_KEPT = 20    # directive_conflict events remembered for the pattern
PATTERN_TOP = 3              # recurring details / instructions reported

# 3 Phytothérapie (data quality)
CORRUPTION_FACTOR = 100.0    # token consumption at 100x its baseline center is corrupt data, not drift
CORRUPTION_MIN_CENTER = 100  # ... for a baseline of at least 100 tokens (small counts legitimately jump)
STUCK_RUN = 5                # identical snapshots in a row that make a series "stuck"
FLAG_SEVERITY = {"overflow": "high", "impossible": "high", "corruption": "high",
                 "stuck": "medium", "metadata_type_change": "low"}

# 4 Simplicité (token drift)
TOKEN_DRIFT_RATIO = 1.3      # tokens above 130 % of the baseline center ...
TOKEN_SUSTAIN = 2            # ... in this many consecutive snapshots (one noisy outlier is not drift)
TOKEN_HIGH_RATIO = 2.0       # ... and at 200 % or more the intervention is high severity

# Outcomes: did the intervention work? (compares a window before and after the episode)
OUTCOME_WINDOW = 3           # snapshots in each window: burnout's sustain, so "before" is what opened it
OUTCOME_CHANGE = 0.2         # a watched metric's mean 20 % lower after is improved, 20 % higher is worse
# the metrics each protocol is judged on ("flagged": the share of snapshots protocol 3 flagged)
OUTCOME_WATCHED = {1: ("loop_frequency", "hallucination_rate"), 2: ("directive_conflicts",), 3: ("flagged",),
                   4: ("token_consumption",)}
OUTCOME_OPEN_AFTER_MS = 30 * 60_000  # an episode still open this long after it opened is measured anyway
TOKENS_SAVED_PROTOCOLS = (1, 4)  # the protocols that estimate tokens_saved also measure it

# Checkups' token load bounds (reference 003's amber and red token thresholds)
LOAD_WARN = 0.75
LOAD_FAIL = 0.95

PROTOCOL_NAMES = {1: "Nerf Vague", 2: "Désamorçage", 3: "Phytothérapie", 4: "Simplicité"}
SEVERITY_RANK = {"low": 0, "medium": 1, "high": 2}
