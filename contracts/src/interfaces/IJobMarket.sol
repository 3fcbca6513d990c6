// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title IJobMarket
/// @notice Escrowed AI inference jobs with staked providers and sampled re-execution.
///
/// A job moves `Open → Claimed → Submitted → Finalized`, with the side exits
/// `Open → Cancelled` (requester), `Claimed → Open` (claim expired; anyone may reclaim and the
/// provider's collateral goes to the requester) and `Submitted → Rejected` (failed audit: the
/// requester is refunded and the provider's collateral is slashed).
///
/// Audit selection is derived from the hash of the block after the submission block, so the
/// result commitment is fixed before the randomness exists. The same seed picks the verifier and
/// the task indices to re-execute.
///
/// Every movement of value into a withdrawable balance goes through one internal function that
/// emits `Credited`; together with the stake and job events, the event log alone rebuilds every
/// balance, stake and escrow.
///
/// @dev Warning: the seed is a block hash. A block producer who is also the provider can bias it
///      by withholding blocks; on a chain with a single sequencer, that sequencer is trusted here.
/// @dev Warning: verifiers are staked but this contract cannot check their verdicts; their stake is
///      a Sybil cost, and the owner cannot slash them either.
interface IJobMarket {
    // ─────────────────────────────────────────────────────────── Types

    enum JobState {
        None,
        Open,
        Claimed,
        Submitted,
        Finalized,
        Cancelled,
        Rejected
    }

    enum Role {
        Provider,
        Verifier
    }

    /// @notice Why a balance was credited; one value per kind of ledger entry.
    enum CreditKind {
        ProviderPayment,
        VerifierFee,
        ProtocolFee,
        Refund,
        SlashCompensation
    }

    /// @notice What a requester asks for.
    /// @param specCid CID of the job spec document (task type, model, inputs, parameters).
    /// @param numTasks Number of tasks (inputs) in the job.
    /// @param price Total escrow in WEBI wei; split at settlement.
    /// @param claimBy Unix time after which the job can no longer be claimed.
    /// @param execWindow Seconds a provider has from its claim to submit the result.
    /// @param sampleRateBps Probability, in basis points, that the job is audited.
    /// @param sampleTasks How many distinct tasks an audit re-executes (capped at numTasks).
    struct JobRequest {
        string specCid;
        uint32 numTasks;
        uint96 price;
        uint40 claimBy;
        uint24 execWindow;
        uint16 sampleRateBps;
        uint16 sampleTasks;
    }

    /// @notice A job's terms, fixed at posting: the request, its requester and the protocol
    ///         terms then in force. Only their hash is stored; every call that needs them takes
    ///         them back as calldata (they are in the `JobPosted` event) and checks the hash.
    struct JobTerms {
        address requester;
        uint96 price;
        uint32 numTasks;
        uint40 claimBy;
        uint24 execWindow;
        uint16 sampleRateBps;
        uint16 sampleTasks;
        uint16 protocolFeeBps;
        uint16 verifierFeeBps;
        uint16 collateralBps;
        uint32 auditWindow;
    }

    /// @notice A job's mutable state: one slot.
    /// @param stamp Submission deadline while Claimed; submission time from Submitted on.
    /// @param seedBlock Block whose hash seeds the audit (the block after the submission).
    /// @param verifierCount Number of verifier entries at submission; the seed picks among them.
    /// @dev Warning: `stamp` is a uint32 Unix time (good until 2106) and `seedBlock` a uint32
    ///      block number; `submitResult` reverts rather than wrap on a chain past 2^32 blocks.
    struct JobStatus {
        JobState state;
        address provider;
        uint32 stamp;
        uint32 seedBlock;
        uint24 verifierCount;
    }

    /// @notice Protocol terms for jobs posted from now on; a job keeps the terms it was posted with.
    struct Terms {
        uint16 protocolFeeBps;
        uint16 verifierFeeBps;
        uint16 collateralBps;
        uint32 auditWindow;
    }

    /// @notice Network-wide parameters that do not bind running jobs.
    struct Params {
        uint96 minProviderStake;
        uint96 minVerifierStake;
        uint32 unstakeCooldown;
        uint16 minSampleRateBps;
        uint16 maxSampleRateBps;
    }

    /// @notice A staker's record. `locked` is collateral held by claimed or submitted jobs
    ///         (providers only); `entry` is the 1-based verifier list entry (verifiers only).
    struct Stake {
        uint96 stake;
        uint96 locked;
        uint40 unlockAt;
        uint24 entry;
        uint96 unbonding;
    }

    // ─────────────────────────────────────────────────────────── Errors

    error ZeroAmount();
    error AlreadyRegistered(address account, Role role);
    error NotRegistered(address account, Role role);
    error InsufficientStake(address account, uint256 have, uint256 need);
    error CooldownActive(address account, uint256 unlockAt);
    error NothingToWithdraw(address account);
    error JobNotFound(uint256 jobId);
    error WrongState(uint256 jobId, JobState have, JobState want);
    error NotRequester(uint256 jobId, address caller);
    error NotProvider(uint256 jobId, address caller);
    error InvalidNumTasks(uint256 numTasks);
    error InvalidPrice(uint256 price);
    error InvalidClaimBy(uint256 claimBy, uint256 now_);
    error InvalidExecWindow(uint256 execWindow, uint256 min, uint256 max);
    error SampleRateOutOfBounds(uint256 rateBps, uint256 min, uint256 max);
    error InvalidSampleTasks(uint256 sampleTasks, uint256 max);
    error ClaimWindowClosed(uint256 jobId, uint256 claimBy);
    error SubmitDeadlinePassed(uint256 jobId, uint256 deadline);
    error SubmitDeadlineNotReached(uint256 jobId, uint256 deadline);
    error AuditWindowOpen(uint256 jobId, uint256 endsAt);
    error AuditWindowClosed(uint256 jobId, uint256 endedAt);
    error SeedNotReady(uint256 jobId, uint256 seedBlock);
    error SeedExpired(uint256 jobId, uint256 seedBlock);
    error NotAudited(uint256 jobId);
    error NotAssignedVerifier(uint256 jobId, address caller, address assigned);
    error ParamOutOfBounds(bytes32 name, uint256 value, uint256 min, uint256 max);
    error ZeroAddress();
    error TermsMismatch(uint256 jobId);
    error BlockNumberTooLarge(uint256 blockNumber);

    // ─────────────────────────────────────────────────────────── Events

    event Registered(address indexed account, Role indexed role, uint256 amount, string metadataCid);
    event StakeAdded(address indexed account, Role indexed role, uint256 amount);
    event UnstakeRequested(address indexed account, Role indexed role, uint256 amount, uint256 unlockAt);
    event StakeWithdrawn(address indexed account, Role indexed role, uint256 amount);

    event JobPosted(uint256 indexed jobId, address indexed requester, string specCid, JobTerms terms);
    event JobCancelled(uint256 indexed jobId);
    event JobClaimed(uint256 indexed jobId, address indexed provider, uint256 collateral, uint256 deadline);
    event ClaimExpired(uint256 indexed jobId, address indexed provider, uint256 slashed);
    event ResultSubmitted(
        uint256 indexed jobId, address indexed provider, string outputCid, bytes32 resultRoot, uint256 seedBlock
    );
    event SeedLocked(uint256 indexed jobId, bytes32 seed);
    event VerdictSubmitted(uint256 indexed jobId, address indexed verifier, bool passed, string evidenceCid);
    event JobFinalized(uint256 indexed jobId);

    /// @notice The ledger: every credit to a withdrawable balance.
    event Credited(address indexed account, uint256 indexed jobId, CreditKind indexed kind, uint256 amount);
    event Withdrawn(address indexed account, uint256 amount);
    event ProtocolFeesWithdrawn(address indexed treasury, uint256 amount);

    event TermsUpdated(Terms terms);
    event ParamsUpdated(Params params);
    event TreasuryUpdated(address treasury);

    // ─────────────────────────────────────────────────────────── Staking

    /// @notice Joins as a provider or verifier with `amount` WEBI pulled from the caller.
    /// @param metadataCid CID of a document describing the staker (GPU facts for providers).
    function register(Role role, uint96 amount, string calldata metadataCid) external;

    /// @notice Adds `amount` WEBI to the caller's stake in `role`.
    function addStake(Role role, uint96 amount) external;

    /// @notice Starts unbonding `amount`; it can be withdrawn after the cooldown. Unstaking all of
    ///         a role's stake leaves the role (a verifier stops being picked for new audits).
    ///         A request while earlier stake is unbonding restarts the cooldown for the total.
    /// @dev Collateral locked by live jobs cannot be unstaked.
    function requestUnstake(Role role, uint96 amount) external;

    /// @notice Transfers the caller's unbonded stake in `role` once its cooldown has passed.
    function withdrawStake(Role role) external;

    // ─────────────────────────────────────────────────────────── Jobs

    /// @notice Posts a job and pulls `request.price` WEBI into escrow (needs an allowance).
    /// @return jobId The new job's id, counting from 1.
    function postJob(JobRequest calldata request) external returns (uint256 jobId);

    /// @notice `postJob` with an EIP-2612 permit for the escrow, in one transaction.
    /// @dev A permit already used (e.g. front-run) is ignored; the allowance then decides.
    function postJobWithPermit(JobRequest calldata request, uint256 deadline, uint8 v, bytes32 r, bytes32 s)
        external
        returns (uint256 jobId);

    /// @notice The requester cancels an open job; the escrow is credited back.
    function cancelJob(uint256 jobId, JobTerms calldata terms) external;

    /// @notice Claims an open job, locking `price * collateralBps / 10_000` of the caller's stake
    ///         until settlement. The result is due within the job's `execWindow`.
    function claimJob(uint256 jobId, JobTerms calldata terms) external;

    /// @notice Anyone reopens a claimed job whose submission deadline has passed; the provider's
    ///         collateral is credited to the requester.
    function reclaimExpired(uint256 jobId, JobTerms calldata terms) external;

    /// @notice The claiming provider commits to its outputs.
    /// @param outputCid CID of the output manifest in the content store.
    /// @param resultRoot Merkle root (OpenZeppelin MerkleProof, sorted pairs) over per-task leaves.
    function submitResult(uint256 jobId, string calldata outputCid, bytes32 resultRoot) external;

    /// @notice Stores a submitted job's seed while its block hash is still visible (256 blocks), so
    ///         that an audit may outlast that horizon. Anyone may call it.
    function lockSeed(uint256 jobId) external;

    /// @notice The assigned verifier's verdict on an audited job, within the audit window.
    ///         Passed: the job settles at once: the verifier fee and the protocol fee come out of
    ///         the price, the provider gets the rest.
    ///         Failed: the requester is refunded in full, the provider's collateral pays the
    ///         verifier fee and the rest of it goes to the requester.
    function submitVerdict(uint256 jobId, JobTerms calldata terms, bool passed, string calldata evidenceCid)
        external;

    /// @notice Settles a submitted job whose audit window has ended without a verdict (unaudited,
    ///         or its verifier missed the window): the protocol takes its fee and the provider the
    ///         rest; no verifier fee is due. Anyone may call it.
    function finalize(uint256 jobId, JobTerms calldata terms) external;

    /// @notice Transfers the caller's whole credited balance.
    function withdraw() external;

    /// @notice Transfers the accrued protocol fees to the treasury. Anyone may call it.
    function withdrawProtocolFees() external;

    // ─────────────────────────────────────────────────────────── Owner

    /// @notice Publishes new terms for jobs posted from now on; running jobs keep theirs.
    /// @dev Bounded: fees ≤ MAX_FEE_BPS each, collateral in [MIN_COLLATERAL_BPS, MAX_COLLATERAL_BPS]
    ///      and at least the verifier fee, audit window in [MIN_AUDIT_WINDOW, MAX_AUDIT_WINDOW].
    function setTerms(Terms calldata terms) external;

    /// @notice Sets stake minimums, the cooldown and the sample-rate bounds.
    /// @dev Bounded: cooldown in [MIN_COOLDOWN, MAX_COOLDOWN], sample rates in
    ///      [MIN_SAMPLE_RATE_BPS, 10_000]. The owner can never move escrow, stakes or balances.
    function setParams(Params calldata params) external;

    /// @notice Sets where protocol fees are credited.
    function setTreasury(address treasury) external;

    // ─────────────────────────────────────────────────────────── Views

    /// @notice A job's state and the hash of its terms (zero once the job has ended).
    function getJob(uint256 jobId) external view returns (JobStatus memory status, bytes32 termsHash);

    /// @notice The hash a job's terms are stored as.
    function hashTerms(JobTerms calldata terms) external pure returns (bytes32);

    /// @notice The audit decision of a submitted job once its seed exists: whether it is audited,
    ///         by whom and with which seed. Reverts with SeedNotReady / SeedExpired when the seed
    ///         cannot be known.
    function auditOf(uint256 jobId, JobTerms calldata terms)
        external
        view
        returns (bool audited, address verifier, bytes32 seed);

    /// @notice The task indices an audit of a submitted job re-executes: `min(sampleTasks,
    ///         numTasks)` distinct indices drawn as `keccak256(abi.encode(seed, i)) % numTasks` for
    ///         i = 1, 2, ... (repeats skipped, at most 4 draws per index; all tasks when the sample
    ///         covers them).
    function sampledTasks(uint256 jobId, JobTerms calldata terms) external view returns (uint32[] memory);

    function credits(address account) external view returns (uint256);
    function protocolFees() external view returns (uint256);
    function providerStake(address account) external view returns (Stake memory);
    function verifierStake(address account) external view returns (Stake memory);
    function verifierAt(uint256 index) external view returns (address account, uint40 exitAt);
    function verifierEntries() external view returns (uint256);
    function terms() external view returns (Terms memory);
    function params() external view returns (Params memory);
    function treasury() external view returns (address);
    function nextJobId() external view returns (uint256);
}
