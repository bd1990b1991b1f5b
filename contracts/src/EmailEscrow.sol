// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title Spring Mail escrow
/// @notice Holds QTUM (or a QRC20 token) for an email address until the recipient
/// claims it with the deposit's claim key, or the sender takes it back.
/// @dev One deposit is one storage slot: the keccak hash of its fields, keyed by the
/// deposit's claim key address. Claims and refunds pass the fields back as calldata and
/// are checked against that hash. There is no owner, no admin and no upgrade path.
/// v2: relayer fees accrue in the contract (`feesAccrued`, `withdrawFees`) instead of being paid
/// out in every claim, and `claimBatch` settles many claims in one transaction, skipping
/// (with a `ClaimSkipped` event) any claim that is not valid at execution time. An email-mode
/// claim that the deposit's watcher submits itself carries no attestation.
/// v3: mailbox wallets. A native-coin balance held under an account commitment, moved by
/// the account's controller within the limits its owner sets, or by the owner's own key
/// without limits (docs/PROTOCOL.md, "Mailbox wallets").
contract EmailEscrow {
    // ---------------------------------------------------------------- types

    /// @notice One escrowed payment. `amount` is in base units (satoshi for QTUM).
    struct Deposit {
        address sender; // who paid; refunds go here
        address token; // address(0) = native coin; else a QRC20/ERC20 token
        uint96 amount; // base units
        uint40 expiry; // unix seconds; after it, refund only
        uint8 flags; // bit 0 CANCELLABLE: sender may refund before expiry
        address watcher; // address(0): link mode; else this EOA or ERC-1271 contract attests (or submits)
        bytes32 recipient; // keccak256("springmail/v1" 0x00 email 0x00 salt)
    }

    // ---------------------------------------------------------------- errors

    /// @notice A deposit already uses this claim key.
    error ClaimKeyInUse(address claimKey);
    /// @notice The claim key is the zero address.
    error ZeroClaimKey();
    /// @notice The amount is zero.
    error ZeroAmount();
    /// @notice `d.sender` is not the caller.
    error SenderMismatch(address sender, address caller);
    /// @notice The native value sent does not equal `d.amount` (or is non-zero for a token deposit).
    error ValueMismatch(uint256 expected, uint256 got);
    /// @notice The expiry is not in the future.
    error ExpiryInPast(uint40 expiry, uint256 nowTs);
    /// @notice The token delivered less (or more) than `d.amount`.
    error TokenShortfall(uint256 expected, uint256 received);
    /// @notice No open deposit matches this claim key and these fields.
    error UnknownDeposit(address claimKey, bytes32 depositHash);
    /// @notice The deposit's expiry has passed; only a refund is possible.
    error Expired(uint40 expiry, uint256 nowTs);
    /// @notice The signed claim's deadline has passed.
    error DeadlinePassed(uint40 deadline, uint256 nowTs);
    /// @notice The relayer's fee is above the signed maximum or above the amount.
    error FeeTooHigh(uint96 fee, uint96 maxFee);
    /// @notice The claim key's signature does not match the claim.
    error BadClaimSignature(address claimKey);
    /// @notice The watcher's attestation does not match the claim.
    error BadAttestation(address watcher);
    /// @notice The caller may not refund this deposit now.
    error RefundNotAllowed(address caller, uint40 expiry, uint256 nowTs);
    /// @notice Paying `to` failed.
    error TransferFailed(address token, address to, uint256 amount);
    /// @notice The caller has no accrued fees in this token.
    error NoFees(address relayer, address token);
    /// @notice Fees cannot be withdrawn to the zero address.
    error ZeroPayee();
    /// @notice The account is not open.
    error AccountNotOpen(bytes32 account);
    /// @notice The account is open already (or the id is zero).
    error AccountExists(bytes32 account);
    /// @notice The caller is neither the account's controller nor its owner, or may not do this.
    error NotController(bytes32 account, address caller);
    /// @notice The movement names another nonce than the account's.
    error BadNonce(bytes32 account, uint256 expected, uint256 got);
    /// @notice The controller's movement is above the per-payment limit or what is left of today's.
    error LimitExceeded(bytes32 account, uint256 amount, uint256 allowed);
    /// @notice The account's balance is below the amount.
    error InsufficientBalance(bytes32 account, uint256 balance, uint256 amount);
    /// @notice A controller or owner cannot be the zero address.
    error ZeroAddress();
    /// @notice Accounts hold the native coin only; or a payment's flags lack FROM_ACCOUNT.
    error NotAccountDeposit(address token, uint8 flags);

    // ---------------------------------------------------------------- events

    /// @notice A deposit was made; the event carries every field so anyone can rebuild it.
    event Deposited(address indexed claimKey, address indexed sender, Deposit deposit);
    /// @notice A deposit was claimed: `amount - fee` went to `to`, `fee` to `relayer`.
    event Claimed(address indexed claimKey, address indexed to, uint256 amount, uint256 fee, address relayer);
    /// @notice A deposit went back to its sender.
    event Refunded(address indexed claimKey, address indexed sender, uint256 amount);
    /// @notice `claimBatch` left this claim unpaid; `reason` is the selector of the error a
    /// single `claim` would have reverted with. The deposit is unchanged.
    event ClaimSkipped(address indexed claimKey, bytes4 reason);
    /// @notice A relayer withdrew `amount` of its accrued fees in `token` to `to`.
    event FeesWithdrawn(address indexed relayer, address indexed token, address to, uint256 amount);
    /// @notice An account was opened under `controller`, with these limits.
    event AccountOpened(bytes32 indexed account, address indexed controller, uint256 perPayment, uint256 perDay);
    /// @notice `amount` moved from `from` to `to`. An id below 2^160 is not an account: as
    /// `from`, the claim key of the deposit paid in (claimInto; a refund when `nonce` is 0);
    /// as `to`, the address paid out (withdrawal). `nonce` is the account's that ordered it.
    event Moved(bytes32 indexed from, bytes32 indexed to, uint256 amount, uint256 nonce, bytes32 mailHash);
    /// @notice An account paid a new deposit (in place of `Deposited`).
    event AccountDeposited(
        bytes32 indexed account, address indexed claimKey, Deposit deposit, uint256 nonce, bytes32 mailHash
    );
    /// @notice The account's owner key is now `owner`.
    event OwnerBound(bytes32 indexed account, address indexed owner, uint256 nonce, bytes32 mailHash);
    /// @notice The account's controller is now `controller`.
    event ControllerChanged(bytes32 indexed account, address indexed controller, uint256 nonce, bytes32 mailHash);
    /// @notice The account's limits are now these.
    event LimitsChanged(bytes32 indexed account, uint256 perPayment, uint256 perDay);

    // ---------------------------------------------------------------- batch input

    /// @notice One claim of a `claimBatch`: the arguments of `claim`, in the same order.
    struct ClaimArgs {
        address claimKey;
        Deposit d;
        address to;
        uint96 fee;
        uint96 maxFee;
        uint40 deadline;
        bytes linkSig;
        bytes attestation;
    }

    // ---------------------------------------------------------------- constants

    uint8 internal constant CANCELLABLE = 1;
    /// @dev A deposit paid from an account: its hash also binds the account.
    uint8 internal constant FROM_ACCOUNT = 2;
    uint256 internal constant MASK48 = 0xffffffffffff;
    uint256 internal constant MASK32 = 0xffffffff;
    uint256 internal constant MASK160 = (1 << 160) - 1;
    /// @dev One nonce step in word 0 (the nonce sits at bits 48..79).
    uint256 internal constant NONCE_ONE = 1 << 48;
    /// @dev secp256k1n / 2: signatures with a larger s are malleable twins and refused.
    uint256 internal constant HALF_N = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0;
    /// @dev keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")
    bytes32 internal constant DOMAIN_TYPEHASH = 0x8b73c3c69bb8fe3d512ecc4cf759cc79239f7b179b0ffacaa9a75d522b39400f;
    /// @dev keccak256("SpringMail")
    bytes32 internal constant NAME_HASH = 0xbefe31c32b60af9d0cb8c8ac4d7bc091e465bd8564d87e8f115e890a438e9ae1;
    /// @dev keccak256("1")
    bytes32 internal constant VERSION_HASH = 0xc89efdaa54c0f20c7adf612882df0950f5a951637e0307cdcb4c672f298b8bc6;
    /// @dev keccak256("Claim(address claimKey,bytes32 deposit,address to,uint96 maxFee,uint40 deadline)")
    bytes32 internal constant CLAIM_TYPEHASH = 0x04df976db1b98bed7140d8bfa7a5e961b82bb8c39b8ee9544cd161f808d1056c;
    /// @dev keccak256("Attest(address claimKey,bytes32 deposit,address to,uint40 deadline)")
    bytes32 internal constant ATTEST_TYPEHASH = 0x73919d39c59538377af8bb4b90ad58c4af79eb232a2b7db96f1c4d70b9083f2a;
    /// @dev keccak256("ClaimInto(address claimKey,bytes32 deposit,bytes32 account,uint96 maxFee,uint40 deadline)")
    bytes32 internal constant CLAIM_INTO_TYPEHASH = 0x3f4836e6451bb6d2b509c77db86cf9460443ae03fdcbe757d7eb4c9cfd83cf97;
    /// @dev bytes4(keccak256("isValidSignature(bytes32,bytes)"))
    bytes4 internal constant ERC1271_MAGIC = 0x1626ba7e;
    /// @dev The gas `claimBatch` forwards with each payment: enough for a contract wallet's
    /// `receive` or a token's `transfer` to a fresh holder, and a bound on what one
    /// recipient or token can burn of the batch's gas.
    uint256 internal constant BATCH_PAY_GAS = 100_000;

    uint256 private immutable cachedChainId;
    bytes32 private immutable cachedDomainSeparator;

    // ---------------------------------------------------------------- storage

    // No Solidity state variables: the layout is hand-made, so that the hot paths hash
    // nothing to find a slot.
    //
    // Deposits: the hash of each open deposit's fields is stored at the slot whose number
    // is its claim key (an address, so below 2^160); zero when none. Read it with
    // `deposits(claimKey)`.
    //
    // Fees: a relayer's accrued fees in a token, plus one once it has earned anything in
    // that token (zero before), at slot keccak256(abi.encode(relayer, token)). The slot
    // never goes back to zero, so later accruals rewrite a non-zero slot (5,000 gas)
    // instead of filling an empty one (22,100). Read it with `feesAccrued`. A keccak
    // output below 2^160 (a collision with a deposit slot) takes about 2^96 tries to find.
    //
    // Accounts: three packed words at slots b, b + 1, b + 2 where b = keccak256(account)
    // (hashed: ids are chosen by whoever opens an account, so they must not be able to
    // name a deposit slot, a fee slot or another account's words).
    //   word 0: balance uint96 | spent today uint48 | day uint32 | nonce uint32 | 48 zero bits
    //   word 1: per-payment limit uint48 | per-day limit uint48 | controller address
    //   word 2: owner address (zero: none bound)
    // An account is open when its nonce is not zero.

    constructor() {
        cachedChainId = block.chainid;
        cachedDomainSeparator = _buildDomainSeparator();
    }

    // ---------------------------------------------------------------- external

    /// @notice Escrows `d.amount` of `d.token` (or of the native coin when `d.token` is zero)
    /// for the holder of `claimKey`'s key. For a token, the caller must have approved this
    /// contract; tokens that deliver a different amount than asked are refused.
    /// @param claimKey The address of a fresh key made for this deposit.
    /// @param d The deposit; `d.sender` must be the caller.
    function deposit(address claimKey, Deposit calldata d) external payable {
        if (claimKey == address(0)) revert ZeroClaimKey();
        if (d.sender != msg.sender) revert SenderMismatch(d.sender, msg.sender);
        uint256 amount = d.amount;
        if (amount == 0) revert ZeroAmount();
        if (d.expiry <= block.timestamp) revert ExpiryInPast(d.expiry, block.timestamp);
        if (_load(claimKey) != bytes32(0)) revert ClaimKeyInUse(claimKey);
        // The fields not read above must be clean too: the stored hash and the event
        // are taken from the raw calldata words.
        _checkClean(d);
        _store(claimKey, _hashDeposit(d));
        address token = d.token;
        if (token == address(0)) {
            if (msg.value != amount) revert ValueMismatch(amount, msg.value);
        } else {
            if (msg.value != 0) revert ValueMismatch(0, msg.value);
            uint256 before = _balanceOf(token);
            _pull(token, amount);
            uint256 received = _balanceOf(token) - before;
            if (received != amount) revert TokenShortfall(amount, received);
        }
        // emit Deposited(claimKey, msg.sender, d), straight from calldata.
        bytes32 topic = Deposited.selector;
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            calldatacopy(ptr, d, 0xe0)
            log3(ptr, 0xe0, topic, claimKey, caller())
        }
    }

    /// @notice Pays an open deposit to `to`, minus a relayer fee that accrues to the caller
    /// in this contract (withdraw it with `withdrawFees`).
    /// @param claimKey The deposit's claim key address.
    /// @param d The deposit's fields, as in the `Deposited` event.
    /// @param to Who receives `d.amount - fee`.
    /// @param fee What the caller (the relayer) earns; at most `maxFee`.
    /// @param maxFee The largest fee the claim key allowed.
    /// @param deadline The signed claim is void after this time.
    /// @param linkSig The claim key's EIP-712 `Claim` signature (65 bytes, low s).
    /// @param attestation When `d.watcher` is set and is not the caller: its EIP-712 `Attest`
    /// signature, or for a contract watcher whatever its ERC-1271 `isValidSignature` accepts.
    /// Not read otherwise (pass it empty): a watcher submitting its own claim needs none.
    function claim(
        address claimKey,
        Deposit calldata d,
        address to,
        uint96 fee,
        uint96 maxFee,
        uint40 deadline,
        bytes calldata linkSig,
        bytes calldata attestation
    ) external {
        (uint256 code, bytes32 h) =
            _verify(claimKey, d, to, fee, maxFee, deadline, linkSig, attestation, _domainSeparator());
        if (code != OK) _refuse(code, claimKey, d, fee, maxFee, deadline, h);
        _store(claimKey, 0);
        address token = d.token;
        uint256 amount = d.amount;
        if (fee != 0) _accrue(token, fee);
        _pay(token, to, amount - fee);
        _logClaimed(claimKey, to, amount, fee);
    }

    /// @notice `claim` for a deposit an account paid (`payToEmail_3wqa`), to an address: in
    /// link mode by anyone, in email mode by the deposit's watcher itself (no attestation).
    /// `from` is the paying account, which the deposit's hash binds; the claim key's `Claim`
    /// signature comes in the 64-byte form of EIP-2098 (`sigR`, `sigVS`). A separate entry
    /// with its own argument types keeps `claim` itself as it was.
    function claimFromAccount_fjv(
        bytes32 from,
        address claimKey,
        Deposit calldata d,
        address to,
        uint96 fee,
        uint96 maxFee,
        uint40 deadline,
        bytes32 sigR,
        bytes32 sigVS
    ) external {
        // The checks of `_verify` with the account-bound hash, written out again: a third
        // caller of `_verify` changes how the optimizer lays out `claim`.
        bytes32 h = _fundedHashOf(d, from);
        if (_load(claimKey) != h) revert UnknownDeposit(claimKey, h);
        uint40 expiry = uint40(_word(d, 3));
        if (block.timestamp >= expiry) revert Expired(expiry, block.timestamp);
        if (block.timestamp > deadline) revert DeadlinePassed(deadline, block.timestamp);
        uint256 amount = _word(d, 2);
        if (fee > maxFee || fee > amount) revert FeeTooHigh(fee, maxFee);
        bytes32 digest = _typedDigest(CLAIM_TYPEHASH, claimKey, h, bytes32(uint256(uint160(to))), maxFee, deadline);
        if (_signerOf(digest, sigR, sigVS) != claimKey) {
            revert BadClaimSignature(claimKey);
        }
        address watcher = address(uint160(_word(d, 5)));
        if (watcher != address(0) && watcher != msg.sender) revert BadAttestation(watcher);
        _store(claimKey, 0);
        if (fee != 0) _accrueNative(fee);
        unchecked {
            _payNative(to, amount - fee);
        }
        // emit Claimed(claimKey, to, amount, fee, msg.sender)
        bytes32 topic = Claimed.selector;
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, amount)
            mstore(add(ptr, 0x20), fee)
            mstore(add(ptr, 0x40), caller())
            log3(ptr, 0x60, topic, claimKey, to)
        }
    }

    /// @notice Settles several claims in one transaction; each entry holds the arguments of
    /// `claim`. A claim that is not valid now, or whose payment fails, is skipped: its
    /// deposit stays open, a `ClaimSkipped(claimKey, reason)` event names it, and the
    /// others are still paid. The fees of the paid claims accrue to the caller.
    /// @return reasons One entry per claim: zero when it was paid, else the selector of the
    /// error that `claim` would have reverted with (so a simulation tells which fail).
    function claimBatch(ClaimArgs[] calldata claims) external returns (bytes4[] memory reasons) {
        uint256 n = claims.length;
        reasons = new bytes4[](n);
        bytes32 sep = _domainSeparator();
        // Fees are summed per run of claims in the same token and written once per run.
        address feeToken;
        uint256 pending;
        for (uint256 i; i < n; ++i) {
            ClaimArgs calldata c = claims[i];
            address claimKey = c.claimKey;
            (uint256 code, bytes32 h) = _verify(
                claimKey, c.d, c.to, c.fee, c.maxFee, c.deadline, c.linkSig, c.attestation, sep
            );
            bytes4 reason;
            if (code == OK) {
                _store(claimKey, 0);
                address token = c.d.token;
                uint256 amount = c.d.amount;
                uint256 fee = c.fee;
                if (_tryPay(token, c.to, amount - fee)) {
                    if (fee != 0) {
                        if (token != feeToken) {
                            if (pending != 0) _accrue(feeToken, pending);
                            feeToken = token;
                            pending = 0;
                        }
                        unchecked {
                            pending += fee;
                        }
                    }
                    _logClaimed(claimKey, c.to, amount, fee);
                    continue;
                }
                // The failed call undid whatever the payee did; put the deposit back.
                _store(claimKey, h);
                reason = TransferFailed.selector;
            } else {
                reason = _reason(code);
            }
            reasons[i] = reason;
            emit ClaimSkipped(claimKey, reason);
        }
        if (pending != 0) _accrue(feeToken, pending);
    }

    /// @notice Pays the caller's accrued fees in `token` (zero: the native coin) to `to`,
    /// in one transfer.
    function withdrawFees(address token, address to) external returns (uint256 amount) {
        if (to == address(0)) revert ZeroPayee();
        uint256 slot = _feeSlot(msg.sender, token);
        uint256 s = _sload(slot);
        if (s <= 1) revert NoFees(msg.sender, token);
        _sstore(slot, 1);
        unchecked {
            amount = s - 1;
        }
        _pay(token, to, amount);
        emit FeesWithdrawn(msg.sender, token, to, amount);
    }

    /// @notice The fees `relayer` has accrued in `token` (zero: the native coin) and not
    /// yet withdrawn.
    function feesAccrued(address relayer, address token) external view returns (uint256) {
        uint256 s = _sload(_feeSlot(relayer, token));
        unchecked {
            return s == 0 ? 0 : s - 1;
        }
    }

    /// @notice Returns an open deposit to its sender: by anyone once it has expired, or by
    /// the sender before that when the deposit is CANCELLABLE.
    function refund(address claimKey, Deposit calldata d) external {
        // Hand-written: the refund is the path every unclaimed deposit takes, and its gas
        // is mostly fixed costs. The fields are read as raw calldata words: once the hash
        // matches the stored one, every word is the clean word `deposit` checked.
        address sender;
        address token;
        uint256 amount;
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            calldatacopy(ptr, d, 0xe0)
            let h := keccak256(ptr, 0xe0)
            if iszero(eq(sload(claimKey), h)) {
                // A deposit paid from an account (flags bit 1): its hash binds the account, passed as
                // one more word after the arguments; the refund credits that account.
                // Only here, off the ordinary refund's path.
                let account := calldataload(add(d, 0xe0))
                mstore(add(ptr, 0xe0), account)
                // (claimKey read again from calldata: the optimizer must not keep the
                // first sload on the stack of the ordinary path.)
                if iszero(and(shr(1, mload(add(ptr, 0x80))), eq(sload(calldataload(0x04)), keccak256(ptr, 0x100)))) {
                    // UnknownDeposit(claimKey, h)
                    mstore(ptr, shl(224, 0x950b3265))
                    mstore(add(ptr, 0x04), claimKey)
                    mstore(add(ptr, 0x24), h)
                    revert(ptr, 0x44)
                }
                mstore(0x00, account)
                let base := keccak256(0x00, 0x20)
                let expiry := mload(add(ptr, 0x60))
                if lt(timestamp(), expiry) {
                    // Before expiry: the account's controller or owner, when CANCELLABLE.
                    let ok := or(eq(caller(), and(sload(add(base, 1)), MASK160)), eq(caller(), sload(add(base, 2))))
                    if iszero(and(ok, and(mload(add(ptr, 0x80)), CANCELLABLE))) {
                        // RefundNotAllowed(msg.sender, expiry, block.timestamp)
                        mstore(ptr, shl(224, 0xed8f49f1))
                        mstore(add(ptr, 0x04), caller())
                        mstore(add(ptr, 0x24), expiry)
                        mstore(add(ptr, 0x44), timestamp())
                        revert(ptr, 0x64)
                    }
                }
                sstore(claimKey, 0)
                let amt := mload(add(ptr, 0x40))
                // The balance is a uint96 at the top of word 0 and all coin held fits in it.
                sstore(base, add(sload(base), shl(160, amt)))
                // emit Refunded(claimKey, address(this), amount)
                mstore(0x00, amt)
                log3(0x00, 0x20, 0xec1e5ed733e00f1a00915d56caef57b4f52312dde4f9b3165f213319a0da156b, claimKey, address())
                // emit Moved(bytes32(claimKey), account, amount, 0, 0)
                mstore(ptr, amt)
                mstore(add(ptr, 0x20), 0)
                mstore(add(ptr, 0x40), 0)
                log3(ptr, 0x60, 0x277df10c22871eab586b44c1976a142383a256f06ae49377a60cf1576150cf4e, claimKey, account)
                return(0, 0)
            }
            sender := mload(ptr)
            let expiry := mload(add(ptr, 0x60))
            if lt(timestamp(), expiry) {
                if or(iszero(eq(caller(), sender)), iszero(and(mload(add(ptr, 0x80)), CANCELLABLE))) {
                    // RefundNotAllowed(msg.sender, expiry, block.timestamp)
                    mstore(ptr, shl(224, 0xed8f49f1))
                    mstore(add(ptr, 0x04), caller())
                    mstore(add(ptr, 0x24), expiry)
                    mstore(add(ptr, 0x44), timestamp())
                    revert(ptr, 0x64)
                }
            }
            sstore(claimKey, 0)
            token := mload(add(ptr, 0x20))
            amount := mload(add(ptr, 0x40))
            if iszero(token) {
                if iszero(call(gas(), sender, amount, 0, 0, 0, 0)) {
                    // TransferFailed(address(0), sender, amount)
                    mstore(ptr, shl(224, 0xbf182be8))
                    mstore(add(ptr, 0x04), 0)
                    mstore(add(ptr, 0x24), sender)
                    mstore(add(ptr, 0x44), amount)
                    revert(ptr, 0x64)
                }
            }
        }
        if (token != address(0)) _pay(token, sender, amount);
        // emit Refunded(claimKey, sender, amount)
        bytes32 topic = Refunded.selector;
        assembly ("memory-safe") {
            mstore(0x00, amount)
            log3(0x00, 0x20, topic, claimKey, sender)
        }
    }

    // ---------------------------------------------------------------- accounts

    /// @notice Opens `account` (an account commitment) under `controller`, with limits per
    /// payment and per day in base units. Anyone may open an account that is not open.
    function createAccount_1s(bytes32 account, address controller, uint48 perPayment, uint48 perDay) external {
        if (controller == address(0)) revert ZeroAddress();
        uint256 base = _base(account);
        if (account == bytes32(0) || _sload(base) != 0) revert AccountExists(account);
        _sstore(base, NONCE_ONE);
        _sstore(base + 1, (uint256(perPayment) << 208) | (uint256(perDay) << 160) | uint256(uint160(controller)));
        emit AccountOpened(account, controller, perPayment, perDay);
    }

    /// @notice Pays an email-mode deposit into an open account, minus `fee` accrued to the
    /// caller. The caller must be the account's controller and the deposit's watcher (it
    /// attests by sending); the claim key signs the EIP-712 `ClaimInto`, passed in the
    /// 64-byte form of EIP-2098 (`sigR`, `sigVS`). For a deposit paid from an account,
    /// pass that account as one more word after the arguments.
    function claimIntoAccount_195w(
        address claimKey,
        Deposit calldata d,
        bytes32 account,
        uint96 fee,
        uint96 maxFee,
        uint40 deadline,
        bytes32 sigR,
        bytes32 sigVS,
        uint32 nonce,
        bytes32 mailHash
    ) external {
        bytes32 h;
        assembly ("memory-safe") {
            // _hashDeposit(d), written out (see `_typedDigest`).
            let ptr := mload(0x40)
            calldatacopy(ptr, d, 0xe0)
            h := keccak256(ptr, 0xe0)
        }
        // The fields are read as raw words (`_word`), valid once the hash matches.
        if (_load(claimKey) != h) {
            bytes32 h2 = _fundedHash(d);
            if (_word(d, 4) & FROM_ACCOUNT == 0 || _load(claimKey) != h2) revert UnknownDeposit(claimKey, h);
            h = h2;
        }
        uint40 expiry = uint40(_word(d, 3));
        if (block.timestamp >= expiry) revert Expired(expiry, block.timestamp);
        if (block.timestamp > deadline) revert DeadlinePassed(deadline, block.timestamp);
        uint256 amount = _word(d, 2);
        if (fee > maxFee || fee > amount) revert FeeTooHigh(fee, maxFee);
        if (_word(d, 1) != 0) revert NotAccountDeposit(address(uint160(_word(d, 1))), uint8(_word(d, 4)));
        if (address(uint160(_word(d, 5))) != msg.sender) revert BadAttestation(address(uint160(_word(d, 5))));
        uint256 base = _base(account);
        uint256 w0 = _sload(base);
        uint256 n = (w0 >> 48) & MASK32;
        if (n == 0) revert AccountNotOpen(account);
        if (address(uint160(_sload(base + 1))) != msg.sender) revert NotController(account, msg.sender);
        if (n != nonce) revert BadNonce(account, n, nonce);
        if (
            _signerOf(_typedDigest(CLAIM_INTO_TYPEHASH, claimKey, h, account, maxFee, deadline), sigR, sigVS)
                != claimKey
        ) revert BadClaimSignature(claimKey);
        _store(claimKey, 0);
        unchecked {
            // All coin held fits the uint96 balance; the nonce has 2^32 steps.
            _sstore(base, w0 + ((amount - fee) << 160) + NONCE_ONE);
        }
        if (fee != 0) _accrueNative(fee);
        unchecked {
            _logMoved(bytes32(uint256(uint160(claimKey))), account, amount - fee, nonce, mailHash);
        }
    }

    /// @notice Moves `amount` from account `from` to the open account `to`: by `from`'s
    /// controller within its limits, or by its owner without.
    function transferToAccount_1q11(bytes32 from, bytes32 to, uint96 amount, uint32 nonce, bytes32 mailHash) external {
        if (amount == 0) revert ZeroAmount();
        _debit(from, amount, nonce);
        uint256 tb = _base(to);
        uint256 t0 = _sload(tb);
        if (t0 & (MASK32 << 48) == 0) revert AccountNotOpen(to);
        unchecked {
            _sstore(tb, t0 + (uint256(amount) << 160));
        }
        _logMoved(from, to, amount, nonce, mailHash);
    }

    /// @notice Pays a new deposit from account `from` (controller within limits, or owner):
    /// `d.sender` is this contract, `d.flags` has FROM_ACCOUNT, the coin is native. Its
    /// stored hash is keccak256(abi.encode(d) ‖ from): a refund credits `from`.
    function payToEmail_3wqa(bytes32 from, address claimKey, Deposit calldata d, uint32 nonce, bytes32 mailHash)
        external
    {
        // The fields are read as raw words (`_word`); each is checked clean, since the
        // stored hash and the event are taken from them.
        if (claimKey == address(0)) revert ZeroClaimKey();
        uint256 sender = _word(d, 0);
        if (sender != uint256(uint160(address(this)))) revert SenderMismatch(address(uint160(sender)), address(this));
        uint256 amount = _word(d, 2);
        uint256 expiry = _word(d, 3);
        uint256 flags = _word(d, 4);
        if ((amount >> 96) | (expiry >> 40) | (flags >> 8) | (_word(d, 5) >> 160) != 0) revert();
        if (amount == 0) revert ZeroAmount();
        if (expiry <= block.timestamp) revert ExpiryInPast(uint40(expiry), block.timestamp);
        if (_word(d, 1) != 0 || flags & FROM_ACCOUNT == 0) {
            revert NotAccountDeposit(address(uint160(_word(d, 1))), uint8(flags));
        }
        if (_load(claimKey) != bytes32(0)) revert ClaimKeyInUse(claimKey);
        _debit(from, amount, nonce);
        // Store keccak256(abi.encode(d) ‖ from) and emit
        // AccountDeposited(from, claimKey, d, nonce, mailHash), from the same memory.
        bytes32 topic = AccountDeposited.selector;
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            calldatacopy(ptr, d, 0xe0)
            mstore(add(ptr, 0xe0), from)
            sstore(claimKey, keccak256(ptr, 0x100))
            mstore(add(ptr, 0xe0), nonce)
            mstore(add(ptr, 0x100), mailHash)
            log3(ptr, 0x120, topic, from, claimKey)
        }
    }

    /// @notice Pays `amount` from account `from` to the address `to`: by the controller
    /// within the limits, or by the owner without (the way out without the broker).
    function withdrawFromAccount_4g(bytes32 from, address to, uint96 amount, uint32 nonce, bytes32 mailHash) external {
        if (to == address(0)) revert ZeroPayee();
        if (amount == 0) revert ZeroAmount();
        _debit(from, amount, nonce);
        _payNative(to, amount);
        _logMoved(from, bytes32(uint256(uint160(to))), amount, nonce, mailHash);
    }

    /// @notice Binds the owner's key: by the controller while none is bound; after that
    /// only the owner changes it.
    function bindOwner_27(bytes32 account, address owner, uint32 nonce, bytes32 mailHash) external {
        if (owner == address(0)) revert ZeroAddress();
        uint256 base = _authorize(account, nonce);
        _sstore(base + 2, uint256(uint160(owner)));
        emit OwnerBound(account, owner, nonce, mailHash);
    }

    /// @notice Moves the account to another controller: by the owner, or by the controller
    /// while no owner is bound.
    function setController_5c(bytes32 account, address controller, uint32 nonce, bytes32 mailHash) external {
        if (controller == address(0)) revert ZeroAddress();
        uint256 base = _authorize(account, nonce);
        _sstore(base + 1, (_sload(base + 1) & ~MASK160) | uint256(uint160(controller)));
        emit ControllerChanged(account, controller, nonce, mailHash);
    }

    /// @notice Sets the controller's limits: the owner as it likes; the controller as it
    /// likes while no owner is bound, and after that only lower.
    function setLimits_6(bytes32 account, uint48 perPayment, uint48 perDay) external {
        uint256 base = _base(account);
        if ((_sload(base) >> 48) & MASK32 == 0) revert AccountNotOpen(account);
        uint256 w1 = _sload(base + 1);
        address owner = address(uint160(_sload(base + 2)));
        if (msg.sender != owner) {
            if (msg.sender != address(uint160(w1))) revert NotController(account, msg.sender);
            if (owner != address(0) && (perPayment > w1 >> 208 || perDay > (w1 >> 160) & MASK48)) {
                revert NotController(account, msg.sender);
            }
        }
        _sstore(base + 1, (uint256(perPayment) << 208) | (uint256(perDay) << 160) | (w1 & MASK160));
        emit LimitsChanged(account, perPayment, perDay);
    }

    /// @notice The account's three words, unpacked. `spentToday` counts for `day`
    /// (unix days); on a later day the controller's spending starts from zero.
    function accountOf_s(bytes32 account)
        external
        view
        returns (
            uint256 balance,
            uint256 spentToday,
            uint256 day,
            uint256 nonce,
            uint256 perPayment,
            uint256 perDay,
            address controller,
            address owner
        )
    {
        uint256 base = _base(account);
        uint256 w0 = _sload(base);
        uint256 w1 = _sload(base + 1);
        balance = w0 >> 160;
        spentToday = (w0 >> 112) & MASK48;
        day = (w0 >> 80) & MASK32;
        nonce = (w0 >> 48) & MASK32;
        perPayment = w1 >> 208;
        perDay = (w1 >> 160) & MASK48;
        controller = address(uint160(w1));
        owner = address(uint160(_sload(base + 2)));
    }

    /// @notice The hash of the open deposit under `claimKey`; zero when none.
    function deposits(address claimKey) external view returns (bytes32) {
        return _load(claimKey);
    }

    /// @notice The hash stored for a deposit: keccak256(abi.encode(d)).
    function getDepositHash(Deposit calldata d) external pure returns (bytes32) {
        return _hashDeposit(d);
    }

    /// @notice The EIP-712 digest the claim key signs.
    function getClaimDigest(address claimKey, bytes32 depositHash, address to, uint96 maxFee, uint40 deadline)
        external
        view
        returns (bytes32)
    {
        return _digest(_domainSeparator(), _claimStructHash(claimKey, depositHash, to, maxFee, deadline));
    }

    /// @notice The EIP-712 digest a watcher signs to attest a claim.
    function getAttestHash(address claimKey, bytes32 depositHash, address to, uint40 deadline)
        external
        view
        returns (bytes32)
    {
        return _digest(_domainSeparator(), _attestStructHash(claimKey, depositHash, to, deadline));
    }

    /// @notice The EIP-712 domain separator for this chain and contract.
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparator();
    }

    /// @notice ERC-5267: the EIP-712 domain fields.
    function eip712Domain()
        external
        view
        returns (
            bytes1 fields,
            string memory name,
            string memory version,
            uint256 chainId,
            address verifyingContract,
            bytes32 salt,
            uint256[] memory extensions
        )
    {
        return (hex"0f", "SpringMail", "1", block.chainid, address(this), bytes32(0), new uint256[](0));
    }

    // ---------------------------------------------------------------- internal

    uint256 internal constant OK = 0;
    uint256 internal constant E_UNKNOWN = 1;
    uint256 internal constant E_EXPIRED = 2;
    uint256 internal constant E_DEADLINE = 3;
    uint256 internal constant E_FEE = 4;
    uint256 internal constant E_CLAIM_SIG = 5;
    uint256 internal constant E_ATTESTATION = 6;

    /// @dev Every check of a claim, in the documented order; OK or the first failure.
    function _verify(
        address claimKey,
        Deposit calldata d,
        address to,
        uint96 fee,
        uint96 maxFee,
        uint40 deadline,
        bytes calldata linkSig,
        bytes calldata attestation,
        bytes32 sep
    ) internal view returns (uint256 code, bytes32 h) {
        // A stored hash is never zero (no keccak preimage of zero is known), so an
        // empty slot never matches.
        h = _hashDeposit(d);
        if (_load(claimKey) != h) return (E_UNKNOWN, h);
        if (block.timestamp >= d.expiry) return (E_EXPIRED, h);
        if (block.timestamp > deadline) return (E_DEADLINE, h);
        if (fee > maxFee || fee > d.amount) return (E_FEE, h);
        if (_recover(_digest(sep, _claimStructHash(claimKey, h, to, maxFee, deadline)), linkSig) != claimKey) {
            return (E_CLAIM_SIG, h);
        }
        address watcher = d.watcher;
        // A watcher that submits the claim itself attests it by sending the transaction.
        if (watcher != address(0) && watcher != msg.sender) {
            bytes32 digest = _digest(sep, _attestStructHash(claimKey, h, to, deadline));
            if (!_attested(watcher, digest, attestation)) return (E_ATTESTATION, h);
        }
        return (OK, h);
    }

    /// @dev Reverts with the error `claim` reports for a failed check.
    function _refuse(
        uint256 code,
        address claimKey,
        Deposit calldata d,
        uint96 fee,
        uint96 maxFee,
        uint40 deadline,
        bytes32 h
    ) internal view {
        if (code == E_UNKNOWN) revert UnknownDeposit(claimKey, h);
        if (code == E_EXPIRED) revert Expired(d.expiry, block.timestamp);
        if (code == E_DEADLINE) revert DeadlinePassed(deadline, block.timestamp);
        if (code == E_FEE) revert FeeTooHigh(fee, maxFee);
        if (code == E_CLAIM_SIG) revert BadClaimSignature(claimKey);
        revert BadAttestation(d.watcher);
    }

    /// @dev The selector of the error for a failed check: the reason `ClaimSkipped` carries.
    function _reason(uint256 code) internal pure returns (bytes4) {
        if (code == E_UNKNOWN) return UnknownDeposit.selector;
        if (code == E_EXPIRED) return Expired.selector;
        if (code == E_DEADLINE) return DeadlinePassed.selector;
        if (code == E_FEE) return FeeTooHigh.selector;
        if (code == E_CLAIM_SIG) return BadClaimSignature.selector;
        return BadAttestation.selector;
    }

    /// @dev Where an account's words start: keccak256(account).
    function _base(bytes32 account) internal pure returns (uint256 b) {
        assembly ("memory-safe") {
            mstore(0x00, account)
            b := keccak256(0x00, 0x20)
        }
    }

    /// @dev Takes `amount` from an open account for its controller (within the limits) or
    /// its owner (without), checking and stepping the nonce.
    function _debit(bytes32 account, uint256 amount, uint32 nonce) internal {
        uint256 base = _base(account);
        uint256 w0 = _sload(base);
        uint256 n = (w0 >> 48) & MASK32;
        if (n == 0) revert AccountNotOpen(account);
        uint256 w1 = _sload(base + 1);
        uint256 bal = w0 >> 160;
        if (msg.sender == address(uint160(w1))) {
            if (n != nonce) revert BadNonce(account, n, nonce);
            uint256 today = block.timestamp / 86400;
            uint256 spent = ((w0 >> 80) & MASK32) == today ? (w0 >> 112) & MASK48 : 0;
            uint256 perPayment = w1 >> 208;
            uint256 perDay = (w1 >> 160) & MASK48;
            unchecked {
                if (amount > perPayment || spent + amount > perDay) {
                    uint256 left = perDay > spent ? perDay - spent : 0;
                    revert LimitExceeded(account, amount, left < perPayment ? left : perPayment);
                }
                if (amount > bal) revert InsufficientBalance(account, bal, amount);
                _sstore(base, ((bal - amount) << 160) | ((spent + amount) << 112) | (today << 80) | ((n + 1) << 48));
            }
        } else {
            if (msg.sender != address(uint160(_sload(base + 2)))) revert NotController(account, msg.sender);
            if (n != nonce) revert BadNonce(account, n, nonce);
            if (amount > bal) revert InsufficientBalance(account, bal, amount);
            unchecked {
                _sstore(base, w0 - (amount << 160) + NONCE_ONE);
            }
        }
    }

    /// @dev For the account's settings: its owner once bound, else its controller; checks
    /// and steps the nonce. Returns where the account's words start.
    function _authorize(bytes32 account, uint32 nonce) internal returns (uint256 base) {
        base = _base(account);
        uint256 w0 = _sload(base);
        uint256 n = (w0 >> 48) & MASK32;
        if (n == 0) revert AccountNotOpen(account);
        address owner = address(uint160(_sload(base + 2)));
        address allowed = owner != address(0) ? owner : address(uint160(_sload(base + 1)));
        if (msg.sender != allowed) revert NotController(account, msg.sender);
        if (n != nonce) revert BadNonce(account, n, nonce);
        unchecked {
            _sstore(base, w0 + NONCE_ONE);
        }
    }

    // The account paths have their own copies of `_recover`, `_accrue` and `_pay`: sharing
    // them changes how the optimizer inlines them into `claim`, which then costs more.

    /// @dev The signer of an EIP-2098 signature (r, yParity ‖ s), low s only; address(0)
    /// when invalid. Fixed-size arguments also keep `claim`'s decoding of `bytes` inlined.
    function _signerOf(bytes32 digest, bytes32 r, bytes32 vs) internal view returns (address signer) {
        assembly ("memory-safe") {
            let s := and(vs, 0x7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff)
            if iszero(gt(s, HALF_N)) {
                let ptr := mload(0x40)
                mstore(ptr, digest)
                mstore(add(ptr, 0x20), add(27, shr(255, vs)))
                mstore(add(ptr, 0x40), r)
                mstore(add(ptr, 0x60), s)
                mstore(0x00, 0)
                if staticcall(gas(), 1, ptr, 0x80, 0x00, 0x20) { signer := mload(0x00) }
            }
        }
    }

    /// @dev `_accrue` of the native coin, for the account paths.
    function _accrueNative(uint256 amount) internal {
        uint256 slot = _feeSlot(msg.sender, address(0));
        uint256 s = _sload(slot);
        unchecked {
            _sstore(slot, (s == 0 ? 1 : s) + amount);
        }
    }

    /// @dev `_pay` of the native coin, for the account paths.
    function _payNative(address to, uint256 amount) internal {
        bool ok;
        assembly ("memory-safe") {
            ok := call(gas(), to, amount, 0, 0, 0, 0)
        }
        if (!ok) revert TransferFailed(address(0), to, amount);
    }

    /// @dev emit Moved(from, to, amount, nonce, mailHash), from scratch memory.
    function _logMoved(bytes32 from, bytes32 to, uint256 amount, uint256 nonce, bytes32 mailHash) internal {
        bytes32 topic = Moved.selector;
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, amount)
            mstore(add(ptr, 0x20), nonce)
            mstore(add(ptr, 0x40), mailHash)
            log3(ptr, 0x60, topic, from, to)
        }
    }

    /// @dev The EIP-712 digest of a `Claim` or `ClaimInto` (five fields after the type
    /// hash), for the account paths: its own copy of the domain separator and hashing, so
    /// that `claim`'s are still inlined there.
    function _typedDigest(
        bytes32 typehash,
        address claimKey,
        bytes32 depositHash,
        bytes32 third,
        uint96 maxFee,
        uint40 deadline
    ) internal view returns (bytes32 dg) {
        bytes32 sep = block.chainid != cachedChainId ? _buildDomainSeparator() : cachedDomainSeparator;
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, typehash)
            mstore(add(ptr, 0x20), claimKey)
            mstore(add(ptr, 0x40), depositHash)
            mstore(add(ptr, 0x60), third)
            mstore(add(ptr, 0x80), maxFee)
            mstore(add(ptr, 0xa0), deadline)
            let sh := keccak256(ptr, 0xc0)
            mstore(ptr, 0x1901000000000000000000000000000000000000000000000000000000000000)
            mstore(add(ptr, 0x02), sep)
            mstore(add(ptr, 0x22), sh)
            dg := keccak256(ptr, 0x42)
        }
    }

    /// @dev The deposit hash under a claim key: stored at the slot numbered by the key.
    function _load(address claimKey) internal view returns (bytes32 h) {
        assembly ("memory-safe") {
            h := sload(claimKey)
        }
    }

    function _store(address claimKey, bytes32 h) internal {
        assembly ("memory-safe") {
            sstore(claimKey, h)
        }
    }

    /// @dev keccak256(abi.encode(relayer, token)): where a relayer's fees in a token are.
    function _feeSlot(address relayer, address token) internal pure returns (uint256 slot) {
        assembly ("memory-safe") {
            mstore(0x00, relayer)
            mstore(0x20, token)
            slot := keccak256(0x00, 0x40)
        }
    }

    function _sload(uint256 slot) internal view returns (uint256 v) {
        assembly ("memory-safe") {
            v := sload(slot)
        }
    }

    function _sstore(uint256 slot, uint256 v) internal {
        assembly ("memory-safe") {
            sstore(slot, v)
        }
    }

    /// @dev Adds `amount` to the caller's accrued fees in `token` (slot = fees + 1).
    function _accrue(address token, uint256 amount) internal {
        uint256 slot = _feeSlot(msg.sender, token);
        uint256 s = _sload(slot);
        // Amounts are uint96 and the sum of all fees is bounded by what the escrow holds.
        unchecked {
            _sstore(slot, (s == 0 ? 1 : s) + amount);
        }
    }

    /// @dev emit Claimed(claimKey, to, amount, fee, msg.sender), from scratch memory.
    function _logClaimed(address claimKey, address to, uint256 amount, uint256 fee) internal {
        bytes32 topic = Claimed.selector;
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, amount)
            mstore(add(ptr, 0x20), fee)
            mstore(add(ptr, 0x40), caller())
            log3(ptr, 0x60, topic, claimKey, to)
        }
    }

    /// @dev Like `_pay`, but reports failure instead of reverting, and forwards at most
    /// BATCH_PAY_GAS: one payee cannot sink a batch.
    function _tryPay(address token, address to, uint256 amount) internal returns (bool ok) {
        if (token == address(0)) {
            assembly ("memory-safe") {
                ok := call(BATCH_PAY_GAS, to, amount, 0, 0, 0, 0)
            }
        } else {
            assembly ("memory-safe") {
                let ptr := mload(0x40)
                mstore(ptr, 0xa9059cbb00000000000000000000000000000000000000000000000000000000)
                mstore(add(ptr, 0x04), to)
                mstore(add(ptr, 0x24), amount)
                mstore(0x00, 0)
                ok := call(BATCH_PAY_GAS, token, 0, ptr, 0x44, 0x00, 0x20)
                // Accept no return data, or a 32-byte word equal to 1.
                ok := and(ok, or(iszero(returndatasize()), and(gt(returndatasize(), 0x1f), eq(mload(0x00), 1))))
            }
        }
    }

    function _hashDeposit(Deposit calldata d) internal pure returns (bytes32 h) {
        // The struct is seven static words in calldata; hash them in place.
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            calldatacopy(ptr, d, 0xe0)
            h := keccak256(ptr, 0xe0)
        }
    }

    /// @dev keccak256(abi.encode(d) ‖ account) for a deposit paid from an account, with
    /// the account taken from the last calldata word.
    function _fundedHash(Deposit calldata d) internal pure returns (bytes32 h) {
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            calldatacopy(ptr, d, 0xe0)
            mstore(add(ptr, 0xe0), calldataload(sub(calldatasize(), 0x20)))
            h := keccak256(ptr, 0x100)
        }
    }

    /// @dev Word `i` of a deposit in calldata, raw. The account paths read fields this way:
    /// Solidity's own field reads, shared with `claim` and `deposit`, would then no longer
    /// be inlined there.
    function _word(Deposit calldata d, uint256 i) internal pure returns (uint256 v) {
        assembly ("memory-safe") {
            v := calldataload(add(d, shl(5, i)))
        }
    }

    /// @dev keccak256(abi.encode(d) ‖ account).
    function _fundedHashOf(Deposit calldata d, bytes32 account) internal pure returns (bytes32 h) {
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            calldatacopy(ptr, d, 0xe0)
            mstore(add(ptr, 0xe0), account)
            h := keccak256(ptr, 0x100)
        }
    }

    /// @dev Reverts unless the two fields `deposit` does not read are clean ABI values.
    function _checkClean(Deposit calldata d) internal pure {
        assembly ("memory-safe") {
            if or(shr(8, calldataload(add(d, 0x80))), shr(160, calldataload(add(d, 0xa0)))) { revert(0, 0) }
        }
    }

    /// @dev keccak256(abi.encode(CLAIM_TYPEHASH, claimKey, depositHash, to, maxFee, deadline))
    function _claimStructHash(address claimKey, bytes32 depositHash, address to, uint96 maxFee, uint40 deadline)
        internal
        pure
        returns (bytes32 sh)
    {
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, CLAIM_TYPEHASH)
            mstore(add(ptr, 0x20), claimKey)
            mstore(add(ptr, 0x40), depositHash)
            mstore(add(ptr, 0x60), to)
            mstore(add(ptr, 0x80), maxFee)
            mstore(add(ptr, 0xa0), deadline)
            sh := keccak256(ptr, 0xc0)
        }
    }

    /// @dev keccak256(abi.encode(ATTEST_TYPEHASH, claimKey, depositHash, to, deadline))
    function _attestStructHash(address claimKey, bytes32 depositHash, address to, uint40 deadline)
        internal
        pure
        returns (bytes32 sh)
    {
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, ATTEST_TYPEHASH)
            mstore(add(ptr, 0x20), claimKey)
            mstore(add(ptr, 0x40), depositHash)
            mstore(add(ptr, 0x60), to)
            mstore(add(ptr, 0x80), deadline)
            sh := keccak256(ptr, 0xa0)
        }
    }

    function _domainSeparator() internal view returns (bytes32) {
        return block.chainid == cachedChainId ? cachedDomainSeparator : _buildDomainSeparator();
    }

    function _buildDomainSeparator() internal view returns (bytes32) {
        return keccak256(abi.encode(DOMAIN_TYPEHASH, NAME_HASH, VERSION_HASH, block.chainid, address(this)));
    }

    function _digest(bytes32 sep, bytes32 structHash) internal pure returns (bytes32 d) {
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, hex"1901")
            mstore(add(ptr, 0x02), sep)
            mstore(add(ptr, 0x22), structHash)
            d := keccak256(ptr, 0x42)
        }
    }

    /// @dev ecrecover of a 65-byte r‖s‖v signature; address(0) for any non-canonical form.
    function _recover(bytes32 digest, bytes calldata sig) internal view returns (address signer) {
        if (sig.length != 65) return address(0);
        assembly ("memory-safe") {
            let s := calldataload(add(sig.offset, 0x20))
            let v := byte(0, calldataload(add(sig.offset, 0x40)))
            if and(iszero(gt(s, HALF_N)), or(eq(v, 27), eq(v, 28))) {
                let ptr := mload(0x40)
                mstore(ptr, digest)
                mstore(add(ptr, 0x20), v)
                mstore(add(ptr, 0x40), calldataload(sig.offset))
                mstore(add(ptr, 0x60), s)
                // The precompile returns nothing for an invalid signature: clear the slot first.
                mstore(0x00, 0)
                if staticcall(gas(), 1, ptr, 0x80, 0x00, 0x20) { signer := mload(0x00) }
            }
        }
    }

    /// @dev An EOA watcher's ecrecover signature, else a contract watcher's ERC-1271 answer.
    function _attested(address watcher, bytes32 digest, bytes calldata sig) internal view returns (bool) {
        if (sig.length == 65 && _recover(digest, sig) == watcher) return true;
        if (watcher.code.length == 0) return false;
        (bool ok, bytes memory ret) = watcher.staticcall(abi.encodeCall(IERC1271.isValidSignature, (digest, sig)));
        return ok && ret.length >= 32 && abi.decode(ret, (bytes4)) == ERC1271_MAGIC;
    }

    function _pay(address token, address to, uint256 amount) internal {
        if (token == address(0)) {
            bool ok;
            // No return data is read: nothing to copy.
            assembly ("memory-safe") {
                ok := call(gas(), to, amount, 0, 0, 0, 0)
            }
            if (!ok) revert TransferFailed(address(0), to, amount);
        } else {
            _call(token, abi.encodeCall(IERC20.transfer, (to, amount)), token, to, amount);
        }
    }

    /// @dev Calls a token and accepts only success with no return data or a true bool.
    function _call(address token, bytes memory data, address errToken, address to, uint256 amount) internal {
        (bool ok, bytes memory ret) = token.call(data);
        if (!ok || (ret.length != 0 && (ret.length < 32 || abi.decode(ret, (uint256)) != 1))) {
            revert TransferFailed(errToken, to, amount);
        }
    }

    /// @dev `transferFrom(msg.sender, this, amount)` with the same acceptance rule as `_call`,
    /// built in scratch memory: the token deposit is the hot path.
    function _pull(address token, uint256 amount) internal {
        bool ok;
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, 0x23b872dd00000000000000000000000000000000000000000000000000000000)
            mstore(add(ptr, 0x04), caller())
            mstore(add(ptr, 0x24), address())
            mstore(add(ptr, 0x44), amount)
            ok := call(gas(), token, 0, ptr, 0x64, 0x00, 0x20)
            // Accept no return data, or a 32-byte word equal to 1.
            ok := and(ok, or(iszero(returndatasize()), and(gt(returndatasize(), 0x1f), eq(mload(0x00), 1))))
        }
        if (!ok) revert TransferFailed(token, address(this), amount);
    }

    /// @dev This contract's balance of `token`; reverts when the token does not answer.
    function _balanceOf(address token) internal view returns (uint256 bal) {
        bool ok;
        assembly ("memory-safe") {
            mstore(0x00, 0x70a0823100000000000000000000000000000000000000000000000000000000)
            mstore(0x04, address())
            // Yul evaluates arguments right to left: call first, then read returndatasize.
            ok := staticcall(gas(), token, 0x00, 0x24, 0x00, 0x20)
            ok := and(ok, gt(returndatasize(), 0x1f))
            bal := mload(0x00)
        }
        if (!ok) revert TransferFailed(token, address(this), 0);
    }
}

interface IERC20 {
    function transfer(address to, uint256 amount) external returns (bool);
    function transferFrom(address from, address to, uint256 amount) external returns (bool);
    function balanceOf(address who) external view returns (uint256);
}

interface IERC1271 {
    function isValidSignature(bytes32 digest, bytes calldata signature) external view returns (bytes4);
}
