// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IJobMarketTypes} from "./IJobMarketTypes.sol";

/// @title IJobMarket
/// @notice Escrowed AI inference jobs, staked providers, and audits by stake-weighted verifiers
///         whose verdicts can be challenged before a panel.
///
/// A job moves `Open → Claimed → Submitted → Audited → Finalized | Rejected`, with the side exits
/// `Open → Cancelled` (requester), `Claimed → Open` (claim expired: the provider's collateral is
/// slashed), `Audited → Challenged → Finalized | Rejected` (a panel re-decides) and
/// `Submitted → Rejected` (the provider did not reveal demanded outputs).
///
/// Every job is audited. After the submission, the first call that needs the seed (`lockSeed`)
/// draws a verifier in proportion to stake from the verifiers present then, excluding the job's
/// parties. The tasks it re-executes follow `keccak256(seed, secret)`, where `secret` is the
/// preimage of a hash that the verifier committed to before the draw: the producer of the seed
/// block chooses among verifiers, never among tasks. The verdict (pass, fail or inconclusive) is
/// provisional for the challenge window. The side it harms, or any staked verifier, may challenge
/// with a bond; a panel of `PANEL_SIZE` seats, each drawn by stake from the other verifiers, votes by commit
/// and reveal, and the majority decides. The side the panel contradicts pays: a wrong verifier
/// loses `verifierSlashBps` of its stake, a losing challenger its bond.
///
/// Money: a requester escrows the price plus the audit fee (`verifierFeeBps` of the per-task
/// price for each sampled task). A provider's collateral is `collateralBps` of the price. Slashes
/// refund nobody beyond their loss: a bounded reward (`rewardBps` of the slash) goes to whoever
/// proved the fault, panel fees come out of a losing side, and the rest is burned (kept by the
/// contract forever, counted in `burned`). Every movement into a withdrawable balance emits
/// `Credited`, every stake reduction `Slashed`, every burn `Burned`: the event log alone rebuilds
/// every balance, stake, bond and burn.
///
/// @dev Warning: the seed is a block hash. The producer of the seed block (or an L2 sequencer) can
///      grind it to choose which verifier audits, and can delay or censor transactions (a verdict,
///      a challenge, a reveal) within the windows; it cannot choose the sampled tasks, which also
///      follow the drawn verifier's committed secret, and it cannot change a submitted result.
/// @dev Warning: safety assumes that honest verifiers hold most of the verifier stake (a panel
///      is a majority of stake-weighted draws) and that harmed parties or watchtowers challenge
///      wrong verdicts within the challenge window.
interface IJobMarket is IJobMarketTypes {
    // ─────────────────────────────────────────────────────────── Staking

    /// @notice Joins as a provider or verifier with `amount` WEBI pulled from the caller.
    ///         A verifier is drawn only once it has committed a secret (`commitSecret`).
    /// @param metadataCid CID of a document describing the staker (GPU facts for providers).
    function register(Role role, uint96 amount, string calldata metadataCid) external;

    /// @notice Points the caller's registration in `role` to a new metadata document (after a
    ///         rotation of its encryption key, say); the latest `Registered` or `MetadataUpdated`
    ///         names the document in force.
    /// @dev Warning: the contract cannot read the document: whoever uses it checks what it needs
    ///      (the encryption key's signature against this address and chain).
    function updateMetadata(Role role, string calldata metadataCid) external;

    /// @notice Adds `amount` WEBI to the caller's stake in `role`.
    function addStake(Role role, uint96 amount) external;

    /// @notice Starts unbonding `amount`; it can be withdrawn after the cooldown. Unstaking all of
    ///         a role's stake leaves the role (a verifier leaves the draw at the next sync phase).
    ///         A request while earlier stake is unbonding restarts the cooldown for the total.
    /// @dev Collateral locked by live jobs cannot be unstaked. Unbonding stake can still be slashed.
    function requestUnstake(Role role, uint96 amount) external;

    /// @notice Transfers the caller's unbonded stake in `role` once its cooldown has passed and,
    ///         for a verifier, once no audit or panel it serves on is open and its weight in the
    ///         draw no longer counts the stake it takes out (in a sync phase; NotSyncPhase else).
    function withdrawStake(Role role) external;

    /// @notice Applies `account`'s current stake and secret to its weight in the draw. Only in a
    ///         sync phase (the first `SYNC_BLOCKS` blocks of every `EPOCH_BLOCKS`); staking calls
    ///         made in a sync phase apply at once, others wait for this call. Anyone may call it.
    function syncVerifier(address account) external;

    /// @notice Sets the caller's secret commitment `keccak256(abi.encode(secret))` for the next
    ///         audit it is drawn for. Verifiers without one are not drawn.
    /// @dev Warning: the secret must be unpredictable and never reused; the reference daemon
    ///      derives it with HMAC-SHA256 from the account key and a counter.
    function commitSecret(bytes32 secretHash) external;

    // ─────────────────────────────────────────────────────────── Jobs

    /// @notice Posts a job and pulls the escrow (price plus audit fee) from the caller. The price is
    ///         at least `numTasks * minTaskPrice` and at most `minVerifierStake * verifierSlashBps
    ///         / 10_000`: a verifier's wrong verdict always costs it at least the job's price. The
    ///         sampled work (`price * min(sampleTasks, numTasks) / numTasks`) is at most that cap
    ///         over `SAMPLE_VALUE_DIVISOR` (SampleValueAboveMaximum), so a lazy pass never saves
    ///         more than it risks; a dearer workload is posted as more tasks or several jobs.
    /// @return jobId The new job's id, counting from 1.
    function postJob(JobRequest calldata request) external returns (uint256 jobId);

    /// @notice `postJob` with an EIP-2612 permit for the escrow, in one transaction.
    /// @dev A permit already used (e.g. front-run) is ignored; the allowance then decides.
    function postJobWithPermit(JobRequest calldata request, uint256 deadline, uint8 v, bytes32 r, bytes32 s)
        external
        returns (uint256 jobId);

    /// @notice Posts a job group: each request becomes a job (its own id, `JobPosted`, terms and
    ///         escrow, claimed, audited, challenged and settled alone), all paid by one transfer of
    ///         the sum of their escrows. `groupId` 0 starts a group, whose id is its first job's;
    ///         the group's requester re-posts failed or expired shards into it by naming it.
    ///         Emits `GroupPosted`. Returns the first job's id; the rest follow in order.
    /// @dev Warning: the contract does not check that the shards split one job: which inputs each
    ///      covers is for the requester's client to record in its spec, and to merge.
    /// @dev Warning: at most MAX_GROUP_SHARDS (256) shards a call; the gas per extra shard is
    ///      printed by `scripts/bench_gas.py` (`gas_per_extra_shard_64`).
    function postJobGroup(JobRequest[] calldata shards, uint256 groupId) external returns (uint256 firstJobId);

    /// @notice The requester cancels an open job; the whole escrow is credited back.
    function cancelJob(uint256 jobId, JobTerms calldata terms) external;

    /// @notice Claims an open job, locking `price * collateralBps / 10_000` of the caller's stake
    ///         until settlement. The result is due within the job's `execWindow`.
    /// @param proof Merkle proof of the caller in the job's allowlist (empty when it has none).
    function claimJob(uint256 jobId, JobTerms calldata terms, bytes32[] calldata proof) external;

    /// @notice Anyone reopens a claimed job whose submission deadline has passed. The provider's
    ///         collateral is slashed: `rewardBps` of it to the caller, the rest burned.
    function reclaimExpired(uint256 jobId, JobTerms calldata terms) external;

    /// @notice The requester or the provider of a confidential job publishes its content key,
    ///         wrapped to `to`'s X25519 key (from `to`'s signed metadata): the requester to the
    ///         claimant of an Open job, the provider to the drawn verifier and panel members.
    ///         The requester's first release to the claimant starts the claimant's key window.
    ///         A release answers no reveal demand: the sealed outputs must go on-chain too.
    /// @dev Warning: the contract cannot check that `wrappedKey` opens the job's content. A
    ///      claimant given a bad key releases its claim within `keyWindow`; a verifier given a
    ///      bad key fails the job, and the panel re-checks it with keys of its own. Nobody but
    ///      the verifier can tell a bad key to it from a good one, so a provider that wraps
    ///      garbage to the verifier and good keys to the panel would win the appeal: the
    ///      requester's client wraps the key in the spec to the verifiers in the draw at
    ///      posting, and they use that one (docs/DESIGN.md, "Confidential jobs on-chain").
    function releaseKey(uint256 jobId, JobTerms calldata terms, address to, bytes calldata wrappedKey) external;

    /// @notice The provider of an Open job gives its claim back, unslashed, when the requester has
    ///         not released its key, or within `keyWindow` of the release (the key was unusable);
    ///         never after the submission deadline, when the claim is `reclaimExpired`'s.
    ///         Whoever gives a claim back may not claim that job again (`ClaimGivenBack`).
    /// @dev Warning: a claimant may leave, unpaid, after reading the inputs within the key window.
    ///      A Sybil with k staked addresses can so delay the job by up to k execution windows, at
    ///      no cost but gas and k locked stakes. Requesters who cannot accept that post Directed jobs.
    function releaseClaim(uint256 jobId, JobTerms calldata terms) external;

    /// @notice The claiming provider commits to its outputs. The seed block is the next block.
    /// @param outputCid CID of the output manifest in the content store.
    /// @param resultRoot Merkle root (OpenZeppelin MerkleProof, sorted pairs) over per-task leaves.
    function submitResult(uint256 jobId, string calldata outputCid, bytes32 resultRoot) external;

    /// @notice Draws the job's verifier from the seed block's hash. Anyone may call it once the
    ///         seed block exists; the first call that needs the seed must. A seed block that has
    ///         gone out of view (256 blocks), or since which a sync phase has passed, is replaced
    ///         by a later block (`SeedRearmed`): the audit is delayed, never skipped.
    /// @dev Warning: reverts with NoEligibleVerifier when no verifier but the job's parties is
    ///      present; the job then waits for one (its escrow and collateral stay locked).
    /// @dev Warning: weights change only in sync phases (`syncVerifier`), and a draw never spans
    ///      one, so nobody who learns the seed can move the draw by staking or unstaking, nor
    ///      veto it. A block producer of the seed block can still choose among verifiers by
    ///      grinding the hash.
    function lockSeed(uint256 jobId, JobTerms calldata terms) external;

    /// @notice The drawn verifier, unable to retrieve the sampled outputs, reveals its secret and
    ///         demands that the provider reveal them on-chain within `revealWindow`.
    function demandReveal(uint256 jobId, JobTerms calldata terms, bytes32 secret, bytes32 nextSecretHash) external;

    /// @notice The provider answers a reveal demand with the sampled tasks' outputs and proofs,
    ///         in the order of `sampledTasks`. A confidential job's outputs go sealed: each is an age
    ///         file to the job key whose plaintext is the proof's length (one byte), its 32-byte
    ///         hashes and the output; its `proofs` entries are empty. The key still reaches the
    ///         verifier by `releaseKey`.
    /// @dev Warning: the contract cannot open a confidential job's sealed outputs, so it proves
    ///      only that they were put on-chain in time; the verifier and the panel, who hold the
    ///      key, prove each against the root, and a sealed output that does not open or prove
    ///      fails the job as a wrong output does.
    function revealOutputs(
        uint256 jobId,
        JobTerms calldata terms,
        bytes[] calldata outputs,
        bytes32[][] calldata proofs
    ) external;

    /// @notice Anyone rejects a job whose provider let a reveal demand expire: the provider is
    ///         slashed as for a failed audit, and that is final.
    function failUnrevealed(uint256 jobId, JobTerms calldata terms) external;

    /// @notice The drawn verifier's verdict, before its deadline. It reveals the secret the draw
    ///         committed it to (unless a reveal demand did) and commits the next one.
    ///         The verdict is provisional for the job's challenge window.
    function submitVerdict(
        uint256 jobId,
        JobTerms calldata terms,
        Verdict verdict,
        string calldata evidenceCid,
        bytes32 secret,
        bytes32 nextSecretHash
    ) external;

    /// @notice Anyone penalizes a drawn verifier that missed its deadline and arms a new draw.
    function redrawVerifier(uint256 jobId, JobTerms calldata terms) external;

    /// @notice Challenges a provisional verdict within the challenge window, pulling a bond of
    ///         `PANEL_SIZE` audit fees. The requester may challenge a pass or inconclusive, the
    ///         provider a fail, and any staked verifier other than the job's verifier any verdict.
    function challenge(uint256 jobId, JobTerms calldata terms) external;

    /// @notice Draws the panel from a block after the challenge: `PANEL_SIZE` seats, each an
    ///         independent stake-weighted draw (with replacement: a verifier drawn twice holds two
    ///         seats and two votes), excluding the job's parties, its verifier and the challenger.
    ///         Anyone may call it. With nobody eligible, the challenge is dismissed and the bond
    ///         returned.
    function drawPanel(uint256 jobId, JobTerms calldata terms) external;

    /// @notice A panel member commits to `keccak256(abi.encode(jobId, member, vote, salt))`, for
    ///         every seat it holds.
    function commitVote(uint256 jobId, bytes32 commitment) external;

    /// @notice A panel member reveals its vote, for every seat it holds, after the commit phase
    ///         (or once all seats committed).
    function revealVote(uint256 jobId, Verdict vote, bytes32 salt) external;

    /// @notice Anyone settles a challenge after the reveal phase (or once all revealed). The
    ///         verdict with most votes wins; a tie or no vote keeps the first verdict and returns
    ///         the bond. Members who did not reveal lose `noShowSlashBps` of their stake. A majority
    ///         for pass on an inconclusive verdict, or for inconclusive on a pass, upholds it: both
    ///         pay the provider, so nobody was wrong and nobody is slashed.
    function resolveChallenge(uint256 jobId, JobTerms calldata terms) external;

    /// @notice Anyone settles an audited job whose challenge window has passed.
    function finalize(uint256 jobId, JobTerms calldata terms) external;

    /// @notice Transfers the caller's whole credited balance.
    function withdraw() external;

    /// @notice Transfers the accrued protocol fees to the treasury. Anyone may call it.
    function withdrawProtocolFees() external;

    // ─────────────────────────────────────────────────────────── Owner

    /// @notice Publishes new terms for jobs posted from now on; running jobs keep theirs.
    /// @dev Bounded: protocol fee ≤ MAX_FEE_BPS, verifier fee in [MIN_VERIFIER_FEE_BPS,
    ///      MAX_VERIFIER_FEE_BPS], collateral in [MIN_COLLATERAL_BPS, MAX_COLLATERAL_BPS], windows
    ///      in [MIN_WINDOW, MAX_WINDOW]. Requesters bound what they accept in their request.
    function setTerms(Terms calldata terms) external;

    /// @notice Sets stake minimums, the minimum task price, the cooldown, windows and slashes.
    /// @dev Bounded (see the constants). The owner can never move escrow, stakes or balances.
    function setParams(Params calldata params) external;

    /// @notice Sets where protocol fees are credited.
    function setTreasury(address treasury) external;

    // ─────────────────────────────────────────────────────────── Views

    /// @notice A job's state and the hash of its terms (zero once the job has ended).
    function getJob(uint256 jobId) external view returns (JobStatus memory status, bytes32 termsHash);

    /// @notice A job's audit record.
    function auditOf(uint256 jobId) external view returns (Audit memory);

    /// @notice A job's challenge and panel (empty when unchallenged).
    function panelOf(uint256 jobId) external view returns (Panel memory);

    /// @notice The result root a job's provider committed to (zero before submission).
    function resultRoot(uint256 jobId) external view returns (bytes32);

    /// @notice The audit fee of a job: `price * min(sampleTasks, numTasks) * verifierFeeBps /
    ///         (numTasks * 10_000)`.
    function auditFee(uint256 price, uint256 numTasks, uint256 sampleTasks, uint256 verifierFeeBps)
        external
        pure
        returns (uint256);

    /// @notice The task indices an audit re-executes once its sample seed is revealed.
    function sampledTasks(uint256 jobId, JobTerms calldata terms) external view returns (uint32[] memory);

    /// @notice `min(sampleTasks, numTasks)` distinct indices drawn as
    ///         `keccak256(abi.encode(sampleSeed, i)) % numTasks` for i = 1, 2, ... (repeats
    ///         skipped, at most 4 draws per index; all tasks when the sample covers them).
    function sampleOf(bytes32 sampleSeed, uint256 numTasks, uint256 sampleTasks)
        external
        pure
        returns (uint32[] memory);

    /// @notice The verifier a seed would draw now, excluding `excluded`: the draw `lockSeed` and
    ///         `drawPanel` make, as a view.
    function drawVerifier(bytes32 seed, address[] calldata excluded) external view returns (address);

    function credits(address account) external view returns (uint256);
    function protocolFees() external view returns (uint256);
    function burned() external view returns (uint256);
    function providerStake(address account) external view returns (Stake memory);
    function verifierStake(address account) external view returns (Stake memory);
    /// @notice A verifier's weight in the draw: its stake while it has a secret commitment, else 0.
    function verifierWeight(address account) external view returns (uint256);
    function totalVerifierWeight() external view returns (uint256);
    function verifierCount() external view returns (uint256);
    function secretOf(address verifier) external view returns (bytes32);
    function terms() external view returns (Terms memory);
    function params() external view returns (Params memory);
    function treasury() external view returns (address);
    function nextJobId() external view returns (uint256);
}
