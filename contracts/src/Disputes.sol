// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";

import {SortitionTree} from "./libraries/SortitionTree.sol";
import {DelegatedModule} from "./DelegatedModule.sol";

/// @title Disputes
/// @notice The draw of a job's verifier and the disputes of an audit: a verifier that missed its
///         deadline, reveal demands for outputs a verifier cannot retrieve, and
///         challenges of a provisional verdict, re-decided by a stake-weighted panel voting by
///         commit and reveal. JobMarket runs this code with DELEGATECALL, on its own storage:
///         the contract exists only so that JobMarket fits the 24 KiB code limit (`Requests`
///         holds the rest that does not fit). Its functions are documented in IJobMarket.
/// @dev Warning: a panel is a majority of three independent stake-weighted draws (seats); an
///      attacker with a share s of the eligible verifier stake controls it with probability
///      3s^2 - 2s^3, however it splits that stake.
/// @dev Warning: called directly, every function reverts (DirectCall): its own storage is unused.
contract Disputes is DelegatedModule {
    using SafeERC20 for IERC20;
    using SortitionTree for SortitionTree.Tree;

    /// @param token_ The market's token (an immutable, so it must match JobMarket's).
    constructor(IERC20 token_) DelegatedModule(token_) {}

    // ─────────────────────────────────────────────────────────── The draw

    /// @dev See IJobMarket.
    function lockSeed(uint256 jobId, JobTerms calldata terms_) external onlyDelegated {
        JobStatus storage status = _checked(jobId, terms_, JobState.Submitted);
        Audit storage a = _audits[jobId];
        if (a.verifier != address(0)) revert AlreadyDrawn(jobId, a.verifier);
        bytes32 blockHash = _seedHash(jobId, status.seedBlock);
        if (blockHash == 0) {
            uint32 next = _nextBlock();
            status.seedBlock = next;
            emit SeedRearmed(jobId, next);
            return;
        }
        bytes32 seed = keccak256(abi.encode(blockHash, jobId, a.draws));
        address[] memory excluded = new address[](2);
        excluded[0] = terms_.requester;
        excluded[1] = status.provider;
        address verifier = _tree.draw(seed, excluded);
        if (verifier == address(0)) revert NoEligibleVerifier(jobId);
        uint256 deadline = block.timestamp + terms_.auditWindow;
        a.verifier = verifier;
        a.deadline = uint40(deadline);
        unchecked {
            ++a.draws; // wraps after 255: the seed also follows a new block hash
        }
        a.seed = seed;
        a.secret = _secrets[verifier];
        ++_verifiers[verifier].duties;
        emit VerifierDrawn(jobId, verifier, seed, deadline);
    }

    // ─────────────────────────────────────────────────────────── Missed deadlines

    /// @dev See IJobMarket.
    function redrawVerifier(uint256 jobId, JobTerms calldata terms_) external onlyDelegated {
        JobStatus storage status = _checked(jobId, terms_, JobState.Submitted);
        Audit storage a = _audits[jobId];
        address verifier = a.verifier;
        if (verifier == address(0)) revert NotDrawn(jobId);
        uint256 deadline = a.deadline;
        if (block.timestamp <= deadline) revert DeadlineNotReached(jobId, deadline);
        // An unanswered reveal demand is the provider's fault, whoever missed what since.
        if (a.revealBy > 1) {
            _settle(jobId, terms_, status, Verdict.Fail, verifier, true);
            return;
        }
        uint32 next = _nextBlock();
        a.verifier = address(0);
        a.deadline = 0;
        a.revealBy = 0;
        a.seed = 0;
        a.secret = 0;
        status.seedBlock = next;
        --_verifiers[verifier].duties;
        emit VerifierMissed(jobId, verifier, next);
        _reward(jobId, msg.sender, _slashVerifier(verifier, jobId, _params.noShowSlashBps));
    }

    // ─────────────────────────────────────────────────────────── Reveal demands

    /// @dev See IJobMarket.
    function demandReveal(uint256 jobId, JobTerms calldata terms_, bytes32 secret, bytes32 nextSecretHash)
        external
        onlyDelegated
    {
        _checked(jobId, terms_, JobState.Submitted);
        Audit storage a = _drawnBy(jobId, msg.sender);
        if (a.revealBy != 0) revert RevealAlreadyDemanded(jobId);
        _openSecret(jobId, a, secret, nextSecretHash);
        uint256 revealBy = block.timestamp + _params.revealWindow;
        a.revealBy = uint40(revealBy);
        a.deadline = uint40(revealBy + terms_.auditWindow);
        emit RevealDemanded(jobId, msg.sender, a.secret, revealBy);
    }

    /// @dev See IJobMarket.
    function revealOutputs(
        uint256 jobId,
        JobTerms calldata terms_,
        bytes[] calldata outputs,
        bytes32[][] calldata proofs
    ) external onlyDelegated {
        JobStatus storage status = _checked(jobId, terms_, JobState.Submitted);
        if (msg.sender != status.provider) revert NotProvider(jobId, msg.sender);
        Audit storage a = _audits[jobId];
        uint256 revealBy = a.revealBy;
        if (revealBy <= 1) revert NoRevealDemand(jobId);
        if (block.timestamp > revealBy) revert DeadlinePassed(jobId, revealBy);
        uint32[] memory indices = _sample(a.secret, terms_.numTasks, terms_.sampleTasks);
        if (outputs.length != indices.length || proofs.length != indices.length) {
            revert WrongOutputCount(jobId, outputs.length, indices.length);
        }
        bytes32 root = _roots[jobId];
        // A confidential job's outputs come sealed to the job key, each with its proof inside: only
        // the verifier and the panel, who hold the key, can check them, and the calldata shows they
        // were there in time.
        for (uint256 i; i < indices.length && terms_.confidentiality == Confidentiality.Public; ++i) {
            bytes32 leaf =
                keccak256(bytes.concat(keccak256(abi.encode(uint256(indices[i]), sha256(outputs[i])))));
            if (!MerkleProof.verifyCalldata(proofs[i], root, leaf)) revert InvalidOutputProof(jobId, indices[i]);
        }
        a.revealBy = 1;
        emit OutputsRevealed(jobId, indices, outputs);
    }

    /// @dev See IJobMarket.
    function failUnrevealed(uint256 jobId, JobTerms calldata terms_) external onlyDelegated {
        JobStatus storage status = _checked(jobId, terms_, JobState.Submitted);
        Audit storage a = _audits[jobId];
        uint256 revealBy = a.revealBy;
        if (revealBy <= 1) revert NoRevealDemand(jobId);
        if (block.timestamp <= revealBy) revert DeadlineNotReached(jobId, revealBy);
        _settle(jobId, terms_, status, Verdict.Fail, a.verifier, true);
    }

    // ─────────────────────────────────────────────────────────── Challenges

    /// @dev See IJobMarket.
    function challenge(uint256 jobId, JobTerms calldata terms_) external onlyDelegated nonReentrant {
        JobStatus storage status = _checked(jobId, terms_, JobState.Audited);
        Audit storage a = _audits[jobId];
        uint256 deadline = a.deadline;
        if (block.timestamp > deadline) revert DeadlinePassed(jobId, deadline);
        if (!_mayChallenge(msg.sender, a, status.provider, terms_.requester)) {
            revert NotEntitledToChallenge(jobId, msg.sender);
        }
        uint256 bond = PANEL_SIZE * terms_.auditFee;
        uint32 next = _nextBlock();
        Panel storage p = _panels[jobId];
        p.challenger = msg.sender;
        p.bond = uint96(bond); // <= 3 * auditFee < 2^98; auditFee <= 5 * price
        p.seedBlock = next;
        status.state = JobState.Challenged;
        emit Challenged(jobId, msg.sender, bond, next);
        token.safeTransferFrom(msg.sender, address(this), bond);
    }

    /// @dev See IJobMarket.
    function drawPanel(uint256 jobId, JobTerms calldata terms_) external onlyDelegated {
        JobStatus storage status = _checked(jobId, terms_, JobState.Challenged);
        Panel storage p = _panels[jobId];
        if (p.size != 0) revert AlreadyDrawn(jobId, p.members[0]);
        bytes32 blockHash = _seedHash(jobId, p.seedBlock);
        if (blockHash == 0) {
            uint32 next = _nextBlock();
            p.seedBlock = next;
            emit SeedRearmed(jobId, next);
            return;
        }
        address[] memory excluded = new address[](4);
        excluded[0] = terms_.requester;
        excluded[1] = status.provider;
        excluded[2] = _audits[jobId].verifier;
        excluded[3] = p.challenger;
        if (_tree.countOutside(excluded) == 0) {
            // Nobody can judge: the challenge is dismissed and the first verdict stands.
            emit ChallengeResolved(jobId, _audits[jobId].verdict, true);
            _credit(p.challenger, jobId, CreditKind.BondRefund, p.bond);
            _settle(jobId, terms_, status, _audits[jobId].verdict, _audits[jobId].verifier, true);
            return;
        }
        // Seats are drawn with replacement: each is an independent stake-weighted draw, and a
        // verifier drawn twice holds two seats (two votes). Drawing distinct accounts instead
        // would favour a stake split over many addresses: once a large honest staker is seated,
        // only the split stake would be left for the other seats.
        bytes32 seed = keccak256(abi.encode(blockHash, jobId, "panel"));
        address[] memory members = new address[](PANEL_SIZE);
        for (uint256 i; i < PANEL_SIZE; ++i) {
            address member = _tree.draw(keccak256(abi.encode(seed, i)), excluded);
            members[i] = member;
            p.members[i] = member;
            ++_verifiers[member].duties;
        }
        uint256 size = PANEL_SIZE;
        uint256 commitBy = block.timestamp + _params.voteWindow;
        uint256 revealBy = commitBy + _params.voteWindow;
        p.size = uint8(size);
        p.seedBlock = 0;
        p.commitBy = uint40(commitBy);
        p.revealBy = uint40(revealBy);
        emit PanelDrawn(jobId, members, commitBy, revealBy);
    }

    /// @dev See IJobMarket.
    function commitVote(uint256 jobId, bytes32 commitment) external onlyDelegated {
        (Panel storage p, uint256 seats) = _seats(jobId, msg.sender);
        if (block.timestamp > p.commitBy) revert DeadlinePassed(jobId, p.commitBy);
        if (commitment == 0) revert VoteMismatch(jobId, msg.sender);
        for (uint256 i; i < PANEL_SIZE; ++i) {
            if (seats & (1 << i) == 0) continue;
            if (p.commits[i] != 0) revert AlreadyVoted(jobId, msg.sender);
            p.commits[i] = commitment;
        }
        emit VoteCommitted(jobId, msg.sender);
    }

    /// @dev See IJobMarket.
    function revealVote(uint256 jobId, Verdict vote, bytes32 salt) external onlyDelegated {
        (Panel storage p, uint256 seats) = _seats(jobId, msg.sender);
        if (vote == Verdict.None) revert InvalidVerdict(jobId, vote);
        if (block.timestamp <= p.commitBy && !_all(p, true)) revert DeadlineNotReached(jobId, p.commitBy);
        if (block.timestamp > p.revealBy) revert DeadlinePassed(jobId, p.revealBy);
        bytes32 commitment = keccak256(abi.encode(jobId, msg.sender, vote, salt));
        for (uint256 i; i < PANEL_SIZE; ++i) {
            if (seats & (1 << i) == 0) continue;
            if (p.votes[i] != Verdict.None) revert AlreadyVoted(jobId, msg.sender);
            if (p.commits[i] != commitment) revert VoteMismatch(jobId, msg.sender);
            p.votes[i] = vote;
        }
        emit VoteRevealed(jobId, msg.sender, vote);
    }

    /// @dev See IJobMarket.
    function resolveChallenge(uint256 jobId, JobTerms calldata terms_) external onlyDelegated {
        JobStatus storage status = _checked(jobId, terms_, JobState.Challenged);
        Panel storage p = _panels[jobId];
        if (p.size == 0) revert PanelNotDrawn(jobId);
        if (block.timestamp <= p.revealBy && !_all(p, false)) revert DeadlineNotReached(jobId, p.revealBy);
        Audit storage a = _audits[jobId];
        (Verdict outcome, uint256 winners) = _tally(p);
        Verdict first = a.verdict;
        // Pass and inconclusive both pay the provider and slash nobody: a panel that moves a verdict
        // from one to the other contradicts no one (which of the two an honest verifier gives can
        // follow its hardware), so it upholds the first verdict and the challenger pays the panel.
        bool upheld = outcome == Verdict.None || outcome == first
            || (outcome != Verdict.Fail && first != Verdict.Fail);
        emit ChallengeResolved(jobId, upheld ? first : outcome, upheld);
        _releasePanel(jobId, p);
        if (outcome == Verdict.None) {
            // No decision: the first verdict stands and the challenger takes its bond back.
            _credit(p.challenger, jobId, CreditKind.BondRefund, p.bond);
            _settle(jobId, terms_, status, first, a.verifier, true);
        } else if (upheld) {
            _payPanel(jobId, p, outcome, winners, p.bond);
            _settle(jobId, terms_, status, first, a.verifier, true);
        } else {
            uint256 slashed = _slashVerifier(a.verifier, jobId, _params.verifierSlashBps);
            uint256 panelPay = slashed < p.bond ? slashed : p.bond;
            _payPanel(jobId, p, outcome, winners, panelPay);
            _reward(jobId, p.challenger, slashed - panelPay);
            _credit(p.challenger, jobId, CreditKind.BondRefund, p.bond);
            _settle(jobId, terms_, status, outcome, p.challenger, false);
        }
    }

    // ─────────────────────────────────────────────────────────── Internal

    function _mayChallenge(address caller, Audit storage a, address provider, address requester)
        internal
        view
        returns (bool)
    {
        if (a.verdict == Verdict.Fail ? caller == provider : caller == requester) return true;
        return caller != a.verifier && caller != provider && caller != requester && _verifiers[caller].stake != 0;
    }

    /// @dev The challenged job's panel and the seats `caller` holds, as a bit mask.
    function _seats(uint256 jobId, address caller) internal view returns (Panel storage p, uint256 seats) {
        JobState state = _statuses[jobId].state;
        if (state != JobState.Challenged) revert WrongState(jobId, state, JobState.Challenged);
        p = _panels[jobId];
        if (p.size == 0) revert PanelNotDrawn(jobId);
        for (uint256 i; i < p.size; ++i) {
            if (p.members[i] == caller) seats |= 1 << i;
        }
        if (seats == 0) revert NotPanelMember(jobId, caller);
    }

    /// @dev Whether every member has committed (`commits`) or revealed.
    function _all(Panel storage p, bool commits) internal view returns (bool) {
        for (uint256 i; i < p.size; ++i) {
            if (commits ? p.commits[i] == 0 : p.votes[i] == Verdict.None) return false;
        }
        return true;
    }

    /// @dev The verdict with strictly most votes and how many voted for it; None on a tie or no vote.
    function _tally(Panel storage p) internal view returns (Verdict outcome, uint256 votes) {
        uint256[4] memory counts;
        for (uint256 i; i < p.size; ++i) {
            ++counts[uint8(p.votes[i])];
        }
        for (uint8 v = 1; v <= 3; ++v) {
            if (counts[v] > votes) {
                votes = counts[v];
                outcome = Verdict(v);
            } else if (counts[v] == votes) {
                outcome = Verdict.None;
            }
        }
        if (votes == 0) outcome = Verdict.None;
    }

    /// @dev Ends the members' duty; those that did not reveal lose `noShowSlashBps` (burned).
    function _releasePanel(uint256 jobId, Panel storage p) internal {
        uint256 noShowBps = _params.noShowSlashBps;
        for (uint256 i; i < p.size; ++i) {
            address member = p.members[i];
            --_verifiers[member].duties;
            if (p.votes[i] == Verdict.None) _burn(jobId, _slashVerifier(member, jobId, noShowBps));
        }
    }

    /// @dev Splits `amount` among the members who voted `outcome`; the first takes the remainder.
    function _payPanel(uint256 jobId, Panel storage p, Verdict outcome, uint256 winners, uint256 amount) internal {
        uint256 share = amount / winners;
        uint256 remainder = amount - share * winners;
        for (uint256 i; i < p.size; ++i) {
            if (p.votes[i] != outcome) continue;
            _credit(p.members[i], jobId, CreditKind.PanelFee, share + remainder);
            remainder = 0;
        }
    }
}
