// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IJobMarket} from "./interfaces/IJobMarket.sol";

import {SortitionTree} from "./libraries/SortitionTree.sol";
import {Staking} from "./Staking.sol";

/// @title Audits
/// @notice The provisional verdict of a submitted job's drawn verifier. The draw itself, the
///         redraw after a missed deadline, reveal demands and challenges of the verdict live in
///         `Disputes`.
abstract contract Audits is Staking {
    using SortitionTree for SortitionTree.Tree;

    // ─────────────────────────────────────────────────────────── Verdict

    /// @inheritdoc IJobMarket
    function submitVerdict(
        uint256 jobId,
        JobTerms calldata terms_,
        Verdict verdict,
        string calldata evidenceCid,
        bytes32 secret,
        bytes32 nextSecretHash
    ) external {
        JobStatus storage status = _checked(jobId, terms_, JobState.Submitted);
        Audit storage a = _drawnBy(jobId, msg.sender);
        if (verdict == Verdict.None) revert InvalidVerdict(jobId, verdict);
        // A reveal demand has opened the secret already.
        if (a.revealBy == 0) _openSecret(jobId, a, secret, nextSecretHash);
        a.verdict = verdict;
        a.deadline = uint40(block.timestamp + terms_.challengeWindow);
        status.state = JobState.Audited;
        emit VerdictSubmitted(jobId, msg.sender, verdict, evidenceCid, a.secret);
    }
}
