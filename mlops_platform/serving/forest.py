"""A fitted HistGradientBoosting model, compiled into flat arrays and evaluated with numpy.

scikit-learn walks its trees one by one from Python (200 trees: ~3 ms per call whatever the row
count), which bounds a service at a few hundred model calls per second. Here every tree's nodes
sit in one array and the evaluation takes a fixed, small number of numpy calls:
1. every node's decision for every row at once (one gather of the rows' values by the nodes'
   features, one comparison), following exactly the rules of sklearn's
   `_predict_one_from_raw_data`: NaN goes where the split sends missing values; a categorical
   value goes left if it is in the node's left bitset, right if it is a known category, and is
   treated as missing otherwise (precomputed per categorical node as a 257-entry table: one
   gather); a number goes left if <= threshold;
2. each node's next node (`where(decision, left, right)`; a leaf points to itself);
3. all trees descend together: one gather per tree level (`node = next[node]`).
Equality with `predict_proba`/`predict` is tested on real held-out data.
"""

from __future__ import annotations

import numpy as np

#: column of a categorical node's table for a value that is NaN, negative or above 255
_MISSING = 256


class CompiledForest:
    def __init__(self, estimator) -> None:
        trees = [tree for iteration in estimator._predictors for tree in iteration]
        if any(len(iteration) != 1 for iteration in estimator._predictors):
            raise ValueError("only single-output models (binary or regression) are compiled")
        known, f_idx_map = estimator._bin_mapper.make_known_categories_bitsets()
        sizes = [len(t.nodes) for t in trees]
        offsets = np.cumsum([0] + sizes)[:-1]
        bitset_offsets = np.cumsum([0] + [len(t.raw_left_cat_bitsets) for t in trees])[:-1]
        nodes = np.concatenate([t.nodes for t in trees])
        node_offset = np.repeat(offsets, sizes)
        n_nodes = len(nodes)
        is_leaf = nodes["is_leaf"].astype(bool)
        own = np.arange(n_nodes, dtype=np.intp)
        # A leaf's next node is itself, so descending past a shallow leaf changes nothing.
        self.left = np.where(is_leaf, own, nodes["left"].astype(np.intp) + node_offset)
        self.right = np.where(is_leaf, own, nodes["right"].astype(np.intp) + node_offset)
        self.feature = nodes["feature_idx"].astype(np.intp)
        self.threshold = nodes["num_threshold"].astype(np.float64)
        self.missing_left = nodes["missing_go_to_left"].astype(bool)
        self.value = nodes["value"].astype(np.float64)
        self.n_nodes = n_nodes
        self.roots = offsets.astype(np.intp)
        self.depth = int(nodes["depth"].max())
        self.baseline = float(np.ravel(estimator._baseline_prediction)[0])

        categorical = nodes["is_categorical"].astype(bool) & ~is_leaf
        self.categorical = np.flatnonzero(categorical)
        self.categorical_feature = self.feature[self.categorical]
        # Per categorical node: go left? for each code 0..255, and for missing/unknown.
        bitset_row = nodes["bitset_idx"].astype(np.intp) + np.repeat(bitset_offsets, sizes)
        bitsets = [t.raw_left_cat_bitsets for t in trees if len(t.raw_left_cat_bitsets)]
        left_bitsets = np.concatenate(bitsets) if bitsets else np.zeros((1, 8), np.uint32)
        known_bitsets = np.asarray(known, dtype=np.uint32)
        codes = np.arange(256)
        table = np.empty((len(self.categorical), _MISSING + 1), dtype=bool)
        for row, node in enumerate(self.categorical):
            in_left = _bits(left_bitsets[bitset_row[node]], codes)
            is_known = _bits(known_bitsets[f_idx_map[self.feature[node]]], codes)
            missing_left = self.missing_left[node]
            table[row, :256] = np.where(in_left, True, np.where(is_known, False, missing_left))
            table[row, _MISSING] = missing_left
        self.table = table
        self._table_rows = np.arange(len(self.categorical), dtype=np.intp)

    def raw(self, X: np.ndarray) -> np.ndarray:
        """Sum of the trees' leaf values plus the baseline (the model's raw prediction)."""
        n = X.shape[0]
        values = X[:, self.feature]  # (rows, nodes)
        # NaN <= threshold is False: NaN goes left only where missing values go left
        go_left = (values <= self.threshold) | (np.isnan(values) & self.missing_left)
        if len(self.categorical):
            # codes 0..255 are looked up; NaN, negative or larger values count as missing
            codes = X[:, self.categorical_feature]
            index = np.where((codes >= 0) & (codes <= 255), codes, _MISSING)
            index = index.astype(np.intp)  # NaN compares False above: it is _MISSING
            go_left[:, self.categorical] = self.table[self._table_rows, index]
        following = np.where(go_left, self.left, self.right)
        if n > 1:
            following += (np.arange(n, dtype=np.intp) * self.n_nodes)[:, None]
            node = (self.roots + (np.arange(n, dtype=np.intp) * self.n_nodes)[:, None]).ravel()
        else:
            node = self.roots
        following = following.ravel()
        for _ in range(self.depth):
            node = following[node]
        leaves = node.reshape(n, -1)
        if n > 1:
            leaves = leaves - (np.arange(n, dtype=np.intp) * self.n_nodes)[:, None]
        return self.baseline + self.value[leaves].sum(axis=1)


def _bits(bitset: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Whether each code is in a 256-bit bitset (8 uint32 words, as sklearn stores them)."""
    words = bitset[codes >> 5]
    return ((words >> (codes & 31).astype(np.uint32)) & 1).astype(bool)
