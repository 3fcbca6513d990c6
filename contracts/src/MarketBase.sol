// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

import {IJobMarketTypes} from "./interfaces/IJobMarketTypes.sol";
import {SortitionTree} from "./libraries/SortitionTree.sol";

/// @title MarketBase
/// @notice JobMarket's storage, hard bounds and the internal functions every part shares: the
///         one place value is credited (`_credit`), burned (`_burn`) or slashed (`_slashVerifier`),
///         the terms check, the seed, the draw and the final settlement of a job.
/// @dev Warning: the owner can change fees, collateral, windows, stake minimums and slash rates
///      within the hard bounds below; job terms are fixed at posting, and network parameters
///      (slash rates, vote and reveal windows) apply from the moment they change.
abstract contract MarketBase is IJobMarketTypes, Ownable2Step, ReentrancyGuardTransient {
    using SortitionTree for SortitionTree.Tree;

    // ─────────────────────────────────────────────────────────── Hard bounds

    uint256 public constant BPS = 10_000;
    uint256 public constant MAX_FEE_BPS = 2_000;
    /// @notice An audit pays at least the per-task price for each task it re-executes.
    uint256 public constant MIN_VERIFIER_FEE_BPS = 10_000;
    uint256 public constant MAX_VERIFIER_FEE_BPS = 50_000;
    uint256 public constant MIN_COLLATERAL_BPS = 1_000;
    uint256 public constant MAX_COLLATERAL_BPS = 50_000;
    uint256 public constant MIN_WINDOW = 1 minutes;
    uint256 public constant MAX_WINDOW = 7 days;
    uint256 public constant MIN_COOLDOWN = 1 hours;
    uint256 public constant MAX_COOLDOWN = 60 days;
    uint256 public constant MIN_EXEC_WINDOW = 1 minutes;
    uint256 public constant MAX_EXEC_WINDOW = 30 days;
    uint256 public constant MIN_VERIFIER_SLASH_BPS = 1_000;
    uint256 public constant MIN_NO_SHOW_SLASH_BPS = 10;
    uint256 public constant MAX_NO_SHOW_SLASH_BPS = 1_000;
    uint256 public constant MAX_REWARD_BPS = 2_500;
    uint256 public constant MAX_SAMPLE_TASKS = 64;
    /// @notice The work an audit re-runs (`price * min(sampleTasks, numTasks) / numTasks`) is worth
    ///         at most the price cap over this. Skipping a re-run must save less than a lazy pass
    ///         risks: the slash of a verifier at the minimum stake, times the chance its wrong pass
    ///         is met and challenged (issue 13's figures: at a 5 % wrong rate and a 50 % watch rate
    ///         a lazy pass loses money up to a sampled value of about 1/70 of the cap).
    /// @dev Warning: assumes the watch and wrong rates of scripts/bench_economics.py; a network with
    ///      fewer watchtowers needs a larger divisor (or larger verifier stakes).
    uint256 public constant SAMPLE_VALUE_DIVISOR = 80;
    uint256 public constant PANEL_SIZE = 3;
    uint256 public constant MIN_KEY_WINDOW = 1 minutes;
    uint256 public constant MAX_KEY_WINDOW = 1 days;
    /// @notice An age file wrapping one X25519 identity to one recipient is about 250 bytes.
    uint256 public constant MAX_WRAPPED_KEY = 1024;
    /// @notice Most shards one `postJobGroup` posts: about 10 M gas, a third of a block.
    uint256 public constant MAX_GROUP_SHARDS = 256;
    /// @notice `blockhash` only sees the last 256 blocks.
    uint256 public constant SEED_HORIZON = 256;
    /// @notice Verifier weights change only in the first `SYNC_BLOCKS` blocks of every
    ///         `EPOCH_BLOCKS`; a draw is made only if no such block lies between its seed block
    ///         and the draw, so nobody who knows a seed can move the draw (or veto it).
    uint256 public constant EPOCH_BLOCKS = 32;
    uint256 public constant SYNC_BLOCKS = 4;

    // ─────────────────────────────────────────────────────────── Storage

    /// @dev What postJob reads, in one slot: the current terms and the job counter.
    struct Config {
        uint16 protocolFeeBps;
        uint16 verifierFeeBps;
        uint16 collateralBps;
        uint32 auditWindow;
        uint32 challengeWindow;
        uint48 nextJobId;
    }

    IERC20 public immutable token;

    Config internal _config;
    Params internal _params;
    /// @dev Protocol fees accrue beside the treasury address: one slot, touched once per settlement.
    address internal _treasury;
    uint96 internal _protocolFees;
    uint256 internal _burned;

    mapping(uint256 jobId => bytes32) internal _termsHashes;
    mapping(uint256 jobId => JobStatus) internal _statuses;
    mapping(uint256 jobId => bytes32) internal _roots;
    mapping(uint256 jobId => Audit) internal _audits;
    mapping(uint256 jobId => Panel) internal _panels;
    mapping(address account => uint256) internal _credits;
    mapping(address account => Stake) internal _providers;
    mapping(address account => Stake) internal _verifiers;
    mapping(address account => bytes32) internal _secrets;
    /// @dev When an Open job's requester released the key to the current claimant (0: not yet).
    mapping(uint256 jobId => uint40) internal _keyReleasedAt;
    /// @dev Each job group's requester, the only one who may post shards into it (a re-post).
    mapping(uint256 groupId => address) internal _groupRequesters;
    /// @dev Who gave an Open job's claim back (`releaseClaim`): they may not claim that job again.
    mapping(uint256 jobId => mapping(address provider => bool)) internal _releasedBy;
    /// @dev Present verifiers with a secret commitment, weighted by stake.
    SortitionTree.Tree internal _tree;

    constructor(IERC20 token_) {
        token = token_;
    }

    // ─────────────────────────────────────────────────────────── Value

    /// @dev The one place that credits value: every payout, refund, fee, reward and bond goes
    ///      through here and emits `Credited`. Protocol fees accrue in `_protocolFees` (withdrawn
    ///      to the treasury) and are logged as the treasury's.
    function _credit(address account, uint256 jobId, CreditKind kind, uint256 amount) internal {
        if (amount == 0) return;
        if (kind == CreditKind.ProtocolFee) {
            // amount <= a job's price <= type(uint96).max; the sum is checked.
            _protocolFees += uint96(amount);
            account = _treasury;
        } else {
            _credits[account] += amount;
        }
        emit Credited(account, jobId, kind, amount);
    }

    /// @dev Value out of every party's reach: it stays in the contract, counted in `_burned`.
    function _burn(uint256 jobId, uint256 amount) internal {
        if (amount == 0) return;
        _burned += amount;
        emit Burned(jobId, amount);
    }

    /// @dev A slashed `amount`: `rewardBps` of it to `prover` (when there is one), the rest burned.
    function _reward(uint256 jobId, address prover, uint256 amount) internal {
        uint256 reward = prover == address(0) ? 0 : amount * _params.rewardBps / BPS;
        _credit(prover, jobId, CreditKind.Reward, reward);
        _burn(jobId, amount - reward);
    }

    /// @dev Takes `bps` of a verifier's stake and unbonding stake (stake first) and updates its
    ///      weight in the draw. Returns the amount taken, which the caller must credit or burn.
    function _slashVerifier(address account, uint256 jobId, uint256 bps) internal returns (uint256) {
        Stake storage s = _verifiers[account];
        uint256 stake = s.stake;
        uint256 unbonding = s.unbonding;
        uint256 amount = (stake + unbonding) * bps / BPS;
        uint256 fromStake = amount < stake ? amount : stake;
        uint256 fromUnbonding = amount - fromStake;
        // fromStake <= stake and fromUnbonding <= unbonding (bps <= BPS), so the casts are safe.
        s.stake = uint96(stake - fromStake);
        s.unbonding = uint96(unbonding - fromUnbonding);
        _syncWeight(account);
        if (amount != 0) emit Slashed(account, Role.Verifier, jobId, fromStake, fromUnbonding);
        return amount;
    }

    /// @dev A verifier is in the draw, weighted by its stake, while it has a secret commitment and
    ///      at least the minimum stake (so that a contradicted verdict costs it at least
    ///      `verifierSlashBps` of the minimum, which bounds a job's price). The tree follows only in
    ///      a sync phase; outside one the change waits for `syncVerifier`.
    function _syncWeight(address account) internal {
        if (!_inSync(block.number)) return;
        uint96 stake = _verifiers[account].stake;
        uint96 weight = _secrets[account] == 0 || stake < _params.minVerifierStake ? 0 : stake;
        if (_tree.weightOf(account) == weight) return;
        _tree.set(account, weight);
        emit WeightChanged(account, weight);
    }

    /// @dev Whether `blockNumber` is in the sync phase of its epoch.
    function _inSync(uint256 blockNumber) internal pure returns (bool) {
        return blockNumber % EPOCH_BLOCKS < SYNC_BLOCKS;
    }

    // ─────────────────────────────────────────────────────────── Audit

    /// @dev The job's audit after checking that `caller` is its drawn verifier and its deadline
    ///      has not passed.
    function _drawnBy(uint256 jobId, address caller) internal view returns (Audit storage a) {
        a = _audits[jobId];
        if (caller != a.verifier) revert NotAssignedVerifier(jobId, caller, a.verifier);
        if (block.timestamp > a.deadline) revert DeadlinePassed(jobId, a.deadline);
    }

    /// @dev Checks `secret` against the commitment the draw stored, replaces it by the sample
    ///      seed, and moves the verifier to its next commitment if this one is still its current.
    ///      Callers mark the reveal (a reveal demand or a verdict) in the same call.
    function _openSecret(uint256 jobId, Audit storage a, bytes32 secret, bytes32 nextSecretHash) internal {
        bytes32 committed = keccak256(abi.encode(secret));
        if (committed != a.secret) revert WrongSecret(jobId, msg.sender);
        a.secret = keccak256(abi.encode(a.seed, secret));
        if (_secrets[msg.sender] == committed) {
            _secrets[msg.sender] = nextSecretHash;
            // Only a zero commitment changes the weight (it takes the verifier out of the draw).
            if (nextSecretHash == 0) _syncWeight(msg.sender);
            emit SecretCommitted(msg.sender, nextSecretHash);
        }
    }

    // ─────────────────────────────────────────────────────────── Settlement

    /// @dev A job's final verdict takes effect. Pass or inconclusive: the provider is paid the
    ///      price less the protocol fee. Fail: the requester gets the price back, and the
    ///      provider's collateral is slashed, `rewardBps` of it to `prover`, the rest burned.
    ///      The audit fee goes to the job's verifier when `verifierPaid`, else back to the
    ///      requester (a verifier the panel contradicted forfeits it).
    function _settle(
        uint256 jobId,
        JobTerms calldata terms_,
        JobStatus storage status,
        Verdict verdict,
        address prover,
        bool verifierPaid
    ) internal {
        Audit storage a = _audits[jobId];
        address provider = status.provider;
        address verifier = a.verifier;
        uint96 collateral = _collateral(terms_);
        Stake storage s = _providers[provider];
        // collateral <= locked: it was locked at claim from the same terms.
        s.locked -= collateral;
        --_verifiers[verifier].duties;
        if (a.verdict != verdict) a.verdict = verdict;
        delete _termsHashes[jobId];
        if (verdict == Verdict.Fail) {
            s.stake -= collateral;
            status.state = JobState.Rejected;
            emit JobSettled(jobId, verdict);
            emit Slashed(provider, Role.Provider, jobId, collateral, 0);
            _credit(terms_.requester, jobId, CreditKind.Refund, terms_.price);
            _reward(jobId, prover, collateral);
        } else {
            status.state = JobState.Finalized;
            emit JobSettled(jobId, verdict);
            uint256 protocolFee = uint256(terms_.price) * terms_.protocolFeeBps / BPS;
            _credit(provider, jobId, CreditKind.ProviderPayment, terms_.price - protocolFee);
            _credit(address(0), jobId, CreditKind.ProtocolFee, protocolFee);
        }
        if (verifierPaid) _credit(verifier, jobId, CreditKind.VerifierFee, terms_.auditFee);
        else _credit(terms_.requester, jobId, CreditKind.Refund, terms_.auditFee);
    }

    // ─────────────────────────────────────────────────────────── Checks

    /// @dev The job's status, after checking that `terms_` are the job's and that it is in `want`.
    /// @dev Checks a request against the bounds and the requester's own, records its terms' hash
    ///      and emits `JobPosted`; the caller collects `escrow`. Shared by `postJob` and `postJobGroup`.
    function _post(JobRequest calldata request) internal returns (uint256 jobId, uint256 escrow) {
        Config memory c = _config;
        uint256 n = request.numTasks;
        if (n == 0) revert InvalidNumTasks(0);
        uint256 minPrice = n * _params.minTaskPrice;
        if (request.price < minPrice || request.price == 0) revert InvalidPrice(request.price, minPrice);
        uint256 maxPrice = uint256(_params.minVerifierStake) * _params.verifierSlashBps / BPS;
        if (request.price > maxPrice) revert PriceAboveMaximum(request.price, maxPrice);
        if (request.claimBy <= block.timestamp) revert InvalidClaimBy(request.claimBy, block.timestamp);
        if (request.execWindow < MIN_EXEC_WINDOW || request.execWindow > MAX_EXEC_WINDOW) {
            revert InvalidExecWindow(request.execWindow, MIN_EXEC_WINDOW, MAX_EXEC_WINDOW);
        }
        if (request.sampleTasks == 0 || request.sampleTasks > MAX_SAMPLE_TASKS) {
            revert InvalidSampleTasks(request.sampleTasks, MAX_SAMPLE_TASKS);
        }
        uint256 sampled = request.sampleTasks < n ? request.sampleTasks : n;
        if (request.price * sampled * SAMPLE_VALUE_DIVISOR > maxPrice * n) {
            revert SampleValueAboveMaximum(request.price * sampled / n, maxPrice / SAMPLE_VALUE_DIVISOR);
        }
        if (c.protocolFeeBps > request.maxProtocolFeeBps) {
            revert TermsOutOfBounds("protocolFeeBps", c.protocolFeeBps, request.maxProtocolFeeBps);
        }
        if (c.verifierFeeBps > request.maxVerifierFeeBps) {
            revert TermsOutOfBounds("verifierFeeBps", c.verifierFeeBps, request.maxVerifierFeeBps);
        }
        if (c.collateralBps < request.minCollateralBps) {
            revert TermsOutOfBounds("collateralBps", c.collateralBps, request.minCollateralBps);
        }
        _checkConfidentiality(request);
        uint256 fee = _auditFee(request.price, n, request.sampleTasks, c.verifierFeeBps);
        escrow = request.price + fee;
        jobId = c.nextJobId;
        _config.nextJobId = c.nextJobId + 1;
        JobTerms memory t = JobTerms(
            msg.sender,
            request.price,
            request.numTasks,
            request.claimBy,
            request.execWindow,
            request.sampleTasks,
            c.protocolFeeBps,
            c.verifierFeeBps,
            c.collateralBps,
            c.auditWindow,
            c.challengeWindow,
            uint96(fee), // fee <= price * 5
            request.minProviderStake,
            request.allowlistRoot,
            request.confidentiality,
            request.keyWindow
        );
        _termsHashes[jobId] = keccak256(abi.encode(t));
        emit JobPosted(jobId, msg.sender, request.specCid, t);
    }

    /// @dev An Open job's key window leaves the claimant at least half its exec window to work;
    ///      a Directed job wraps its key to the allowlist, so it must have one.
    function _checkConfidentiality(JobRequest calldata request) internal pure {
        Confidentiality mode = request.confidentiality;
        if (mode == Confidentiality.Open) {
            uint256 max = request.execWindow / 2 < MAX_KEY_WINDOW ? request.execWindow / 2 : MAX_KEY_WINDOW;
            if (request.keyWindow < MIN_KEY_WINDOW || request.keyWindow > max) {
                revert InvalidKeyWindow(request.keyWindow, MIN_KEY_WINDOW, max);
            }
        } else if (request.keyWindow != 0) {
            revert InvalidKeyWindow(request.keyWindow, 0, 0);
        }
        if (mode == Confidentiality.Directed && request.allowlistRoot == 0) revert DirectedWithoutAllowlist();
    }

    function _auditFee(uint256 price, uint256 numTasks, uint256 sampleTasks, uint256 verifierFeeBps)
        internal
        pure
        returns (uint256)
    {
        uint256 sampled = sampleTasks < numTasks ? sampleTasks : numTasks;
        return price * sampled * verifierFeeBps / (numTasks * BPS);
    }

    function _checked(uint256 jobId, JobTerms calldata terms_, JobState want)
        internal
        view
        returns (JobStatus storage status)
    {
        status = _statuses[jobId];
        bytes32 stored = _termsHashes[jobId];
        JobState have = status.state;
        if (have == JobState.None) {
            if (stored == 0) revert JobNotFound(jobId);
            have = JobState.Open;
        }
        if (have != want) revert WrongState(jobId, have, want);
        if (stored != _hashTerms(terms_)) revert TermsMismatch(jobId);
    }

    /// @dev keccak256(abi.encode(terms_)) over the calldata bytes as they are. JobTerms is a static
    ///      struct, so its canonical encoding is its calldata image; input with dirty padding hashes
    ///      differently and fails the comparison with the stored (canonical) hash, never passes it.
    function _hashTerms(JobTerms calldata terms_) internal pure returns (bytes32 digest) {
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            calldatacopy(ptr, terms_, 512) // 16 words
            digest := keccak256(ptr, 512)
        }
    }

    function _collateral(JobTerms calldata terms_) internal pure returns (uint96) {
        // price * collateralBps / BPS <= price * 5 < 2^99: checked by the cast.
        return uint96(uint256(terms_.price) * terms_.collateralBps / BPS);
    }

    // ─────────────────────────────────────────────────────────── Randomness

    /// @dev The hash of a pending seed block, or zero when it cannot be used: it has gone out of
    ///      view, or a sync phase lies between it and now (weights may have changed after the
    ///      hash was known). Reverts while the block does not exist yet.
    function _seedHash(uint256 jobId, uint256 seedBlock) internal view returns (bytes32) {
        uint256 n = block.number;
        if (n <= seedBlock) revert SeedNotReady(jobId, seedBlock);
        if (n - seedBlock > SEED_HORIZON) return 0;
        // Blocks seedBlock+1..n hold a sync block iff they cross an epoch start, or seedBlock is
        // earlier in a sync phase than its last block.
        if (n / EPOCH_BLOCKS != seedBlock / EPOCH_BLOCKS || seedBlock % EPOCH_BLOCKS + 1 < SYNC_BLOCKS) return 0;
        return blockhash(seedBlock);
    }

    /// @dev The seed block for a draw asked for now: the next block, or the last block of a sync
    ///      phase when the next block falls inside one (later draw-phase blocks can use it).
    function _nextBlock() internal view returns (uint32) {
        uint256 next = block.number + 1;
        uint256 offset = next % EPOCH_BLOCKS;
        if (offset + 1 < SYNC_BLOCKS) next += SYNC_BLOCKS - 1 - offset;
        if (next > type(uint32).max) revert BlockNumberTooLarge(next);
        return uint32(next);
    }

    /// @dev The audit sample: see `sampleOf`.
    function _sample(bytes32 sampleSeed, uint256 n, uint256 sampleTasks)
        internal
        pure
        returns (uint32[] memory indices)
    {
        uint256 want = sampleTasks < n ? sampleTasks : n;
        indices = new uint32[](want);
        if (want == n) {
            for (uint256 i; i < n; ++i) indices[i] = uint32(i);
            return indices;
        }
        uint256 found;
        // Bounded: at most 4 draws per wanted index, and want <= MAX_SAMPLE_TASKS.
        for (uint256 draw = 1; draw <= 4 * want && found < want; ++draw) {
            uint32 candidate = uint32(uint256(keccak256(abi.encode(sampleSeed, draw))) % n);
            bool seen;
            for (uint256 k; k < found; ++k) {
                if (indices[k] == candidate) {
                    seen = true;
                    break;
                }
            }
            if (!seen) indices[found++] = candidate;
        }
        assembly ("memory-safe") {
            mstore(indices, found)
        }
    }
}
