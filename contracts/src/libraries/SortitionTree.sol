// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title SortitionTree
/// @notice Stake-weighted random draws over a changing set of accounts, every operation O(log n).
///
/// A Fenwick (binary indexed) tree over one leaf per account: node `i` holds the sum of the
/// leaves `(i - lowbit(i), i]`, so a prefix sum and a weighted draw each read about log2(n) nodes
/// and a weight change writes as many. Removal swaps the last leaf into the freed position and
/// pops it, so leaving accounts cost nothing afterwards: the tree holds only present accounts.
/// This plays the role of Kleros' sortition sum tree with a simpler layout.
///
/// @dev Warning: positions are not stable across removals (swap-and-pop); never keep one across
///      calls. Draw points are taken modulo the total weight, so the draw is exactly
///      proportional to weight, up to the bias of `seed % total` (below total / 2^256).
library SortitionTree {
    struct Tree {
        /// @dev `nodes[i - 1]` is Fenwick node i (1-based).
        uint256[] nodes;
        /// @dev `leaves[i - 1]` is the account at position i and its weight.
        Leaf[] leaves;
        mapping(address account => uint256) position;
    }

    struct Leaf {
        address account;
        uint96 weight;
    }

    /// @notice Sets `account`'s weight: a zero weight removes it, a new account is appended.
    function set(Tree storage tree, address account, uint96 weight) internal {
        uint256 position = tree.position[account];
        if (position == 0) {
            if (weight == 0) return;
            _append(tree, account, weight);
        } else if (weight == 0) {
            _remove(tree, position);
        } else {
            uint96 old = tree.leaves[position - 1].weight;
            tree.leaves[position - 1].weight = weight;
            _adjust(tree, position, old, weight);
        }
    }

    /// @notice The weight of `account` (zero when absent).
    function weightOf(Tree storage tree, address account) internal view returns (uint96) {
        uint256 position = tree.position[account];
        return position == 0 ? 0 : tree.leaves[position - 1].weight;
    }

    /// @notice How many accounts the tree holds.
    function size(Tree storage tree) internal view returns (uint256) {
        return tree.leaves.length;
    }

    /// @notice The sum of all weights.
    function total(Tree storage tree) internal view returns (uint256) {
        return _prefix(tree, tree.leaves.length);
    }

    /// @notice Draws an account with probability proportional to its weight among those not in
    ///         `excluded` (which may hold absent accounts and repeats). Returns address(0) when no
    ///         weight is left.
    /// @dev The point is drawn over the remaining weight, then moved past each excluded leaf's
    ///      interval in ascending order, so an excluded account is never found and nothing is
    ///      redrawn. `excluded` is short (the parties of a job); sorting it is quadratic in its
    ///      length only.
    function draw(Tree storage tree, bytes32 seed, address[] memory excluded) internal view returns (address) {
        uint256 n = tree.leaves.length;
        uint256[] memory positions = new uint256[](excluded.length);
        uint256[] memory starts = new uint256[](excluded.length);
        uint256[] memory weights = new uint256[](excluded.length);
        uint256 kept;
        uint256 remaining = _prefix(tree, n);
        for (uint256 k; k < excluded.length; ++k) {
            uint256 position = tree.position[excluded[k]];
            if (position == 0 || _holds(positions, kept, position)) continue;
            uint256 start = _prefix(tree, position - 1);
            uint256 weight = tree.leaves[position - 1].weight;
            // Insertion sort by interval start.
            uint256 at = kept++;
            while (at > 0 && starts[at - 1] > start) {
                positions[at] = positions[at - 1];
                starts[at] = starts[at - 1];
                weights[at] = weights[at - 1];
                --at;
            }
            positions[at] = position;
            starts[at] = start;
            weights[at] = weight;
            remaining -= weight;
        }
        if (remaining == 0) return address(0);
        uint256 point = uint256(seed) % remaining;
        for (uint256 k; k < kept; ++k) {
            if (point >= starts[k]) point += weights[k];
        }
        return tree.leaves[_find(tree, point, n) - 1].account;
    }

    /// @notice How many accounts of the tree are not in `excluded` (distinct entries assumed).
    function countOutside(Tree storage tree, address[] memory excluded) internal view returns (uint256 count) {
        count = tree.leaves.length;
        for (uint256 k; k < excluded.length; ++k) {
            if (tree.position[excluded[k]] == 0) continue;
            bool repeated;
            for (uint256 j; j < k; ++j) {
                if (excluded[j] == excluded[k]) repeated = true;
            }
            if (!repeated) --count;
        }
    }

    // ─────────────────────────────────────────────────────────── Internal

    function _holds(uint256[] memory positions, uint256 kept, uint256 position) private pure returns (bool) {
        for (uint256 k; k < kept; ++k) {
            if (positions[k] == position) return true;
        }
        return false;
    }

    function _append(Tree storage tree, address account, uint96 weight) private {
        tree.leaves.push(Leaf(account, weight));
        uint256 i = tree.leaves.length;
        tree.position[account] = i;
        // Node i covers (i - lowbit(i), i]: this leaf plus the leaves (i - lowbit(i), i - 1].
        uint256 low = i & (~i + 1);
        tree.nodes.push(weight + _prefix(tree, i - 1) - _prefix(tree, i - low));
    }

    function _remove(Tree storage tree, uint256 position) private {
        uint256 last = tree.leaves.length;
        Leaf memory gone = tree.leaves[position - 1];
        if (position != last) {
            Leaf memory moved = tree.leaves[last - 1];
            tree.leaves[position - 1] = moved;
            tree.position[moved.account] = position;
            _adjust(tree, position, gone.weight, moved.weight);
        }
        // Node `last` is the highest: no other node covers it, and no lower node depends on it.
        tree.leaves.pop();
        tree.nodes.pop();
        delete tree.position[gone.account];
    }

    /// @dev Moves leaf `position` from weight `old` to `weight` in every node that covers it.
    function _adjust(Tree storage tree, uint256 position, uint256 old, uint256 weight) private {
        uint256 n = tree.nodes.length;
        for (uint256 i = position; i <= n; i += i & (~i + 1)) {
            // Each node covering the leaf includes `old`, so the subtraction cannot underflow.
            tree.nodes[i - 1] = tree.nodes[i - 1] - old + weight;
        }
    }

    /// @dev Sum of leaves 1..i.
    function _prefix(Tree storage tree, uint256 i) private view returns (uint256 sum) {
        for (; i > 0; i &= i - 1) {
            sum += tree.nodes[i - 1];
        }
    }

    /// @dev The smallest position whose prefix sum exceeds `point` (point < total).
    function _find(Tree storage tree, uint256 point, uint256 n) private view returns (uint256) {
        uint256 at;
        uint256 step = 1;
        while (step <= n >> 1) {
            step <<= 1;
        }
        for (; step > 0; step >>= 1) {
            uint256 next = at + step;
            if (next <= n) {
                uint256 node = tree.nodes[next - 1];
                if (node <= point) {
                    at = next;
                    point -= node;
                }
            }
        }
        return at + 1;
    }
}
