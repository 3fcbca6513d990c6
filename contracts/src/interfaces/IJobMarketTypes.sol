// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title IJobMarketTypes
/// @notice The types, errors and events of the JobMarket protocol (see IJobMarket), apart from its
///         functions, so that the contracts that share JobMarket's storage can use them.
interface IJobMarketTypes {
    // ─────────────────────────────────────────────────────────── Types

    enum JobState {
        None,
        Open,
        Claimed,
        Submitted,
        Finalized,
        Cancelled,
        Rejected,
        Audited,
        Challenged
    }

    enum Role {
        Provider,
        Verifier
    }

    enum Verdict {
        None,
        Pass,
        Fail,
        Inconclusive
    }

    /// @notice How a job's content is protected, and how its content key reaches the claiming
    ///         provider. The key itself never touches the chain in clear: `releaseKey` carries it
    ///         wrapped (age, X25519) to one party's published encryption key.
    /// @param Public Inputs and outputs in clear in the content store.
    /// @param Directed Encrypted; the spec carries the key wrapped to each allowlisted provider,
    ///        so the provider checks it before claiming and the requester need not stay online.
    /// @param Open Encrypted; the requester releases the key to whoever claims (`releaseKey`)
    ///        within `keyWindow`, and a provider left without a usable key may `releaseClaim`.
    enum Confidentiality {
        Public,
        Directed,
        Open
    }

    /// @notice Why a balance was credited; one value per kind of ledger entry.
    enum CreditKind {
        ProviderPayment,
        VerifierFee,
        ProtocolFee,
        Refund,
        Reward,
        PanelFee,
        BondRefund
    }

    /// @notice What a requester asks for, and the terms it accepts.
    /// @param specCid CID of the job spec document (task type, model, inputs, parameters).
    /// @param numTasks Number of tasks (inputs) in the job.
    /// @param price WEBI wei paid for the work: the provider's payment plus the protocol fee.
    ///        The escrow is the price plus the audit fee.
    /// @param claimBy Unix time after which the job can no longer be claimed.
    /// @param execWindow Seconds a provider has from its claim to submit the result.
    /// @param sampleTasks How many distinct tasks the audit re-executes (capped at numTasks).
    /// @param minProviderStake Gating: only providers with at least this stake may claim.
    /// @param allowlistRoot Gating: when non-zero, only providers in this Merkle tree (leaves
    ///        `keccak256(bytes.concat(keccak256(abi.encode(provider))))`) may claim.
    /// @param maxProtocolFeeBps The post reverts if the protocol fee in force is higher.
    /// @param maxVerifierFeeBps The post reverts if the verifier fee in force is higher.
    /// @param minCollateralBps The post reverts if the collateral in force is lower.
    /// @param confidentiality Public, Directed (keys in the spec; needs an allowlist) or Open.
    /// @param keyWindow Open jobs: seconds the claimant may wait for its key, and again after the
    ///        key arrives to release the claim if the key is unusable (0 for other jobs).
    struct JobRequest {
        string specCid;
        uint32 numTasks;
        uint96 price;
        uint40 claimBy;
        uint24 execWindow;
        uint16 sampleTasks;
        uint96 minProviderStake;
        bytes32 allowlistRoot;
        uint16 maxProtocolFeeBps;
        uint16 maxVerifierFeeBps;
        uint16 minCollateralBps;
        Confidentiality confidentiality;
        uint32 keyWindow;
    }

    /// @notice A job's terms, fixed at posting. Only their hash is stored; every call that needs
    ///         them takes them back as calldata (they are in the `JobPosted` event).
    struct JobTerms {
        address requester;
        uint96 price;
        uint32 numTasks;
        uint40 claimBy;
        uint24 execWindow;
        uint16 sampleTasks;
        uint16 protocolFeeBps;
        uint16 verifierFeeBps;
        uint16 collateralBps;
        uint32 auditWindow;
        uint32 challengeWindow;
        uint96 auditFee;
        uint96 minProviderStake;
        bytes32 allowlistRoot;
        Confidentiality confidentiality;
        uint32 keyWindow;
    }

    /// @notice A job's mutable state: one slot.
    /// @param stamp Submission deadline while Claimed; submission time from Submitted on.
    /// @param seedBlock Block whose hash seeds the pending draw (0 when none is pending).
    /// @dev Warning: `stamp` is a uint32 Unix time (good until 2106) and `seedBlock` a uint32
    ///      block number; calls revert rather than wrap on a chain past 2^32 blocks.
    struct JobStatus {
        JobState state;
        address provider;
        uint32 stamp;
        uint32 seedBlock;
    }

    /// @notice A job's audit.
    /// @param verifier The drawn verifier (zero until drawn, and again after a no-show).
    /// @param deadline Verdict deadline once drawn; end of the challenge window once Audited.
    /// @param verdict The verifier's (provisional) verdict, then the final one.
    /// @param draws How many verifiers have been drawn for this job.
    /// @param revealBy Deadline of a reveal demand (0: none; 1: answered).
    /// @param seed The draw's seed.
    /// @param secret The drawn verifier's secret commitment until it reveals the secret (with a
    ///        reveal demand or its verdict, i.e. once `revealBy != 0 || verdict != None`); from
    ///        then on the sample seed `keccak256(abi.encode(seed, secret))`.
    /// @dev The first five fields fill one slot.
    struct Audit {
        address verifier;
        uint40 deadline;
        Verdict verdict;
        uint8 draws;
        uint40 revealBy;
        bytes32 seed;
        bytes32 secret;
    }

    /// @notice A challenge and its panel.
    struct Panel {
        address challenger;
        uint96 bond;
        uint32 seedBlock;
        uint40 commitBy;
        uint40 revealBy;
        uint8 size;
        address[3] members;
        bytes32[3] commits;
        Verdict[3] votes;
    }

    /// @notice Protocol terms for jobs posted from now on; a job keeps the terms it was posted with.
    /// @param verifierFeeBps The audit fee per sampled task, in basis points of the per-task price.
    struct Terms {
        uint16 protocolFeeBps;
        uint16 verifierFeeBps;
        uint16 collateralBps;
        uint32 auditWindow;
        uint32 challengeWindow;
    }

    /// @notice Network-wide parameters.
    /// @param minTaskPrice The least price per task (so the least audit fee per sampled task).
    /// @param revealWindow Seconds a provider has to answer a reveal demand.
    /// @param voteWindow Seconds for the panel's commit phase, and again for its reveal phase.
    /// @param verifierSlashBps Share of its stake a verifier loses when a panel contradicts it.
    /// @param noShowSlashBps Share of its stake a verifier loses for a missed verdict or vote.
    /// @param rewardBps Share of a slash paid to whoever proved the fault; the rest is burned.
    struct Params {
        uint96 minProviderStake;
        uint96 minVerifierStake;
        uint96 minTaskPrice;
        uint32 unstakeCooldown;
        uint32 revealWindow;
        uint32 voteWindow;
        uint16 verifierSlashBps;
        uint16 noShowSlashBps;
        uint16 rewardBps;
    }

    /// @notice A staker's record. `locked` is collateral held by live jobs (providers);
    ///         `duties` counts the audits and panels a verifier serves on (its stake cannot be
    ///         withdrawn while any is open).
    struct Stake {
        uint96 stake;
        uint96 locked;
        uint40 unlockAt;
        uint24 duties;
        uint96 unbonding;
    }

    // ─────────────────────────────────────────────────────────── Errors

    error ZeroAmount();
    error AlreadyRegistered(address account, Role role);
    error NotRegistered(address account, Role role);
    error InsufficientStake(address account, uint256 have, uint256 need);
    error CooldownActive(address account, uint256 unlockAt);
    error DutiesOpen(address account, uint256 duties);
    error NothingToWithdraw(address account);
    error JobNotFound(uint256 jobId);
    error WrongState(uint256 jobId, JobState have, JobState want);
    error NotRequester(uint256 jobId, address caller);
    error NotProvider(uint256 jobId, address caller);
    error InvalidNumTasks(uint256 numTasks);
    error InvalidPrice(uint256 price, uint256 min);
    error PriceAboveMaximum(uint256 price, uint256 max);
    error SampleValueAboveMaximum(uint256 value, uint256 max);
    error NotSyncPhase(uint256 blockNumber, uint256 nextSync);
    error InvalidClaimBy(uint256 claimBy, uint256 now_);
    error InvalidExecWindow(uint256 execWindow, uint256 min, uint256 max);
    error InvalidSampleTasks(uint256 sampleTasks, uint256 max);
    error TermsOutOfBounds(bytes32 name, uint256 have, uint256 bound);
    error ClaimWindowClosed(uint256 jobId, uint256 claimBy);
    error NotAllowlisted(uint256 jobId, address provider);
    error SubmitDeadlinePassed(uint256 jobId, uint256 deadline);
    error SubmitDeadlineNotReached(uint256 jobId, uint256 deadline);
    error SeedNotReady(uint256 jobId, uint256 seedBlock);
    error AlreadyDrawn(uint256 jobId, address verifier);
    error NotDrawn(uint256 jobId);
    error NoEligibleVerifier(uint256 jobId);
    error NotAssignedVerifier(uint256 jobId, address caller, address assigned);
    error NoSecret(address verifier);
    error WrongSecret(uint256 jobId, address verifier);
    error InvalidVerdict(uint256 jobId, Verdict verdict);
    error DeadlinePassed(uint256 jobId, uint256 deadline);
    error DeadlineNotReached(uint256 jobId, uint256 deadline);
    error RevealAlreadyDemanded(uint256 jobId);
    error NoRevealDemand(uint256 jobId);
    error WrongOutputCount(uint256 jobId, uint256 have, uint256 want);
    error InvalidOutputProof(uint256 jobId, uint256 taskIndex);
    error SampleNotRevealed(uint256 jobId);
    error NotEntitledToChallenge(uint256 jobId, address caller);
    error NotPanelMember(uint256 jobId, address caller);
    error PanelNotDrawn(uint256 jobId);
    error AlreadyVoted(uint256 jobId, address member);
    error VoteMismatch(uint256 jobId, address member);
    error ParamOutOfBounds(bytes32 name, uint256 value, uint256 min, uint256 max);
    error ZeroAddress();
    error TermsMismatch(uint256 jobId);
    error BlockNumberTooLarge(uint256 blockNumber);
    /// @notice The challenge module was called directly instead of through JobMarket.
    error DirectCall();
    /// @notice An Open job's key window is outside [min, max] (max is half the exec window, at
    ///         most a day), or another job's key window is not 0.
    error InvalidKeyWindow(uint256 keyWindow, uint256 min, uint256 max);
    /// @notice A Directed job names the providers it wraps its key to: it needs an allowlist.
    error DirectedWithoutAllowlist();
    /// @notice The call needs a confidential job (an Open one, for `releaseClaim`).
    error NotConfidential(uint256 jobId, Confidentiality confidentiality);
    /// @notice A job group posts 1 to `max` shards at once.
    error InvalidGroupSize(uint256 shards, uint256 max);
    /// @notice Only a group's requester posts shards into it.
    error NotGroupRequester(uint256 groupId, address caller);
    /// @notice Only the job's requester and its provider hold its key.
    error NotKeyHolder(uint256 jobId, address caller);
    /// @notice A wrapped key is empty or longer than the bound.
    error InvalidWrappedKey(uint256 length, uint256 max);
    /// @notice The key arrived more than `keyWindow` ago: the claim can no longer be released.
    error ClaimNotReleasable(uint256 jobId, uint256 until);
    /// @notice `provider` gave this job's claim back (`releaseClaim`) and may not claim it again.
    error ClaimGivenBack(uint256 jobId, address provider);

    // ─────────────────────────────────────────────────────────── Events

    event Registered(address indexed account, Role indexed role, uint256 amount, string metadataCid);
    event MetadataUpdated(address indexed account, Role indexed role, string metadataCid);
    event StakeAdded(address indexed account, Role indexed role, uint256 amount);
    event UnstakeRequested(address indexed account, Role indexed role, uint256 amount, uint256 unlockAt);
    event StakeWithdrawn(address indexed account, Role indexed role, uint256 amount);
    /// @notice A stake reduction: `fromStake` out of the active stake, `fromUnbonding` out of stake
    ///         already unbonding. Where the amount went follows as `Credited` and `Burned`.
    event Slashed(
        address indexed account, Role indexed role, uint256 indexed jobId, uint256 fromStake, uint256 fromUnbonding
    );
    /// @notice A verifier's weight in the draw changed (in a sync phase); zero: it left the draw.
    event WeightChanged(address indexed verifier, uint256 weight);
    /// @notice A verifier's new secret commitment; it is drawn only while it has one.
    event SecretCommitted(address indexed verifier, bytes32 secretHash);

    event JobPosted(uint256 indexed jobId, address indexed requester, string specCid, JobTerms terms);
    event JobCancelled(uint256 indexed jobId);
    /// @notice `shards` jobs, `firstJobId` to `firstJobId + shards - 1`, each a whole job with its own
    ///         `JobPosted`, belong to group `groupId` (the first job id of its first posting; a
    ///         re-post of failed or expired shards names the same group).
    event GroupPosted(uint256 indexed groupId, address indexed requester, uint256 firstJobId, uint256 shards);
    event JobClaimed(uint256 indexed jobId, address indexed provider, uint256 collateral, uint256 deadline);
    event ClaimExpired(uint256 indexed jobId, address indexed provider, uint256 slashed);
    /// @notice A confidential job's key, wrapped (an age file) to `to`'s published X25519 key.
    event KeyReleased(uint256 indexed jobId, address indexed from, address indexed to, bytes wrappedKey);
    /// @notice An Open job's provider gave its claim back, unpaid and unslashed: its key did not
    ///         arrive, or was unusable. The job is open again and the collateral unlocked.
    event ClaimReleased(uint256 indexed jobId, address indexed provider, uint256 collateral);
    event ResultSubmitted(
        uint256 indexed jobId, address indexed provider, string outputCid, bytes32 resultRoot, uint256 seedBlock
    );
    /// @notice A pending seed could not be used (its block went out of view before anyone drew, or
    ///         a sync phase has passed since it): a later block seeds the draw instead.
    event SeedRearmed(uint256 indexed jobId, uint256 seedBlock);
    event VerifierDrawn(uint256 indexed jobId, address indexed verifier, bytes32 seed, uint256 deadline);
    /// @notice The drawn verifier missed its deadline: it is penalized and a new draw is armed.
    event VerifierMissed(uint256 indexed jobId, address indexed verifier, uint256 seedBlock);
    event RevealDemanded(uint256 indexed jobId, address indexed verifier, bytes32 sampleSeed, uint256 revealBy);
    /// @notice The demanded outputs, in the order of `taskIndices`: in clear and proven against the
    ///         root for a public job; for a confidential job, each an age file to the job key holding
    ///         its proof and output (see `revealOutputs`).
    event OutputsRevealed(uint256 indexed jobId, uint32[] taskIndices, bytes[] outputs);
    event VerdictSubmitted(
        uint256 indexed jobId, address indexed verifier, Verdict verdict, string evidenceCid, bytes32 sampleSeed
    );
    event Challenged(uint256 indexed jobId, address indexed challenger, uint256 bond, uint256 seedBlock);
    event PanelDrawn(uint256 indexed jobId, address[] members, uint256 commitBy, uint256 revealBy);
    event VoteCommitted(uint256 indexed jobId, address indexed member);
    event VoteRevealed(uint256 indexed jobId, address indexed member, Verdict vote);
    /// @notice The panel's outcome: `verdict` is final; `upheld` says whether it is the first one.
    event ChallengeResolved(uint256 indexed jobId, Verdict verdict, bool upheld);
    /// @notice The job's final verdict took effect (pass or inconclusive: paid; fail: rejected).
    event JobSettled(uint256 indexed jobId, Verdict verdict);

    /// @notice The ledger: every credit to a withdrawable balance.
    event Credited(address indexed account, uint256 indexed jobId, CreditKind indexed kind, uint256 amount);
    /// @notice Value put out of every party's reach for good (it stays in the contract).
    event Burned(uint256 indexed jobId, uint256 amount);
    event Withdrawn(address indexed account, uint256 amount);
    event ProtocolFeesWithdrawn(address indexed treasury, uint256 amount);

    event TermsUpdated(Terms terms);
    event ParamsUpdated(Params params);
    event TreasuryUpdated(address treasury);
}
