"""A fitted HistGradientBoosting model, compiled into flat arrays and evaluated with numpy.

scikit-learn walks its trees one by one from Python (200 trees: ~3 ms per call whatever the row
count), which bounds a service at a few hundred model calls per second. Here every tree's nodes
sit in one array, numbered breadth-first so that a node's right child follows its left one, and
the evaluation takes a fixed, small number of numpy calls:
1. every node's decision for every row at once: one gather of the rows' values by the nodes'
   features and one comparison. Missing values are folded into the comparison: each row comes
   twice, with NaN as -inf (for nodes that send missing values left) and as +inf (right), and
   finite values are clipped to the float range so that a threshold of +inf still sends NaN
   right. Categorical nodes look their decision up in a table of 257 entries per node (codes
   0..255, and missing/unknown);
2. each node's next node: left child + (0 if left else 1); a leaf always "goes left" to itself;
3. all trees descend together: one gather per tree level (`node = next[node]`).
This follows exactly the rules of sklearn's `_predict_one_from_raw_data` (NaN goes where the
split sends missing values; a category goes left if in the left bitset, right if known, and is
treated as missing otherwise; a number goes left if <= threshold). Equality with
`predict_proba`/`predict` is tested on real held-out data.
"""

from __future__ import annotations

import numpy as np

#: column of a categorical node's table for a value that is NaN, negative or above 255
_MISSING = 256
_FMAX = np.finfo(np.float64).max


class CompiledForest:
    def __init__(self, estimator) -> None:
        trees = [tree for iteration in estimator._predictors for tree in iteration]
        if any(len(iteration) != 1 for iteration in estimator._predictors):
            raise ValueError("only single-output models (binary or regression) are compiled")
        known, f_idx_map = estimator._bin_mapper.make_known_categories_bitsets()
        bitset_offset, parts = 0, []
        for tree in trees:
            order = _breadth_first(tree.nodes)
            nodes = tree.nodes[order]
            new_index = np.empty(len(order), dtype=np.intp)
            new_index[order] = np.arange(len(order))
            nodes["left"] = np.where(nodes["is_leaf"], 0, new_index[nodes["left"]])
            nodes["bitset_idx"] = nodes["bitset_idx"] + bitset_offset
            bitset_offset += len(tree.raw_left_cat_bitsets)
            parts.append(nodes)
        sizes = [len(p) for p in parts]
        offsets = np.cumsum([0] + sizes)[:-1]
        nodes = np.concatenate(parts)
        n_nodes, n_features = len(nodes), estimator._bin_mapper.n_bins_non_missing_.shape[0]
        is_leaf = nodes["is_leaf"].astype(bool)
        own = np.arange(n_nodes, dtype=np.intp)
        left = nodes["left"].astype(np.intp) + np.repeat(offsets, sizes)
        # next node = `step` - (1 if the row goes left): a leaf always goes left, to itself
        self.step = np.where(is_leaf, own + 1, left + 1).astype(np.int32)
        missing_left = nodes["missing_go_to_left"].astype(bool)
        feature = nodes["feature_idx"].astype(np.intp)
        # column of the doubled row: NaN as -inf (missing goes left) or as +inf (right)
        self.column = np.where(missing_left | is_leaf, feature, feature + n_features).astype(
            np.int32
        )
        self.threshold = np.where(is_leaf, np.inf, np.minimum(nodes["num_threshold"], _FMAX))
        self.value = nodes["value"].astype(np.float64)
        self.n_nodes = n_nodes
        self.roots = offsets.astype(np.intp)
        self.depth = int(nodes["depth"].max())
        self.baseline = float(np.ravel(estimator._baseline_prediction)[0])

        categorical = nodes["is_categorical"].astype(bool) & ~is_leaf
        self.categorical = np.flatnonzero(categorical)
        self.categorical_feature = feature[self.categorical].astype(np.int32)
        # Per categorical node: go left? for each code 0..255, and for missing/unknown.
        bitsets = [t.raw_left_cat_bitsets for t in trees if len(t.raw_left_cat_bitsets)]
        left_bitsets = np.concatenate(bitsets) if bitsets else np.zeros((1, 8), np.uint32)
        known_bitsets = np.asarray(known, dtype=np.uint32)
        codes = np.arange(256)
        bitset_rows = nodes["bitset_idx"][self.categorical].astype(np.intp)
        in_left = _bits(left_bitsets[bitset_rows], codes)  # (categorical nodes, 256)
        is_known = _bits(known_bitsets[f_idx_map[self.categorical_feature]], codes)
        cat_missing_left = missing_left[self.categorical][:, None]
        table = np.empty((len(self.categorical), _MISSING + 1), dtype=bool)
        table[:, :256] = in_left | (~is_known & cat_missing_left)
        table[:, _MISSING] = cat_missing_left[:, 0]
        self.table = table.ravel()
        self._table_base = np.arange(len(self.categorical), dtype=np.int32) * (_MISSING + 1)
        self._cache: dict[tuple[str, int], np.ndarray] = {}  # per batch size, a few KB each

    def raw(self, X: np.ndarray) -> np.ndarray:
        """Sum of the trees' leaf values plus the baseline (the model's raw prediction)."""
        # Node-major layout (nodes x rows): numpy's gathers along the first axis are the fast
        # ones, and int32 indices halve the memory traffic.
        n = X.shape[0]
        columns = np.ascontiguousarray(X.T)
        missing = np.isnan(columns)
        finite = np.clip(columns, -_FMAX, _FMAX)
        doubled = np.concatenate(
            (np.where(missing, -np.inf, finite), np.where(missing, np.inf, finite))
        )
        go_left = np.take(doubled, self.column, axis=0) <= self.threshold[:, None]
        if len(self.categorical):
            # codes 0..255 are looked up; NaN, negative or larger values count as missing
            codes = np.take(columns, self.categorical_feature, axis=0)
            index = np.where((codes >= 0) & (codes <= 255), codes, _MISSING).astype(np.int32)
            go_left[self.categorical] = np.take(self.table, index + self._table_base[:, None])
        # flat position of (node, row) is node * n + row
        following = self._steps(n) - (
            go_left if n == 1 else np.multiply(go_left, n, dtype=np.int32)
        )
        node = self._starts(n)
        following = following.ravel()
        for _ in range(self.depth):
            node = np.take(following, node)
        return self.baseline + np.take(self.value, node // n).sum(axis=0)

    def _steps(self, n: int) -> np.ndarray:
        """(step * n + row) for every node and row: the flat position if the row goes right."""
        steps = self._cache.get(("steps", n))
        if steps is None:
            steps = (self.step[:, None] * n + np.arange(n, dtype=np.int32)).astype(np.int32)
            self._cache[("steps", n)] = steps
        return steps

    def _starts(self, n: int) -> np.ndarray:
        """Flat positions of every tree's root for every row (trees x rows)."""
        starts = self._cache.get(("starts", n))
        if starts is None:
            starts = (self.roots[:, None] * n + np.arange(n, dtype=np.int32)).astype(np.int32)
            self._cache[("starts", n)] = starts
        return starts


def _breadth_first(nodes: np.ndarray) -> np.ndarray:
    """A tree's node indices in breadth-first order: each node's two children side by side."""
    is_leaf, left, right = (nodes[f].tolist() for f in ("is_leaf", "left", "right"))
    order = [0]
    for index in order:
        if not is_leaf[index]:
            order += [left[index], right[index]]
    return np.asarray(order, dtype=np.intp)


def _bits(bitsets: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Whether each code is in 256-bit bitsets (rows of 8 uint32 words, as sklearn stores them):
    (rows, codes)."""
    words = bitsets[:, codes >> 5]
    return ((words >> (codes & 31).astype(np.uint32)) & 1).astype(bool)
