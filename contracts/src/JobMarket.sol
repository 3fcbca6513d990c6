// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Ownable, Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

import {IJobMarket} from "./interfaces/IJobMarket.sol";

/// @title JobMarket
/// @notice The WEBI protocol core: escrow, staking, claims, result commitments, sampled audits
///         and settlement. See IJobMarket for the protocol and each function's contract.
/// @dev Every entry point runs checks, state changes, events, then token transfers last.
///      Values move into withdrawable balances only through `_credit`, which emits `Credited`.
/// @dev Warning: the owner can change fees, collateral, windows and stake minimums within the hard
///      bounds below, for jobs posted afterwards only; the owner cannot move escrow, stakes or
///      balances, nor change a posted job's terms.
contract JobMarket is IJobMarket, Ownable2Step, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    // ─────────────────────────────────────────────────────────── Hard bounds

    uint256 public constant BPS = 10_000;
    uint256 public constant MAX_FEE_BPS = 2_000;
    uint256 public constant MIN_COLLATERAL_BPS = 1_000;
    uint256 public constant MAX_COLLATERAL_BPS = 50_000;
    uint256 public constant MIN_AUDIT_WINDOW = 1 minutes;
    uint256 public constant MAX_AUDIT_WINDOW = 7 days;
    uint256 public constant MIN_COOLDOWN = 1 hours;
    uint256 public constant MAX_COOLDOWN = 60 days;
    uint256 public constant MIN_EXEC_WINDOW = 1 minutes;
    uint256 public constant MAX_EXEC_WINDOW = 30 days;
    /// @notice The owner cannot set the minimum audit rate below this: audits never switch off.
    uint256 public constant MIN_SAMPLE_RATE_BPS = 100;
    uint256 public constant MAX_SAMPLE_TASKS = 64;
    /// @notice How many verifier entries the seed may probe for an eligible one.
    uint256 public constant MAX_VERIFIER_PROBES = 8;
    /// @notice `blockhash` only sees the last 256 blocks.
    uint256 public constant SEED_HORIZON = 256;

    // ─────────────────────────────────────────────────────────── Storage

    struct VerifierEntry {
        address account;
        uint40 exitAt;
    }

    /// @dev What postJob and claimJob read, in one slot: the current terms, the sample-rate
    ///      bounds, the job counter and the provider minimum.
    struct Config {
        uint16 protocolFeeBps;
        uint16 verifierFeeBps;
        uint16 collateralBps;
        uint32 auditWindow;
        uint16 minSampleRateBps;
        uint16 maxSampleRateBps;
        uint48 nextJobId;
        uint96 minProviderStake;
    }

    IERC20 public immutable token;

    Config internal _config;
    uint96 internal _minVerifierStake;
    uint32 internal _unstakeCooldown;
    /// @dev Protocol fees accrue beside the treasury address: one slot, touched once per settlement.
    address public treasury;
    uint96 internal _protocolFees;

    mapping(uint256 jobId => bytes32) internal _termsHashes;
    mapping(uint256 jobId => JobStatus) internal _statuses;
    mapping(uint256 jobId => bytes32) internal _lockedSeeds;
    mapping(address account => uint256) public credits;
    mapping(address account => Stake) internal _providers;
    mapping(address account => Stake) internal _verifiers;
    /// @dev Append-only, so that an index chosen by a seed keeps naming the same verifier.
    VerifierEntry[] internal _verifierList;

    constructor(IERC20 token_, address owner_, address treasury_, Terms memory terms_, Params memory params_)
        Ownable(owner_)
    {
        token = token_;
        _config.nextJobId = 1;
        _setTreasury(treasury_);
        _setTerms(terms_);
        _setParams(params_);
    }

    // ─────────────────────────────────────────────────────────── Staking

    /// @inheritdoc IJobMarket
    function register(Role role, uint96 amount, string calldata metadataCid) external nonReentrant {
        Stake storage s = _stakeOf(role, msg.sender);
        if (s.stake != 0) revert AlreadyRegistered(msg.sender, role);
        uint256 minimum = _minStake(role);
        if (amount < minimum) revert InsufficientStake(msg.sender, amount, minimum);
        s.stake = amount;
        if (role == Role.Verifier) {
            _verifierList.push(VerifierEntry(msg.sender, 0));
            s.entry = SafeCast.toUint24(_verifierList.length);
        }
        emit Registered(msg.sender, role, amount, metadataCid);
        token.safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @inheritdoc IJobMarket
    function addStake(Role role, uint96 amount) external nonReentrant {
        if (amount == 0) revert ZeroAmount();
        Stake storage s = _stakeOf(role, msg.sender);
        if (s.stake == 0) revert NotRegistered(msg.sender, role);
        s.stake += amount;
        emit StakeAdded(msg.sender, role, amount);
        token.safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @inheritdoc IJobMarket
    function requestUnstake(Role role, uint96 amount) external {
        if (amount == 0) revert ZeroAmount();
        Stake storage s = _stakeOf(role, msg.sender);
        if (s.stake == 0) revert NotRegistered(msg.sender, role);
        uint256 free = s.stake - s.locked;
        if (amount > free) revert InsufficientStake(msg.sender, free, amount);
        uint96 remaining = s.stake - amount;
        uint256 minimum = _minStake(role);
        if (remaining != 0 && remaining < minimum) revert InsufficientStake(msg.sender, remaining, minimum);
        uint256 unlockAt = block.timestamp + _unstakeCooldown;
        s.stake = remaining;
        s.unbonding += amount;
        s.unlockAt = uint40(unlockAt);
        if (remaining == 0 && role == Role.Verifier) {
            _verifierList[s.entry - 1].exitAt = uint40(block.timestamp);
            s.entry = 0;
        }
        emit UnstakeRequested(msg.sender, role, amount, unlockAt);
    }

    /// @inheritdoc IJobMarket
    function withdrawStake(Role role) external nonReentrant {
        Stake storage s = _stakeOf(role, msg.sender);
        uint256 amount = s.unbonding;
        if (amount == 0) revert NothingToWithdraw(msg.sender);
        if (block.timestamp < s.unlockAt) revert CooldownActive(msg.sender, s.unlockAt);
        s.unbonding = 0;
        emit StakeWithdrawn(msg.sender, role, amount);
        token.safeTransfer(msg.sender, amount);
    }

    // ─────────────────────────────────────────────────────────── Jobs

    /// @inheritdoc IJobMarket
    function postJob(JobRequest calldata request) external nonReentrant returns (uint256 jobId) {
        jobId = _post(request);
        token.safeTransferFrom(msg.sender, address(this), request.price);
    }

    /// @inheritdoc IJobMarket
    function postJobWithPermit(JobRequest calldata request, uint256 deadline, uint8 v, bytes32 r, bytes32 s)
        external
        nonReentrant
        returns (uint256 jobId)
    {
        // A failed permit is not fatal: a front-runner may have used it already, and the
        // allowance it set is what transferFrom needs.
        try IERC20Permit(address(token)).permit(msg.sender, address(this), request.price, deadline, v, r, s) {}
            catch {}
        jobId = _post(request);
        token.safeTransferFrom(msg.sender, address(this), request.price);
    }

    /// @inheritdoc IJobMarket
    function cancelJob(uint256 jobId, JobTerms calldata terms_) external {
        JobStatus storage status = _checked(jobId, terms_, JobState.Open);
        if (msg.sender != terms_.requester) revert NotRequester(jobId, msg.sender);
        status.state = JobState.Cancelled;
        delete _termsHashes[jobId];
        emit JobCancelled(jobId);
        _credit(terms_.requester, jobId, CreditKind.Refund, terms_.price);
    }

    /// @inheritdoc IJobMarket
    function claimJob(uint256 jobId, JobTerms calldata terms_) external {
        _checked(jobId, terms_, JobState.Open);
        if (block.timestamp > terms_.claimBy) revert ClaimWindowClosed(jobId, terms_.claimBy);
        Stake storage s = _providers[msg.sender];
        if (s.stake == 0) revert NotRegistered(msg.sender, Role.Provider);
        uint256 minimum = _config.minProviderStake;
        if (s.stake < minimum) revert InsufficientStake(msg.sender, s.stake, minimum);
        uint256 collateral = _collateral(terms_);
        uint256 free = s.stake - s.locked;
        if (free < collateral) revert InsufficientStake(msg.sender, free, collateral);
        // collateral <= free <= type(uint96).max, so the cast cannot truncate.
        s.locked += uint96(collateral);
        uint256 deadline = block.timestamp + terms_.execWindow;
        _statuses[jobId] = JobStatus(JobState.Claimed, msg.sender, SafeCast.toUint32(deadline), 0, 0);
        emit JobClaimed(jobId, msg.sender, collateral, deadline);
    }

    /// @inheritdoc IJobMarket
    function reclaimExpired(uint256 jobId, JobTerms calldata terms_) external {
        JobStatus storage status = _checked(jobId, terms_, JobState.Claimed);
        uint256 deadline = status.stamp;
        if (block.timestamp <= deadline) revert SubmitDeadlineNotReached(jobId, deadline);
        address provider = status.provider;
        uint96 collateral = uint96(_collateral(terms_));
        Stake storage s = _providers[provider];
        s.locked -= collateral;
        s.stake -= collateral;
        delete _statuses[jobId]; // back to Open: the terms hash is still there
        emit ClaimExpired(jobId, provider, collateral);
        _credit(terms_.requester, jobId, CreditKind.SlashCompensation, collateral);
    }

    /// @inheritdoc IJobMarket
    function submitResult(uint256 jobId, string calldata outputCid, bytes32 resultRoot) external {
        JobStatus storage status = _statuses[jobId];
        _expect(jobId, status.state, JobState.Claimed);
        if (msg.sender != status.provider) revert NotProvider(jobId, msg.sender);
        uint256 deadline = status.stamp;
        if (block.timestamp > deadline) revert SubmitDeadlinePassed(jobId, deadline);
        // The seed block comes after this one: nothing running in this block can know its hash.
        uint256 seedBlock = block.number + 1;
        if (seedBlock > type(uint32).max) revert BlockNumberTooLarge(seedBlock);
        _statuses[jobId] = JobStatus(
            JobState.Submitted,
            msg.sender,
            uint32(block.timestamp),
            uint32(seedBlock),
            SafeCast.toUint24(_verifierList.length)
        );
        emit ResultSubmitted(jobId, msg.sender, outputCid, resultRoot, seedBlock);
    }

    /// @inheritdoc IJobMarket
    function lockSeed(uint256 jobId) external {
        JobStatus storage status = _statuses[jobId];
        _expect(jobId, status.state, JobState.Submitted);
        if (_lockedSeeds[jobId] != 0) return;
        bytes32 seed = _seed(jobId, status);
        _lockedSeeds[jobId] = seed;
        emit SeedLocked(jobId, seed);
    }

    /// @inheritdoc IJobMarket
    function submitVerdict(uint256 jobId, JobTerms calldata terms_, bool passed, string calldata evidenceCid)
        external
    {
        JobStatus storage status = _checked(jobId, terms_, JobState.Submitted);
        _checkVerifier(jobId, status, terms_);
        address provider = status.provider;
        uint96 collateral = uint96(_collateral(terms_));
        Stake storage s = _providers[provider];
        // collateral <= locked: it was locked at claim from the same terms.
        s.locked -= collateral;
        delete _termsHashes[jobId];
        if (passed) {
            status.state = JobState.Finalized;
            emit VerdictSubmitted(jobId, msg.sender, true, evidenceCid);
            uint256 verifierFee = uint256(terms_.price) * terms_.verifierFeeBps / BPS;
            _settle(jobId, provider, terms_.price, terms_.protocolFeeBps, msg.sender, verifierFee);
        } else {
            s.stake -= collateral;
            status.state = JobState.Rejected;
            emit VerdictSubmitted(jobId, msg.sender, false, evidenceCid);
            _compensate(jobId, terms_, collateral);
        }
    }

    /// @inheritdoc IJobMarket
    function finalize(uint256 jobId, JobTerms calldata terms_) external {
        JobStatus storage status = _checked(jobId, terms_, JobState.Submitted);
        uint256 auditEnd = uint256(status.stamp) + terms_.auditWindow;
        if (block.timestamp <= auditEnd) revert AuditWindowOpen(jobId, auditEnd);
        address provider = status.provider;
        _providers[provider].locked -= uint96(_collateral(terms_));
        status.state = JobState.Finalized;
        delete _termsHashes[jobId];
        emit JobFinalized(jobId);
        _settle(jobId, provider, terms_.price, terms_.protocolFeeBps, address(0), 0);
    }

    /// @inheritdoc IJobMarket
    function withdraw() external nonReentrant {
        uint256 amount = credits[msg.sender];
        if (amount == 0) revert NothingToWithdraw(msg.sender);
        credits[msg.sender] = 0;
        emit Withdrawn(msg.sender, amount);
        token.safeTransfer(msg.sender, amount);
    }

    /// @inheritdoc IJobMarket
    function withdrawProtocolFees() external nonReentrant {
        address to = treasury;
        uint256 amount = _protocolFees;
        if (amount == 0) revert NothingToWithdraw(to);
        _protocolFees = 0;
        emit ProtocolFeesWithdrawn(to, amount);
        token.safeTransfer(to, amount);
    }

    // ─────────────────────────────────────────────────────────── Owner

    /// @inheritdoc IJobMarket
    function setTerms(Terms calldata terms_) external onlyOwner {
        _setTerms(terms_);
    }

    /// @inheritdoc IJobMarket
    function setParams(Params calldata params_) external onlyOwner {
        _setParams(params_);
    }

    /// @inheritdoc IJobMarket
    function setTreasury(address treasury_) external onlyOwner {
        _setTreasury(treasury_);
    }

    // ─────────────────────────────────────────────────────────── Views

    /// @inheritdoc IJobMarket
    function getJob(uint256 jobId) external view returns (JobStatus memory status, bytes32 termsHash) {
        status = _statuses[jobId];
        termsHash = _termsHashes[jobId];
        if (status.state == JobState.None && termsHash != 0) status.state = JobState.Open;
    }

    /// @inheritdoc IJobMarket
    function hashTerms(JobTerms calldata terms_) external pure returns (bytes32) {
        return keccak256(abi.encode(terms_));
    }

    /// @inheritdoc IJobMarket
    function auditOf(uint256 jobId, JobTerms calldata terms_)
        external
        view
        returns (bool audited, address verifier, bytes32 seed)
    {
        JobStatus storage status = _checked(jobId, terms_, JobState.Submitted);
        seed = _seed(jobId, status);
        (audited, verifier) = _assignment(status, terms_, seed);
    }

    /// @inheritdoc IJobMarket
    function sampledTasks(uint256 jobId, JobTerms calldata terms_) external view returns (uint32[] memory indices) {
        bytes32 seed = _seed(jobId, _checked(jobId, terms_, JobState.Submitted));
        uint256 n = terms_.numTasks;
        uint256 want = terms_.sampleTasks < n ? terms_.sampleTasks : n;
        indices = new uint32[](want);
        if (want == n) {
            for (uint256 i; i < n; ++i) indices[i] = uint32(i);
            return indices;
        }
        uint256 found;
        // Bounded: at most 4 draws per wanted index, and want <= MAX_SAMPLE_TASKS.
        for (uint256 draw = 1; draw <= 4 * want && found < want; ++draw) {
            uint32 candidate = uint32(uint256(keccak256(abi.encode(seed, draw))) % n);
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

    /// @inheritdoc IJobMarket
    function protocolFees() external view returns (uint256) {
        return _protocolFees;
    }

    /// @inheritdoc IJobMarket
    function providerStake(address account) external view returns (Stake memory) {
        return _providers[account];
    }

    /// @inheritdoc IJobMarket
    function verifierStake(address account) external view returns (Stake memory) {
        return _verifiers[account];
    }

    /// @inheritdoc IJobMarket
    function verifierAt(uint256 index) external view returns (address account, uint40 exitAt) {
        VerifierEntry storage e = _verifierList[index];
        return (e.account, e.exitAt);
    }

    /// @inheritdoc IJobMarket
    function verifierEntries() external view returns (uint256) {
        return _verifierList.length;
    }

    /// @inheritdoc IJobMarket
    function terms() external view returns (Terms memory) {
        Config storage c = _config;
        return Terms(c.protocolFeeBps, c.verifierFeeBps, c.collateralBps, c.auditWindow);
    }

    /// @inheritdoc IJobMarket
    function params() external view returns (Params memory) {
        Config storage c = _config;
        return Params(c.minProviderStake, _minVerifierStake, _unstakeCooldown, c.minSampleRateBps, c.maxSampleRateBps);
    }

    /// @inheritdoc IJobMarket
    function nextJobId() external view returns (uint256) {
        return _config.nextJobId;
    }

    // ─────────────────────────────────────────────────────────── Internal

    /// @dev The one place that credits value: every payout, refund, fee and slash goes through here
    ///      and emits `Credited`, so that the events alone rebuild every balance. Protocol fees
    ///      accrue in `_protocolFees` (withdrawn to the treasury) and are logged as the treasury's.
    function _credit(address account, uint256 jobId, CreditKind kind, uint256 amount) internal {
        if (amount == 0) return;
        if (kind == CreditKind.ProtocolFee) {
            // amount <= a job's price <= type(uint96).max; the sum is checked.
            _protocolFees += uint96(amount);
            account = treasury;
        } else {
            credits[account] += amount;
        }
        emit Credited(account, jobId, kind, amount);
    }

    /// @dev Splits a settled price: protocol fee, verifier fee (zero when unaudited), and the rest
    ///      to the provider, which takes the rounding remainder so that no wei is lost.
    function _settle(
        uint256 jobId,
        address provider,
        uint256 price,
        uint256 protocolFeeBps,
        address verifier,
        uint256 verifierFee
    ) internal {
        uint256 protocolFee = price * protocolFeeBps / BPS;
        _credit(provider, jobId, CreditKind.ProviderPayment, price - protocolFee - verifierFee);
        _credit(verifier, jobId, CreditKind.VerifierFee, verifierFee);
        _credit(address(0), jobId, CreditKind.ProtocolFee, protocolFee);
    }

    /// @dev A failed audit: the requester gets the price back; the slashed collateral pays the
    ///      verifier's fee (collateralBps >= verifierFeeBps, checked in _setTerms) and the rest of it
    ///      goes to the requester.
    function _compensate(uint256 jobId, JobTerms calldata terms_, uint256 collateral) internal {
        uint256 verifierFee = uint256(terms_.price) * terms_.verifierFeeBps / BPS;
        _credit(terms_.requester, jobId, CreditKind.Refund, terms_.price);
        _credit(msg.sender, jobId, CreditKind.VerifierFee, verifierFee);
        _credit(terms_.requester, jobId, CreditKind.SlashCompensation, collateral - verifierFee);
    }

    /// @dev Reverts unless the caller is the job's assigned verifier and the audit window is open.
    function _checkVerifier(uint256 jobId, JobStatus storage status, JobTerms calldata terms_) internal view {
        uint256 auditEnd = uint256(status.stamp) + terms_.auditWindow;
        if (block.timestamp > auditEnd) revert AuditWindowClosed(jobId, auditEnd);
        (bool audited, address verifier) = _assignment(status, terms_, _seed(jobId, status));
        if (!audited) revert NotAudited(jobId);
        if (msg.sender != verifier) revert NotAssignedVerifier(jobId, msg.sender, verifier);
    }

    function _post(JobRequest calldata request) internal returns (uint256 jobId) {
        Config memory c = _config;
        if (request.numTasks == 0) revert InvalidNumTasks(0);
        if (request.price == 0) revert InvalidPrice(0);
        if (request.claimBy <= block.timestamp) revert InvalidClaimBy(request.claimBy, block.timestamp);
        if (request.execWindow < MIN_EXEC_WINDOW || request.execWindow > MAX_EXEC_WINDOW) {
            revert InvalidExecWindow(request.execWindow, MIN_EXEC_WINDOW, MAX_EXEC_WINDOW);
        }
        if (request.sampleRateBps < c.minSampleRateBps || request.sampleRateBps > c.maxSampleRateBps) {
            revert SampleRateOutOfBounds(request.sampleRateBps, c.minSampleRateBps, c.maxSampleRateBps);
        }
        if (request.sampleTasks == 0 || request.sampleTasks > MAX_SAMPLE_TASKS) {
            revert InvalidSampleTasks(request.sampleTasks, MAX_SAMPLE_TASKS);
        }
        jobId = c.nextJobId;
        _config.nextJobId = c.nextJobId + 1;
        JobTerms memory t = JobTerms(
            msg.sender,
            request.price,
            request.numTasks,
            request.claimBy,
            request.execWindow,
            request.sampleRateBps,
            request.sampleTasks,
            c.protocolFeeBps,
            c.verifierFeeBps,
            c.collateralBps,
            c.auditWindow
        );
        _termsHashes[jobId] = keccak256(abi.encode(t));
        emit JobPosted(jobId, msg.sender, request.specCid, t);
    }

    /// @dev The job's status, after checking that `terms_` are the job's and that it is in `want`.
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
            calldatacopy(ptr, terms_, 352) // 11 words
            digest := keccak256(ptr, 352)
        }
    }

    /// @dev For calls that need no terms: `have` is a stored state (never Open).
    function _expect(uint256 jobId, JobState have, JobState want) internal view {
        if (have == want) return;
        if (have == JobState.None) {
            if (_termsHashes[jobId] == 0) revert JobNotFound(jobId);
            have = JobState.Open;
        }
        revert WrongState(jobId, have, want);
    }

    function _collateral(JobTerms calldata terms_) internal pure returns (uint256) {
        return uint256(terms_.price) * terms_.collateralBps / BPS;
    }

    /// @dev keccak256(blockhash(seedBlock), jobId), or the locked copy once the hash is out of view.
    function _seed(uint256 jobId, JobStatus storage status) internal view returns (bytes32) {
        bytes32 locked = _lockedSeeds[jobId];
        if (locked != 0) return locked;
        uint256 seedBlock = status.seedBlock;
        if (block.number <= seedBlock) revert SeedNotReady(jobId, seedBlock);
        if (block.number - seedBlock > SEED_HORIZON) revert SeedExpired(jobId, seedBlock);
        return keccak256(abi.encode(blockhash(seedBlock), jobId));
    }

    /// @dev Audited when `seed % BPS < sampleRateBps` and an eligible verifier exists. The verifier
    ///      is probed from `keccak256(seed, 0) % verifierCount` among the entries that existed at
    ///      submission, skipping those that had left by then and the job's own parties. Every
    ///      input is fixed once the job is submitted, so the answer never changes afterwards.
    function _assignment(JobStatus storage status, JobTerms calldata terms_, bytes32 seed)
        internal
        view
        returns (bool, address)
    {
        if (uint256(seed) % BPS >= terms_.sampleRateBps) return (false, address(0));
        uint256 count = status.verifierCount;
        if (count == 0) return (false, address(0));
        uint256 start = uint256(keccak256(abi.encode(seed, uint256(0)))) % count;
        uint256 probes = count < MAX_VERIFIER_PROBES ? count : MAX_VERIFIER_PROBES;
        uint256 submittedAt = status.stamp;
        address provider = status.provider;
        for (uint256 k; k < probes; ++k) {
            VerifierEntry storage e = _verifierList[(start + k) % count];
            bool present = e.exitAt == 0 || e.exitAt > submittedAt;
            if (present && e.account != provider && e.account != terms_.requester) return (true, e.account);
        }
        return (false, address(0));
    }

    function _stakeOf(Role role, address account) internal view returns (Stake storage) {
        return role == Role.Provider ? _providers[account] : _verifiers[account];
    }

    function _minStake(Role role) internal view returns (uint256) {
        return role == Role.Provider ? _config.minProviderStake : _minVerifierStake;
    }

    function _setTerms(Terms memory t) internal {
        _bound("protocolFeeBps", t.protocolFeeBps, 0, MAX_FEE_BPS);
        _bound("verifierFeeBps", t.verifierFeeBps, 0, MAX_FEE_BPS);
        // The collateral must cover the verifier fee it pays on a failed audit.
        uint256 minCollateral = t.verifierFeeBps > MIN_COLLATERAL_BPS ? t.verifierFeeBps : MIN_COLLATERAL_BPS;
        _bound("collateralBps", t.collateralBps, minCollateral, MAX_COLLATERAL_BPS);
        _bound("auditWindow", t.auditWindow, MIN_AUDIT_WINDOW, MAX_AUDIT_WINDOW);
        Config storage c = _config;
        c.protocolFeeBps = t.protocolFeeBps;
        c.verifierFeeBps = t.verifierFeeBps;
        c.collateralBps = t.collateralBps;
        c.auditWindow = t.auditWindow;
        emit TermsUpdated(t);
    }

    function _setParams(Params memory p) internal {
        _bound("minProviderStake", p.minProviderStake, 1, type(uint96).max);
        _bound("minVerifierStake", p.minVerifierStake, 1, type(uint96).max);
        _bound("unstakeCooldown", p.unstakeCooldown, MIN_COOLDOWN, MAX_COOLDOWN);
        _bound("minSampleRateBps", p.minSampleRateBps, MIN_SAMPLE_RATE_BPS, BPS);
        _bound("maxSampleRateBps", p.maxSampleRateBps, p.minSampleRateBps, BPS);
        Config storage c = _config;
        c.minProviderStake = p.minProviderStake;
        c.minSampleRateBps = p.minSampleRateBps;
        c.maxSampleRateBps = p.maxSampleRateBps;
        _minVerifierStake = p.minVerifierStake;
        _unstakeCooldown = p.unstakeCooldown;
        emit ParamsUpdated(p);
    }

    function _setTreasury(address treasury_) internal {
        if (treasury_ == address(0)) revert ZeroAddress();
        treasury = treasury_;
        emit TreasuryUpdated(treasury_);
    }

    function _bound(bytes32 name, uint256 value, uint256 min, uint256 max) internal pure {
        if (value < min || value > max) revert ParamOutOfBounds(name, value, min, max);
    }
}
