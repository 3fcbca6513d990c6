// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";

/// @title MerkleProbe (test only)
/// @notice Exposes OpenZeppelin's MerkleProof with WEBI's leaf encoding, so that tests check the
///         Python result trees (marketplace/results.py) against the library a contract would use.
///         Never deployed outside tests.
contract MerkleProbe {
    /// @notice Whether `output` is task `index`'s committed output under `root`.
    /// @param proof Sibling hashes from the leaf up.
    /// @param root The job's result root.
    /// @param index The task index.
    /// @param output The task's canonical output bytes.
    function verify(bytes32[] calldata proof, bytes32 root, uint256 index, bytes calldata output)
        external
        pure
        returns (bool)
    {
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(index, sha256(output)))));
        return MerkleProof.verifyCalldata(proof, root, leaf);
    }
}
