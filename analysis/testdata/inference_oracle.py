#!/usr/bin/python3
"""Independent figures for analysis/inference_test.go, computed with NumPy
and SciPy: the percentile interval, the bias-corrected percentile (BC)
interval and the permutation p-value, on fixed inputs.

Run: /usr/bin/python3 inference_oracle.py > inference_oracle.json
"""
import json

import numpy as np
from scipy.stats import norm

# A fixed, skewed bootstrap sample (a similarity pulled towards 0), its
# observed statistic, and a fixed null sample.
boot = [round(0.9 - 0.05 * ((i * 37) % 101) / 101.0 - 0.02 * ((i * 11) % 7) / 7.0, 6) for i in range(199)]
boot[5] = float("nan")  # a degenerate resample, skipped
observed = 0.88
null = [round(0.3 * np.sin(1.7 * i) + 0.1 * np.cos(3.1 * i), 6) for i in range(99)]

f = np.array([x for x in boot if x == x])
pct = np.percentile(f, [2.5, 97.5])  # linear interpolation (NumPy's default)
prop = np.mean(f < observed)
z0 = norm.ppf(prop)
a1 = norm.cdf(2 * z0 + norm.ppf(0.025))
a2 = norm.cdf(2 * z0 + norm.ppf(0.975))
bc = np.percentile(f, [100 * a1, 100 * a2])


def perm_p(obs, nl):
    nl = np.asarray(nl)
    return (1 + np.sum(nl >= obs)) / (len(nl) + 1)


out = {
    "boot": [None if x != x else x for x in boot],
    "observed": observed,
    "null": null,
    "mean": float(np.mean(f)),
    "percentile": [float(x) for x in pct],
    "bc": [float(x) for x in bc],
    "perm_p": {str(o): float(perm_p(o, null)) for o in (0.0, 0.2, 0.35, 0.5)},
}
print(json.dumps(out, indent=1))
