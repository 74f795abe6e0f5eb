"""A fitted HistGradientBoosting model, compiled into flat arrays and evaluated with numpy.

scikit-learn walks its trees one by one from Python (200 trees: ~3 ms per call whatever the row
count), which bounds a service at a few hundred model calls per second. Here every tree's nodes
sit in one array and all rows descend all trees together, one vectorised step per tree level,
following exactly the rules of sklearn's `_predict_one_from_raw_data`: NaN goes where the split
sends missing values; a categorical value goes left if it is in the node's left bitset, right if
it is a known category, and is treated as missing otherwise; a number goes left if <= threshold.
Equality with `predict_proba`/`predict` is tested on real held-out data.
"""

from __future__ import annotations

import numpy as np


class CompiledForest:
    def __init__(self, estimator) -> None:
        trees = [tree for iteration in estimator._predictors for tree in iteration]
        if any(len(iteration) != 1 for iteration in estimator._predictors):
            raise ValueError("only single-output models (binary or regression) are compiled")
        known, f_idx_map = estimator._bin_mapper.make_known_categories_bitsets()
        offsets = np.cumsum([0] + [len(t.nodes) for t in trees])[:-1]
        bitset_offsets = np.cumsum([0] + [len(t.raw_left_cat_bitsets) for t in trees])[:-1]
        nodes = np.concatenate([t.nodes for t in trees])
        sizes = [len(t.nodes) for t in trees]
        node_offset = np.repeat(offsets, sizes)
        self.feature = nodes["feature_idx"].astype(np.intp)
        self.threshold = nodes["num_threshold"].astype(np.float64)
        self.missing_left = nodes["missing_go_to_left"].astype(bool)
        self.left = nodes["left"].astype(np.intp) + node_offset
        self.right = nodes["right"].astype(np.intp) + node_offset
        self.is_leaf = nodes["is_leaf"].astype(bool)
        self.value = nodes["value"].astype(np.float64)
        self.is_categorical = nodes["is_categorical"].astype(bool)
        self.bitset_row = nodes["bitset_idx"].astype(np.intp) + np.repeat(bitset_offsets, sizes)
        bitsets = [t.raw_left_cat_bitsets for t in trees if len(t.raw_left_cat_bitsets)]
        self.left_bitsets = (
            np.concatenate(bitsets) if bitsets else np.zeros((1, 8), dtype=np.uint32)
        )
        self.known_bitsets = np.asarray(known, dtype=np.uint32)
        self.f_idx_map = np.asarray(f_idx_map, dtype=np.intp)
        self.roots = offsets.astype(np.intp)
        self.depth = int(nodes["depth"].max()) + 1
        self.has_categorical = bool(self.is_categorical.any())
        self.baseline = float(np.ravel(estimator._baseline_prediction)[0])

    @staticmethod
    def _in_bitset(bitsets: np.ndarray, rows: np.ndarray, codes: np.ndarray) -> np.ndarray:
        words = bitsets[rows, codes >> 5]
        return ((words >> (codes & 31).astype(np.uint32)) & 1).astype(bool)

    def raw(self, X: np.ndarray) -> np.ndarray:
        """Sum of the trees' leaf values plus the baseline (the model's raw prediction)."""
        n = X.shape[0]
        node = np.broadcast_to(self.roots, (n, len(self.roots))).copy()
        rows = np.arange(n)[:, None]
        for _ in range(self.depth):
            leaf = self.is_leaf[node]
            if leaf.all():
                break
            values = X[rows, self.feature[node]]
            missing = np.isnan(values)
            go_left = values <= self.threshold[node]
            if self.has_categorical:
                categorical = self.is_categorical[node] & ~missing
                if categorical.any():
                    codes = np.where(categorical, values, 0).astype(np.int64)
                    out_of_range = categorical & ((codes < 0) | (codes > 255))
                    codes = np.clip(codes, 0, 255)
                    in_left = self._in_bitset(self.left_bitsets, self.bitset_row[node], codes)
                    known = self._in_bitset(
                        self.known_bitsets, self.f_idx_map[self.feature[node]], codes
                    )
                    unknown = categorical & (out_of_range | (~in_left & ~known))
                    go_left = np.where(categorical, in_left & ~out_of_range, go_left)
                    missing = missing | unknown
            go_left = np.where(missing, self.missing_left[node], go_left)
            node = np.where(leaf, node, np.where(go_left, self.left[node], self.right[node]))
        return self.baseline + self.value[node].sum(axis=1)
